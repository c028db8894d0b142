-- Console sessions ended by logout, shared by every replica: a session
-- cookie copied before logout no longer works on any replica (it did on
-- the others until it expired when the list was per process). Rows are
-- kept until the session would have expired anyway.
CREATE TABLE console_revoked_sessions (
    id         TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_revoked_sessions_expires ON console_revoked_sessions (expires_at);
