-- Issue 7 gaps: suppressions applied to alerts stored before them, and the
-- undo response actions.

-- Who applied a suppression to an alert stored before it, and when ("" /
-- NULL: the suppression matched at ingest, or none did).
ALTER TABLE alerts ADD COLUMN suppressed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN suppressed_at TIMESTAMPTZ;
-- How many alerts stored before the suppression it was applied to.
ALTER TABLE suppressions ADD COLUMN applied BIGINT NOT NULL DEFAULT 0;

ALTER TABLE response_actions DROP CONSTRAINT response_actions_action_check;
ALTER TABLE response_actions ADD CONSTRAINT response_actions_action_check
    CHECK (action IN ('delete_pod', 'isolate_pod', 'scale_to_zero', 'cordon_node', 'unisolate_pod', 'uncordon_node'));
-- Undo checks look for the done action on the same target.
CREATE INDEX response_actions_target ON response_actions (cluster, namespace, pod, node);
