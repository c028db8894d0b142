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
ALTER TABLE response_actions DROP CONSTRAINT response_actions_action_check;
ALTER TABLE response_actions ADD CONSTRAINT response_actions_action_check
    CHECK (action IN ('delete_pod', 'isolate_pod', 'scale_to_zero', 'cordon_node', 'unisolate_pod', 'uncordon_node',
                      'restore_scale'));
ALTER TABLE response_actions ADD COLUMN scaled TEXT NOT NULL DEFAULT '';
ALTER TABLE response_actions ADD COLUMN replicas INTEGER;
-- Restore checks look for the done scale_to_zero of the same workload.
CREATE INDEX response_actions_workload ON response_actions (cluster, namespace, workload);
