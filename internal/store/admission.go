package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// AdmissionDecision is one decision of an admission webhook as stored. The
// columns are what lists filter on; Record is the full decision as the
// webhook sent it (policy.DecisionRecord JSON).
type AdmissionDecision struct {
	ID            string
	At            time.Time
	ReceivedAt    time.Time
	Cluster       string
	Operation     string
	Kind          string
	SubResource   string
	Namespace     string
	Name          string
	User          string
	Verdict       string
	Allowed       bool
	Violations    int
	PolicyVersion string
	Record        json.RawMessage
}

// InsertAdmissionDecisions stores a batch; decisions whose id is already
// stored are counted as duplicates and left as they are.
func (s *Store) InsertAdmissionDecisions(ctx context.Context, ds []AdmissionDecision) (accepted, dups int, err error) {
	if len(ds) == 0 {
		return 0, 0, nil
	}
	now := s.now()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for i := range ds {
			d := &ds[i]
			if d.ID == "" || d.At.IsZero() || d.Verdict == "" {
				return invalid("admission decision %d: id, time and verdict are required", i)
			}
			if !json.Valid(d.Record) {
				return invalid("admission decision %s: record is not JSON", d.ID)
			}
			res, err := s.exec(ctx, tx, `INSERT INTO admission_decisions (id, at, received_at, cluster, operation, kind, sub_resource,
				namespace, name, username, verdict, allowed, violations, policy_version, record)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
				d.ID, s.ts(d.At), s.ts(now), d.Cluster, d.Operation, d.Kind, d.SubResource, d.Namespace, d.Name, d.User,
				d.Verdict, d.Allowed, d.Violations, d.PolicyVersion, string(d.Record))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				accepted++
			} else {
				dups++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, s.wrapErr("insert admission decisions", err)
	}
	return accepted, dups, nil
}

// AdmissionFilter selects decisions; empty fields match all.
type AdmissionFilter struct {
	Cluster, Namespace, Verdict, Kind, Operation string
	Since                                        time.Time
}

var admissionSorts = map[string]string{"at": "at", "namespace": "namespace", "verdict": "verdict"}

// ListAdmissionDecisions pages through decisions, newest first by default.
func (s *Store) ListAdmissionDecisions(ctx context.Context, f AdmissionFilter, p Page) ([]AdmissionDecision, int, error) {
	order, err := p.orderBy(admissionSorts, "-at", "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list admission decisions: %w", err)
	}
	var w where
	for _, c := range []struct{ col, v string }{{"cluster", f.Cluster}, {"namespace", f.Namespace}, {"verdict", f.Verdict},
		{"kind", f.Kind}, {"operation", f.Operation}} {
		if c.v != "" {
			w.add(c.col+` = ?`, c.v)
		}
	}
	if !f.Since.IsZero() {
		w.add(`at >= ?`, s.ts(f.Since))
	}
	var out []AdmissionDecision
	total, err := s.list(ctx, `id, at, received_at, cluster, operation, kind, sub_resource, namespace, name, username, verdict,
		allowed, violations, policy_version, record`, "admission_decisions", &w, order, p, func(sc scanner) error {
		var d AdmissionDecision
		var rec string
		if err := sc.Scan(&d.ID, tcol(&d.At), tcol(&d.ReceivedAt), &d.Cluster, &d.Operation, &d.Kind, &d.SubResource, &d.Namespace,
			&d.Name, &d.User, &d.Verdict, boolCol{&d.Allowed}, &d.Violations, &d.PolicyVersion, &rec); err != nil {
			return err
		}
		d.Record = json.RawMessage(rec)
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, 0, s.wrapErr("list admission decisions", err)
	}
	return out, total, nil
}
