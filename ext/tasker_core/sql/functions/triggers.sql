-- Triggers and the functions they run.

-- Announces that a task reached a terminal state, on a channel of its own, for waiters.
CREATE OR REPLACE FUNCTION tasker.notify_task_finished(p_task uuid, p_status text) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_notify('tasker_task_' || replace(p_task::text, '-', ''), p_status)
$$;

-- A trigger rather than a call in each path: every way a task ends (finalization, staleness,
-- cancellation, operator actions) wakes its waiters.
CREATE OR REPLACE FUNCTION tasker.tasks_finished_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IN ('complete', 'error', 'cancelled', 'resolved_manually') AND NEW.status IS DISTINCT FROM OLD.status THEN
    PERFORM tasker.notify_task_finished(NEW.task_uuid, NEW.status);
  END IF;
  RETURN NULL;
END $$;

-- The WHEN clause keeps the trigger from being queued at all for the many updates that do not end
-- the task (a step's completion sets status to what it was).
CREATE OR REPLACE TRIGGER tasks_finished AFTER UPDATE OF status ON tasker.tasks
  FOR EACH ROW
  WHEN (NEW.status IN ('complete', 'error', 'cancelled', 'resolved_manually') AND NEW.status IS DISTINCT FROM OLD.status)
  EXECUTE FUNCTION tasker.tasks_finished_trigger();
