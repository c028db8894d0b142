package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

func TestSetAlertsStatus(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		var in []AlertIn
		for i := range 40 {
			in = append(in, genAlert(t, rules, i, 4, t0.Add(time.Duration(i)*time.Second)))
		}
		if _, _, err := s.IngestAlerts(ctx, in); err != nil {
			t.Fatal(err)
		}
		all, total, err := s.ListAlerts(ctx, AlertFilter{}, Page{Limit: 100})
		if err != nil || total < 10 {
			t.Fatalf("list: %d, %v", total, err)
		}
		// By filter: exactly the rows the same filter lists.
		f := AlertFilter{Namespace: in[0].Namespace, MinSeverity: alerts.SeverityMedium}
		want, n, _ := s.ListAlerts(ctx, f, Page{Limit: 100})
		if n == 0 || n == total {
			t.Fatalf("fixture: filter selects %d of %d", n, total)
		}
		res, err := s.SetAlertsStatus(ctx, AlertSelection{Filter: &f}, AlertAcknowledged, "user:alice", "triaged in bulk", 0)
		if err != nil || res.Matched != n || res.Updated != n || res.Skipped != 0 {
			t.Fatalf("bulk by filter = %+v, %v; want %d updated", res, err, n)
		}
		for _, a := range want {
			got, _ := s.GetAlert(ctx, a.ID)
			if got.Status != AlertAcknowledged || got.StatusBy != "user:alice" || got.StatusNote != "triaged in bulk" || got.StatusAt.IsZero() {
				t.Errorf("alert %d after bulk = %s by %q note %q", a.ID, got.Status, got.StatusBy, got.StatusNote)
			}
		}
		if _, n2, _ := s.ListAlerts(ctx, AlertFilter{Status: AlertAcknowledged}, Page{}); n2 != n {
			t.Errorf("acknowledged = %d, want %d (others touched)", n2, n)
		}
		// Again: already in the status, skipped.
		res, _ = s.SetAlertsStatus(ctx, AlertSelection{Filter: &f}, AlertAcknowledged, "user:alice", "", 0)
		if res.Updated != 0 || res.Skipped != n {
			t.Errorf("repeat = %+v", res)
		}
		// By ids, with a missing one and a duplicate.
		ids := []int64{all[0].ID, all[1].ID, all[1].ID, 99999}
		res, err = s.SetAlertsStatus(ctx, AlertSelection{IDs: ids}, AlertResolved, "user:bob", "", 0)
		if err != nil || res.Matched != 2 || res.Updated != 2 || !cmp.Equal(res.Missing, []int64{99999}) {
			t.Fatalf("bulk by ids = %+v, %v", res, err)
		}
		// Reopening a resolved alert whose fingerprint has a new open one
		// is skipped, the others reopen.
		again := in[0]
		for _, a := range in {
			if a.EffectiveFingerprint() == all[0].Fingerprint {
				again = a
			}
		}
		again.ID, again.Time = "reoccur-1", t0.Add(time.Hour)
		if _, _, err := s.IngestAlerts(ctx, []AlertIn{again}); err != nil {
			t.Fatal(err)
		}
		res, err = s.SetAlertsStatus(ctx, AlertSelection{IDs: []int64{all[0].ID, all[1].ID}}, AlertNew, "user:bob", "", 0)
		if err != nil || res.Updated != 1 || res.Skipped != 1 {
			t.Fatalf("reopen = %+v, %v; want 1 updated, 1 skipped", res, err)
		}
		if a, _ := s.GetAlert(ctx, all[0].ID); a.Status != AlertResolved {
			t.Errorf("conflicting reopen changed the alert: %s", a.Status)
		}
		// Bounded: a filter selecting more than the limit is refused and
		// changes nothing.
		_, err = s.SetAlertsStatus(ctx, AlertSelection{Filter: &AlertFilter{}}, AlertFalsePositive, "user:bob", "", 3)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than 3") {
			t.Errorf("over the limit: %v", err)
		}
		if _, n, _ := s.ListAlerts(ctx, AlertFilter{Status: AlertFalsePositive}, Page{}); n != 0 {
			t.Errorf("refused change still changed %d alerts", n)
		}
		for name, sel := range map[string]AlertSelection{
			"neither":  {},
			"both":     {IDs: []int64{1}, Filter: &AlertFilter{}},
			"bad filt": {Filter: &AlertFilter{Status: "nope"}},
			"too many": {IDs: make([]int64, MaxBulkAlerts+1)},
		} {
			if name == "too many" {
				for i := range sel.IDs {
					sel.IDs[i] = int64(i + 1)
				}
			}
			if _, err := s.SetAlertsStatus(ctx, sel, AlertResolved, "u", "", 0); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		if _, err := s.SetAlertsStatus(ctx, AlertSelection{IDs: []int64{1}}, "closed", "u", "", 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad status: %v", err)
		}
		if d := DescribeAlertFilter(f); !strings.Contains(d, "namespace="+in[0].Namespace) || !strings.Contains(d, "min_severity=medium") {
			t.Errorf("describe = %q", d)
		}
	})
}

