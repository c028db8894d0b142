-- Issue 7: the alert model every source shares, idempotent ingest,
-- suppressions, an occurrence timeline and response actions.

ALTER TABLE alerts ADD COLUMN rule_version    TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN mitre_tactic    TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN mitre_technique TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN pod             TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN container       TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN container_id    TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN image           TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN node            TEXT NOT NULL DEFAULT '';
-- The sender's id of the latest occurrence grouped into this row.
ALTER TABLE alerts ADD COLUMN source_event_id TEXT NOT NULL DEFAULT '';
-- 0: not suppressed; else the suppression that matched at ingest. Suppressed
-- occurrences are grouped apart from open alerts and hidden by default.
ALTER TABLE alerts ADD COLUMN suppression_id  BIGINT NOT NULL DEFAULT 0;

DROP INDEX alerts_open_fingerprint;
-- Fingerprints and sender ids are opaque keys: byte order ("C") makes their
-- index comparisons memcmp instead of the database locale's strcoll.
ALTER TABLE alerts ALTER COLUMN fingerprint TYPE TEXT COLLATE "C";
-- One open alert per fingerprint (and per suppression): repeats increment its count.
CREATE UNIQUE INDEX alerts_open_group ON alerts (fingerprint, suppression_id) WHERE status IN ('new', 'acknowledged');
-- Related alerts on the same workload.
CREATE INDEX alerts_workload ON alerts (cluster, namespace, workload);

-- Sender ids already accepted: a replayed batch stores nothing twice.
CREATE TABLE alert_ingests (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL
);

-- Occurrences per minute, source and severity (the timeline chart counts
-- every occurrence, also those grouped into an existing alert).
CREATE TABLE alert_timeline (
    bucket     TIMESTAMPTZ NOT NULL,
    source     TEXT NOT NULL,
    severity   SMALLINT NOT NULL,
    count      BIGINT NOT NULL DEFAULT 0,
    suppressed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, source, severity)
);

CREATE TABLE suppressions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule       TEXT NOT NULL DEFAULT '',
    cluster    TEXT NOT NULL DEFAULT '',
    namespace  TEXT NOT NULL DEFAULT '',
    workload   TEXT NOT NULL DEFAULT '',
    image      TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    hits       BIGINT NOT NULL DEFAULT 0,
    last_hit   TIMESTAMPTZ
);

CREATE TABLE response_actions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     BIGINT NOT NULL REFERENCES alerts (id),
    action       TEXT NOT NULL CHECK (action IN ('delete_pod', 'isolate_pod', 'scale_to_zero', 'cordon_node')),
    cluster      TEXT NOT NULL,
    namespace    TEXT NOT NULL DEFAULT '',
    pod          TEXT NOT NULL DEFAULT '',
    workload     TEXT NOT NULL DEFAULT '',
    node         TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    requested_by TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    completed_by TEXT NOT NULL DEFAULT '',
    completed_at TIMESTAMPTZ
);
CREATE INDEX response_actions_cluster_state ON response_actions (cluster, state, id);
CREATE INDEX response_actions_alert ON response_actions (alert_id);
