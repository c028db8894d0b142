package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// AuditAccountSource is one learned (service account → source IP) pair of
// the audit detector of service accounts used from a new source (package
// audit keeps the logic; the store only keeps its state across restarts).
type AuditAccountSource struct {
	Cluster string
	Account string // the user name, system:serviceaccount:NS:NAME
	IP      string
	// AccountFirst is when the account was first seen: its learning
	// period runs from there.
	AccountFirst time.Time
	// AlertedBy is "" for an address learned while learning, else the
	// audit id of the request that alerted on it.
	AlertedBy string
	LastSeen  time.Time
}

// MaxAuditAccountSources bounds what LoadAuditAccountSources returns.
const MaxAuditAccountSources = 1_000_000

// LoadAuditAccountSources returns the pairs seen at or after since, most
// recently seen first, at most limit (0 or more than
// MaxAuditAccountSources: that).
func (s *Store) LoadAuditAccountSources(ctx context.Context, since time.Time, limit int) ([]AuditAccountSource, error) {
	if limit <= 0 || limit > MaxAuditAccountSources {
		limit = MaxAuditAccountSources
	}
	var w where
	if !since.IsZero() {
		w.add(`last_seen >= ?`, s.ts(since))
	}
	rows, err := s.query(ctx, s.r, `SELECT cluster, account, ip, account_first, alerted_by, last_seen FROM audit_account_sources`+
		w.sql()+fmt.Sprintf(` ORDER BY last_seen DESC LIMIT %d`, limit), w.args...)
	if err != nil {
		return nil, s.wrapErr("load audit account sources", err)
	}
	defer rows.Close()
	var out []AuditAccountSource
	for rows.Next() {
		var a AuditAccountSource
		if err := rows.Scan(&a.Cluster, &a.Account, &a.IP, tcol(&a.AccountFirst), &a.AlertedBy, tcol(&a.LastSeen)); err != nil {
			return nil, s.wrapErr("load audit account sources", err)
		}
		out = append(out, a)
	}
	return out, s.wrapErr("load audit account sources", rows.Err())
}

// SaveAuditAccountSources upserts pairs (the earliest AccountFirst and the
// latest LastSeen win; AlertedBy is replaced) and, when forgetBefore is
// set, deletes the pairs not seen since then (age-out), in one
// transaction. It returns how many pairs were forgotten.
func (s *Store) SaveAuditAccountSources(ctx context.Context, srcs []AuditAccountSource, forgetBefore time.Time) (int64, error) {
	op := fmt.Sprintf("save %d audit account sources", len(srcs))
	srcs = slices.Clone(srcs)
	// A fixed order: concurrent savers on PostgreSQL cannot deadlock.
	slices.SortFunc(srcs, func(a, b AuditAccountSource) int {
		if c := cmp.Compare(a.Cluster, b.Cluster); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return cmp.Compare(a.IP, b.IP)
	})
	var forgot int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, a := range srcs {
			if a.Account == "" || a.IP == "" || a.AccountFirst.IsZero() || a.LastSeen.IsZero() {
				return invalid("account source %q %q: account, ip and times are required", a.Account, a.IP)
			}
			_, err := s.exec(ctx, tx, `INSERT INTO audit_account_sources (cluster, account, ip, account_first, alerted_by, last_seen)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cluster, account, ip) DO UPDATE SET
				account_first = CASE WHEN excluded.account_first < audit_account_sources.account_first
					THEN excluded.account_first ELSE audit_account_sources.account_first END,
				alerted_by = excluded.alerted_by,
				last_seen = CASE WHEN excluded.last_seen > audit_account_sources.last_seen
					THEN excluded.last_seen ELSE audit_account_sources.last_seen END`,
				a.Cluster, a.Account, a.IP, s.ts(a.AccountFirst), a.AlertedBy, s.ts(a.LastSeen))
			if err != nil {
				return err
			}
		}
		if !forgetBefore.IsZero() {
			res, err := s.exec(ctx, tx, `DELETE FROM audit_account_sources WHERE last_seen < ?`, s.ts(forgetBefore))
			if err != nil {
				return err
			}
			forgot, _ = res.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return 0, s.wrapErr(op, err)
	}
	return forgot, nil
}
