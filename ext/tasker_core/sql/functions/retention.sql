-- Retention: removes up to p_limit finished tasks older than their age, with everything they own
-- (steps, edges, step attempts, step and task transitions, resolved DLQ entries), in one short
-- transaction, and up to 10 * p_limit outbox events older than the larger age. A task's age is
-- counted from its last change (updated_at; created_at is never later). p_completed_days applies to
-- complete, cancelled and resolved_manually tasks, p_error_days to error tasks; NULL keeps them. A
-- task with a pending DLQ entry is kept until the entry is resolved. Tasks locked by anyone else
-- (an operator acting on one, another worker's sweep) are skipped (SKIP LOCKED). The history
-- tables have no foreign keys: each is deleted from explicitly, by an index. Returns the number of
-- rows removed per table; {"tasks": 0, ...} when nothing was due.
CREATE OR REPLACE FUNCTION tasker.remove_finished_tasks(p_completed_days integer, p_error_days integer,
                                                        p_limit integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_done_before timestamp := v_now - make_interval(days => coalesce(p_completed_days, 0));
  v_error_before timestamp := v_now - make_interval(days => coalesce(p_error_days, 0));
  v_outbox_days integer := greatest(p_completed_days, p_error_days);
  v_tasks uuid[];
  v_steps uuid[];
  v_counts jsonb := '{}'::jsonb;
  n integer;
BEGIN
  -- Each class by its own scan of tasks_status_created_idx (status, created_at): finished tasks
  -- are never updated again, so the age filter on updated_at rarely rejects a row it read.
  SELECT coalesce(array_agg(task_uuid), '{}') INTO v_tasks FROM (
    SELECT t.task_uuid FROM tasker.tasks t
    WHERE p_completed_days IS NOT NULL AND t.status IN ('complete', 'cancelled', 'resolved_manually')
      AND t.created_at < v_done_before AND t.updated_at < v_done_before
    LIMIT p_limit FOR UPDATE SKIP LOCKED) done;
  SELECT v_tasks || coalesce(array_agg(task_uuid), '{}') INTO v_tasks FROM (
    SELECT t.task_uuid FROM tasker.tasks t
    WHERE p_error_days IS NOT NULL AND t.status = 'error'
      AND t.created_at < v_error_before AND t.updated_at < v_error_before
      AND NOT EXISTS (SELECT 1 FROM tasker.tasks_dlq d
                      WHERE d.task_uuid = t.task_uuid AND d.resolution_status = 'pending')
    LIMIT greatest(p_limit - cardinality(v_tasks), 0) FOR UPDATE SKIP LOCKED) failed;

  IF cardinality(v_tasks) > 0 THEN
    SELECT coalesce(array_agg(workflow_step_uuid), '{}') INTO v_steps
    FROM tasker.workflow_steps WHERE task_uuid = ANY (v_tasks);
    DELETE FROM tasker.workflow_step_attempts WHERE workflow_step_uuid = ANY (v_steps);
    GET DIAGNOSTICS n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('workflow_step_attempts', n);
    DELETE FROM tasker.workflow_step_transition_log WHERE task_uuid = ANY (v_tasks);
    GET DIAGNOSTICS n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('workflow_step_transition_log', n);
    DELETE FROM tasker.task_transitions WHERE task_uuid = ANY (v_tasks);
    GET DIAGNOSTICS n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('task_transitions', n);
    -- Both ends of an edge are steps of one task.
    DELETE FROM tasker.workflow_step_edges WHERE from_step_uuid = ANY (v_steps);
    GET DIAGNOSTICS n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('workflow_step_edges', n);
    DELETE FROM tasker.workflow_steps WHERE task_uuid = ANY (v_tasks);
    GET DIAGNOSTICS n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('workflow_steps', n);
    DELETE FROM tasker.tasks_dlq WHERE task_uuid = ANY (v_tasks);
    GET DIAGNOSTICS n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('tasks_dlq', n);
    DELETE FROM tasker.tasks WHERE task_uuid = ANY (v_tasks);
  END IF;
  v_counts := v_counts || jsonb_build_object('tasks', cardinality(v_tasks));

  -- The outbox is a delivery queue, not history: events older than the larger age go, whatever
  -- their task (an event outlives no consumer by that long). Only the oldest rows, in event_id
  -- order, are read, so a sweep with nothing due reads a handful of rows.
  n := 0;
  IF v_outbox_days IS NOT NULL THEN
    DELETE FROM tasker.events_outbox WHERE event_id IN (
      SELECT o.event_id FROM (SELECT event_id, created_at FROM tasker.events_outbox
                              ORDER BY event_id LIMIT p_limit * 10) o
      WHERE o.created_at < v_now - make_interval(days => v_outbox_days));
    GET DIAGNOSTICS n = ROW_COUNT;
  END IF;
  RETURN v_counts || jsonb_build_object('events_outbox', n);
END $$;
