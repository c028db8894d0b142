-- Issue 7: exports keep up with several exports configured. The outbox of
-- one row per record and export (written at ingest, deleted at delivery:
-- two writes per record and export) is replaced by ONE append-only log of
-- records, each written once in the transaction that accepts it, and a
-- durable cursor per export (exports.cursor_seq): the position in the log
-- up to which that export's records are settled (delivered, skipped by its
-- filter, or copied out as dead letters).
--
-- Order: SQLite has one writer at a time, so seq order is commit order and
-- a reader reading above its cursor never passes a row that commits later.
-- AUTOINCREMENT keeps seq from being reused once purged rows are gone (a
-- reused seq below a cursor would never be delivered).
CREATE TABLE export_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    -- Filterable attributes (the delivery side evaluates each export's
    -- filter; only records some enabled export takes are written).
    source      TEXT NOT NULL DEFAULT '',
    severity    INTEGER NOT NULL DEFAULT 0,
    namespace   TEXT NOT NULL DEFAULT '',
    -- 0: for every export whose filter takes it; else only for that export
    -- (a dead letter put back by the API, or a migrated outbox row).
    only_export INTEGER NOT NULL DEFAULT 0,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Records a receiver refused for good, or that grew too old: copied out of
-- the log with the error, per export, until retried (put back in the log
-- for that export only) or purged.
CREATE TABLE export_dead (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    export_id   INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX export_dead_export ON export_dead (export_id, id);

ALTER TABLE exports ADD COLUMN cursor_xid  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE exports ADD COLUMN cursor_seq  INTEGER NOT NULL DEFAULT 0;
-- Records after the cursor already settled (delivered or dead) while one
-- before them is being retried, as "xid.seq" list: not delivered again.
-- Bounded by a batch; entries at or before the cursor are dropped.
ALTER TABLE exports ADD COLUMN settled_ahead TEXT NOT NULL DEFAULT '';
-- When the export was disabled: a disabled export holds the log back for a
-- retention only (the dispatcher's DisabledRetention), so it cannot grow
-- without bound.
ALTER TABLE exports ADD COLUMN disabled_at INTEGER;
-- Records whose delivery failed (attempts), ever; and dead letters, ever.
ALTER TABLE exports ADD COLUMN failed      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE exports ADD COLUMN dead_total  INTEGER NOT NULL DEFAULT 0;
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
