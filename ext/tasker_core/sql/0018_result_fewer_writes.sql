-- A worker's result with fewer statements and fewer index writes (measured with bench/ and
-- pg_stat_statements, docs/performance.md):
--   * workflow_steps_task_idx (task_uuid) duplicated the leading column of the table's unique
--     (task_uuid, name) index, which serves the same lookups. A step row's updates are never HOT
--     (status is in the partial indexes' predicates), so each of them (the claim, the result, the
--     release of a child) wrote an entry into it;
--   * complete_step hands the step row it just locked to the result's application instead of the
--     application reading it again;
--   * a result's two transitions and its audit row are one statement.
-- Lock order, transitions, audit rows, counters and notifications are those of 0012.

DROP INDEX IF EXISTS tasker.workflow_steps_task_idx;

-- 0012's apply_step_result, for a step row s the caller has locked in in_progress.
CREATE OR REPLACE FUNCTION tasker.apply_claimed_step_result(s tasker.workflow_steps, p_worker uuid, p_result jsonb,
                                                            p_applied_event text DEFAULT NULL,
                                                            p_notify boolean DEFAULT true) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_step uuid := s.workflow_step_uuid;
  v_success boolean := coalesce((p_result->>'success')::boolean, false);
  v_exec_ms bigint := (p_result->'metadata'->>'execution_time_ms')::numeric::bigint;
  v_retryable boolean := coalesce((p_result->'metadata'->>'retryable')::boolean,
                                  (p_result->'error'->>'retryable')::boolean, true);
  t tasker.tasks;
  v_live boolean;
  v_to text;
  v_mid text;
  v_delay bigint;
  v_retry jsonb;
  v_transition uuid;
  v_enqueued integer := 0;
  v_status text;
  v_invalid text;
BEGIN
  SELECT * INTO t FROM tasker.tasks WHERE task_uuid = s.task_uuid FOR UPDATE;
  v_live := t.status NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');

  -- Decision and batchable steps create steps at run time; a bad outcome is a permanent failure
  -- (migrations 0007 and 0008).
  IF v_success AND s.step_type IN ('decision', 'batchable') THEN
    v_invalid := CASE s.step_type WHEN 'decision' THEN tasker.decision_outcome_error(s, p_result)
                                  ELSE tasker.batch_outcome_error(s, p_result) END;
    IF v_invalid IS NOT NULL THEN
      p_result := p_result || jsonb_build_object('success', false, 'status', 'failed',
        'error', jsonb_build_object('message', v_invalid, 'error_type', 'PermanentError',
                                    'error_code', CASE s.step_type WHEN 'decision' THEN 'INVALID_DECISION_OUTCOME'
                                                                   ELSE 'INVALID_BATCH_OUTCOME' END,
                                    'retryable', false),
        'metadata', coalesce(p_result->'metadata', '{}'::jsonb) || '{"retryable": false}'::jsonb);
      v_success := false;
      v_retryable := false;
    END IF;
  END IF;

  IF v_success THEN
    v_to := 'complete';
  ELSIF v_retryable AND s.retryable AND s.attempts < s.max_attempts AND v_live THEN
    v_to := 'waiting_for_retry';
    SELECT d->'retry' INTO v_retry
    FROM tasker.named_tasks nt, jsonb_array_elements(nt.configuration->'steps') AS d
    WHERE nt.named_task_uuid = t.named_task_uuid AND d->>'name' = s.template_step_name;
    v_delay := tasker.retry_delay_ms(s.attempts, v_retry, p_result);
  ELSIF s.step_type = 'batch_worker' AND s.inputs->'batch_metadata'->>'failure_strategy' = 'continue_on_failure'
        AND v_live THEN
    -- A batch worker under continue_on_failure completes with its failure as its result, so the
    -- convergence step runs and sees it (migration 0008).
    v_to := 'complete';
  ELSE
    v_to := 'error';
  END IF;
  v_mid := CASE WHEN v_success THEN 'enqueued_for_orchestration' ELSE 'enqueued_as_error_for_orchestration' END;

  UPDATE tasker.workflow_steps
  SET status = v_to,
      in_process = false,
      processed = v_to = 'complete',
      processed_at = CASE WHEN v_to = 'complete' THEN v_now ELSE processed_at END,
      results = p_result,
      claim_owner = NULL, claim_token = NULL, claim_expires_at = NULL,
      next_retry_at = CASE WHEN v_to = 'waiting_for_retry'
                           THEN v_now + make_interval(secs => v_delay / 1000.0) END,
      backoff_request_seconds = CASE WHEN v_to = 'waiting_for_retry' THEN ceil(v_delay / 1000.0)::integer
                                     ELSE backoff_request_seconds END,
      transition_seq = transition_seq + 2,
      updated_at = v_now
  WHERE workflow_step_uuid = v_step
  RETURNING * INTO s;

  -- Both transitions and the audit row in one statement; the first transition's uuid is the
  -- audit row's reference.
  v_transition := tasker.uuid_v7();
  WITH transitions AS (
    INSERT INTO tasker.workflow_step_transitions (workflow_step_transition_uuid, workflow_step_uuid, task_uuid,
      from_state, to_state, event, attempt, worker_uuid, sort_key, metadata, created_at)
    VALUES (v_transition, v_step, s.task_uuid, 'in_progress', v_mid,
            coalesce(p_applied_event, CASE WHEN v_success THEN 'enqueue_for_orchestration'
                                           ELSE 'enqueue_as_error_for_orchestration' END),
            s.attempts, p_worker, s.transition_seq - 1,
            jsonb_build_object('execution_time_ms', v_exec_ms), v_now),
           (tasker.uuid_v7(), v_step, s.task_uuid, v_mid, v_to,
            CASE v_to WHEN 'complete' THEN 'complete' WHEN 'error' THEN 'fail' ELSE 'wait_for_retry' END,
            s.attempts, p_worker, s.transition_seq,
            CASE WHEN v_success THEN '{}'::jsonb
                 ELSE jsonb_strip_nulls(jsonb_build_object('error', p_result->'error',
                        'next_retry_at', s.next_retry_at, 'retry_delay_ms', v_delay,
                        'task_finished', CASE WHEN NOT v_live THEN t.status END)) END,
            v_now)
  )
  INSERT INTO tasker.workflow_step_result_audit (workflow_step_uuid, workflow_step_transition_uuid,
    task_uuid, worker_uuid, correlation_id, success, applied, execution_time_ms, result, recorded_at)
  VALUES (v_step, v_transition, s.task_uuid, p_worker, t.correlation_id, v_success, true, v_exec_ms,
          p_result, v_now);

  IF NOT v_live THEN
    RETURN jsonb_build_object('applied', true, 'step_status', s.status, 'task_status', t.status,
                              'enqueued', 0, 'task_resumed', false);
  END IF;

  IF v_to = 'complete' THEN
    IF s.step_type = 'decision' THEN
      PERFORM tasker.expand_decision(s, p_result, v_now);
    ELSIF s.step_type = 'batchable' THEN
      PERFORM tasker.expand_batches(s, p_result, v_now);
    END IF;
    v_enqueued := tasker.release_children(v_step, v_now);
    UPDATE tasker.tasks
    SET unfinished_steps = unfinished_steps - 1, active_steps = active_steps - 1 + v_enqueued,
        updated_at = v_now
    WHERE task_uuid = s.task_uuid
    RETURNING * INTO t;
  ELSIF v_to = 'error' THEN
    UPDATE tasker.tasks
    SET error_steps = error_steps + 1, active_steps = active_steps - 1, updated_at = v_now
    WHERE task_uuid = s.task_uuid
    RETURNING * INTO t;
  END IF;
  -- finalize_task only when the counters say the task may be done (once per task, not per step).
  IF t.status = 'steps_in_process' AND (t.unfinished_steps = 0 OR (t.active_steps = 0 AND t.error_steps > 0)) THEN
    v_status := tasker.finalize_task(s.task_uuid, v_now);
  ELSE
    v_status := t.status;
  END IF;

  -- Children to claim, or a retry whose due time every worker should now wait for.
  -- (Left to the caller with p_notify false: complete_and_claim notifies only for what it leaves.)
  IF p_notify AND (v_enqueued > 0 OR v_to = 'waiting_for_retry') THEN
    PERFORM pg_notify('tasker_steps_' || s.namespace_name, '');
  END IF;

  RETURN jsonb_build_object('applied', true, 'step_status', s.status, 'task_status', v_status,
                            'enqueued', v_enqueued, 'next_retry_at', s.next_retry_at,
                            'namespace', s.namespace_name);