func TestSuppressionAppliedToExisting(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			c := newClock()
			s := openStore(t, b.DSN(t), Options{Now: c.Now})
			t0 := c.Now()
			hit, other := genAlert(t, rules, 0, 4, t0), genAlert(t, rules, 1, 4, t0)
			closed := genAlert(t, rules, 0, 4, t0)
			closed.ID, closed.Namespace, closed.Fingerprint = "closed-1", "shop", "closed-fp"
			if _, _, err := s.IngestAlerts(ctx, []AlertIn{hit, other, closed}); err != nil {
				t.Fatal(err)
			}
			cl, _, _ := s.ListAlerts(ctx, AlertFilter{Q: "", Rule: closed.Rule}, Page{})
			for _, a := range cl {
				if a.Fingerprint == "closed-fp" {
					if err := s.SetAlertStatus(ctx, a.ID, AlertResolved, "user:x", ""); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.Advance(time.Minute)
			sp, err := s.CreateSuppressionApplied(ctx, Suppression{Rule: hit.Rule, Namespace: hit.Namespace, Reason: "noisy",
				CreatedBy: "user:alice", ExpiresAt: c.Now().Add(time.Hour)}, true)
			if err != nil {
				t.Fatal(err)
			}
			if sp.Applied != 1 {
				t.Fatalf("applied = %d, want 1 (the open alert only)", sp.Applied)
			}
			held, n, _ := s.ListAlerts(ctx, AlertFilter{SuppressionID: sp.ID}, Page{})
			if n != 1 || held[0].Rule != hit.Rule || held[0].SuppressedBy != "user:alice" || !held[0].SuppressedAt.Equal(c.Now()) {
				t.Fatalf("held = %+v", held)
			}
			visible, _, _ := s.ListAlerts(ctx, AlertFilter{}, Page{})
			for _, a := range visible {
				if a.ID == held[0].ID {
					t.Error("suppressed alert still in the default list")
				}
			}
			if a, _ := s.GetAlert(ctx, held[0].ID); a.Status != AlertNew {
				t.Errorf("suppressing changed the status: %s", a.Status)
			}
			// A new occurrence joins the suppressed alert (same group).
			c.Advance(time.Minute)
			again := hit
			again.ID, again.Time = "again-1", c.Now()
			if _, _, err := s.IngestAlerts(ctx, []AlertIn{again}); err != nil {
				t.Fatal(err)
			}
			if a, _ := s.GetAlert(ctx, held[0].ID); a.Count != 2 {
				t.Errorf("repeat not grouped into the suppressed alert: count %d", a.Count)
			}
			// Expiry does not resurrect it.
			c.Advance(2 * time.Hour)
			if _, n, _ := s.ListAlerts(ctx, AlertFilter{SuppressionID: sp.ID}, Page{}); n != 1 {
				t.Error("expiry changed the held alert")
			}
			if n, _ := s.SuppressedOpenCount(ctx, sp.ID); n != 1 {
				t.Errorf("open held = %d", n)
			}
			if _, err := s.ApplySuppression(ctx, sp.ID, "user:alice"); !errors.Is(err, ErrInvalid) {
				t.Errorf("apply expired: %v", err)
			}
			// Deletion neither.
			if err := s.DeleteSuppression(ctx, sp.ID); err != nil {
				t.Fatal(err)
			}
			if _, n, _ := s.ListAlerts(ctx, AlertFilter{SuppressionID: sp.ID}, Page{}); n != 1 {
				t.Error("deletion changed the held alert")
			}
			// An explicit release does; an alert whose fingerprint meanwhile
			// has a visible open alert stays held.
			released, kept, err := s.ReleaseSuppression(ctx, sp.ID, "user:bob")
			if err != nil || released != 1 || kept != 0 {
				t.Fatalf("release = %d, %d, %v", released, kept, err)
			}
			if a, _ := s.GetAlert(ctx, held[0].ID); a.SuppressionID != 0 || a.SuppressedBy != "" || a.Status != AlertNew {
				t.Errorf("released alert = %+v", a)
			}
			// ApplySuppression later on an active one; a group conflict is left.
			sp2, err := s.CreateSuppression(ctx, Suppression{Rule: other.Rule, Reason: "r", CreatedBy: "u", Cluster: other.Cluster})
			if err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Minute)
			o2 := other
			o2.ID, o2.Time = "other-2", c.Now()
			if _, _, err := s.IngestAlerts(ctx, []AlertIn{o2}); err != nil { // held at ingest by sp2
				t.Fatal(err)
			}
			n2, err := s.ApplySuppression(ctx, sp2.ID, "user:carol")
			if err != nil || n2 != 0 {
				t.Errorf("apply with the group already held = %d, %v; want 0", n2, err)
			}
			if _, n, _ := s.ListAlerts(ctx, AlertFilter{Rule: other.Rule}, Page{}); n != 1 {
				t.Errorf("the older visible alert should stay visible: %d", n)
			}
			if _, err := s.ApplySuppression(ctx, 424242, "u"); !errors.Is(err, ErrNotFound) {
				t.Errorf("apply unknown: %v", err)
			}
		})
	}
}

