package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AdmissionPolicy is a named admission policy document as central serves
// it to the webhooks. The store does not parse YAML: the server validates a
// document with the policy loader before it calls PutAdmissionPolicy.
type AdmissionPolicy struct {
	Name string
	YAML string
	// Version is the generation of the write that last changed the
	// document (it only grows, also across delete and re-create).
	Version   int64
	UpdatedAt time.Time
	UpdatedBy string
}

// MaxAdmissionPolicyName bounds a document name (it is shown in decisions
// and logs, and becomes a policy source name in the webhook).
const MaxAdmissionPolicyName = 253

// bumpPolicyGeneration counts a write to the admission policies inside tx
// and returns the new generation.
func (s *Store) bumpPolicyGeneration(ctx context.Context, tx *sql.Tx) (int64, error) {
	if _, err := s.exec(ctx, tx, `UPDATE admission_policy_generation SET generation = generation + 1 WHERE id = 1`); err != nil {
		return 0, err
	}
	var g int64
	err := s.queryRow(ctx, tx, `SELECT generation FROM admission_policy_generation WHERE id = 1`).Scan(&g)
	return g, err
}

// PutAdmissionPolicy creates or replaces the named document.
func (s *Store) PutAdmissionPolicy(ctx context.Context, name, yaml, by string) (*AdmissionPolicy, error) {
	if name == "" || len(name) > MaxAdmissionPolicyName {
		return nil, fmt.Errorf("put admission policy: %w", invalid("policy name must be 1 to %d bytes", MaxAdmissionPolicyName))
	}
	now := s.now()
	p := &AdmissionPolicy{Name: name, YAML: yaml, UpdatedBy: by}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		g, err := s.bumpPolicyGeneration(ctx, tx)
		if err != nil {
			return err
		}
		p.Version = g
		_, err = s.exec(ctx, tx, `INSERT INTO admission_policies (name, yaml, version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET yaml = excluded.yaml, version = excluded.version,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			name, yaml, g, s.ts(now), by)
		return err
	})
	if err != nil {
		return nil, s.wrapErr("put admission policy "+name, err)
	}
	p.UpdatedAt = now.UTC().Truncate(time.Microsecond)
	return p, nil
}

// DeleteAdmissionPolicy removes the named document (ErrNotFound if absent).
func (s *Store) DeleteAdmissionPolicy(ctx context.Context, name string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `DELETE FROM admission_policies WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		_, err = s.bumpPolicyGeneration(ctx, tx)
		return err
	})
	return s.wrapErr("delete admission policy "+name, err)
}

// ListAdmissionPolicies returns every document by name and the generation
// of the set, which changes with every put and delete and so serves as an
// ETag. The generation is read before the rows: a write in between gives
// newer rows under an older generation, which only costs the caller one
// more fetch, never a missed change.
func (s *Store) ListAdmissionPolicies(ctx context.Context) ([]AdmissionPolicy, int64, error) {
	var gen int64
	if err := s.queryRow(ctx, s.r, `SELECT generation FROM admission_policy_generation WHERE id = 1`).Scan(&gen); err != nil {
		return nil, 0, s.wrapErr("list admission policies", err)
	}
	rows, err := s.query(ctx, s.r, `SELECT name, yaml, version, updated_at, updated_by FROM admission_policies ORDER BY name`)
	if err != nil {
		return nil, 0, s.wrapErr("list admission policies", err)
	}
	defer rows.Close()
	out := []AdmissionPolicy{}
	for rows.Next() {
		var p AdmissionPolicy
		if err := rows.Scan(&p.Name, &p.YAML, &p.Version, tcol(&p.UpdatedAt), &p.UpdatedBy); err != nil {
			return nil, 0, s.wrapErr("list admission policies", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.wrapErr("list admission policies", err)
	}
	return out, gen, nil
}
