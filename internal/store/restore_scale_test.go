package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

func ptr32(v int32) *int32 { return &v }

// TestRestoreScale: a done scale_to_zero records what was scaled and the
// count before (from the responder's structured result, or an older
// responder's message); restore_scale is offered only then, carries both
// in its own record, and is not offered again once done — nor for a
// scale_to_zero that found the workload already at zero.
func TestRestoreScale(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		a := genAlert(t, rules, 0, 1, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
		if _, _, err := s.IngestAlerts(ctx, []AlertIn{a}); err != nil {
			t.Fatal(err)
		}
		al, _, _ := s.ListAlerts(ctx, AlertFilter{}, Page{})
		id := al[0].ID
		restorable := func() bool {
			t.Helper()
			u, err := s.UndoableActions(ctx, &al[0])
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range u {
				if k == alerts.ActionRestoreScale {
					return true
				}
			}
			return false
		}
		if _, err := s.CreateAction(ctx, id, alerts.ActionRestoreScale, "", "user:alice"); !errors.Is(err, ErrInvalid) ||
			!strings.Contains(err.Error(), "nothing to undo") {
			t.Fatalf("restore before any scale: %v", err)
		}
		sc, err := s.CreateAction(ctx, id, alerts.ActionScaleToZero, "contain", "user:alice")
		if err != nil {
			t.Fatal(err)
		}
		if restorable() {
			t.Error("restore offered while scale_to_zero is pending")
		}
		done, err := s.CompleteAction(ctx, sc.ID, alerts.ActionResult{State: alerts.ActionDone, Message: "Deployment shop/svc-0 scaled from 3 to 0 replicas",
			Scaled: "Deployment/svc-0", PreviousReplicas: ptr32(3)}, "token:r")
		if err != nil || done.Scaled != "Deployment/svc-0" || done.Replicas == nil || *done.Replicas != 3 {
			t.Fatalf("complete scale = %+v, %v", done, err)
		}
		if !restorable() {
			t.Fatal("restore not offered after a done scale_to_zero")
		}
		// A second scale_to_zero that found it at zero changes nothing to
		// restore: the restore still goes back to 3.
		sc2, _ := s.CreateAction(ctx, id, alerts.ActionScaleToZero, "", "user:alice")
		if _, err := s.CompleteAction(ctx, sc2.ID, alerts.ActionResult{State: alerts.ActionDone, Message: "already at 0",
			Scaled: "Deployment/svc-0", PreviousReplicas: ptr32(0)}, "token:r"); err != nil {
			t.Fatal(err)
		}
		re, err := s.CreateAction(ctx, id, alerts.ActionRestoreScale, "false positive", "user:bob")
		if err != nil {
			t.Fatal(err)
		}
		want := alerts.Action{ID: re.ID, AlertID: id, Action: alerts.ActionRestoreScale, Cluster: a.Cluster, Namespace: a.Namespace,
			Pod: a.Pod, Workload: a.Workload, Node: a.Node, Reason: "false positive", State: alerts.ActionPending, RequestedBy: "user:bob",
			RequestedAt: re.RequestedAt, Scaled: "Deployment/svc-0", Replicas: ptr32(3)}
		if diff := cmp.Diff(want, *re); diff != "" {
			t.Errorf("restore action (-want +got):\n%s", diff)
		}
		// The responder reads it from the pending list as it was stored.
		pend, _, err := s.ListActions(ctx, ActionFilter{Cluster: a.Cluster, State: alerts.ActionPending}, Page{Sort: "id"})
		if err != nil || len(pend) != 1 || pend[0].Replicas == nil || *pend[0].Replicas != 3 || pend[0].Scaled != "Deployment/svc-0" {
			t.Fatalf("pending = %+v, %v", pend, err)
		}
		if _, err := s.CreateAction(ctx, id, alerts.ActionRestoreScale, "", "user:bob"); !errors.Is(err, ErrConflict) {
			t.Errorf("second pending restore: %v, want ErrConflict", err)
		}
		if _, err := s.CompleteAction(ctx, re.ID, alerts.ActionResult{State: alerts.ActionDone, Message: "restored"}, "token:r"); err != nil {
			t.Fatal(err)
		}
		if restorable() {
			t.Error("restore still offered after it was done")
		}
		if _, err := s.CreateAction(ctx, id, alerts.ActionRestoreScale, "", "user:bob"); !errors.Is(err, ErrInvalid) {
			t.Errorf("restore after restore: %v", err)
		}

		// An older responder reports no structured count: the message
		// gives it.
		sc3, _ := s.CreateAction(ctx, id, alerts.ActionScaleToZero, "", "user:alice")
		got, err := s.CompleteAction(ctx, sc3.ID, alerts.ActionResult{State: alerts.ActionDone,
			Message: "StatefulSet shop/db scaled from 2 to 0 replicas"}, "token:r")
		if err != nil || got.Scaled != "StatefulSet/db" || got.Replicas == nil || *got.Replicas != 2 {
			t.Fatalf("older responder's scale = %+v, %v", got, err)
		}
		re2, err := s.CreateAction(ctx, id, alerts.ActionRestoreScale, "", "user:bob")
		if err != nil || re2.Scaled != "StatefulSet/db" || *re2.Replicas != 2 {
			t.Fatalf("restore of the older responder's scale = %+v, %v", re2, err)
		}
		// A failed scale leaves nothing to restore.
		_, _ = s.CompleteAction(ctx, re2.ID, alerts.ActionResult{State: alerts.ActionDone}, "token:r")
		sc4, _ := s.CreateAction(ctx, id, alerts.ActionScaleToZero, "", "user:alice")
		_, _ = s.CompleteAction(ctx, sc4.ID, alerts.ActionResult{State: alerts.ActionFailed, Message: "forbidden"}, "token:r")
		if restorable() {
			t.Error("restore offered after a failed scale_to_zero")
		}
		// Hostile result fields are refused.
		sc5, _ := s.CreateAction(ctx, id, alerts.ActionScaleToZero, "", "user:alice")
		for _, r := range []alerts.ActionResult{
			{State: alerts.ActionDone, Scaled: "Deployment/svc-0", PreviousReplicas: ptr32(-1)},
			{State: alerts.ActionDone, Scaled: "DaemonSet/x", PreviousReplicas: ptr32(1)},
			{State: alerts.ActionDone, Scaled: "Deployment/../../x", PreviousReplicas: ptr32(1)},
		} {
			if _, err := s.CompleteAction(ctx, sc5.ID, r, "token:r"); !errors.Is(err, ErrInvalid) {
				t.Errorf("result %+v: %v, want ErrInvalid", r, err)
			}
		}
	})
}

