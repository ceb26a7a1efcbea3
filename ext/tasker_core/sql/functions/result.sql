-- A worker's result: applying it to the step, releasing children, finalizing the task, and the
-- claim on complete.

-- Decrements the pending-parent count of p_step's children and enqueues those reaching zero;
-- returns how many were enqueued. PL/pgSQL, so its plan is cached for the session.
CREATE OR REPLACE FUNCTION tasker.release_children(p_step uuid, p_now timestamp) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
BEGIN
  -- The pending -> enqueued transition is not written here: its sort key stays on the step
  -- (enqueue_seq) until the step's next attempt row carries it.
  WITH released AS (
    UPDATE tasker.workflow_steps c
    SET pending_parents = c.pending_parents - 1,
        status = CASE WHEN c.pending_parents = 1 AND c.status = 'pending' THEN 'enqueued' ELSE c.status END,
        ready_at = CASE WHEN c.pending_parents = 1 AND c.status = 'pending' THEN p_now ELSE c.ready_at END,
        transition_seq = CASE WHEN c.pending_parents = 1 AND c.status = 'pending'
                              THEN c.transition_seq + 1 ELSE c.transition_seq END,
        enqueue_seq = CASE WHEN c.pending_parents = 1 AND c.status = 'pending'
                           THEN c.transition_seq + 1 ELSE c.enqueue_seq END,
        updated_at = p_now
    FROM tasker.workflow_step_edges e
    WHERE e.from_step_uuid = p_step AND e.to_step_uuid = c.workflow_step_uuid
    RETURNING c.status, c.pending_parents
  )
  SELECT count(*)::integer INTO v_count FROM released WHERE status = 'enqueued' AND pending_parents = 0;
  RETURN v_count;
END $$;

-- Moves a task in steps_in_process to its outcome when nothing is left to run: complete when no
-- step is unfinished, blocked_by_failures -> error when a step failed and nothing is active.
-- The caller holds the task's row lock. Returns the task's status.
CREATE OR REPLACE FUNCTION tasker.finalize_task(p_task uuid, p_now timestamp) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  t tasker.tasks;
BEGIN
  SELECT * INTO t FROM tasker.tasks WHERE task_uuid = p_task;
  IF t.status = 'steps_in_process' AND t.unfinished_steps = 0 THEN
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, created_at)
    VALUES (p_task, 'steps_in_process', 'evaluating_results', 'all_steps_completed', t.transition_seq + 1, p_now),
           (p_task, 'evaluating_results', 'complete', 'all_steps_successful', t.transition_seq + 2, p_now);
    UPDATE tasker.tasks SET status = 'complete', complete = true, completed_at = p_now,
           transition_seq = t.transition_seq + 2, updated_at = p_now
    WHERE task_uuid = p_task;
    RETURN 'complete';
  ELSIF t.status = 'steps_in_process' AND t.active_steps = 0 AND t.error_steps > 0 THEN
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
    VALUES (p_task, 'steps_in_process', 'evaluating_results', 'step_completed', t.transition_seq + 1, '{}', p_now),
           (p_task, 'evaluating_results', 'blocked_by_failures', 'permanent_failure', t.transition_seq + 2,
            jsonb_build_object('error_steps', t.error_steps), p_now),
           (p_task, 'blocked_by_failures', 'error', 'give_up', t.transition_seq + 3, '{}', p_now);
    UPDATE tasker.tasks SET status = 'error', transition_seq = t.transition_seq + 3, updated_at = p_now
    WHERE task_uuid = p_task;
    RETURN 'error';
  END IF;
  RETURN t.status;
END $$;

-- Applies a result to the step row s, which the caller has locked in in_progress, and everything
-- that follows from it, in the caller's transaction:
--   success                      -> complete; children whose parents are all complete are enqueued
--   retryable failure with tries -> waiting_for_retry with next_retry_at (still active for the task)
--   otherwise                    -> error
-- then the task is finalized when its counters say nothing is left to run (complete, or
-- blocked_by_failures -> error). The attempt is one history row (workflow_step_attempts).
-- When the task already ended (cancelled while the step ran) the result is recorded on the step and
-- in the audit, and nothing else moves.
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
  v_after tasker.workflow_steps;
  v_enqueued integer := 0;
  v_status text;
  v_invalid text;
