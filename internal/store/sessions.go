package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Console sessions ended by logout (migration 0018). Sessions are signed
// cookies checked by every replica without the database; a logout is the
// one event that must reach all of them, so it is written here and each
// replica asks (SessionRevoked) for sessions it has not seen revoked.

// RevokeSession records that the console session id ended; it is
// remembered until expires, when the cookie would have stopped working
// anyway. Revocations already past their expiry are deleted on the way.
func (s *Store) RevokeSession(ctx context.Context, id string, expires time.Time) error {
	now := s.now()
	if _, err := s.exec(ctx, s.w, `DELETE FROM console_revoked_sessions WHERE expires_at < ?`, s.ts(now)); err != nil {
		return s.wrapErr("revoke session", err)
	}
	if !expires.After(now) {
		return nil
	}
	_, err := s.exec(ctx, s.w, `INSERT INTO console_revoked_sessions (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`,
		id, s.ts(expires))
	return s.wrapErr("revoke session", err)
}

// SessionRevoked reports whether the console session id was revoked.
func (s *Store) SessionRevoked(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.queryRow(ctx, s.r, `SELECT 1 FROM console_revoked_sessions WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.wrapErr("session revoked", err)
	}
	return true, nil
}
