package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

func testAlert(i int, sev alerts.Severity, src alerts.Source, ns string) *alerts.Alert {
	return &alerts.Alert{ID: fmt.Sprintf("a-%04d", i), Time: time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC), Source: src,
		Rule: "Terminal shell in container", Severity: sev, Title: fmt.Sprintf("shell %d", i), Namespace: ns,
		Evidence: json.RawMessage(`{"proc.name":"bash"}`)}
}

func alertItems(t testing.TB, as ...*alerts.Alert) []ExportItem {
	t.Helper()
	var out []ExportItem
	for _, a := range as {
		it, err := AlertExportItem(a)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, it)
	}
	return out
}

func TestExportFilterMatch(t *testing.T) {
	f := ExportFilter{MinSeverity: alerts.SeverityHigh, Sources: []string{"sensor", "audit"}, Namespaces: []string{"prod-*", ""}}
	for _, tc := range []struct {
		it   ExportItem
		want bool
	}{
		{ExportItem{Kind: "alert", Severity: alerts.SeverityHigh, Source: "sensor", Namespace: "prod-web"}, true},
		{ExportItem{Kind: "alert", Severity: alerts.SeverityCritical, Source: "audit", Namespace: ""}, true},
		{ExportItem{Kind: "alert", Severity: alerts.SeverityMedium, Source: "sensor", Namespace: "prod-web"}, false},
		{ExportItem{Kind: "alert", Severity: alerts.SeverityHigh, Source: "admission", Namespace: "prod-web"}, false},
		{ExportItem{Kind: "alert", Severity: alerts.SeverityHigh, Source: "sensor", Namespace: "dev"}, false},
		{ExportItem{Kind: "finding", Severity: alerts.SeverityHigh, Source: "sensor", Namespace: "prod-web"}, false},
	} {
		if got := f.Match(&tc.it); got != tc.want {
			t.Errorf("Match(%+v) = %v, want %v", tc.it, got, tc.want)
		}
	}
	f2 := ExportFilter{Kinds: []string{"finding"}}
	if !f2.Match(&ExportItem{Kind: "finding"}) || f2.Match(&ExportItem{Kind: "alert"}) {
		t.Error("kinds filter")
	}
}

