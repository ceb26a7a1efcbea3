-- The hot path, measured with bench/ (docs/performance.md) and pg_stat_statements:
--   * uuid_v7() as a SQL-language expression, which the planner inlines into each INSERT's
--     defaults instead of calling a PL/pgSQL function per row;
--   * apply_step_result writes a result's two transitions in one statement, and reads the task's
--     counters back from their UPDATE, calling finalize_task only when they say the task may be
--     done (once per task instead of once per step);
--   * recover_steps returns at once, through two probes of the partial indexes, when no retry is
--     due and no claim has expired (the common case: every claim runs it first).

-- Same layout as 0001's: 48 bits of Unix milliseconds, version 7, then the random bits (and the
-- variant) of a version 4 UUID.
CREATE OR REPLACE FUNCTION tasker.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
  SELECT (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7'
          || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid
$$;

-- 0005's apply_step_result with the two changes above; its contract is unchanged.
CREATE OR REPLACE FUNCTION tasker.apply_step_result(p_step uuid, p_worker uuid, p_result jsonb,
                                                    p_applied_event text DEFAULT NULL,
                                                    p_notify boolean DEFAULT true) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_success boolean := coalesce((p_result->>'success')::boolean, false);
  v_exec_ms bigint := (p_result->'metadata'->>'execution_time_ms')::numeric::bigint;
  v_retryable boolean := coalesce((p_result->'metadata'->>'retryable')::boolean,
                                  (p_result->'error'->>'retryable')::boolean, true);
  s tasker.workflow_steps;
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
  SELECT * INTO s FROM tasker.workflow_steps WHERE workflow_step_uuid = p_step;
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
  WHERE workflow_step_uuid = p_step
  RETURNING * INTO s;

  -- Both transitions in one statement; the first one's uuid is the audit row's reference.
  v_transition := tasker.uuid_v7();
  INSERT INTO tasker.workflow_step_transitions (workflow_step_transition_uuid, workflow_step_uuid, task_uuid,
    from_state, to_state, event, attempt, worker_uuid, sort_key, metadata, created_at)
  VALUES (v_transition, p_step, s.task_uuid, 'in_progress', v_mid,
          coalesce(p_applied_event, CASE WHEN v_success THEN 'enqueue_for_orchestration'
                                         ELSE 'enqueue_as_error_for_orchestration' END),
          s.attempts, p_worker, s.transition_seq - 1,
          jsonb_build_object('execution_time_ms', v_exec_ms), v_now),
         (tasker.uuid_v7(), p_step, s.task_uuid, v_mid, v_to,
          CASE v_to WHEN 'complete' THEN 'complete' WHEN 'error' THEN 'fail' ELSE 'wait_for_retry' END,
          s.attempts, p_worker, s.transition_seq,
          CASE WHEN v_success THEN '{}'::jsonb
               ELSE jsonb_strip_nulls(jsonb_build_object('error', p_result->'error',
                      'next_retry_at', s.next_retry_at, 'retry_delay_ms', v_delay,
                      'task_finished', CASE WHEN NOT v_live THEN t.status END)) END,
          v_now);

  INSERT INTO tasker.workflow_step_result_audit (workflow_step_uuid, workflow_step_transition_uuid,
    task_uuid, worker_uuid, correlation_id, success, applied, execution_time_ms, result, recorded_at)
  VALUES (p_step, v_transition, s.task_uuid, p_worker, t.correlation_id, v_success, true, v_exec_ms,
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
    v_enqueued := tasker.release_children(p_step, v_now);
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

-- 0005's recover_steps with the early return.
CREATE OR REPLACE FUNCTION tasker.recover_steps(p_namespaces text[], p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_promoted integer;
  v_recovered integer := 0;
  r record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tasker.workflow_steps
                 WHERE status = 'waiting_for_retry' AND next_retry_at <= v_now
                   AND namespace_name = ANY (p_namespaces))
     AND NOT EXISTS (SELECT 1 FROM tasker.workflow_steps
                     WHERE status = 'in_progress' AND claim_expires_at < v_now
                       AND namespace_name = ANY (p_namespaces)) THEN
    RETURN 0;
  END IF;

  WITH due AS (
    SELECT workflow_step_uuid FROM tasker.workflow_steps
    WHERE status = 'waiting_for_retry' AND next_retry_at <= v_now AND namespace_name = ANY (p_namespaces)
    ORDER BY next_retry_at
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ), promoted AS (
    UPDATE tasker.workflow_steps s
    SET status = 'enqueued', ready_at = s.next_retry_at, next_retry_at = NULL,
        transition_seq = s.transition_seq + 2, updated_at = v_now
    FROM due WHERE s.workflow_step_uuid = due.workflow_step_uuid
    RETURNING s.workflow_step_uuid, s.task_uuid, s.transition_seq, s.attempts
  ), logged AS (
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state,
      to_state, event, attempt, sort_key, created_at)
    SELECT workflow_step_uuid, task_uuid, 'waiting_for_retry', 'pending', 'retry', attempts,
           transition_seq - 1, v_now FROM promoted
    UNION ALL
    SELECT workflow_step_uuid, task_uuid, 'pending', 'enqueued', 'enqueue', attempts,
           transition_seq, v_now FROM promoted
  )
  SELECT count(*) INTO v_promoted FROM promoted;

  FOR r IN
    SELECT workflow_step_uuid, claim_owner, claim_expires_at FROM tasker.workflow_steps
    WHERE status = 'in_progress' AND claim_expires_at < v_now AND namespace_name = ANY (p_namespaces)
    ORDER BY claim_expires_at
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM tasker.apply_step_result(r.workflow_step_uuid, NULL, jsonb_build_object(
      'step_uuid', r.workflow_step_uuid, 'success', false, 'status', 'failed', 'result', NULL,
      'error', jsonb_build_object(
        'message', format('claim expired at %s: worker %s did not report a result in time',
                          r.claim_expires_at, r.claim_owner),
        'error_type', 'ClaimExpired', 'retryable', true),
      'metadata', jsonb_build_object('retryable', true, 'error_type', 'ClaimExpired',
                                     'claim_owner', r.claim_owner)),
      'claim_expired');
    v_recovered := v_recovered + 1;
  END LOOP;

  RETURN v_promoted + v_recovered;
END $$;
