-- Issue 7 gaps: suppressions applied to alerts stored before them, and the
-- undo response actions.

-- Who applied a suppression to an alert stored before it, and when ("" /
-- NULL: the suppression matched at ingest, or none did).
ALTER TABLE alerts ADD COLUMN suppressed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN suppressed_at INTEGER;
-- How many alerts stored before the suppression it was applied to.
ALTER TABLE suppressions ADD COLUMN applied BIGINT NOT NULL DEFAULT 0;

-- unisolate_pod and uncordon_node: SQLite cannot alter a CHECK constraint,
-- so the table is rebuilt (nothing references it).
CREATE TABLE response_actions_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id     INTEGER NOT NULL REFERENCES alerts (id),
    action       TEXT NOT NULL CHECK (action IN ('delete_pod', 'isolate_pod', 'scale_to_zero', 'cordon_node',
                                                 'unisolate_pod', 'uncordon_node')),
    cluster      TEXT NOT NULL,
    namespace    TEXT NOT NULL DEFAULT '',
    pod          TEXT NOT NULL DEFAULT '',
    workload     TEXT NOT NULL DEFAULT '',
    node         TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    completed_by TEXT NOT NULL DEFAULT '',
    completed_at INTEGER
);
INSERT INTO response_actions_new (id, alert_id, action, cluster, namespace, pod, workload, node, reason, state,
    requested_by, requested_at, message, completed_by, completed_at)
SELECT id, alert_id, action, cluster, namespace, pod, workload, node, reason, state,
    requested_by, requested_at, message, completed_by, completed_at FROM response_actions;
DROP TABLE response_actions;
ALTER TABLE response_actions_new RENAME TO response_actions;
CREATE INDEX response_actions_cluster_state ON response_actions (cluster, state, id);
CREATE INDEX response_actions_alert ON response_actions (alert_id);
-- Undo checks look for the done action on the same target.
CREATE INDEX response_actions_target ON response_actions (cluster, namespace, pod, node);
