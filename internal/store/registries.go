package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// RegistryKind says how central talks to a registry and reads its webhooks.
type RegistryKind string

const (
	RegistryDistribution RegistryKind = "distribution" // CNCF Distribution (registry:2) notifications
	RegistryHarbor       RegistryKind = "harbor"       // Harbor webhooks
	RegistryGeneric      RegistryKind = "generic"      // any OCI registry, swept periodically
)

func (k RegistryKind) valid() bool {
	return k == RegistryDistribution || k == RegistryHarbor || k == RegistryGeneric
}

// Credentials are a registry's secrets. They are sealed with the store's
// secret key before they reach the database.
type Credentials struct {
	Username string `json:"username,omitempty"`
	// Password is a password or an access token.
	Password string `json:"password,omitempty"`
	// WebhookSecret authenticates the registry's push notifications.
	WebhookSecret string `json:"webhookSecret,omitempty"`
}

// Registry is a registry central scans images from.
type Registry struct {
	ID   int64
	Name string
	// URL is the registry's base URL ("https://registry.example.com").
	URL  string
	Kind RegistryKind
	// Repositories limits scanning to these repositories (path patterns,
	// interpreted by the sweeper); empty means all.
	Repositories []string
	// Insecure allows plain HTTP or an unverified certificate.
	Insecure bool
	// Credentials are decrypted by GetRegistry and GetRegistryByName; lists
	// leave them nil and set HasCredentials.
	Credentials    *Credentials
	HasCredentials bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastSweepAt    time.Time
	LastSweepError string
}

func (r *Registry) validate() error {
	if strings.TrimSpace(r.Name) == "" {
		return invalid("registry name is empty")
	}
	if !r.Kind.valid() {
		return invalid("registry kind %q (want distribution, harbor or generic)", r.Kind)
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("registry URL %q (want http(s)://host[:port])", r.URL)
	}
	for _, repo := range r.Repositories {
		if strings.TrimSpace(repo) == "" {
			return invalid("empty repository in registry %q", r.Name)
		}
	}
	return nil
}

func registryAAD(name string) []byte { return []byte("bulwark/registry/" + name) }

func (s *Store) sealCredentials(r *Registry) ([]byte, error) {
	if r.Credentials == nil || *r.Credentials == (Credentials{}) {
		return nil, nil
	}
	b, err := json.Marshal(r.Credentials)
	if err != nil {
		return nil, err
	}
	return seal(s.key, b, registryAAD(r.Name))
}

