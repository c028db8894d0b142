package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// TestLeaseReadsFilterColumns: the lease reads kind, source and namespace
// as one column and splits it; a namespace holding the separator, spaces
// or anything else still matches exactly, and the leased record carries
// the stored key, payload and severity (both backends).
func TestLeaseReadsFilterColumns(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, b.DSN(t), Options{SecretKey: testKey})
			odd := "prod\x1fweb \x1f"
			if _, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true}); err != nil {
				t.Fatal(err)
			}
			e, err := s.CreateExport(ctx, Export{Name: "odd-ns", Type: "webhook", Enabled: true,
				Filter: ExportFilter{MinSeverity: alerts.SeverityHigh, Sources: []string{"audit"}, Namespaces: []string{odd}}})
			if err != nil {
				t.Fatal(err)
			}
			items := alertItems(t,
				testAlert(1, alerts.SeverityHigh, alerts.SourceAudit, "prod"),
				testAlert(2, alerts.SeverityCritical, alerts.SourceAudit, odd),
				testAlert(3, alerts.SeverityCritical, alerts.SourceSensor, odd),
				testAlert(4, alerts.SeverityLow, alerts.SourceAudit, odd),
				testAlert(5, alerts.SeverityHigh, alerts.SourceAudit, odd+"x"))
			// Every item is in the log (the "all" export takes it): the
			// odd export's filter is evaluated on the columns read back.
			if n, err := s.EnqueueExports(ctx, items); err != nil || n != len(items) {
				t.Fatalf("EnqueueExports = %d, %v", n, err)
			}
			recs, l, err := s.LeaseExportBatch(ctx, e.ID, "w", 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, r := range recs {
				keys = append(keys, r.Key)
				if string(r.Payload) != string(items[1].Payload) || r.Kind != ExportKindAlert {
					t.Errorf("record %s: kind %q payload %s", r.Key, r.Kind, r.Payload)
				}
			}
			if diff := cmp.Diff([]string{items[1].Key}, keys); diff != "" {
				t.Fatalf("leased (-want +got):\n%s", diff)
			}
			if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSplitLogFilterCols: hostile values split exactly or are refused.
func TestSplitLogFilterCols(t *testing.T) {
	for _, tc := range []struct {
		in               string
		kind, source, ns string
		ok               bool
	}{
		{"alert\x1fsensor\x1fprod", "alert", "sensor", "prod", true},
		{"alert\x1fsensor\x1f", "alert", "sensor", "", true},
		{"\x1f\x1f", "", "", "", true},
		{"alert\x1fsensor\x1fa\x1fb\x1f", "alert", "sensor", "a\x1fb\x1f", true},
		{"alert\x1fsensor", "", "", "", false},
		{"", "", "", "", false},
		{"alert", "", "", "", false},
	} {
		k, s, n, ok := splitLogFilterCols(tc.in)
		if ok != tc.ok || (ok && (k != tc.kind || s != tc.source || n != tc.ns)) {
			t.Errorf("splitLogFilterCols(%q) = %q %q %q %v", tc.in, k, s, n, ok)
		}
	}
}

// FuzzSplitLogFilterCols: what the query joins, the split gives back
// (kind and source never hold the separator; the namespace may).
func FuzzSplitLogFilterCols(f *testing.F) {
	f.Add("alert", "sensor", "prod")
	f.Add("finding", "scanner", "a\x1fb")
	f.Fuzz(func(t *testing.T, kind, source, ns string) {
		if strings.Contains(kind, "\x1f") || strings.Contains(source, "\x1f") {
			return // not a kind or a source
		}
		k, s, n, ok := splitLogFilterCols(kind + "\x1f" + source + "\x1f" + ns)
		if !ok || k != kind || s != source || n != ns {
			t.Fatalf("split(%q, %q, %q) = %q %q %q %v", kind, source, ns, k, s, n, ok)
		}
	})
}

// TestLeaseIdle: a lease that finds nothing due says so (Idle), and one
// refused because the export backs off does not (both backends).
func TestLeaseIdle(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s, e := storeWithExport(t, b.DSN(t))
			recs, l, err := s.LeaseExportBatch(ctx, e.ID, "w", 10, time.Minute)
			if err != nil || len(recs) != 0 || !l.Idle {
				t.Fatalf("empty log: %d records, idle %v, %v; want idle", len(recs), l.Idle, err)
			}
			if _, err := s.EnqueueExports(ctx, alertItems(t, testAlert(1, alerts.SeverityHigh, alerts.SourceAudit, "prod"))); err != nil {
				t.Fatal(err)
			}
			recs, l, err = s.LeaseExportBatch(ctx, e.ID, "w", 10, time.Minute)
			if err != nil || len(recs) != 1 || l.Idle {
				t.Fatalf("one record: %d records, idle %v, %v", len(recs), l.Idle, err)
			}
			if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Retry: l.IDs, Err: "receiver down"}); err != nil {
				t.Fatal(err)
			}
			recs, l, err = s.LeaseExportBatch(ctx, e.ID, "w", 10, time.Minute)
			if err != nil || len(recs) != 0 || l.Idle {
				t.Fatalf("backing off: %d records, idle %v, %v; want nothing, not idle", len(recs), l.Idle, err)
			}
		})
	}
}