BEGIN
  SELECT * INTO t FROM tasker.tasks WHERE task_uuid = s.task_uuid FOR UPDATE;
  v_live := t.status NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');

  -- Decision and batchable steps create steps at run time; a bad outcome is a permanent failure
  -- (decisions.sql, batches.sql).
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
    -- convergence step runs and sees it.
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
      claim_owner = NULL, claim_token = NULL, claim_expires_at = NULL, claim_seq = NULL, enqueue_seq = NULL,
      next_retry_at = CASE WHEN v_to = 'waiting_for_retry'
                           THEN v_now + make_interval(secs => v_delay / 1000.0) END,
      backoff_request_seconds = CASE WHEN v_to = 'waiting_for_retry' THEN ceil(v_delay / 1000.0)::integer
                                     ELSE backoff_request_seconds END,
      transition_seq = transition_seq + 2,
      updated_at = v_now
  WHERE workflow_step_uuid = v_step
  RETURNING * INTO v_after;

  -- One history row for the attempt: its start (from the claim), its result and its outcome.
  INSERT INTO tasker.workflow_step_attempts (attempt_uuid, workflow_step_uuid, task_uuid, kind, attempt,
    worker_uuid, enqueue_seq, enqueued_at, claim_seq, claimed_at, result_seq, result_state, result_event,
    to_state, to_event, to_metadata, finished_at, success, applied, execution_time_ms, result)
  VALUES (tasker.uuid_with_last_byte(tasker.uuid_v7(), 0), v_step, s.task_uuid, 'result', s.attempts, p_worker,
          s.enqueue_seq, s.ready_at, s.claim_seq, s.last_attempted_at, v_after.transition_seq - 1, v_mid,
          coalesce(p_applied_event, CASE WHEN v_success THEN 'enqueue_for_orchestration'
                                         ELSE 'enqueue_as_error_for_orchestration' END),
          v_to, CASE v_to WHEN 'complete' THEN 'complete' WHEN 'error' THEN 'fail' ELSE 'wait_for_retry' END,
          CASE WHEN v_success THEN '{}'::jsonb
               ELSE jsonb_strip_nulls(jsonb_build_object('error', p_result->'error',
                      'next_retry_at', v_after.next_retry_at, 'retry_delay_ms', v_delay,
                      'task_finished', CASE WHEN NOT v_live THEN t.status END)) END,
          v_now, v_success, true, v_exec_ms, p_result);
  s := v_after;

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

-- apply_claimed_step_result for callers that hold the step's lock but not its row (recovery of
-- expired claims).
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

-- A worker's result for its claim. Refused (recorded as a 'refused' attempt row, applied = false, nothing
-- else changed) when the claim token is no longer current: the claim expired and the step was
-- recovered, or it was released.
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
    INSERT INTO tasker.workflow_step_attempts (attempt_uuid, workflow_step_uuid, task_uuid, kind, worker_uuid,
      to_state, finished_at, success, applied, execution_time_ms, result)
    VALUES (tasker.uuid_with_last_byte(tasker.uuid_v7(), 0), p_step, s.task_uuid, 'refused', p_worker, s.status,
            clock_timestamp() AT TIME ZONE 'utc', coalesce((p_result->>'success')::boolean, false), false,
            (p_result->'metadata'->>'execution_time_ms')::numeric::bigint, p_result);
    RETURN jsonb_build_object('applied', false, 'reason', 'stale_claim', 'step_status', s.status);
  END IF;

  RETURN tasker.apply_claimed_step_result(s, p_worker, p_result, NULL, p_notify);
END $$;

