package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Policy is one version of a named policy document. Versions are kept:
// saving a policy adds a version, so what gated a deployment yesterday can
// still be read today.
type Policy struct {
	Name      string
	Version   int
	YAML      string
	CreatedAt time.Time
	CreatedBy string
}

// PutPolicy stores yaml as the next version of the named policy and returns
// it. The store does not parse the YAML (the policy package does, before).
func (s *Store) PutPolicy(ctx context.Context, name, yaml, by string) (*Policy, error) {
	if name == "" {
		return nil, fmt.Errorf("put policy: %w", invalid("policy name is empty"))
	}
	p := &Policy{Name: name, YAML: yaml, CreatedBy: by}
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var v sql.NullInt64
		if err := s.queryRow(ctx, tx, `SELECT MAX(version) FROM policies WHERE name = ?`, name).Scan(&v); err != nil {
			return err
		}
		p.Version = int(v.Int64) + 1
		// Two concurrent writers compute the same version; the primary key
		// rejects the second with ErrConflict rather than losing either.
		_, err := s.exec(ctx, tx, `INSERT INTO policies (name, version, yaml, created_at, created_by) VALUES (?, ?, ?, ?, ?)`,
			name, p.Version, yaml, s.ts(now), by)
		return err
	})
	if err != nil {
		return nil, s.wrapErr("put policy "+name, err)
	}
	p.CreatedAt = now.UTC().Truncate(time.Microsecond)
	return p, nil
}

// GetPolicy returns a version of a policy; version 0 is the latest.
func (s *Store) GetPolicy(ctx context.Context, name string, version int) (*Policy, error) {
	q := `SELECT name, version, yaml, created_at, created_by FROM policies WHERE name = ? ORDER BY version DESC LIMIT 1`
	args := []any{name}
	if version > 0 {
		q = `SELECT name, version, yaml, created_at, created_by FROM policies WHERE name = ? AND version = ?`
		args = append(args, version)
	}
	var p Policy
	if err := s.queryRow(ctx, s.r, q, args...).Scan(&p.Name, &p.Version, &p.YAML, tcol(&p.CreatedAt), &p.CreatedBy); err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get policy %s version %d", name, version), err)
	}
	return &p, nil
}

// ListPolicies returns the latest version of every policy, by name.
func (s *Store) ListPolicies(ctx context.Context) ([]Policy, error) {
	rows, err := s.query(ctx, s.r, `SELECT p.name, p.version, p.yaml, p.created_at, p.created_by FROM policies p
		WHERE p.version = (SELECT MAX(version) FROM policies q WHERE q.name = p.name) ORDER BY p.name`)
	if err != nil {
		return nil, s.wrapErr("list policies", err)
	}
	defer rows.Close()
	var out []Policy
	for rows.Next() {
		var p Policy
		if err := rows.Scan(&p.Name, &p.Version, &p.YAML, tcol(&p.CreatedAt), &p.CreatedBy); err != nil {
			return nil, s.wrapErr("list policies", err)
		}
		out = append(out, p)
	}
	return out, s.wrapErr("list policies", rows.Err())
}

// DeletePolicy removes every version of a policy.
func (s *Store) DeletePolicy(ctx context.Context, name string) error {
	res, err := s.exec(ctx, s.w, `DELETE FROM policies WHERE name = ?`, name)
	if err != nil {
		return s.wrapErr("delete policy "+name, err)
	}
	return affectedOne(res, "delete policy "+name)
}
