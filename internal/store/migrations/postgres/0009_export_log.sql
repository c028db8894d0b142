-- Issue 7: exports keep up with several exports configured. The outbox of
-- one row per record and export (written at ingest, deleted at delivery:
-- two writes per record and export) is replaced by ONE append-only log of
-- records, each written once in the transaction that accepts it, and a
-- durable cursor per export (exports.cursor_xid, cursor_seq): the position
-- in the log up to which that export's records are settled (delivered,
-- skipped by its filter, or copied out as dead letters).
--
-- Order. An identity value is taken when a row is inserted, not when its
-- transaction commits, so a reader reading by seq alone could pass a row
-- of a transaction that commits later and never see it. Every record
-- therefore carries its writing transaction's id (xid8, as bigint: 64 bits,
-- never wraps), and a reader reads only rows whose xid is below its
-- snapshot's xmin (pg_snapshot_xmin(pg_current_snapshot())): every
-- transaction with an id below xmin has ended, so no row with such an xid
-- can appear later; every transaction still running or yet to start has an
-- id >= xmin. Reading in (xid, seq) order above the cursor and below xmin
-- therefore never skips a row that commits afterwards. A long-running
-- WRITE transaction holds xmin back (delays delivery, loses nothing);
-- read-only transactions do not.
CREATE TABLE export_log (
    xid         BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    seq         BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1000),
    kind        TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    -- Filterable attributes (the delivery side evaluates each export's
    -- filter; only records some enabled export takes are written).
    source      TEXT NOT NULL DEFAULT '',
    severity    SMALLINT NOT NULL DEFAULT 0,
    namespace   TEXT NOT NULL DEFAULT '',
    -- 0: for every export whose filter takes it; else only for that export
    -- (a dead letter put back by the API, or a migrated outbox row).
    only_export BIGINT NOT NULL DEFAULT 0,
    payload     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (xid, seq)
);

-- Records a receiver refused for good, or that grew too old: copied out of
-- the log with the error, per export, until retried (put back in the log
-- for that export only) or purged.
CREATE TABLE export_dead (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    export_id   BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX export_dead_export ON export_dead (export_id, id);

ALTER TABLE exports ADD COLUMN cursor_xid  BIGINT NOT NULL DEFAULT 0;
ALTER TABLE exports ADD COLUMN cursor_seq  BIGINT NOT NULL DEFAULT 0;
-- Records after the cursor already settled (delivered or dead) while one
-- before them is being retried, as "xid.seq" list: not delivered again.
-- Bounded by a batch; entries at or before the cursor are dropped.
ALTER TABLE exports ADD COLUMN settled_ahead TEXT NOT NULL DEFAULT '';
-- When the export was disabled: a disabled export holds the log back for a
-- retention only (the dispatcher's DisabledRetention), so it cannot grow
-- without bound.
ALTER TABLE exports ADD COLUMN disabled_at TIMESTAMPTZ;
-- Records whose delivery failed (attempts), ever; and dead letters, ever.
ALTER TABLE exports ADD COLUMN failed      BIGINT NOT NULL DEFAULT 0;
ALTER TABLE exports ADD COLUMN dead_total  BIGINT NOT NULL DEFAULT 0;
UPDATE exports SET disabled_at = updated_at WHERE NOT enabled;

-- Queued outbox rows move to the log, each for its export only, in queue
-- order (every existing export's cursor is at the start of the log); dead
-- letters move to export_dead.
INSERT INTO export_log (kind, record_key, only_export, payload, created_at)
    SELECT kind, record_key, export_id, payload, created_at FROM export_outbox WHERE state = 'pending' ORDER BY id;
INSERT INTO export_dead (export_id, seq, kind, record_key, payload, attempts, last_error, created_at, updated_at)
    SELECT export_id, 0, kind, record_key, payload, attempts, last_error, created_at, updated_at
    FROM export_outbox WHERE state = 'dead' ORDER BY id;
DROP TABLE export_outbox;
