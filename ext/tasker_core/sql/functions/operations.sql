-- Operator actions: cancel a task, act on a step, the staleness detector, the DLQ.

-- Cancels a task that has not finished, in one transaction: the task row is locked first, then its
-- pending, enqueued and waiting_for_retry steps become cancelled (processed, with a transition
-- each) and the task goes to cancelled (event 'cancel'). Steps in progress are left to finish: their
-- result is recorded on the step and in the audit, and the task stays cancelled (apply_step_result
-- moves nothing else once the task has ended). A finished task raises TK409 naming its state.
CREATE OR REPLACE FUNCTION tasker.cancel_task(p_task uuid) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  t tasker.tasks;
  v_cancelled integer;
  v_active integer;
  v_running integer;
BEGIN
  SELECT * INTO t FROM tasker.tasks WHERE task_uuid = p_task FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'task not found: %', p_task USING ERRCODE = 'TK404';
  END IF;
  IF t.status IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
    RAISE EXCEPTION 'task % is %: only a task that has not finished can be cancelled', p_task, t.status
      USING ERRCODE = 'TK409';
  END IF;

  WITH victims AS (
    -- Locked in one order; a step a worker claims meanwhile is re-checked and left alone.
    SELECT s.workflow_step_uuid, s.status FROM tasker.workflow_steps s
    WHERE s.task_uuid = p_task AND s.status IN ('pending', 'enqueued', 'waiting_for_retry')
    ORDER BY s.workflow_step_uuid
    FOR UPDATE
  ), cancelled AS (
    UPDATE tasker.workflow_steps s
    SET status = 'cancelled', processed = true, processed_at = v_now, in_process = false,
        next_retry_at = NULL, transition_seq = s.transition_seq + 1, updated_at = v_now
    FROM victims v
    WHERE s.workflow_step_uuid = v.workflow_step_uuid
    RETURNING s.workflow_step_uuid, v.status AS from_state, s.attempts, s.transition_seq
  ), logged AS (
    INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
      event, attempt, sort_key, metadata, created_at)
    SELECT workflow_step_uuid, p_task, from_state, 'cancelled', 'cancel', attempts, transition_seq,
           '{"reason": "task cancelled"}'::jsonb, v_now
    FROM cancelled
  )
  SELECT count(*)::integer, count(*) FILTER (WHERE from_state <> 'pending')::integer
  INTO v_cancelled, v_active FROM cancelled;

  SELECT count(*)::integer INTO v_running FROM tasker.workflow_steps
  WHERE task_uuid = p_task AND status = 'in_progress';

  INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
  VALUES (p_task, t.status, 'cancelled', 'cancel', t.transition_seq + 1,
          jsonb_build_object('cancelled_steps', v_cancelled, 'running_steps', v_running), v_now);
  UPDATE tasker.tasks
  SET status = 'cancelled', unfinished_steps = unfinished_steps - v_cancelled,
      active_steps = active_steps - v_active, transition_seq = t.transition_seq + 1, updated_at = v_now
  WHERE task_uuid = p_task;

  RETURN jsonb_build_object('cancelled', true, 'task_uuid', p_task, 'status', 'cancelled',
                            'previous_status', t.status, 'cancelled_steps', v_cancelled,
                            'running_steps', v_running, 'cancelled_at', v_now);
END $$;