-- complete_step for a result envelope that may carry the step's candidate domain events
-- ("domain_events", built by the language worker): they are kept out of the stored result and
-- written to the outbox once the result is applied.
CREATE OR REPLACE FUNCTION tasker.complete_one(p_step uuid, p_claim_token uuid, p_worker uuid, p_result jsonb,
                                               p_notify boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_events jsonb := p_result->'domain_events';
  v_outcome jsonb;
BEGIN
  IF v_events IS NOT NULL THEN
    p_result := p_result - 'domain_events';
  END IF;
  v_outcome := tasker.complete_step(p_step, p_claim_token, p_worker, p_result, p_notify);
  IF v_events IS NOT NULL AND (v_outcome->>'applied')::boolean THEN
    v_outcome := v_outcome || jsonb_build_object('domain_events_written',
                                                 tasker.publish_step_events(p_step, v_events, v_outcome, p_result));
  END IF;
  RETURN v_outcome;
END $$;

-- A worker's results, many at once (p_results: [{step_uuid, claim_token, result}]): returns one
-- outcome per result, in order, as complete_one would. The claimed step rows are locked in uuid
-- order, then their tasks in uuid order (the order complete_step takes them in, so batches and
-- single completions never wait on each other in a cycle). The common case, a success of a step
-- that creates no steps, declares no domain events and belongs to a running task, is applied to
-- the whole batch in one statement: the steps, their history rows, the children's
-- pending-parent counts aggregated per child, the tasks' counters aggregated per task, and the
-- completion of every task whose last step this was. Every other result (failures, decisions,
-- batches, events, refused claims, ended tasks) goes through complete_one.
-- With p_notify false the caller wakes other workers (flush does, after claiming).
-- Hand-off: a result marked "next": true (its worker wants a step in the slot it frees) whose step
-- has one child, and whose completion makes that child ready, takes the child at once: it goes
-- from pending to in_progress, claimed by p_worker for p_visibility_seconds, and the outcome names
-- it ("next_step"). No enqueue, no walk of the queue, one row update fewer (a chain's next step).
-- Without p_visibility_seconds nothing is handed off.
CREATE OR REPLACE FUNCTION tasker.complete_results(p_worker uuid, p_results jsonb, p_notify boolean,
                                                   p_visibility_seconds integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_tasks uuid[];
  v_fast bigint[];
  v_fast_tasks uuid[];
  v_ended uuid[];
  v_slow bigint[];
  v_out jsonb[];
  v_fast_out jsonb;
  v_final_ords bigint[];
  v_final_tasks uuid[];
  v_ns text[];
  v_ord bigint;
  v_item jsonb;
BEGIN
  v_out := array_fill(NULL::jsonb, ARRAY[jsonb_array_length(p_results)]);

  -- Lock the claims that are still current, in step uuid order, then their tasks in uuid order.
  -- A result is a candidate for the common case by itself (a success of a step that creates no
  -- steps, without domain events); it takes that path when its task is still running, read under
  -- the task's lock (a cancellation leaves running steps alone, so it may commit while their claims
  -- are locked here).
  SELECT coalesce(array_agg(DISTINCT c.task_uuid) FILTER (WHERE c.task_uuid IS NOT NULL), '{}'),
         coalesce(array_agg(i.ord ORDER BY i.ord) FILTER (WHERE c.candidate), '{}'),
         coalesce(array_agg(c.task_uuid ORDER BY i.ord) FILTER (WHERE c.candidate), '{}'),
         coalesce(array_agg(i.ord) FILTER (WHERE c.candidate IS NOT TRUE), '{}')
  INTO v_tasks, v_fast, v_fast_tasks, v_slow
  FROM (SELECT (x.r->>'step_uuid')::uuid AS step, (x.r->>'claim_token')::uuid AS token, x.ord,
               coalesce((x.r->'result'->>'success')::boolean, false)
               AND coalesce(jsonb_array_length(CASE jsonb_typeof(x.r->'result'->'domain_events')
                                                 WHEN 'array' THEN x.r->'result'->'domain_events' END), 0) = 0
               AND jsonb_typeof(x.r->'result'->'domain_events') IS DISTINCT FROM 'object' AS plain
        FROM jsonb_array_elements(p_results) WITH ORDINALITY AS x(r, ord) ORDER BY 1) i
  LEFT JOIN LATERAL (
    SELECT s.task_uuid, i.plain AND s.step_type NOT IN ('decision', 'batchable') AS candidate
    FROM tasker.workflow_steps s
    WHERE s.workflow_step_uuid = i.step AND s.claim_token = i.token AND s.status = 'in_progress'
    FOR UPDATE OF s) c ON true;
  SELECT coalesce(array_agg(t.task_uuid) FILTER (WHERE t.status <> 'steps_in_process'), '{}') INTO v_ended
  FROM (SELECT task_uuid, status FROM tasker.tasks WHERE task_uuid = ANY (v_tasks) ORDER BY task_uuid FOR UPDATE) t;
  IF cardinality(v_ended) > 0 THEN
    v_slow := v_slow || ARRAY(SELECT f.ord FROM unnest(v_fast, v_fast_tasks) AS f(ord, task) WHERE f.task = ANY (v_ended));
    v_fast := ARRAY(SELECT f.ord FROM unnest(v_fast, v_fast_tasks) AS f(ord, task) WHERE f.task <> ALL (v_ended));
  END IF;

  IF cardinality(v_fast) > 0 THEN
    WITH input AS (
      SELECT (x.r->>'step_uuid')::uuid AS step, (x.r->'result') - 'domain_events' AS result, x.ord,
             (x.r->'result'->'metadata'->>'execution_time_ms')::numeric::bigint AS exec_ms,
             coalesce((x.r->>'next')::boolean, false) AND p_visibility_seconds IS NOT NULL AS want_next
      FROM jsonb_array_elements(p_results) WITH ORDINALITY AS x(r, ord)
      WHERE x.ord = ANY (v_fast)
    ), done AS (
      -- o is the row before this update: its claim's and enqueue's sort keys go to the history row.
      UPDATE tasker.workflow_steps s
      SET status = 'complete', in_process = false, processed = true, processed_at = v_now, results = i.result,
          claim_owner = NULL, claim_token = NULL, claim_expires_at = NULL, claim_seq = NULL, enqueue_seq = NULL,
          next_retry_at = NULL, transition_seq = s.transition_seq + 2, updated_at = v_now
      FROM input i, tasker.workflow_steps o
      WHERE s.workflow_step_uuid = i.step AND o.workflow_step_uuid = i.step
      RETURNING s.workflow_step_uuid, s.task_uuid, s.attempts, s.transition_seq, s.namespace_name, i.result,
                i.exec_ms, i.ord, i.want_next, o.enqueue_seq, o.ready_at, o.claim_seq, o.last_attempted_at
    ), history AS (
      INSERT INTO tasker.workflow_step_attempts (attempt_uuid, workflow_step_uuid, task_uuid, kind, attempt,
        worker_uuid, enqueue_seq, enqueued_at, claim_seq, claimed_at, result_seq, result_state, result_event,
        to_state, to_event, to_metadata, finished_at, success, applied, execution_time_ms, result)
      SELECT tasker.uuid_with_last_byte(tasker.uuid_v7(), 0), d.workflow_step_uuid, d.task_uuid, 'result',
             d.attempts, p_worker, d.enqueue_seq, d.ready_at, d.claim_seq, d.last_attempted_at,
             d.transition_seq - 1, 'enqueued_for_orchestration', 'enqueue_for_orchestration', 'complete',
             'complete', '{}'::jsonb, v_now, true, true, d.exec_ms, d.result
      FROM done d
    ), released AS (
      -- A child reaching zero pending parents is enqueued, or handed to the result that takes it
      -- (k.taker: the first result that wants a next step and whose step has no other child).
      -- The CASEs read c after any wait for a concurrent flush's update of the same child.
      UPDATE tasker.workflow_steps c
      SET pending_parents = c.pending_parents - k.n,
          status = CASE WHEN c.pending_parents = k.n AND c.status = 'pending'
                        THEN CASE WHEN k.taker IS NULL THEN 'enqueued' ELSE 'in_progress' END
                        ELSE c.status END,
          ready_at = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' THEN v_now ELSE c.ready_at END,
          transition_seq = CASE WHEN c.pending_parents = k.n AND c.status = 'pending'
                                THEN c.transition_seq + CASE WHEN k.taker IS NULL THEN 1 ELSE 2 END
                                ELSE c.transition_seq END,
          enqueue_seq = CASE WHEN c.pending_parents = k.n AND c.status = 'pending'
                             THEN c.transition_seq + 1 ELSE c.enqueue_seq END,
          in_process = c.in_process OR (c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL),
          attempts = c.attempts + (c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL)::integer,
          last_attempted_at = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL
                                   THEN v_now ELSE c.last_attempted_at END,
          claim_owner = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL
                             THEN p_worker ELSE c.claim_owner END,
          claim_token = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL
                             THEN tasker.uuid_v7() ELSE c.claim_token END,
          claim_expires_at = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL
                                  THEN v_now + make_interval(secs => p_visibility_seconds) ELSE c.claim_expires_at END,
          claim_seq = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL
                           THEN c.transition_seq + 2 ELSE c.claim_seq END,
          updated_at = v_now
      -- The children through one probe of the edges per finished step (OFFSET 0 keeps the subquery
      -- lateral: joined, the planner may scan every edge of the table into a hash).
      FROM (SELECT e.to_step_uuid, count(*)::integer AS n,
                   min(e.ord) FILTER (WHERE e.want_next AND e.children = 1) AS taker
            FROM (SELECT x.to_step_uuid, d.ord, d.want_next,
                         count(*) OVER (PARTITION BY d.workflow_step_uuid) AS children
                  FROM done d CROSS JOIN LATERAL (
                    SELECT y.to_step_uuid FROM tasker.workflow_step_edges y
                    WHERE y.from_step_uuid = d.workflow_step_uuid OFFSET 0) x) e
            GROUP BY e.to_step_uuid) k
      WHERE c.workflow_step_uuid = k.to_step_uuid
      RETURNING c.workflow_step_uuid, c.task_uuid, c.namespace_name,
                c.status = 'enqueued' AND c.pending_parents = 0 AS ready,
                CASE WHEN c.status = 'in_progress' AND c.last_attempted_at = v_now AND c.claim_owner = p_worker
                     THEN k.taker END AS handed_to
    ), per_task AS (
      SELECT d.task_uuid, count(*)::integer AS n_done,
             (SELECT count(*)::integer FROM released r
              WHERE r.task_uuid = d.task_uuid AND (r.ready OR r.handed_to IS NOT NULL)) AS n_ready
      FROM done d GROUP BY d.task_uuid
    ), tasks_done AS (
      UPDATE tasker.tasks t
      SET unfinished_steps = t.unfinished_steps - p.n_done,
          active_steps = t.active_steps - p.n_done + p.n_ready,
          status = CASE WHEN t.unfinished_steps = p.n_done THEN 'complete' ELSE t.status END,
          complete = t.unfinished_steps = p.n_done,
          completed_at = CASE WHEN t.unfinished_steps = p.n_done THEN v_now ELSE t.completed_at END,
          transition_seq = t.transition_seq + CASE WHEN t.unfinished_steps = p.n_done THEN 2 ELSE 0 END,
          updated_at = v_now
      FROM per_task p
      WHERE t.task_uuid = p.task_uuid
      RETURNING t.task_uuid, t.status, t.unfinished_steps, t.active_steps, t.error_steps, t.transition_seq
    ), tasks_logged AS (
      INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, created_at)
      SELECT x.task_uuid, 'steps_in_process', 'evaluating_results', 'all_steps_completed', x.transition_seq - 1, v_now
      FROM tasks_done x WHERE x.status = 'complete'
      UNION ALL
      SELECT x.task_uuid, 'evaluating_results', 'complete', 'all_steps_successful', x.transition_seq, v_now
      FROM tasks_done x WHERE x.status = 'complete'
    )
    -- The outcomes in the order of the results (v_fast is sorted), and the results whose task a
    -- sibling's permanent failure leaves with nothing active: those tasks end in error below.
    SELECT jsonb_agg(jsonb_build_object(
             'applied', true, 'step_status', 'complete', 'task_status', x.status,
             'enqueued', (SELECT count(*) FROM released r
                          JOIN tasker.workflow_step_edges e ON e.to_step_uuid = r.workflow_step_uuid
                          WHERE r.ready AND e.from_step_uuid = d.workflow_step_uuid),
             'next_retry_at', NULL, 'namespace', d.namespace_name,
             'next_step', (SELECT r.workflow_step_uuid FROM released r WHERE r.handed_to = d.ord)) ORDER BY d.ord),
           array_agg(d.ord ORDER BY d.ord) FILTER (WHERE x.status = 'steps_in_process' AND x.active_steps = 0
                                                        AND x.error_steps > 0),
           array_agg(d.task_uuid ORDER BY d.ord) FILTER (WHERE x.status = 'steps_in_process' AND x.active_steps = 0
                                                              AND x.error_steps > 0),
           (SELECT array_agg(DISTINCT r.namespace_name) FROM released r WHERE r.ready)
    INTO v_fast_out, v_final_ords, v_final_tasks, v_ns
    FROM done d JOIN tasks_done x ON x.task_uuid = d.task_uuid;

    IF p_notify AND v_ns IS NOT NULL THEN
      PERFORM pg_notify('tasker_steps_' || n, '') FROM unnest(v_ns) AS n;
    END IF;
    -- The common case: every result took this path and no task ends in error.
    IF cardinality(v_slow) = 0 AND v_final_ords IS NULL THEN
      RETURN v_fast_out;
    END IF;
    FOR i IN 1 .. cardinality(v_fast) LOOP
      v_out[v_fast[i]] := v_fast_out->(i - 1);
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(v_final_ords), 0) LOOP
      v_out[v_final_ords[i]] := v_out[v_final_ords[i]]
        || jsonb_build_object('task_status', tasker.finalize_task(v_final_tasks[i], v_now));
    END LOOP;
  END IF;

  FOREACH v_ord IN ARRAY v_slow LOOP
    v_item := p_results->(v_ord::integer - 1);
    v_out[v_ord] := tasker.complete_one((v_item->>'step_uuid')::uuid, (v_item->>'claim_token')::uuid, p_worker,
                                        v_item->'result', p_notify);
  END LOOP;
  RETURN to_jsonb(v_out);