func TestUndoActions(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		a := genAlert(t, rules, 0, 1, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
		if _, _, err := s.IngestAlerts(ctx, []AlertIn{a}); err != nil {
			t.Fatal(err)
		}
		al, _, _ := s.ListAlerts(ctx, AlertFilter{}, Page{})
		id := al[0].ID
		undos := func() []alerts.ActionKind {
			t.Helper()
			u, err := s.UndoableActions(ctx, &al[0])
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		if u := undos(); len(u) != 0 {
			t.Errorf("undos before anything = %v", u)
		}
		for _, k := range []alerts.ActionKind{alerts.ActionUnisolatePod, alerts.ActionUncordonNode} {
			if _, err := s.CreateAction(ctx, id, k, "", "user:alice"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nothing to undo") {
				t.Errorf("%s before the action: %v", k, err)
			}
		}
		iso, _ := s.CreateAction(ctx, id, alerts.ActionIsolatePod, "", "user:alice")
		if u := undos(); len(u) != 0 {
			t.Errorf("undo offered while isolate is pending: %v", u)
		}
		_, _ = s.CompleteAction(ctx, iso.ID, alerts.ActionResult{State: alerts.ActionDone}, "token:r")
		cor, _ := s.CreateAction(ctx, id, alerts.ActionCordonNode, "", "user:alice")
		_, _ = s.CompleteAction(ctx, cor.ID, alerts.ActionResult{State: alerts.ActionDone}, "token:r")
		if u := undos(); !cmp.Equal(u, []alerts.ActionKind{alerts.ActionUnisolatePod, alerts.ActionUncordonNode}) {
			t.Errorf("undos after isolate+cordon = %v", u)
		}
		un, err := s.CreateAction(ctx, id, alerts.ActionUnisolatePod, "false alarm", "user:bob")
		if err != nil || un.Action != alerts.ActionUnisolatePod || un.Pod != a.Pod {
			t.Fatalf("unisolate = %+v, %v", un, err)
		}
		_, _ = s.CompleteAction(ctx, un.ID, alerts.ActionResult{State: alerts.ActionDone}, "token:r")
		if u := undos(); !cmp.Equal(u, []alerts.ActionKind{alerts.ActionUncordonNode}) {
			t.Errorf("undos after unisolate = %v", u)
		}
		if _, err := s.CreateAction(ctx, id, alerts.ActionUnisolatePod, "", "user:bob"); !errors.Is(err, ErrInvalid) {
			t.Errorf("second unisolate: %v", err)
		}
		if _, err := s.CreateAction(ctx, id, alerts.ActionUncordonNode, "", "user:bob"); err != nil {
			t.Errorf("uncordon: %v", err)
		}
	})
}

