-- Issue 7 gaps: restore_scale, the undo of scale_to_zero. The responder
-- reports what it scaled and the replica count before; a restore_scale
-- action carries both (copied from the scale_to_zero it undoes), so the
-- count to restore is in the action record, not only in a message.
--
-- scaled:   "Deployment/web" — the object the responder scaled (or is to
--           scale back); '' when unknown.
-- replicas: for a done scale_to_zero, the count before it (NULL when the
--           responder did not report one); for restore_scale, the count to
--           restore.
--
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt again
-- (nothing references it).
CREATE TABLE response_actions_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id     INTEGER NOT NULL REFERENCES alerts (id),
    action       TEXT NOT NULL CHECK (action IN ('delete_pod', 'isolate_pod', 'scale_to_zero', 'cordon_node',
                                                 'unisolate_pod', 'uncordon_node', 'restore_scale')),
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
    completed_at INTEGER,
    scaled       TEXT NOT NULL DEFAULT '',
    replicas     INTEGER
);
INSERT INTO response_actions_new (id, alert_id, action, cluster, namespace, pod, workload, node, reason, state,
    requested_by, requested_at, message, completed_by, completed_at)
SELECT id, alert_id, action, cluster, namespace, pod, workload, node, reason, state,
    requested_by, requested_at, message, completed_by, completed_at FROM response_actions;
DROP TABLE response_actions;
ALTER TABLE response_actions_new RENAME TO response_actions;
CREATE INDEX response_actions_cluster_state ON response_actions (cluster, state, id);
CREATE INDEX response_actions_alert ON response_actions (alert_id);
CREATE INDEX response_actions_target ON response_actions (cluster, namespace, pod, node);
-- Restore checks look for the done scale_to_zero of the same workload.
CREATE INDEX response_actions_workload ON response_actions (cluster, namespace, workload);