-- An operator's action on a step, after which the task re-evaluates (one transaction):
--   reset_for_retry    error -> pending (attempts back to 0), enqueued when its parents are done
--   resolve_manually   any unfinished state -> resolved_manually (satisfies its dependents)
--   complete_manually  any unfinished state -> complete with the operator's result
-- A task in error is reopened first (error -> pending -> ... -> steps_in_process). p_payload:
-- {reason, performed_by, result, metadata}. Raises TK404 / TK409 / TK422.
CREATE OR REPLACE FUNCTION tasker.operate_step(p_task uuid, p_step uuid, p_action text, p_payload jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_meta jsonb := jsonb_strip_nulls(jsonb_build_object('reason', p_payload->>'reason',
                                                       'performed_by', p_payload->>'performed_by'));
  s tasker.workflow_steps;
  t tasker.tasks;
  v_from text;
  v_to text;
  v_was_error boolean;
  v_was_active boolean;
  v_enqueued integer := 0;
  v_status text;
BEGIN
  IF p_action NOT IN ('reset_for_retry', 'resolve_manually', 'complete_manually') THEN
    RAISE EXCEPTION 'action_type must be reset_for_retry, resolve_manually or complete_manually (got %)',
      p_action USING ERRCODE = 'TK422';
  END IF;
  SELECT * INTO s FROM tasker.workflow_steps
  WHERE workflow_step_uuid = p_step AND task_uuid = p_task FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'step not found: % in task %', p_step, p_task USING ERRCODE = 'TK404';
  END IF;
  SELECT * INTO t FROM tasker.tasks WHERE task_uuid = p_task FOR UPDATE;
  IF t.status IN ('complete', 'cancelled', 'resolved_manually') THEN
    RAISE EXCEPTION 'task % is %: its steps can no longer change', p_task, t.status USING ERRCODE = 'TK409';
  END IF;
  v_from := s.status;
  IF p_action = 'reset_for_retry' AND v_from <> 'error' THEN
    RAISE EXCEPTION 'step % (%) is %: only a step in error can be reset for retry', s.name, p_step, v_from
      USING ERRCODE = 'TK409';
  END IF;
  IF v_from IN ('complete', 'cancelled', 'resolved_manually') THEN
    RAISE EXCEPTION 'step % (%) is already %', s.name, p_step, v_from USING ERRCODE = 'TK409';
  END IF;
  IF p_action = 'complete_manually' AND NOT (p_payload ? 'result') THEN
    RAISE EXCEPTION 'complete_manually needs completion_data with a result' USING ERRCODE = 'TK422';
  END IF;

  -- Reopen a finished-in-error task.
  IF t.status IN ('error', 'blocked_by_failures') THEN
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
    VALUES (p_task, t.status, 'pending', 'reset', t.transition_seq + 1, v_meta || jsonb_build_object('step', s.name), v_now),
           (p_task, 'pending', 'initializing', 'start', t.transition_seq + 2, '{}', v_now),
           (p_task, 'initializing', 'enqueuing_steps', 'ready_steps_found', t.transition_seq + 3, '{}', v_now),
           (p_task, 'enqueuing_steps', 'steps_in_process', 'steps_enqueued', t.transition_seq + 4, '{}', v_now);
    UPDATE tasker.tasks SET status = 'steps_in_process', transition_seq = t.transition_seq + 4, updated_at = v_now
    WHERE task_uuid = p_task;
  END IF;

  v_was_error := v_from = 'error';
  v_was_active := v_from IN ('enqueued', 'in_progress', 'waiting_for_retry', 'enqueued_for_orchestration',
                             'enqueued_as_error_for_orchestration');

  IF p_action = 'reset_for_retry' THEN
    v_to := CASE WHEN s.pending_parents = 0 THEN 'enqueued' ELSE 'pending' END;
    UPDATE tasker.workflow_steps
    SET status = v_to, attempts = 0, in_process = false, processed = false, next_retry_at = NULL,
        backoff_request_seconds = NULL, ready_at = CASE WHEN v_to = 'enqueued' THEN v_now END,
        transition_seq = transition_seq + CASE WHEN v_to = 'enqueued' THEN 2 ELSE 1 END, updated_at = v_now
    WHERE workflow_step_uuid = p_step RETURNING * INTO s;
    INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
      event, sort_key, metadata, created_at)
    SELECT p_step, p_task, 'error', 'pending', 'reset_for_retry',
           CASE WHEN v_to = 'enqueued' THEN s.transition_seq - 1 ELSE s.transition_seq END, v_meta, v_now
    UNION ALL
    SELECT p_step, p_task, 'pending', 'enqueued', 'enqueue', s.transition_seq, '{}', v_now WHERE v_to = 'enqueued';
    UPDATE tasker.tasks
    SET error_steps = error_steps - 1, active_steps = active_steps + (v_to = 'enqueued')::integer, updated_at = v_now
    WHERE task_uuid = p_task;
    IF v_to = 'enqueued' THEN
      PERFORM pg_notify('tasker_steps_' || s.namespace_name, '');
    END IF;
  ELSE
    v_to := CASE WHEN p_action = 'resolve_manually' THEN 'resolved_manually' ELSE 'complete' END;
    IF v_from = 'in_progress' AND s.claim_seq IS NOT NULL THEN
      -- The running claim's start is kept on the step until its attempt ends; this ends it.
      INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
        event, attempt, worker_uuid, sort_key, created_at)
      VALUES (p_step, p_task, 'enqueued', 'in_progress', 'start', s.attempts, s.claim_owner, s.claim_seq,
              s.last_attempted_at);
    END IF;
    UPDATE tasker.workflow_steps
    SET status = v_to, in_process = false, processed = true, processed_at = v_now,
        claim_owner = NULL, claim_token = NULL, claim_expires_at = NULL, claim_seq = NULL, next_retry_at = NULL,
        results = CASE WHEN p_action = 'complete_manually'
                       THEN jsonb_build_object('step_uuid', p_step, 'success', true, 'status', 'completed',
                              'result', p_payload->'result',
                              'metadata', coalesce(p_payload->'metadata', '{}'::jsonb)
                                          || jsonb_build_object('completed_manually', true) || v_meta)
                       ELSE results END,
        transition_seq = transition_seq + 1, updated_at = v_now
    WHERE workflow_step_uuid = p_step RETURNING * INTO s;
    INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
      event, sort_key, metadata, created_at)
    VALUES (p_step, p_task, v_from, v_to, p_action, s.transition_seq, v_meta, v_now);
    v_enqueued := tasker.release_children(p_step, v_now);
    UPDATE tasker.tasks
    SET unfinished_steps = unfinished_steps - 1,
        error_steps = error_steps - v_was_error::integer,
        active_steps = active_steps - v_was_active::integer + v_enqueued,
        updated_at = v_now
    WHERE task_uuid = p_task;
    IF v_enqueued > 0 THEN
      PERFORM pg_notify('tasker_steps_' || s.namespace_name, '');
    END IF;
  END IF;

  v_status := tasker.finalize_task(p_task, v_now);
  RETURN jsonb_build_object('task_uuid', p_task, 'step_uuid', p_step, 'action_type', p_action,
                            'step_status', s.status, 'task_status', v_status, 'enqueued', v_enqueued);
