package store

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// enqueueLag appends n alert records (every third one high, the rest low)
// through the real EnqueueExports, in batches of 500.
func enqueueLag(t testing.TB, s *Store, from, n int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i += 500 {
		var as []*alerts.Alert
		for j := i; j < min(i+500, from+n); j++ {
			sev := alerts.SeverityLow
			if j%3 == 0 {
				sev = alerts.SeverityHigh
			}
			as = append(as, testAlert(j, sev, alerts.SourceSensor, "prod-web"))
		}
		if _, err := s.EnqueueExports(ctx, alertItems(t, as...)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExportLagStats: the metrics' cheap lag agrees with the exact
// ExportOutboxStats — exactly when the backlog fits the sample, within the
// documented estimate beyond it — as deliveries move the cursor, on both
// stores; past LagCountCap PostgreSQL's count turns into an estimate.
func TestExportLagStats(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock()
			s := openStore(t, b.DSN(t), Options{SecretKey: testKey, Now: clk.Now})
			all, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			high, err := s.CreateExport(ctx, Export{Name: "high", Type: "syslog", Enabled: true, Filter: ExportFilter{MinSeverity: alerts.SeverityHigh}})
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, e *Export, wantExact bool) ExportLag {
				t.Helper()
				exact, err := s.ExportOutboxStats(ctx, e.ID)
				if err != nil {
					t.Fatal(err)
				}
				lag, err := s.ExportLagStats(ctx, e.ID)
				if err != nil {
					t.Fatal(err)
				}
				if lag.Behind != int64(exact.Behind) || !lag.BehindExact || lag.Dead != exact.Dead {
					t.Errorf("%s %s: behind %d (exact=%v) dead %d; ExportOutboxStats says %d, %d", what, e.Name, lag.Behind, lag.BehindExact,
						lag.Dead, exact.Behind, exact.Dead)
				}
				if lag.PendingExact != wantExact {
					t.Errorf("%s %s: PendingExact = %v, want %v", what, e.Name, lag.PendingExact, wantExact)
				}
				if wantExact && (lag.Pending != int64(exact.Pending) || !lag.Oldest.Equal(exact.Oldest)) {
					t.Errorf("%s %s: pending %d oldest %v; exact %d %v", what, e.Name, lag.Pending, lag.Oldest, exact.Pending, exact.Oldest)
				}
				if !wantExact && math.Abs(float64(lag.Pending)-float64(exact.Pending)) > 0.02*float64(exact.Pending)+1 {
					t.Errorf("%s %s: estimated pending %d, exact %d (more than 2%% off)", what, e.Name, lag.Pending, exact.Pending)
				}
				return lag
			}
			if lag := check("empty log", all, true); lag.Behind != 0 || lag.Pending != 0 || !lag.Oldest.IsZero() {
				t.Errorf("empty: %+v", lag)
			}
			enqueueLag(t, s, 0, 1500)
			check("within the sample", all, true)
			check("within the sample", high, true)
			enqueueLag(t, s, 1500, 4500)
			check("beyond the sample", all, false)
			check("beyond the sample", high, false)
			// Deliveries move the cursor: lease and settle 2,500 of "all".
			for done := 0; done < 2500; {
				recs, l, err := s.LeaseExportBatch(ctx, all.ID, "w", 500, time.Minute)
				if err != nil || len(recs) == 0 {
					t.Fatalf("lease: %d, %v", len(recs), err)
				}
				ids := make([]int64, len(recs))
				for i, r := range recs {
					ids[i] = r.ID
				}
				if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: ids}); err != nil {
					t.Fatal(err)
				}
				done += len(recs)
			}
			if lag := check("after deliveries", all, false); lag.Behind != 3500 {
				t.Errorf("after 2,500 delivered of 6,000: behind %d", lag.Behind)
			}
			for done := 0; done < 3500; {
				recs, l, _ := s.LeaseExportBatch(ctx, all.ID, "w", 500, time.Minute)
				ids := make([]int64, len(recs))
				for i, r := range recs {
					ids[i] = r.ID
				}
				if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: ids}); err != nil {
					t.Fatal(err)
				}
				done += len(recs)
			}
			if lag := check("caught up", all, true); lag.Behind != 0 || lag.Pending != 0 {
				t.Errorf("caught up: %+v", lag)
			}
			// A purge of what every export settled leaves a hole in front
			// of "high"'s cursor only if it is disabled long enough; with
			// both enabled the log keeps "high"'s backlog.
			if _, err := s.PurgeExportLog(ctx, time.Hour); err != nil {
				t.Fatal(err)
			}
			check("after a purge", high, false)

			// Beyond LagCountCap: an estimate on PostgreSQL, still exact on
			// SQLite. Rows written directly (120,000 through the ingest
			// path would dominate the test's time).
			now := s.ts(clk.Now())
			if s.d == postgresDialect {
				_, err = s.exec(ctx, s.w, `INSERT INTO export_log (kind, record_key, payload, created_at)
					SELECT 'alert', 'bulk-' || g, '{}', ? FROM generate_series(1, ?) g`, now, LagCountCap+20_000)
			} else {
				_, err = s.exec(ctx, s.w, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?)
					INSERT INTO export_log (kind, record_key, payload, created_at) SELECT 'alert', 'bulk-' || n, '{}', ? FROM g`,
					LagCountCap+20_000, now)
			}
			if err != nil {
				t.Fatal(err)
			}
			exact, _ := s.ExportOutboxStats(ctx, all.ID)
			lag, err := s.ExportLagStats(ctx, all.ID)
			if err != nil {
				t.Fatal(err)
			}
			if s.d == postgresDialect {
				if lag.BehindExact || math.Abs(float64(lag.Behind-int64(exact.Behind))) > 0.02*float64(exact.Behind) {
					t.Errorf("beyond the cap: behind %d (exact=%v), ExportOutboxStats %d", lag.Behind, lag.BehindExact, exact.Behind)
				}
			} else if !lag.BehindExact || lag.Behind != int64(exact.Behind) {
				t.Errorf("beyond the cap: behind %d (exact=%v), ExportOutboxStats %d", lag.Behind, lag.BehindExact, exact.Behind)
			}
			if lag.Pending != lag.Behind || lag.Oldest.IsZero() {
				t.Errorf("export without filter: pending %d of %d behind, oldest %v", lag.Pending, lag.Behind, lag.Oldest)
			}
		})
	}
}

// BenchmarkExportMetrics compares what one scrape costs per export with
// 120,000 records behind its cursor: the exact ExportOutboxStats (what the
// metrics used before) and ExportLagStats.
func BenchmarkExportMetrics(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s := openStore(b, be.DSN(b), Options{SecretKey: testKey})
			e, err := s.CreateExport(ctx, Export{Name: "high", Type: "syslog", Enabled: true, Filter: ExportFilter{MinSeverity: alerts.SeverityHigh}})
			if err != nil {
				b.Fatal(err)
			}
			enqueueLag(b, s, 0, 120_000)
			b.Run("ExportOutboxStats", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.ExportOutboxStats(ctx, e.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ExportLagStats", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.ExportLagStats(ctx, e.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
