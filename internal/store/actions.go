package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// Response actions are requested by people (console, API) against an
// alert and performed by the in-cluster responder, which pulls pending
// actions for its cluster and reports the result. The target is copied
// from the alert when the action is requested, so the responder acts on
// exactly what the requester saw even if the alert is later regrouped.

// CreateAction records a pending response action against an alert. The
// alert must name a cluster, and a pod (namespace and pod) or a node as
// the action needs. A second pending request of the same action for the
// same alert is refused with ErrConflict (a double click must not delete
// two generations of a pod).
func (s *Store) CreateAction(ctx context.Context, alertID int64, kind alerts.ActionKind, reason, by string) (*alerts.Action, error) {
	op := fmt.Sprintf("request %s on alert %d", kind, alertID)
	if !kind.Valid() {
		return nil, fmt.Errorf("%s: %w", op, invalid("action %q (want delete_pod, isolate_pod, scale_to_zero, cordon_node, unisolate_pod, uncordon_node or restore_scale)", kind))
	}
	if by == "" {
		return nil, fmt.Errorf("%s: %w", op, invalid("who requested the action is required"))
	}
	if len(reason) > 4096 {
		return nil, fmt.Errorf("%s: %w", op, invalid("reason longer than 4096 bytes"))
	}
	var out *alerts.Action
	err := s.tx(ctx, func(tx *sql.Tx) error {
		a, err := scanAlert(s.queryRow(ctx, tx, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, alertID))
		if err != nil {
			return err
		}
		switch {
		case a.Cluster == "":
			return invalid("the alert names no cluster to act in")
		case kind.NeedsPod() && (a.Namespace == "" || a.Pod == ""):
			return invalid("the alert names no pod (namespace and pod are required for %s)", kind)
		case kind.NeedsWorkload() && (a.Namespace == "" || a.Workload == ""):
			return invalid("the alert names no workload (namespace and workload are required for %s)", kind)
		case kind.NeedsNode() && a.Node == "":
			return invalid("the alert names no node to %s", strings.TrimSuffix(string(kind), "_node"))
		}
		var scaled string
		var replicas *int32
		if undone := kind.Undoes(); undone != "" {
			// An undo needs something to undo: the action it reverses done
			// on the same target (from this alert or another one).
			src, err := s.undoable(ctx, tx, undone, a)
			if err != nil {
				return err
			}
			if kind == alerts.ActionRestoreScale {
				// The count to restore goes into the action record, so
				// the responder needs nothing but the action.
				scaled, replicas = src.Scaled, src.Replicas
			}
		}
		var dup int64
		err = s.queryRow(ctx, tx, `SELECT id FROM response_actions WHERE alert_id = ? AND action = ? AND state = 'pending'`,
			alertID, string(kind)).Scan(&dup)
		if err == nil {
			return fmt.Errorf("%w: action %d (%s) is already pending for this alert", ErrConflict, dup, kind)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		now := s.now()
		var id int64
		err = s.queryRow(ctx, tx, `INSERT INTO response_actions (alert_id, action, cluster, namespace, pod, workload, node,
			reason, state, requested_by, requested_at, scaled, replicas) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)
			RETURNING id`,
			alertID, string(kind), a.Cluster, a.Namespace, a.Pod, a.Workload, a.Node, reason, by, s.ts(now), scaled,
			nullInt32(replicas)).Scan(&id)
		if err != nil {
			return err
		}
		out, err = scanAction(s.queryRow(ctx, tx, `SELECT `+actionCols+` FROM response_actions WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return out, nil
}

// undoable checks that action undone was performed (done) on a's target —
// the pod (cluster, namespace, pod), the node (cluster, node) or, for
// scale_to_zero, the workload (cluster, namespace, workload) — and not
// already undone since, and returns that action. A scale_to_zero undoes
// only when it changed something: it must have reported a replica count
// above zero (one that found the workload already at zero is skipped, so
// the restore goes back to the count before the first one).
func (s *Store) undoable(ctx context.Context, tx querier, undone alerts.ActionKind, a *Alert) (*alerts.Action, error) {
	undo := string(undoOf(undone))
	var q string
	var args []any
	switch {
	case undone.NeedsNode():
		q, args = `cluster = ? AND node = ?`, []any{a.Cluster, a.Node}
	case undone == alerts.ActionScaleToZero:
		q, args = `cluster = ? AND namespace = ? AND workload = ?`, []any{a.Cluster, a.Namespace, a.Workload}
	default:
		q, args = `cluster = ? AND namespace = ? AND pod = ?`, []any{a.Cluster, a.Namespace, a.Pod}
	}
	doCond := `action = ?`
	if undone == alerts.ActionScaleToZero {
		doCond += ` AND replicas > 0 AND scaled <> ''`
	}
	var lastDo, lastUndo int64
	err := s.queryRow(ctx, tx, `SELECT COALESCE(MAX(CASE WHEN `+doCond+` THEN id END), 0),
		COALESCE(MAX(CASE WHEN action = ? THEN id END), 0) FROM response_actions WHERE state = 'done' AND `+q,
		append([]any{string(undone), undo}, args...)...).Scan(&lastDo, &lastUndo)
	if err != nil {
		return nil, err
	}
	if lastDo == 0 || lastUndo > lastDo {
		return nil, invalid("nothing to undo: no %s was done on this target since the last %s", undone, undo)
	}
	return scanAction(s.queryRow(ctx, tx, `SELECT `+actionCols+` FROM response_actions WHERE id = ?`, lastDo))
}

// undoOf is the action that reverses k ("" for none).
func undoOf(k alerts.ActionKind) alerts.ActionKind {
	for _, u := range alerts.ActionKinds {
		if u.Undoes() == k {
			return u
		}
	}
	return ""
}

// UndoableActions reports, for an alert's target, which undo actions apply
// now (the console shows their buttons only then).
func (s *Store) UndoableActions(ctx context.Context, a *Alert) ([]alerts.ActionKind, error) {
	var out []alerts.ActionKind
	for _, k := range alerts.ActionKinds {
		undone := k.Undoes()
		if undone == "" || a.Cluster == "" || (k.NeedsNode() && a.Node == "") || (k.NeedsPod() && (a.Namespace == "" || a.Pod == "")) ||
			(k.NeedsWorkload() && (a.Namespace == "" || a.Workload == "")) {
			continue
		}
		_, err := s.undoable(ctx, s.r, undone, a)
		switch {
		case err == nil:
			out = append(out, k)
		case !errors.Is(err, ErrInvalid):
			return nil, s.wrapErr("undoable actions", err)
		}
	}
	return out, nil
}

const actionCols = `id, alert_id, action, cluster, namespace, pod, workload, node, reason, state, requested_by, requested_at,
	message, completed_by, completed_at, scaled, replicas`

func scanAction(sc scanner) (*alerts.Action, error) {
	var a alerts.Action
	var kind, state string
	var done time.Time
	var replicas sql.NullInt32
	if err := sc.Scan(&a.ID, &a.AlertID, &kind, &a.Cluster, &a.Namespace, &a.Pod, &a.Workload, &a.Node, &a.Reason, &state,
		&a.RequestedBy, tcol(&a.RequestedAt), &a.Message, &a.CompletedBy, tcol(&done), &a.Scaled, &replicas); err != nil {
		return nil, err
	}
	if replicas.Valid {
		a.Replicas = &replicas.Int32
	}
	a.Action, a.State = alerts.ActionKind(kind), alerts.ActionState(state)
	if !done.IsZero() {
		a.CompletedAt = &done
	}
	return &a, nil
}

// GetAction returns one response action.
func (s *Store) GetAction(ctx context.Context, id int64) (*alerts.Action, error) {
	a, err := scanAction(s.queryRow(ctx, s.r, `SELECT `+actionCols+` FROM response_actions WHERE id = ?`, id))
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get action %d", id), err)
	}
	return a, nil
}

// ActionFilter narrows ListActions.
type ActionFilter struct {
	Cluster string
	State   alerts.ActionState
	AlertID int64
}

var actionSorts = map[string]string{"id": "id", "requested_at": "requested_at"}

// ListActions returns a page of response actions. Sort keys: id (default
// -id), requested_at. The responder asks for its cluster's pending actions
// sorted by id, oldest first.
func (s *Store) ListActions(ctx context.Context, f ActionFilter, p Page) ([]alerts.Action, int, error) {
	order, err := p.orderBy(actionSorts, "-id", "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list actions: %w", err)
	}
	var w where
	if f.Cluster != "" {
		w.add(`cluster = ?`, f.Cluster)
	}
	if f.State != "" {
		if !f.State.Valid() {
			return nil, 0, fmt.Errorf("list actions: %w", invalid("action state %q (want pending, done or failed)", f.State))
		}
		w.add(`state = ?`, string(f.State))
	}
	if f.AlertID != 0 {
		w.add(`alert_id = ?`, f.AlertID)
	}
	out := []alerts.Action{}
	total, err := s.list(ctx, actionCols, "response_actions", &w, order, p, func(sc scanner) error {
		a, err := scanAction(sc)
		if err == nil {
			out = append(out, *a)
		}
		return err
	})
	if err != nil {
		return nil, 0, s.wrapErr("list actions", err)
	}
	return out, total, nil
}

// CompleteAction records the responder's result. Only a pending action can
// complete; reporting again is ErrConflict, except that repeating the same
// final state is accepted (the responder's retry after a lost answer).
func (s *Store) CompleteAction(ctx context.Context, id int64, r alerts.ActionResult, by string) (*alerts.Action, error) {
	op := fmt.Sprintf("complete action %d", id)
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	if by == "" {
		return nil, fmt.Errorf("%s: %w", op, invalid("who reports the result is required"))
	}
	var out *alerts.Action
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := scanAction(s.queryRow(ctx, tx, `SELECT `+actionCols+` FROM response_actions WHERE id = ?`+s.d.forUpdate, id))
		if err != nil {
			return err
		}
		if cur.State != alerts.ActionPending {
			if cur.State == r.State {
				out = cur
				return nil
			}
			return fmt.Errorf("%w: action is already %s", ErrConflict, cur.State)
		}
		if _, err := s.exec(ctx, tx, `UPDATE response_actions SET state = ?, message = ?, completed_by = ?, completed_at = ? WHERE id = ?`,
			string(r.State), r.Message, by, s.ts(s.now()), id); err != nil {
			return err
		}
		if cur.Action == alerts.ActionScaleToZero && r.State == alerts.ActionDone {
			// What was scaled and from how many replicas: what a later
			// restore_scale puts back.
			scaled, prev := r.Scaled, r.PreviousReplicas
			if prev == nil || scaled == "" {
				scaled, prev = scaledFromMessage(r.Message)
			}
			if _, err := s.exec(ctx, tx, `UPDATE response_actions SET scaled = ?, replicas = ? WHERE id = ?`,
				scaled, nullInt32(prev), id); err != nil {
				return err
			}
		}
		out, err = scanAction(s.queryRow(ctx, tx, `SELECT `+actionCols+` FROM response_actions WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return out, nil
}

// scaleMessage is what responders before restore_scale reported for a
// scale_to_zero ("Deployment shop/web scaled from 3 to 0 replicas"); their
// results carry no structured count, so it is read from the message.
var scaleMessage = regexp.MustCompile(`^(Deployment|StatefulSet|ReplicaSet) [^/ ]+/([^ ]+) scaled from ([0-9]{1,9}) to 0 replicas$`)

// scaledFromMessage reads the scaled object and the count before from an
// older responder's message (nil when it is not one).
func scaledFromMessage(msg string) (string, *int32) {
	m := scaleMessage.FindStringSubmatch(msg)
	if m == nil {
		return "", nil
	}
	n, err := strconv.ParseInt(m[3], 10, 32)
	target := m[1] + "/" + m[2]
	if err != nil || !alerts.ValidScaleTarget(target) {
		return "", nil
	}
	v := int32(n)
	return target, &v
}

// nullInt32 is a nullable INTEGER argument.
func nullInt32(p *int32) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}
