-- Retention (tasker.remove_finished_tasks, sql/functions/retention.sql) removes finished tasks and
-- every row they own in small batches. Each delete it makes is keyed by an index; two were missing:
-- - workflow_step_edges loses its foreign key to tasks: its ON DELETE CASCADE looked edges up by
--   task_uuid, which no index covers (a scan of the whole table per task removed). Edges still go
--   with their steps (the foreign keys on from_step_uuid and to_step_uuid, both indexed), and
--   retention deletes them explicitly; an index on task_uuid instead would be paid by every
--   create_task for every edge;
-- - tasks_dlq gets an index on task_uuid (the one it had covers pending entries only): the DLQ is
--   small and written only by the staleness detector, so it costs nothing on the step path.
ALTER TABLE tasker.workflow_step_edges DROP CONSTRAINT IF EXISTS workflow_step_edges_task_uuid_fkey;
CREATE INDEX IF NOT EXISTS tasks_dlq_task_idx ON tasker.tasks_dlq (task_uuid);