END $$;

-- 0012's contract, for callers that hold the step's lock but not its row (recovery of expired
-- claims).
CREATE OR REPLACE FUNCTION tasker.apply_step_result(p_step uuid, p_worker uuid, p_result jsonb,
                                                    p_applied_event text DEFAULT NULL,
                                                    p_notify boolean DEFAULT true) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  s tasker.workflow_steps;
BEGIN
  SELECT * INTO s FROM tasker.workflow_steps WHERE workflow_step_uuid = p_step;
  RETURN tasker.apply_claimed_step_result(s, p_worker, p_result, p_applied_event, p_notify);
END $$;

-- 0005's complete_step, handing the locked row on.
CREATE OR REPLACE FUNCTION tasker.complete_step(p_step uuid, p_claim_token uuid, p_worker uuid,
                                                p_result jsonb, p_notify boolean DEFAULT true) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  s tasker.workflow_steps;
BEGIN
  SELECT * INTO s FROM tasker.workflow_steps
  WHERE workflow_step_uuid = p_step AND claim_token = p_claim_token AND status = 'in_progress'
  FOR UPDATE;

  IF NOT FOUND THEN
    SELECT * INTO s FROM tasker.workflow_steps WHERE workflow_step_uuid = p_step;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'step not found: %', p_step USING ERRCODE = 'TK404';
    END IF;
    INSERT INTO tasker.workflow_step_result_audit (workflow_step_uuid, task_uuid, worker_uuid,
      correlation_id, success, applied, execution_time_ms, result)
    SELECT p_step, s.task_uuid, p_worker, tk.correlation_id,
           coalesce((p_result->>'success')::boolean, false), false,
           (p_result->'metadata'->>'execution_time_ms')::numeric::bigint, p_result
    FROM tasker.tasks tk WHERE tk.task_uuid = s.task_uuid;
    RETURN jsonb_build_object('applied', false, 'reason', 'stale_claim', 'step_status', s.status);
  END IF;

  RETURN tasker.apply_claimed_step_result(s, p_worker, p_result, NULL, p_notify);
END $$;
