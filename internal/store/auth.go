package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Role is what an API token or user may do.
type Role string

const (
	RoleAdmin   Role = "admin"   // everything
	RoleAnalyst Role = "analyst" // read and triage
	RoleCI      Role = "ci"      // upload scan results
	RoleAgent   Role = "agent"   // sensor, admission and cluster reporting
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleAnalyst, RoleCI, RoleAgent:
		return r, nil
	}
	return "", invalid("role %q (want admin, analyst, ci or agent)", s)
}

// Token is an API token's stored identity. The secret itself is returned
// once by CreateToken and only its SHA-256 is kept.
type Token struct {
	ID   int64
	Name string
	// Prefix is the token's first characters, shown to tell tokens apart.
	Prefix     string
	Role       Role
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// CreateToken makes a new API token and returns the secret (shown to the
// user once, never stored) with its record.
func (s *Store) CreateToken(ctx context.Context, name string, role Role, expiresAt time.Time, by string) (secret string, t *Token, err error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	if strings.TrimSpace(name) == "" {
		return "", nil, fmt.Errorf("create token: %w", invalid("token name is empty"))
	}
	secret, hash, err := newToken()
	if err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	now := s.now()
	t = &Token{Name: name, Prefix: displayPrefix(secret), Role: role, CreatedAt: now.UTC().Truncate(time.Microsecond),
		CreatedBy: by, ExpiresAt: expiresAt}
	err = s.queryRow(ctx, s.w, `INSERT INTO api_tokens (name, prefix, hash, role, created_at, created_by, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, name, t.Prefix, hash, string(role), s.ts(now), by, s.ts(expiresAt)).Scan(&t.ID)
	if err != nil {
		return "", nil, s.wrapErr("create token "+name, err)
	}
	return secret, t, nil
}

// lastUsedGranularity bounds how often verification writes last_used_at:
// a busy CI token must not turn every API read into a database write.
const lastUsedGranularity = time.Minute

// VerifyToken returns the token record for a secret, or ErrUnauthorized
// when it is unknown, expired or revoked. Lookup is by the SHA-256 of the
// secret through a unique index; comparing hashes of 256-bit random
// secrets leaks nothing useful through timing.
func (s *Store) VerifyToken(ctx context.Context, secret string) (*Token, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 128 {
		return nil, fmt.Errorf("verify token: %w", ErrUnauthorized)
	}
	t, err := scanToken(s.queryRow(ctx, s.r, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = ?`, hashToken(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("verify token: %w", ErrUnauthorized)
	}
	if err != nil {
		return nil, s.wrapErr("verify token", err)
	}
	now := s.now()
	if !t.RevokedAt.IsZero() || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
		return nil, fmt.Errorf("verify token %s: %w", t.Prefix, ErrUnauthorized)
	}
	if now.Sub(t.LastUsedAt) >= lastUsedGranularity {
		if _, err := s.exec(ctx, s.w, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, s.ts(now), t.ID); err != nil {
			return nil, s.wrapErr("verify token", err)
		}
		t.LastUsedAt = now.UTC().Truncate(time.Microsecond)
	}
	return t, nil
}

// RevokeToken disables a token for good.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	res, err := s.exec(ctx, s.w, `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, s.ts(s.now()), id)
	if err != nil {
		return s.wrapErr(fmt.Sprintf("revoke token %d", id), err)
	}
	return affectedOne(res, fmt.Sprintf("revoke token %d", id))
}

const tokenCols = `id, name, prefix, role, created_at, created_by, expires_at, last_used_at, revoked_at`

func scanToken(sc scanner) (*Token, error) {
	var t Token
	var role string
	if err := sc.Scan(&t.ID, &t.Name, &t.Prefix, &role, tcol(&t.CreatedAt), &t.CreatedBy, tcol(&t.ExpiresAt),
		tcol(&t.LastUsedAt), tcol(&t.RevokedAt)); err != nil {
		return nil, err
	}
	t.Role = Role(role)
	return &t, nil
}

// ListTokens returns every token record (never a secret), newest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+tokenCols+` FROM api_tokens ORDER BY id DESC`)
	if err != nil {
		return nil, s.wrapErr("list tokens", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, s.wrapErr("list tokens", err)
		}
		out = append(out, *t)
	}
	return out, s.wrapErr("list tokens", rows.Err())
}

// User is a console login.
type User struct {
	ID          int64
	Username    string
	Role        Role
	Disabled    bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastLoginAt time.Time
}

// MinPasswordLength is the shortest password CreateUser and SetPassword
// accept.
const MinPasswordLength = 8

func checkNewPassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return invalid("password shorter than %d characters", MinPasswordLength)
	}
	if len(pw) > 1024 {
		return invalid("password longer than 1024 bytes")
	}
	return nil
}