END $$;

-- The staleness detector (SPEC 9.1): tasks in steps_in_process that made no progress for longer
-- than their threshold (the template's lifecycle.max_steps_in_process_minutes, else
-- p_threshold_minutes) while no step is being worked on (no live claim, no retry pending), or that
-- outlived p_max_lifetime_hours. Each gets a DLQ entry with a snapshot and goes to error; with
-- p_dry_run nothing changes. Several detectors may run at once (SKIP LOCKED). Returns the actions.
CREATE OR REPLACE FUNCTION tasker.detect_stale_tasks(p_limit integer, p_threshold_minutes integer,
                                                     p_max_lifetime_hours integer, p_dry_run boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  r record;
  v_actions jsonb := '[]'::jsonb;
  v_snapshot jsonb;
BEGIN
  FOR r IN
    SELECT t.*, nt.name AS task_name, lim.threshold,
           extract(epoch FROM v_now - t.updated_at) / 60 AS idle_minutes
    FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid)
    -- The threshold of the template; one stored before registration validated it that is no
    -- whole number of minutes is ignored rather than cast (which would stop the detector).
    CROSS JOIN LATERAL (
      SELECT coalesce(CASE WHEN (nt.configuration->'lifecycle'->>'max_steps_in_process_minutes') ~ '^[0-9]{1,6}$'
                           THEN (nt.configuration->'lifecycle'->>'max_steps_in_process_minutes')::integer END,
                      p_threshold_minutes) AS threshold) lim
    WHERE t.status = 'steps_in_process'
      AND (t.updated_at < v_now - make_interval(mins => lim.threshold)
           OR t.created_at < v_now - make_interval(hours => p_max_lifetime_hours))
      AND NOT EXISTS (SELECT 1 FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid
                        AND ((s.status = 'in_progress' AND s.claim_expires_at > v_now)
                             OR (s.status = 'waiting_for_retry' AND s.next_retry_at > v_now)))
      AND NOT EXISTS (SELECT 1 FROM tasker.tasks_dlq d WHERE d.task_uuid = t.task_uuid AND d.resolution_status = 'pending')
    ORDER BY t.updated_at
    LIMIT p_limit
    FOR UPDATE OF t SKIP LOCKED
  LOOP
    v_snapshot := jsonb_build_object(
      'task_uuid', r.task_uuid, 'namespace', r.namespace_name, 'task_name', r.task_name,
      'current_state', r.status, 'time_in_state_minutes', round(r.idle_minutes, 2),
      'threshold_minutes', r.threshold, 'snapshot_timestamp', v_now,
      'task_details', jsonb_build_object('correlation_id', r.correlation_id, 'priority', r.priority,
                                         'requested_at', r.requested_at, 'created_at', r.created_at),
      'steps', (SELECT jsonb_object_agg(s.name, s.status) FROM tasker.workflow_steps s WHERE s.task_uuid = r.task_uuid));
    IF NOT p_dry_run THEN
      INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot, metadata)
      VALUES (r.task_uuid, r.status, 'staleness_timeout', v_snapshot,
              jsonb_build_object('detection_method', 'automatic_staleness',
                                 'time_in_state_minutes', round(r.idle_minutes, 2), 'threshold_minutes', r.threshold));
      INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
      VALUES (r.task_uuid, r.status, 'error', 'fail', r.transition_seq + 1,
              jsonb_build_object('reason', 'staleness_timeout', 'namespace', r.namespace_name,
                                 'task_name', r.task_name, 'detected_at', v_now), v_now);
      UPDATE tasker.tasks SET status = 'error', transition_seq = r.transition_seq + 1, updated_at = v_now
      WHERE task_uuid = r.task_uuid;
    END IF;
    v_actions := v_actions || jsonb_build_object('task_uuid', r.task_uuid, 'task_name', r.task_name,
      'time_in_state_minutes', round(r.idle_minutes, 2), 'threshold_minutes', r.threshold,
      'action', CASE WHEN p_dry_run THEN 'would_transition_to_dlq_and_error' ELSE 'transitioned_to_dlq_and_error' END);
  END LOOP;
  RETURN v_actions;
