package store

import (
	"context"
	"testing"
	"time"
)

// TestRevokedSessions: a revoked session is seen revoked (by any Store on
// the database: one per replica), revoking twice is fine, a session
// already expired is not stored, and expired revocations are deleted.
func TestRevokedSessions(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		now := time.Now()
		if err := s.RevokeSession(ctx, "a", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(ctx, "a", now.Add(time.Hour)); err != nil {
			t.Fatalf("again: %v", err)
		}
		if err := s.RevokeSession(ctx, "past", now.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(ctx, "soon", now.Add(20*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{"a": true, "past": false, "soon": true, "never": false} {
			if got, err := s.SessionRevoked(ctx, id); err != nil || got != want {
				t.Errorf("SessionRevoked(%s) = %v, %v; want %v", id, got, err, want)
			}
		}
		time.Sleep(30 * time.Millisecond)
		if err := s.RevokeSession(ctx, "b", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM console_revoked_sessions`).Scan(&n); err != nil || n != 2 {
			t.Errorf("%d rows (%v), want 2: the expired one is deleted", n, err)
		}
	})
}