func TestAuditAccountSources(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		acct := "system:serviceaccount:shop:deployer"
		in := []AuditAccountSource{
			{Cluster: "prod", Account: acct, IP: "10.0.0.1", AccountFirst: t0, LastSeen: t0},
			{Cluster: "prod", Account: acct, IP: "10.0.0.2", AccountFirst: t0, LastSeen: t0.Add(time.Hour), AlertedBy: "a-1"},
			{Cluster: "prod", Account: "system:serviceaccount:x:old", IP: "10.9.9.9", AccountFirst: t0.Add(-90 * 24 * time.Hour), LastSeen: t0.Add(-60 * 24 * time.Hour)},
		}
		if _, err := s.SaveAuditAccountSources(ctx, in, time.Time{}); err != nil {
			t.Fatal(err)
		}
		// Upsert: earliest first, latest last seen.
		if _, err := s.SaveAuditAccountSources(ctx, []AuditAccountSource{
			{Cluster: "prod", Account: acct, IP: "10.0.0.1", AccountFirst: t0.Add(time.Hour), LastSeen: t0.Add(2 * time.Hour)},
			{Cluster: "prod", Account: acct, IP: "10.0.0.2", AccountFirst: t0.Add(-time.Hour), LastSeen: t0, AlertedBy: "a-1"},
		}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadAuditAccountSources(ctx, t0.Add(-30*24*time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []AuditAccountSource{
			{Cluster: "prod", Account: acct, IP: "10.0.0.1", AccountFirst: t0, LastSeen: t0.Add(2 * time.Hour)},
			{Cluster: "prod", Account: acct, IP: "10.0.0.2", AccountFirst: t0.Add(-time.Hour), LastSeen: t0.Add(time.Hour), AlertedBy: "a-1"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("loaded (-want +got):\n%s", diff)
		}
		// Age-out deletes what was not seen since.
		n, err := s.SaveAuditAccountSources(ctx, nil, t0.Add(-30*24*time.Hour))
		if err != nil || n != 1 {
			t.Errorf("forget = %d, %v; want 1", n, err)
		}
		if all, _ := s.LoadAuditAccountSources(ctx, time.Time{}, 1); len(all) != 1 || all[0].IP != "10.0.0.1" {
			t.Errorf("limit 1 = %+v", all)
		}
		if _, err := s.SaveAuditAccountSources(ctx, []AuditAccountSource{{Account: acct}}, time.Time{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("incomplete: %v", err)
		}
	})
}

// oldAlertRow inserts one open alert on pod shop/web-1 of cluster prod as
// an older schema holds it (the upgrade tests' starting data).
func oldAlertRow(ctx context.Context, old *Store, tx *sql.Tx, now any) (int64, error) {
	var id int64
	err := old.queryRow(ctx, tx, `INSERT INTO alerts (fingerprint, source, rule, severity, title, cluster, namespace, pod,
		node, workload, first_seen, last_seen, status) VALUES ('fp', 'sensor', 'Reverse shell', 4, 't', 'prod', 'shop', 'web-1',
		'node-1', 'Deployment/web', ?, ?, 'new') RETURNING id`, now, now).Scan(&id)
	return id, err
}

// Migration 0012 on a database holding response actions and alerts (as of
// 0011): rows kept with their ids, the undo actions now allowed, the new
// alert columns empty.
func TestMigrateResponseActionsForUndo(t *testing.T) {
	ctx := context.Background()
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			dsn := be.DSN(t)
			old := storeAtVersion(t, dsn, 11, func(old *Store, tx *sql.Tx) error {
				now := old.ts(time.Now())
				alertID, err := oldAlertRow(ctx, old, tx, now)
				if err != nil {
					return err
				}
				for _, a := range []string{"isolate_pod", "cordon_node"} {
					if _, err := old.exec(ctx, tx, `INSERT INTO response_actions (alert_id, action, cluster, namespace, pod, node, state,
						requested_by, requested_at, message, completed_by, completed_at) VALUES (?, ?, 'prod', 'shop', 'web-1', 'node-1', 'done',
						'user:alice', ?, 'ok', 'token:r', ?)`, alertID, a, now, now); err != nil {
						return err
					}
				}
				return nil
			})
			old.Close()

			s := openStore(t, dsn, Options{SecretKey: testKey})
			acts, n, err := s.ListActions(ctx, ActionFilter{}, Page{Sort: "id"})
			if err != nil || n != 2 || acts[0].ID != 1 || acts[0].Action != alerts.ActionIsolatePod || acts[1].State != alerts.ActionDone ||
				acts[1].CompletedAt == nil {
				t.Fatalf("actions after the migration = %+v (%d), %v", acts, n, err)
			}
			al, _, _ := s.ListAlerts(ctx, AlertFilter{}, Page{})
			if len(al) != 1 || al[0].SuppressedBy != "" || !al[0].SuppressedAt.IsZero() {
				t.Fatalf("alerts after the migration = %+v", al)
			}
			for _, k := range []alerts.ActionKind{alerts.ActionUnisolatePod, alerts.ActionUncordonNode} {
				if a, err := s.CreateAction(ctx, al[0].ID, k, "", "user:bob"); err != nil || a.ID <= 2 {
					t.Errorf("%s after the migration: %+v, %v", k, a, err)
				}
			}
		})
	}
}

