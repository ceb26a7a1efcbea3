-- Rows the step path writes for every task and step carry no work of their own, so they do not pay
-- for checks no reader needs:
-- - the history tables lose their foreign keys (a row is only ever written by a function holding
--   its task's or step's row; each foreign key check was a trigger and a lookup per row);
-- - the GIN index on tasks.tags goes: no query filters on tags, and every task insert and status
--   change paid for it.
ALTER TABLE tasker.task_transitions DROP CONSTRAINT IF EXISTS task_transitions_task_uuid_fkey;
ALTER TABLE tasker.workflow_step_transition_log
  DROP CONSTRAINT IF EXISTS workflow_step_transitions_workflow_step_uuid_fkey;
DROP INDEX IF EXISTS tasker.tasks_tags_idx;