END $$;

-- Dead-letter entries, newest first, optionally of one task or one resolution status.
CREATE OR REPLACE FUNCTION tasker.list_dlq(p_task uuid, p_status text, p_limit integer, p_offset integer)
RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.created_at DESC), '[]'::jsonb)
  FROM (SELECT * FROM tasker.tasks_dlq
        WHERE (p_task IS NULL OR task_uuid = p_task)
          AND (p_status IS NULL OR resolution_status::text = p_status)
        ORDER BY created_at DESC LIMIT p_limit OFFSET p_offset) d
$$;

-- Records an investigation's outcome on a dead-letter entry.
CREATE OR REPLACE FUNCTION tasker.update_dlq(p_entry uuid, p_changes jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  d tasker.tasks_dlq;
  v_status text := p_changes->>'resolution_status';
BEGIN
  IF v_status IS NOT NULL AND v_status NOT IN ('pending', 'manually_resolved', 'permanently_failed', 'cancelled') THEN
    RAISE EXCEPTION 'resolution_status must be pending, manually_resolved, permanently_failed or cancelled (got %)',
      v_status USING ERRCODE = 'TK422';
  END IF;
  IF length(p_changes->>'resolved_by') > 255 THEN
    RAISE EXCEPTION 'resolved_by is longer than 255 characters' USING ERRCODE = 'TK422';
  END IF;
  UPDATE tasker.tasks_dlq
  SET resolution_status = coalesce(v_status, resolution_status::text)::tasker.dlq_resolution_status,
      resolution_notes = coalesce(p_changes->>'resolution_notes', resolution_notes),
      resolved_by = coalesce(p_changes->>'resolved_by', resolved_by),
      resolution_timestamp = CASE WHEN v_status IS NOT NULL AND v_status <> 'pending'
                                  THEN now() AT TIME ZONE 'utc' ELSE resolution_timestamp END,
      metadata = metadata || coalesce(p_changes->'metadata', '{}'::jsonb),
      updated_at = now() AT TIME ZONE 'utc'
  WHERE dlq_entry_uuid = p_entry
  RETURNING * INTO d;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'DLQ entry not found: %', p_entry USING ERRCODE = 'TK404';
  END IF;
  RETURN to_jsonb(d);
END $$;