// BenchmarkSetAlertsStatus changes the status of MaxBulkAlerts alerts
// selected by a filter (the largest bulk change allowed), alternating
// between acknowledged and new, on each backend.
func BenchmarkSetAlertsStatus(b *testing.B) {
	ctx := context.Background()
	rules := ruleDefs(b)
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			s := openStore(b, be.DSN(b), Options{SecretKey: testKey})
			t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			for off := 0; off < MaxBulkAlerts; off += 1000 {
				in := make([]AlertIn, 1000)
				for i := range in {
					in[i] = genAlert(b, rules, off+i, 1000, t0)
					in[i].Fingerprint = fmt.Sprintf("bench-%d", off+i)
				}
				if _, _, err := s.IngestAlerts(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			f := &AlertFilter{}
			if _, n, _ := s.ListAlerts(ctx, *f, Page{Limit: 1}); n != MaxBulkAlerts {
				b.Fatalf("%d alerts stored, want %d", n, MaxBulkAlerts)
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				st := []AlertStatus{AlertAcknowledged, AlertNew}[i%2]
				res, err := s.SetAlertsStatus(ctx, AlertSelection{Filter: f}, st, "user:bench", "", 0)
				if err != nil || res.Updated != MaxBulkAlerts {
					b.Fatalf("%+v, %v", res, err)
				}
			}
			b.ReportMetric(float64(MaxBulkAlerts)*float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
		})
	}
}