// CreateRegistry stores r and returns it with its ID and timestamps.
func (s *Store) CreateRegistry(ctx context.Context, r Registry) (*Registry, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("create registry: %w", err)
	}
	sealed, err := s.sealCredentials(&r)
	if err != nil {
		return nil, fmt.Errorf("create registry %s: seal credentials: %w", r.Name, err)
	}
	repos, _ := json.Marshal(nonNil(r.Repositories))
	now := s.now()
	err = s.queryRow(ctx, s.w, `INSERT INTO registries (name, url, kind, repositories, insecure, credentials, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.Name, r.URL, string(r.Kind), string(repos), r.Insecure, sealed, s.ts(now), s.ts(now)).Scan(&r.ID)
	if err != nil {
		return nil, s.wrapErr("create registry "+r.Name, err)
	}
	r.CreatedAt, r.UpdatedAt = now.UTC().Truncate(time.Microsecond), now.UTC().Truncate(time.Microsecond)
	r.HasCredentials = sealed != nil
	return &r, nil
}

// UpdateRegistry replaces the registry with r.ID by r, credentials
// included (nil Credentials removes them): read, modify, write.
func (s *Store) UpdateRegistry(ctx context.Context, r Registry) error {
	if err := r.validate(); err != nil {
		return fmt.Errorf("update registry: %w", err)
	}
	sealed, err := s.sealCredentials(&r)
	if err != nil {
		return fmt.Errorf("update registry %s: seal credentials: %w", r.Name, err)
	}
	repos, _ := json.Marshal(nonNil(r.Repositories))
	res, err := s.exec(ctx, s.w, `UPDATE registries SET name = ?, url = ?, kind = ?, repositories = ?, insecure = ?,
		credentials = ?, updated_at = ? WHERE id = ?`,
		r.Name, r.URL, string(r.Kind), string(repos), r.Insecure, sealed, s.ts(s.now()), r.ID)
	if err != nil {
		return s.wrapErr("update registry "+r.Name, err)
	}
	return affectedOne(res, "update registry "+r.Name)
}

// DeleteRegistry removes a registry (images it found stay).
func (s *Store) DeleteRegistry(ctx context.Context, id int64) error {
	res, err := s.exec(ctx, s.w, `DELETE FROM registries WHERE id = ?`, id)
	if err != nil {
		return s.wrapErr("delete registry", err)
	}
	return affectedOne(res, fmt.Sprintf("delete registry %d", id))
}

// RecordSweep notes the outcome of a periodic sweep of the registry.
func (s *Store) RecordSweep(ctx context.Context, id int64, at time.Time, sweepErr string) error {
	res, err := s.exec(ctx, s.w, `UPDATE registries SET last_sweep_at = ?, last_sweep_error = ? WHERE id = ?`, s.ts(at), sweepErr, id)
	if err != nil {
		return s.wrapErr("record sweep", err)
	}
	return affectedOne(res, fmt.Sprintf("record sweep of registry %d", id))
}

const registryCols = `id, name, url, kind, repositories, insecure, credentials, created_at, updated_at, last_sweep_at, last_sweep_error`

func (s *Store) scanRegistry(sc scanner, decrypt bool) (*Registry, error) {
	var r Registry
	var kind, repos string
	var sealed []byte
	if err := sc.Scan(&r.ID, &r.Name, &r.URL, &kind, &repos, boolCol{&r.Insecure}, &sealed,
		tcol(&r.CreatedAt), tcol(&r.UpdatedAt), tcol(&r.LastSweepAt), &r.LastSweepError); err != nil {
		return nil, err
	}
	r.Kind = RegistryKind(kind)
	if err := json.Unmarshal([]byte(repos), &r.Repositories); err != nil {
		return nil, fmt.Errorf("registry %s repositories: %w", r.Name, err)
	}
	r.HasCredentials = len(sealed) > 0
	if decrypt && r.HasCredentials {
		pt, err := open(s.key, sealed, registryAAD(r.Name))
		if err != nil {
			return nil, fmt.Errorf("registry %s credentials: %w", r.Name, err)
		}
		r.Credentials = new(Credentials)
		if err := json.Unmarshal(pt, r.Credentials); err != nil {
			return nil, fmt.Errorf("registry %s credentials: %w", r.Name, err)
		}
	}
	return &r, nil
}

// GetRegistry returns a registry with its credentials decrypted.
func (s *Store) GetRegistry(ctx context.Context, id int64) (*Registry, error) {
	r, err := s.scanRegistry(s.queryRow(ctx, s.r, `SELECT `+registryCols+` FROM registries WHERE id = ?`, id), true)
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get registry %d", id), err)
	}
	return r, nil
}

// GetRegistryByName returns a registry with its credentials decrypted.
func (s *Store) GetRegistryByName(ctx context.Context, name string) (*Registry, error) {
	r, err := s.scanRegistry(s.queryRow(ctx, s.r, `SELECT `+registryCols+` FROM registries WHERE name = ?`, name), true)
	if err != nil {
		return nil, s.wrapErr("get registry "+name, err)
	}
	return r, nil
}

// ListRegistries returns all registries by name, without credentials
// (there are few registries; no paging).
func (s *Store) ListRegistries(ctx context.Context) ([]Registry, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+registryCols+` FROM registries ORDER BY name`)
	if err != nil {
		return nil, s.wrapErr("list registries", err)
	}
	defer rows.Close()
	var out []Registry
	for rows.Next() {
		r, err := s.scanRegistry(rows, false)
		if err != nil {
			return nil, s.wrapErr("list registries", err)
		}
		out = append(out, *r)
	}
	return out, s.wrapErr("list registries", rows.Err())
}

func affectedOne(res sql.Result, op string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