func TestExportCRUD(t *testing.T) {
	forEach(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e, err := s.CreateExport(ctx, Export{Name: "siem", Type: "webhook", Enabled: true,
			Filter:  ExportFilter{MinSeverity: alerts.SeverityMedium, Namespaces: []string{"prod-*"}},
			Config:  json.RawMessage(`{"url":"https://siem.example/hook"}`),
			Secrets: json.RawMessage(`{"secret":"hmac-key"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if !e.HasSecrets || e.Secrets != nil || e.Version != 1 {
			t.Fatalf("created export leaks or lacks secrets: %+v", e)
		}
		// The secret is sealed at rest.
		var raw []byte
		if err := s.queryRow(ctx, s.r, `SELECT secrets FROM exports WHERE id = ?`, e.ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 || string(raw) == `{"secret":"hmac-key"}` || json.Valid(raw) {
			t.Fatalf("secrets stored in the clear: %q", raw)
		}
		got, err := s.GetExportSecrets(ctx, e.ID)
		if err != nil || string(got.Secrets) != `{"secret":"hmac-key"}` {
			t.Fatalf("GetExportSecrets = %s, %v", got.Secrets, err)
		}
		// Update keeping secrets.
		e.Filter.MinSeverity = alerts.SeverityHigh
		up, err := s.UpdateExport(ctx, *e, true)
		if err != nil || up.Version != 2 || up.Filter.MinSeverity != alerts.SeverityHigh || !up.HasSecrets {
			t.Fatalf("update: %+v, %v", up, err)
		}
		got, _ = s.GetExportSecrets(ctx, e.ID)
		if string(got.Secrets) != `{"secret":"hmac-key"}` {
			t.Fatalf("secrets after update = %s", got.Secrets)
		}
		if _, err := s.CreateExport(ctx, Export{Name: "siem", Type: "webhook"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate name: %v", err)
		}
		for _, bad := range []Export{
			{Name: "", Type: "webhook"},
			{Name: "a b", Type: "webhook"},
			{Name: "x", Type: ""},
			{Name: "x", Type: "webhook", Filter: ExportFilter{Sources: []string{"nope"}}},
			{Name: "x", Type: "webhook", Filter: ExportFilter{Namespaces: []string{"[x"}}},
			{Name: "x", Type: "webhook", Filter: ExportFilter{Kinds: []string{"thing"}}},
			{Name: "x", Type: "webhook", Config: json.RawMessage(`{`)},
		} {
			if _, err := s.CreateExport(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("CreateExport(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		list, err := s.ListExports(ctx)
		if err != nil || len(list) != 1 || list[0].Secrets != nil {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if err := s.DeleteExport(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetExport(ctx, e.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

// TestOutboxLifecycle: filters decide which exports get a record, leases
// are fenced, failures back the export off and keep the order, old
// records become dead letters that can be retried.
func TestOutboxLifecycle(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock()
			s := openStore(t, b.DSN(t), Options{SecretKey: testKey, Now: clk.Now})
			all, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			high, err := s.CreateExport(ctx, Export{Name: "high-prod", Type: "syslog", Enabled: true,
				Filter: ExportFilter{MinSeverity: alerts.SeverityHigh, Namespaces: []string{"prod-*"}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateExport(ctx, Export{Name: "off", Type: "kafka", Enabled: false}); err != nil {
				t.Fatal(err)
			}
			items := alertItems(t,
				testAlert(1, alerts.SeverityHigh, alerts.SourceSensor, "prod-web"),
				testAlert(2, alerts.SeverityLow, alerts.SourceSensor, "prod-web"),
				testAlert(3, alerts.SeverityCritical, alerts.SourceAudit, "dev"),
				testAlert(4, alerts.SeverityCritical, alerts.SourceAudit, "prod-db"))
			// Each record is written once to the log, whatever the number
			// of exports that take it.
			n, err := s.EnqueueExports(ctx, items)
			if err != nil || n != 4 {
				t.Fatalf("EnqueueExports = %d, %v; want 4 records", n, err)
			}
			if st, err := s.ExportOutboxStats(ctx, all.ID); err != nil || st.Pending != 4 {
				t.Fatalf("all: pending %+v, %v; want 4", st, err)
			}
			recs, l, err := s.LeaseExportBatch(ctx, high.ID, "w1", 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, r := range recs {
				keys = append(keys, r.Key)
			}
			if diff := cmp.Diff([]string{"a-0001", "a-0004"}, keys); diff != "" {
				t.Fatalf("high-prod leased (-want +got):\n%s", diff)
			}
			var rec struct {
				Kind string `json:"kind"`
				alerts.Alert
			}
			if err := json.Unmarshal(recs[0].Payload, &rec); err != nil || rec.Kind != "alert" || rec.Title != "shell 1" ||
				rec.Severity != alerts.SeverityHigh || string(rec.Evidence) != `{"proc.name":"bash"}` {
				t.Fatalf("payload %s → %+v, %v", recs[0].Payload, rec, err)
			}
			// The export is not leased again while the lease holds (one
			// worker per export: the order of delivery is kept).
			if again, _, err := s.LeaseExportBatch(ctx, high.ID, "w2", 10, time.Minute); err != nil || len(again) != 0 {
				t.Fatalf("double lease: %v %v", again, err)
			}
			// The lease expires (worker died); w2 takes over; w1's late
			// completion must not delete w2's rows.
			clk.Advance(2 * time.Minute)
			recs2, l2, err := s.LeaseExportBatch(ctx, high.ID, "w2", 10, time.Minute)
			if err != nil || len(recs2) != 2 || recs2[0].ID != recs[0].ID || recs2[0].Attempts != 0 {
				t.Fatalf("take over: %+v, %v", recs2, err)
			}
			if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}); !errors.Is(err, ErrOutboxLeaseLost) {
				t.Fatalf("stale completion = %v, want ErrOutboxLeaseLost", err)
			}
			if st, _ := s.ExportOutboxStats(ctx, high.ID); st.Pending != 2 {
				t.Fatalf("stale completion deleted rows: %+v", st)
			}
			// A failed delivery: rows go back, the export backs off.
			retryAt, err := s.FinishExportBatch(ctx, l2, OutboxOutcome{Retry: l2.IDs, Err: "connection refused", MaxAge: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if d := retryAt.Sub(clk.Now()); d < ExportBackoffBase || d > ExportBackoffBase*6/5+time.Millisecond {
				t.Fatalf("first backoff %v", d)
			}
			if recs, _, _ := s.LeaseExportBatch(ctx, high.ID, "w2", 10, time.Minute); len(recs) != 0 {
				t.Fatalf("leased during backoff: %d", len(recs))
			}
			e, _ := s.GetExport(ctx, high.ID)
			if e.Failures != 1 || e.LastError != "connection refused" || e.RetryAt.IsZero() {
				t.Fatalf("export state after failure: %+v", e)
			}
			// Second failure doubles the backoff.
			clk.Advance(2 * time.Second)
			recs3, l3, _ := s.LeaseExportBatch(ctx, high.ID, "w2", 10, time.Minute)
			if len(recs3) != 2 || recs3[0].Key != "a-0001" || recs3[0].Attempts != 1 || recs3[0].LastError != "connection refused" {
				t.Fatalf("order after retry: %+v", recs3)
			}
			retryAt, _ = s.FinishExportBatch(ctx, l3, OutboxOutcome{Retry: l3.IDs, Err: "503", MaxAge: time.Hour})
			if d := retryAt.Sub(clk.Now()); d < 2*ExportBackoffBase {
				t.Fatalf("second backoff %v", d)
			}
			// Past the max age, a failed record becomes a dead letter.
			clk.Advance(2 * time.Hour)
			recs4, l4, _ := s.LeaseExportBatch(ctx, high.ID, "w2", 1, time.Minute)
			if len(recs4) != 1 {
				t.Fatalf("lease after backoff: %d", len(recs4))
			}
			if _, err := s.FinishExportBatch(ctx, l4, OutboxOutcome{Retry: l4.IDs, Err: "still down", MaxAge: time.Hour}); err != nil {
				t.Fatal(err)
			}
			st, _ := s.ExportOutboxStats(ctx, high.ID)
			if st.Pending != 1 || st.Dead != 1 || st.Oldest.IsZero() {
				t.Fatalf("stats: %+v", st)
			}
			dead, total, err := s.ListDeadExports(ctx, high.ID, Page{})
			if err != nil || total != 1 || dead[0].Key != "a-0001" || dead[0].LastError != "still down" {
				t.Fatalf("dead letters: %+v %d %v", dead, total, err)
			}
			if n, err := s.RetryDeadExports(ctx, high.ID, nil); err != nil || n != 1 {
				t.Fatalf("retry dead: %d %v", n, err)
			}
			// Success deletes, resets the backoff and counts.
			recs5, l5, _ := s.LeaseExportBatch(ctx, high.ID, "w2", 10, time.Minute)
			if len(recs5) != 2 {
				t.Fatalf("after retry: %d", len(recs5))
			}
			if _, err := s.FinishExportBatch(ctx, l5, OutboxOutcome{Done: l5.IDs[:1], Dead: l5.IDs[1:], Err: "400 mapping error"}); err != nil {
				t.Fatal(err)
			}
			// Completing again with the same lease changes nothing.
			if _, err := s.FinishExportBatch(ctx, l5, OutboxOutcome{Done: l5.IDs[:1]}); !errors.Is(err, ErrOutboxLeaseLost) {
				t.Fatalf("second completion: %v", err)
			}
			e, _ = s.GetExport(ctx, high.ID)
			if e.Failures != 0 || !e.RetryAt.IsZero() || e.Delivered != 1 || e.LastSuccessAt.IsZero() {
				t.Fatalf("export after success: %+v", e)
			}
			st, _ = s.ExportOutboxStats(ctx, high.ID)
			if st.Pending != 0 || st.Dead != 1 {
				t.Fatalf("stats at end: %+v", st)
			}
			// Release gives rows back without counting the attempt.
			recs6, l6, _ := s.LeaseExportBatch(ctx, all.ID, "w3", 2, time.Minute)
			if err := s.ReleaseExportBatch(ctx, l6); err != nil {
				t.Fatal(err)
			}
			recs7, _, _ := s.LeaseExportBatch(ctx, all.ID, "w3", 2, time.Minute)
			if len(recs7) != 2 || recs7[0].ID != recs6[0].ID || recs7[0].Attempts != 0 {
				t.Fatalf("after release: %+v", recs7)
			}
			// Deleting the export drops its queue.
			if err := s.DeleteExport(ctx, all.ID); err != nil {
				t.Fatal(err)
			}
			if st, _ := s.ExportOutboxStats(ctx, all.ID); st.Pending != 0 {
				t.Fatalf("queue of a deleted export: %+v", st)
			}
			if n, err := s.PurgeDeadExports(ctx, clk.Now().Add(time.Second)); err != nil || n != 1 {
				t.Fatalf("purge dead: %d %v", n, err)
			}
		})
	}
}

// TestEnqueueExportsRollsBack: a failing enqueue leaves no rows, so the
// transaction that accepts records and queues their exports is all or
// nothing (the store write error path of the export design).
func TestEnqueueExportsRollsBack(t *testing.T) {
	forEach(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		items := alertItems(t, testAlert(1, alerts.SeverityHigh, alerts.SourceSensor, "a"))
		items = append(items, ExportItem{Kind: "alert", Key: "bad", Payload: json.RawMessage(`{not json`)})
		if _, err := s.EnqueueExports(ctx, items); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad payload: %v", err)
		}
		// A write failure in the middle of the batch: the store is closed
		// under it.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.EnqueueExports(cctx, items[:1]); err == nil {
			t.Fatal("enqueue on a cancelled context succeeded")
		}
		if st, _ := s.ExportOutboxStats(ctx, e.ID); st.Pending != 0 {
			t.Fatalf("partial enqueue left %d rows", st.Pending)
		}
	})
}

// TestKEVFindingExports: saving a scan queues its KEV findings, in the
// same transaction, for exports that take kind "finding" — and only
// those; a rescan with the same findings queues nothing new.
func TestKEVFindingExports(t *testing.T) {
	forEach(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		lake, err := s.CreateExport(ctx, Export{Name: "lake", Type: "kafka", Enabled: true,
			Filter: ExportFilter{Kinds: []string{ExportKindFinding}}})
		if err != nil {
			t.Fatal(err)
		}
		alertsOnly, err := s.CreateExport(ctx, Export{Name: "siem", Type: "syslog", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		res := fix(t).result("kev-export", 40, 20, 0)
		kev := 0
		for _, f := range res.Findings {
			if f.Vulnerability.KEV != nil {
				kev++
			}
		}
		if _, err := s.SaveScan(ctx, res, ScanMeta{TriggeredBy: "test"}); err != nil {
			t.Fatal(err)
		}
		st, _ := s.ExportOutboxStats(ctx, lake.ID)
		if kev == 0 || st.Pending != kev {
			t.Fatalf("queued %d finding records, want %d (the KEV findings)", st.Pending, kev)
		}
		if st, _ := s.ExportOutboxStats(ctx, alertsOnly.ID); st.Pending != 0 {
			t.Fatalf("an alerts-only export got %d findings", st.Pending)
		}
		recs, _, err := s.LeaseExportBatch(ctx, lake.ID, "t", 100, time.Minute)
		if err != nil || len(recs) != kev {
			t.Fatalf("lease: %d %v", len(recs), err)
		}
		var r struct {
			Kind string `json:"kind"`
			alerts.Alert
		}
		if err := json.Unmarshal(recs[0].Payload, &r); err != nil || r.Kind != "finding" || r.Source != alerts.SourceScanner ||
			r.ImageDigest != res.Target.Digest || r.Rule == "" {
			t.Fatalf("finding record %s: %+v %v", recs[0].Payload, r, err)
		}
		if _, err := s.SaveScan(ctx, res, ScanMeta{TriggeredBy: "rescan"}); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.ExportOutboxStats(ctx, lake.ID); st.Pending != kev {
			t.Fatalf("a rescan queued more: %d", st.Pending)
		}
	})
}

// TestFinishAndNextExportBatch: a settled batch hands the worker the next
// one under the same lease (no one else leases the export meanwhile);
// the last batch releases it; a failed batch keeps nothing.
func TestFinishAndNextExportBatch(t *testing.T) {
	forEach(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.EnqueueExports(ctx, alertItems(t, testAlert(1, 3, "sensor", "a"), testAlert(2, 3, "sensor", "a"),
			testAlert(3, 3, "sensor", "a"), testAlert(4, 3, "sensor", "a"), testAlert(5, 3, "sensor", "a"))); err != nil {
			t.Fatal(err)
		}
		recs, l, err := s.LeaseExportBatch(ctx, e.ID, "w1", 2, time.Minute)
		if err != nil || len(recs) != 2 {
			t.Fatalf("lease: %d %v", len(recs), err)
		}
		_, next, nl, err := s.FinishAndNextExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}, 2, time.Minute)
		if err != nil || len(next) != 2 || next[0].Key != "a-0003" || nl.Token != l.Token {
			t.Fatalf("next: %+v %+v %v", next, nl, err)
		}
		if other, _, err := s.LeaseExportBatch(ctx, e.ID, "w2", 10, time.Minute); err != nil || len(other) != 0 {
			t.Fatalf("another worker leased a kept export: %d %v", len(other), err)
		}
		// A failure: the cursor stays, nothing is handed on, backoff.
		retryAt, next2, _, err := s.FinishAndNextExportBatch(ctx, nl, OutboxOutcome{Retry: nl.IDs, Err: "503"}, 2, time.Minute)
		if err != nil || len(next2) != 0 || retryAt.IsZero() {
			t.Fatalf("after a failure: %d records, retry %v, %v", len(next2), retryAt, err)
		}
		if _, err := s.RetryDeadExports(ctx, e.ID, nil); err != nil { // lifts the backoff
			t.Fatal(err)
		}
		recs, l, err = s.LeaseExportBatch(ctx, e.ID, "w1", 10, time.Minute)
		if err != nil || len(recs) != 3 || recs[0].Key != "a-0003" {
			t.Fatalf("lease after the failure: %+v %v", recs, err)
		}
		_, next, _, err = s.FinishAndNextExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}, 2, time.Minute)
		if err != nil || len(next) != 0 {
			t.Fatalf("past the end: %d %v", len(next), err)
		}
		// Nothing due: the lease was released, the next enqueue is leased
		// at once by anyone.
		if _, err := s.EnqueueExports(ctx, alertItems(t, testAlert(6, 3, "sensor", "a"))); err != nil {
			t.Fatal(err)
		}
		if recs, _, err := s.LeaseExportBatch(ctx, e.ID, "w2", 10, time.Minute); err != nil || len(recs) != 1 || recs[0].Key != "a-0006" {
			t.Fatalf("lease by another worker: %+v %v", recs, err)
		}
		if st, _ := s.ExportOutboxStats(ctx, e.ID); st.Pending != 1 {
			t.Fatalf("pending %+v", st)
		}
		if got, _ := s.GetExport(ctx, e.ID); got.Delivered != 5 {
			t.Fatalf("delivered %d, want 5", got.Delivered)
		}
	})
}