func TestScaledFromMessage(t *testing.T) {
	for _, tc := range []struct {
		msg, scaled string
		n           int32
	}{
		{"Deployment shop/web scaled from 3 to 0 replicas", "Deployment/web", 3},
		{"ReplicaSet a/b-1.x scaled from 12 to 0 replicas", "ReplicaSet/b-1.x", 12},
		{"Deployment shop/web already at 0 replicas", "", 0},
		{"DaemonSet shop/web scaled from 3 to 0 replicas", "", 0},
		{"Deployment shop/web scaled from 99999999999 to 0 replicas", "", 0},
		{"Deployment shop/WEB scaled from 3 to 0 replicas", "", 0},
		{"", "", 0},
	} {
		s, n := scaledFromMessage(tc.msg)
		if s != tc.scaled || (n == nil) != (tc.scaled == "") || (n != nil && *n != tc.n) {
			t.Errorf("%q: %q %v, want %q %d", tc.msg, s, n, tc.scaled, tc.n)
		}
	}
}

// TestMigrateResponseActionsForRestore: actions stored before 0015 keep
// every field, gain no count, and a restore_scale can be stored after it.
func TestMigrateResponseActionsForRestore(t *testing.T) {
	ctx := context.Background()
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			dsn := be.DSN(t)
			old := storeAtVersion(t, dsn, 12, func(old *Store, tx *sql.Tx) error {
				now := old.ts(time.Now())
				alertID, err := oldAlertRow(ctx, old, tx, now)
				if err != nil {
					return err
				}
				_, err = old.exec(ctx, tx, `INSERT INTO response_actions (alert_id, action, cluster, namespace, pod, workload, node, state,
					requested_by, requested_at, message, completed_by, completed_at) VALUES (?, 'scale_to_zero', 'prod', 'shop', 'web-1',
					'Deployment/web', 'node-1', 'done', 'user:alice', ?, 'Deployment shop/web scaled from 5 to 0 replicas', 'token:r', ?)`,
					alertID, now, now)
				return err
			})
			old.Close()
			s := openStore(t, dsn, Options{SecretKey: testKey})
			acts, n, err := s.ListActions(ctx, ActionFilter{}, Page{})
			if err != nil || n != 1 || acts[0].Action != alerts.ActionScaleToZero || acts[0].Workload != "Deployment/web" ||
				acts[0].Replicas != nil || acts[0].Scaled != "" || acts[0].CompletedAt == nil {
				t.Fatalf("actions after the migration = %+v (%d), %v", acts, n, err)
			}
			// Done before the responder reported counts: not restorable
			// (the count is only in the message of a row completed before
			// the upgrade), and the store says so instead of guessing.
			if _, err := s.CreateAction(ctx, acts[0].AlertID, alerts.ActionRestoreScale, "", "user:bob"); !errors.Is(err, ErrInvalid) {
				t.Errorf("restore of a pre-0015 scale: %v", err)
			}
			sc, err := s.CreateAction(ctx, acts[0].AlertID, alerts.ActionScaleToZero, "", "user:bob")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CompleteAction(ctx, sc.ID, alerts.ActionResult{State: alerts.ActionDone, Scaled: "Deployment/web",
				PreviousReplicas: ptr32(5)}, "token:r"); err != nil {
				t.Fatal(err)
			}
			if re, err := s.CreateAction(ctx, acts[0].AlertID, alerts.ActionRestoreScale, "", "user:bob"); err != nil || *re.Replicas != 5 {
				t.Errorf("restore after the migration: %+v, %v", re, err)
			}
		})
	}
}
