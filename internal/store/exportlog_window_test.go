package store

import (
	"context"
	"fmt"
	"path"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// TestExportLogWindowDelivers: three exports with different filters drain
// the log through one store (so the later exports are served from its
// log window) while records keep arriving from that store and from a
// second store on the same database (another replica, whose rows the
// window must not miss), with a failed batch retried after the backoff
// and the log purged between rounds. Each export must lease exactly its
// share of everything queued, once each, in order, whatever the window
// held.
func TestExportLogWindowDelivers(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			s := openStore(t, dsn, Options{SecretKey: testKey, Now: clk.Now})
			other := openStore(t, dsn, Options{SecretKey: testKey, Now: clk.Now})
			filters := []ExportFilter{{}, {MinSeverity: alerts.SeverityHigh}, {Namespaces: []string{"prod-*"}}}
			var exps []*Export
			for i, f := range filters {
				e, err := s.CreateExport(ctx, Export{Name: fmt.Sprintf("e%d", i), Type: "webhook", Enabled: true, Filter: f})
				if err != nil {
					t.Fatal(err)
				}
				exps = append(exps, e)
			}
			want := make([][]string, len(exps))
			got := make([][]string, len(exps))
			n := 0
			queue := func(st *Store, count int) {
				var as []*alerts.Alert
				for range count {
					ns := []string{"prod-web", "dev", ""}[n%3]
					a := testAlert(n, alerts.Severity(n%5), alerts.SourceSensor, ns)
					as = append(as, a)
					for i, f := range filters {
						if m, _ := path.Match(firstOr(f.Namespaces, "*"), ns); a.Severity >= f.MinSeverity && (m || len(f.Namespaces) == 0) {
							want[i] = append(want[i], a.ID)
						}
					}
					n++
				}
				if _, err := st.EnqueueExports(ctx, alertItems(t, as...)); err != nil {
					t.Fatal(err)
				}
			}
			// drain leases batches of 7 for every export in turn until none
			// has anything left; failOnce makes export 1's first batch fail.
			drain := func(failOnce bool) {
				for progress := true; progress; {
					progress = false
					for i, e := range exps {
						recs, l, err := s.LeaseExportBatch(ctx, e.ID, "w", 7, time.Minute)
						if err != nil {
							t.Fatal(err)
						}
						if len(recs) == 0 {
							continue
						}
						progress = true
						if failOnce && i == 1 {
							failOnce = false
							if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Retry: l.IDs, Err: "503"}); err != nil {
								t.Fatal(err)
							}
							clk.Advance(time.Hour) // past the backoff
							continue
						}
						for _, r := range recs {
							got[i] = append(got[i], r.Key)
						}
						if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			queue(s, 40)
			queue(other, 9)
			drain(true)
			queue(other, 13)
			queue(s, 30)
			if _, err := s.PurgeExportLog(ctx, time.Hour); err != nil {
				t.Fatal(err)
			}
			queue(s, 3)
			drain(false)
			queue(s, 25)
			drain(false)
			for i := range exps {
				if diff := cmp.Diff(want[i], got[i]); diff != "" {
					t.Errorf("export %d (filter %+v) leased (-want +got):\n%s", i, filters[i], diff)
				}
			}
			if len(got[0]) != n {
				t.Errorf("the unfiltered export leased %d of %d records", len(got[0]), n)
			}
		})
	}
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// TestExportLogWindowRuns: the window keeps one run of consecutive rows,
// extends it with a run that continues or overlaps it, replaces it with
// one further on, ignores one behind it, stays bounded, and is trimmed by
// a purge.
func TestExportLogWindowRuns(t *testing.T) {
	run := func(from, to int64) []logRow {
		var out []logRow
		for q := from + 1; q <= to; q++ {
			out = append(out, logRow{pos: logPos{0, q}, key: fmt.Sprint(q)})
		}
		return out
	}
	keys := func(rows []logRow) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r.key)
		}
		return out
	}
	var w exportLogWindow
	if got := w.after(logPos{}, 10); got != nil {
		t.Fatalf("empty window served %v", keys(got))
	}
	w.add(logPos{0, 10}, run(10, 20))
	if got := keys(w.after(logPos{0, 14}, 3)); !cmp.Equal(got, []string{"15", "16", "17"}) {
		t.Errorf("after 14 = %v", got)
	}
	for _, c := range []int64{9, 20, 25} {
		if got := w.after(logPos{0, c}, 10); got != nil {
			t.Errorf("after %d (outside (10, 20]) served %v", c, keys(got))
		}
	}
	w.add(logPos{0, 20}, run(20, 25)) // continues
	w.add(logPos{0, 22}, run(22, 30)) // overlaps
	w.add(logPos{0, 2}, run(2, 8))    // behind: ignored
	if got := keys(w.after(logPos{0, 18}, 100)); !cmp.Equal(got, keys(run(18, 30))) {
		t.Errorf("after extending: %v", got)
	}
	w.purge(logPos{0, 26}, false)
	if got := w.after(logPos{0, 24}, 10); got != nil {
		t.Errorf("purged rows served: %v", keys(got))
	}
	w.add(logPos{0, 100}, run(100, 100+logWindowRows+5)) // further on, larger than the bound
	if len(w.rows) != logWindowRows || w.from != (logPos{0, 105}) {
		t.Errorf("window of %d rows from %v, want %d from 105", len(w.rows), w.from, logWindowRows)
	}
	w.purge(logPos{}, true)
	if got := w.after(logPos{0, 200}, 10); got != nil {
		t.Errorf("cleared window served %v", keys(got))
	}
}

// TestExportLogWindowConcurrent: exports drained by concurrent workers
// (sharing the window, waiting for each other's reads of the same rows)
// while batches keep being ingested each get every record once, in
// order. Run with -race for the window's locking.
func TestExportLogWindowConcurrent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, b.DSN(t), Options{SecretKey: testKey})
			const exports, batches, batchSize = 3, 20, 50
			var ids []int64
			for i := range exports {
				e, err := s.CreateExport(ctx, Export{Name: fmt.Sprintf("c%d", i), Type: "webhook", Enabled: true})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, e.ID)
			}
			var want []string
			done := make(chan struct{})
			go func() {
				defer close(done)
				for n := range batches {
					var batch []AlertIn
					for i := range batchSize {
						a := testAlert(n*batchSize+i, alerts.SeverityHigh, alerts.SourceSensor, "ns")
						a.Fingerprint = a.ID
						batch = append(batch, *a)
					}
					if _, err := s.IngestAlertBatch(ctx, batch); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			for n := range batches * batchSize {
				want = append(want, fmt.Sprintf("a-%04d", n))
			}
			got := make([][]string, exports)
			errs := make(chan error, exports)
			for i, id := range ids {
				go func() {
					deadline := time.Now().Add(time.Minute)
					for len(got[i]) < len(want) && time.Now().Before(deadline) {
						recs, l, err := s.LeaseExportBatch(ctx, id, fmt.Sprint("w", i), 17, time.Minute)
						if err != nil {
							errs <- err
							return
						}
						if len(recs) == 0 {
							time.Sleep(time.Millisecond)
							continue
						}
						for _, r := range recs {
							got[i] = append(got[i], r.Key)
						}
						if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range exports {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			<-done
			for i := range exports {
				if diff := cmp.Diff(want, got[i]); diff != "" {
					t.Errorf("export %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}
