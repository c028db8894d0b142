package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEntry is one user action: who did what to which target.
type AuditEntry struct {
	ID int64
	At time.Time
	// Actor is "user:<name>" or "token:<name>".
	Actor string
	// Action is "<entity>.<verb>", e.g. "registry.create", "alert.status".
	Action string
	// Target names the object, e.g. "registry/3".
	Target string
	// Details is JSON: the request's relevant fields (never secrets).
	Details json.RawMessage
}

// Audit appends an entry to the audit log (At defaults to now).
func (s *Store) Audit(ctx context.Context, e AuditEntry) (int64, error) {
	if e.Actor == "" || e.Action == "" {
		return 0, fmt.Errorf("audit: %w", invalid("actor and action are required"))
	}
	if len(e.Details) == 0 {
		e.Details = json.RawMessage("{}")
	}
	if !json.Valid(e.Details) {
		return 0, fmt.Errorf("audit %s: %w", e.Action, invalid("details are not JSON"))
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	var id int64
	err := s.queryRow(ctx, s.w, `INSERT INTO audit_log (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		s.ts(e.At), e.Actor, e.Action, e.Target, string(e.Details)).Scan(&id)
	if err != nil {
		return 0, s.wrapErr("audit "+e.Action, err)
	}
	return id, nil
}

// AuditFilter narrows ListAudit.
type AuditFilter struct {
	Actor  string
	Action string
	Target string
	Since  time.Time
	Until  time.Time
}

var auditSorts = map[string]string{"at": "at", "actor": "actor", "action": "action", "id": "id"}

// ListAudit returns a page of the audit log. Sort keys: at (default -at),
// actor, action, id.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter, p Page) ([]AuditEntry, int, error) {
	order, err := p.orderBy(auditSorts, "-at", "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list audit: %w", err)
	}
	var w where
	if f.Actor != "" {
		w.add(`actor = ?`, f.Actor)
	}
	if f.Action != "" {
		w.add(`action = ?`, f.Action)
	}
	if f.Target != "" {
		w.add(`target = ?`, f.Target)
	}
	if !f.Since.IsZero() {
		w.add(`at >= ?`, s.ts(f.Since))
	}
	if !f.Until.IsZero() {
		w.add(`at < ?`, s.ts(f.Until))
	}
	var out []AuditEntry
	total, err := s.list(ctx, `id, at, actor, action, target, details`, "audit_log", &w, order, p, func(sc scanner) error {
		var e AuditEntry
		var d string
		if err := sc.Scan(&e.ID, tcol(&e.At), &e.Actor, &e.Action, &e.Target, &d); err != nil {
			return err
		}
		e.Details = json.RawMessage(d)
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, 0, s.wrapErr("list audit", err)
	}
	return out, total, nil
}