// CreateUser adds a console user with an argon2id password hash.
func (s *Store) CreateUser(ctx context.Context, username, password string, role Role) (*User, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	if strings.TrimSpace(username) == "" || len(username) > 256 {
		return nil, fmt.Errorf("create user: %w", invalid("username must be 1-256 characters"))
	}
	if err := checkNewPassword(password); err != nil {
		return nil, fmt.Errorf("create user %s: %w", username, err)
	}
	hash, err := hashPassword(password)
	if err != nil {
		return nil, fmt.Errorf("create user %s: %w", username, err)
	}
	now := s.now()
	u := &User{Username: username, Role: role, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	u.UpdatedAt = u.CreatedAt
	err = s.queryRow(ctx, s.w, `INSERT INTO users (username, password_hash, role, disabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, username, hash, string(role), false, s.ts(now), s.ts(now)).Scan(&u.ID)
	if err != nil {
		return nil, s.wrapErr("create user "+username, err)
	}
	return u, nil
}

// dummyHash is verified against when the user does not exist, so that
// unknown and known usernames take the same time to refuse.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1kdW1teS1zYWx0$8Zr0ZTaqn2U1jVbd5mI6k4oG9kM2JH2b6Wj3ph6qfQ8"

// Authenticate checks a username and password and records the login.
// Every failure is ErrUnauthorized.
func (s *Store) Authenticate(ctx context.Context, username, password string) (*User, error) {
	var hash string
	u, err := scanUserWithHash(s.queryRow(ctx, s.r, `SELECT `+userCols+`, password_hash FROM users WHERE username = ?`, username), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		checkPassword(dummyHash, password)
		return nil, fmt.Errorf("authenticate %s: %w", username, ErrUnauthorized)
	}
	if err != nil {
		return nil, s.wrapErr("authenticate "+username, err)
	}
	if !checkPassword(hash, password) || u.Disabled {
		return nil, fmt.Errorf("authenticate %s: %w", username, ErrUnauthorized)
	}
	now := s.now()
	if _, err := s.exec(ctx, s.w, `UPDATE users SET last_login_at = ? WHERE id = ?`, s.ts(now), u.ID); err != nil {
		return nil, s.wrapErr("authenticate "+username, err)
	}
	u.LastLoginAt = now.UTC().Truncate(time.Microsecond)
	return u, nil
}

// SetPassword replaces a user's password.
func (s *Store) SetPassword(ctx context.Context, username, password string) error {
	if err := checkNewPassword(password); err != nil {
		return fmt.Errorf("set password of %s: %w", username, err)
	}
	hash, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", username, err)
	}
	res, err := s.exec(ctx, s.w, `UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ?`, hash, s.ts(s.now()), username)
	if err != nil {
		return s.wrapErr("set password of "+username, err)
	}
	return affectedOne(res, "set password of "+username)
}

// UpdateUser changes a user's role and disabled flag.
func (s *Store) UpdateUser(ctx context.Context, username string, role Role, disabled bool) error {
	if _, err := ParseRole(string(role)); err != nil {
		return fmt.Errorf("update user %s: %w", username, err)
	}
	res, err := s.exec(ctx, s.w, `UPDATE users SET role = ?, disabled = ?, updated_at = ? WHERE username = ?`,
		string(role), disabled, s.ts(s.now()), username)
	if err != nil {
		return s.wrapErr("update user "+username, err)
	}
	return affectedOne(res, "update user "+username)
}

const userCols = `id, username, role, disabled, created_at, updated_at, last_login_at`

func scanUserWithHash(sc scanner, hash *string) (*User, error) {
	var u User
	var role string
	dest := []any{&u.ID, &u.Username, &role, boolCol{&u.Disabled}, tcol(&u.CreatedAt), tcol(&u.UpdatedAt), tcol(&u.LastLoginAt)}
	if hash != nil {
		dest = append(dest, hash)
	}
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	u.Role = Role(role)
	return &u, nil
}

// GetUser returns a user by name.
func (s *Store) GetUser(ctx context.Context, username string) (*User, error) {
	u, err := scanUserWithHash(s.queryRow(ctx, s.r, `SELECT `+userCols+` FROM users WHERE username = ?`, username), nil)
	if err != nil {
		return nil, s.wrapErr("get user "+username, err)
	}
	return u, nil
}

// ListUsers returns every user by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, s.wrapErr("list users", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUserWithHash(rows, nil)
		if err != nil {
			return nil, s.wrapErr("list users", err)
		}
		out = append(out, *u)
	}
	return out, s.wrapErr("list users", rows.Err())
}

// CountUsers reports how many users exist (zero: bootstrap an admin).
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, s.wrapErr("count users", err)
}
