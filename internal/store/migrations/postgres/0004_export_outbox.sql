-- Continuous export (SIEM, chat, data lakes): the configured exports and a
-- durable outbox of records waiting for delivery to each.
--
-- An export's non-secret settings are JSON (config); its secrets (HMAC key,
-- HEC token, passwords, chat webhook URLs) are sealed by the application
-- (AES-256-GCM) in secrets and never returned by the API. The filter columns
-- are evaluated by the store when records are enqueued, in the transaction
-- that accepts them. origin 'config' marks exports defined in central's
-- configuration file (read-only through the API).
CREATE TABLE exports (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    origin          TEXT NOT NULL DEFAULT 'api' CHECK (origin IN ('api', 'config')),
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    min_severity    INTEGER NOT NULL DEFAULT 0,
    sources         TEXT NOT NULL DEFAULT '',
    namespaces      TEXT NOT NULL DEFAULT '',
    kinds           TEXT NOT NULL DEFAULT '',
    config          TEXT NOT NULL DEFAULT '{}',
    secrets         BYTEA,
    version         INTEGER NOT NULL DEFAULT 1,
    failures        INTEGER NOT NULL DEFAULT 0,
    retry_at        TIMESTAMPTZ,
    delivered       BIGINT NOT NULL DEFAULT 0,
    last_success_at TIMESTAMPTZ,
    last_error      TEXT NOT NULL DEFAULT '',
    last_error_at   TIMESTAMPTZ,
    lease_token     TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- One row per (export, record) waiting for delivery. Delivered rows are
-- deleted; rows that can never be delivered (too old, or refused for good
-- by the receiver) stay as 'dead' letters until retried or purged. Rows
-- are not rewritten when leased: a delivery worker leases the head of an
-- export's queue through exports.lease_token (one worker per export at a
-- time, across replicas), which also keeps the delivery order.
CREATE TABLE export_outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    export_id   BIGINT NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX export_outbox_key ON export_outbox (export_id, record_key);
CREATE INDEX export_outbox_live ON export_outbox (export_id, id) WHERE state = 'pending';
CREATE INDEX export_outbox_dead ON export_outbox (export_id, id) WHERE state = 'dead';
