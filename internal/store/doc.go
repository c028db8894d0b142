// Package store is central's persistence: registries, images (by manifest
// digest, with their tags and where they were seen), SBOMs, findings and their
// history, scan records, clusters, alerts (idempotent batch ingest grouped
// by fingerprint, suppressions, a per-minute timeline, response actions:
// alerts.go, suppressions.go, actions.go), policies, API tokens, users, the
// audit log of user actions, and the durable scan job queue.
//
// One concrete type, *Store, serves two backends: SQLite (modernc.org/sqlite,
// pure Go, the embedded default) and PostgreSQL (pgx through database/sql, for
// several central replicas behind a load balancer). The queries are written
// once with "?" placeholders in the SQL both dialects share (ON CONFLICT,
// RETURNING, partial indexes, window-free LIMIT/OFFSET); the differences —
// placeholders, time and JSON column types, row locks, case-insensitive LIKE,
// unique-violation codes — are small hooks on a dialect value. The schema is
// versioned by embedded migrations, one directory per dialect, applied on
// Open in one transaction (under an advisory lock on PostgreSQL, BEGIN
// IMMEDIATE on SQLite) so that replicas starting together apply each once.
//
// Secrets are never stored in the clear: registry credentials are sealed
// with AES-256-GCM under a key the caller passes in (Options.SecretKey, kept
// outside the database); API tokens are stored as SHA-256 hashes; user
// passwords as argon2id hashes.
//
// The job queue is a table, not a separate service, so a job is enqueued in
// the same transaction as the state that caused it and survives a crash of
// any process: claims carry a lease and a token, and completion is fenced by
// that token, so a job whose lease expired and was claimed again cannot be
// completed twice.
//
// Continuous export uses the same idea (outbox.go): every accepted record
// is appended once, in the accepting transaction, to an append-only export
// log, and each export keeps a durable cursor into it, moved only under
// that export's fenced lease. On PostgreSQL the log is read in (writing
// transaction id, sequence) order and only below the reader's snapshot
// xmin, so no record of a transaction that commits later can be passed
// over (migration 0009 has the argument).
//
// This package must not import net/http or internal/cli (TestImports
// checks): it is used by the API layer, not the other way round. It imports
// internal/scan, internal/inventory, internal/vulndb and internal/alerts for their types. Input size limits belong to the API
// layer; the store validates enumerations and identifiers and returns
// ErrInvalid for anything it cannot represent.
package store