END $$;

-- One flush of a worker: its results (complete_results, which hands a finished step's only child
-- to a result marked "next": true), then, on a fresh snapshot, up to p_claim less the steps handed
-- over newly claimed steps of p_namespaces, so the handler threads that submitted go on with the
-- next step without a notification and a separate claim in between. Returns {"outcomes": [...],
-- in the order of p_results, "handed": [step event row or null, one per result], "next_steps":
-- [step event rows]}. Other workers are woken only when work is left in the queue (or a retry was
-- scheduled).
CREATE OR REPLACE FUNCTION tasker.flush(p_worker uuid, p_results jsonb, p_claim integer, p_namespaces text[],
                                        p_visibility_seconds integer) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
  v_outcomes jsonb := '[]'::jsonb;
  v_next json := '[]'::json;
  v_handed json[];
  v_rows tasker.workflow_steps[];
  v_handed_uuids uuid[];
  v_ords bigint[];
  v_events json[];
  v_wake text[];
BEGIN
  IF jsonb_array_length(p_results) > 0 THEN
    v_outcomes := tasker.complete_results(p_worker, p_results, false, p_visibility_seconds);
    SELECT array_agg((o.x->>'next_step')::uuid ORDER BY o.ord), array_agg(o.ord ORDER BY o.ord)
    INTO v_handed_uuids, v_ords
    FROM jsonb_array_elements(v_outcomes) WITH ORDINALITY AS o(x, ord)
    WHERE o.x->>'next_step' IS NOT NULL;
    IF v_ords IS NOT NULL THEN
      -- Probes of the primary key (a join on the outcomes' text could be planned as a scan of
      -- every step).
      SELECT array_agg(s ORDER BY array_position(v_handed_uuids, s.workflow_step_uuid)) INTO v_rows
      FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = ANY (v_handed_uuids);
      v_events := tasker.step_events(v_rows, p_worker);
      v_handed := array_fill(NULL::json, ARRAY[jsonb_array_length(p_results)]);
      FOR i IN 1 .. cardinality(v_ords) LOOP
        v_handed[v_ords[i]] := v_events[i];
      END LOOP;
      p_claim := p_claim - cardinality(v_ords);
    END IF;
  END IF;
  IF p_claim > 0 THEN
    SELECT coalesce(json_agg(e), '[]'::json) INTO v_next
    FROM tasker.claim_steps(p_worker, p_namespaces, p_claim, p_visibility_seconds) AS e;
  END IF;
  SELECT array_agg(DISTINCT o->>'namespace') INTO v_wake
  FROM jsonb_array_elements(v_outcomes) AS o
  WHERE o->>'step_status' = 'waiting_for_retry'
     OR ((o->>'enqueued')::integer > 0
         AND EXISTS (SELECT 1 FROM tasker.workflow_steps
                     WHERE status = 'enqueued' AND namespace_name = o->>'namespace'));
  IF v_wake IS NOT NULL THEN
    PERFORM pg_notify('tasker_steps_' || n, '') FROM unnest(v_wake) AS n WHERE n IS NOT NULL;
  END IF;
  RETURN json_build_object('outcomes', v_outcomes, 'handed', coalesce(to_json(v_handed), '[]'::json),
                           'next_steps', v_next);
END $$;
