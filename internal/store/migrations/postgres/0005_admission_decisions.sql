-- Issue 4: admission decisions sent by the webhook (who asked for what,
-- which policies and rules judged it, the verdict). id is the sender's, so
-- a replayed batch stores nothing twice. record holds the full decision
-- (violations with container, finding and fix) as JSON.
CREATE TABLE admission_decisions (
    id             TEXT NOT NULL PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL,
    cluster        TEXT NOT NULL DEFAULT '',
    operation      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    sub_resource   TEXT NOT NULL DEFAULT '',
    namespace      TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL DEFAULT '',
    username       TEXT NOT NULL DEFAULT '',
    verdict        TEXT NOT NULL,
    allowed        BOOLEAN NOT NULL,
    violations     INTEGER NOT NULL DEFAULT 0,
    policy_version TEXT NOT NULL DEFAULT '',
    record         TEXT NOT NULL
);
CREATE INDEX admission_decisions_at ON admission_decisions (at);
CREATE INDEX admission_decisions_verdict ON admission_decisions (verdict, at);
CREATE INDEX admission_decisions_ns ON admission_decisions (cluster, namespace, at);