// TestExportHasWork: the read-only look before a lease answers as a lease
// would: no work on an empty log, work once a record is queued, none once
// it is delivered, not due while the export backs off (both backends).
func TestExportHasWork(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s, e := storeWithExport(t, b.DSN(t))
			check := func(what string, wantDue, wantWork bool) {
				t.Helper()
				due, work, err := s.ExportHasWork(ctx, e.ID)
				if err != nil || due != wantDue || work != wantWork {
					t.Fatalf("%s: due %v work %v, %v; want %v %v", what, due, work, err, wantDue, wantWork)
				}
			}
			check("empty log", true, false)
			for i := 1; i <= 2; i++ {
				if _, err := s.EnqueueExports(ctx, alertItems(t, testAlert(i, alerts.SeverityHigh, alerts.SourceAudit, "prod"))); err != nil {
					t.Fatal(err)
				}
			}
			check("two queued", true, true)
			_, l, err := s.LeaseExportBatch(ctx, e.ID, "w", 1, time.Minute)
			if err != nil || len(l.IDs) != 1 {
				t.Fatalf("lease: %+v, %v", l, err)
			}
			if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}); err != nil {
				t.Fatal(err)
			}
			check("one left", true, true)
			_, l, err = s.LeaseExportBatch(ctx, e.ID, "w", 10, time.Minute)
			if err != nil || len(l.IDs) != 1 {
				t.Fatalf("lease: %+v, %v", l, err)
			}
			if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Retry: l.IDs, Err: "down"}); err != nil {
				t.Fatal(err)
			}
			check("backing off", false, false)
			if due, work, err := s.ExportHasWork(ctx, e.ID+1000); err != nil || due || work {
				t.Fatalf("no such export: %v %v %v", due, work, err)
			}
		})
	}
}

// TestExportProbeUsesIndex: ExportHasWork's probe stays one index descent on
// PostgreSQL once the exports have caught up with a long log whose delivered
// part was purged — the case where an earlier EXISTS form was planned as a
// sequential scan reading the whole log and its dead rows on every probe.
func TestExportProbeUsesIndex(t *testing.T) {
	ctx := context.Background()
	s, e := storeWithExport(t, backends[1].DSN(t))
	for b := range 80 {
		var as []*alerts.Alert
		for i := range 250 {
			as = append(as, testAlert(b*250+i, alerts.SeverityHigh, alerts.SourceAudit, "prod"))
		}
		if _, err := s.EnqueueExports(ctx, alertItems(t, as...)); err != nil {
			t.Fatal(err)
		}
	}
	// Statistics taken while the log was long and undelivered, as
	// autovacuum's would be during a burst.
	if _, err := s.w.ExecContext(ctx, `ANALYZE export_log`); err != nil {
		t.Fatal(err)
	}
	for {
		recs, l, err := s.LeaseExportBatch(ctx, e.ID, "w", 1000, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PurgeExportLog(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	row, err := s.exportCursorRow(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The generic plan is the one that counts: the driver prepares the
	// statement once per connection and PostgreSQL switches a prepared
	// statement to its generic plan after a few executions.
	q, args := s.exportProbe(row.cursor)
	conn, err := s.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, stmt := range []string{`SET plan_cache_mode = force_generic_plan`, `PREPARE probe AS ` + s.d.rebind(q)} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rows, err := conn.QueryContext(ctx, fmt.Sprintf("EXPLAIN EXECUTE probe(%d, %d)", args...))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if p := plan.String(); strings.Contains(p, "Seq Scan") || !strings.Contains(p, "Index") {
		t.Fatalf("the probe is not an index descent:\n%s", p)
	}
	if due, work, err := s.ExportHasWork(ctx, e.ID); err != nil || !due || work {
		t.Fatalf("caught up: due %v work %v, %v", due, work, err)
	}
}

// storeWithExport opens a store at dsn with one enabled export that takes
// every record.
func storeWithExport(t *testing.T, dsn string) (*Store, *Export) {
	t.Helper()
	s := openStore(t, dsn, Options{SecretKey: testKey})
	e, err := s.CreateExport(context.Background(), Export{Name: "all", Type: "webhook", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, e
}
