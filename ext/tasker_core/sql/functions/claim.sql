-- Claims: taking enqueued steps, extending and releasing claims, recovering due retries and
-- expired claims.

-- Claims up to p_limit enqueued steps of the given namespaces for worker p_worker, highest
-- priority first, skipping rows other workers are claiming and steps of tasks that already ended.
-- Each claim gets a fresh token and an expiry; returns one step event row (step_event.sql) per
-- claimed step. The claim walks the claim index once per namespace (an ANY over namespaces cannot
-- use its order), taking the first p_limit of each, then the best p_limit of those, so it costs
-- the same with an empty queue and with a backlog. Rows locked there but not claimed stay locked
-- only until the transaction ends. A step whose event cannot be built (its ancestors' results
-- exceed what one value may hold) fails for good, naming why; the others are claimed as usual
-- (step_events).
CREATE OR REPLACE FUNCTION tasker.claim_steps(p_worker uuid, p_namespaces text[], p_limit integer,
                                              p_visibility_seconds integer) RETURNS SETOF json
LANGUAGE plpgsql
-- Generic plans, cached for the session: with an array of namespaces PostgreSQL would otherwise
-- judge a fresh custom plan cheaper and plan the claim again on every call. A generic plan does not
-- know the limit, and may then prefer a bitmap scan of every enqueued step of the namespace and a
-- sort (hundreds of pages per claim with a backlog, seen with auto_explain) to the claim index's
-- own order, which stops after p_limit rows: bitmap scans are off for the claim.
SET plan_cache_mode = force_generic_plan
SET enable_bitmapscan = off
AS $$
DECLARE
  -- The clock, not the transaction's start: a flush claims after its completion, whose children's
  -- enqueue (and a claim's retry promotions) must sort before the start.
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_rows tasker.workflow_steps[];
  v_events json[];
BEGIN
  IF p_limit IS NULL OR p_limit <= 0 OR cardinality(p_namespaces) IS NULL THEN
    RETURN;
  END IF;

  WITH picked AS (
    SELECT c.workflow_step_uuid FROM unnest(p_namespaces) AS ns(name)
    CROSS JOIN LATERAL (
      SELECT s.workflow_step_uuid, s.priority, s.ready_at FROM tasker.workflow_steps s
      WHERE s.status = 'enqueued' AND s.namespace_name = ns.name
        -- A per-row check (not a join), so the plan walks the claim index, whatever the number
        -- of running tasks.
        AND (SELECT t.status FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid) = 'steps_in_process'
      ORDER BY s.priority DESC, s.ready_at
      LIMIT p_limit
      FOR UPDATE OF s SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.ready_at
    LIMIT p_limit
  ), claimed AS (
    -- The start transition is written with the attempt's end; until then claim_seq holds its key.
    UPDATE tasker.workflow_steps s
    SET status = 'in_progress', in_process = true, attempts = s.attempts + 1,
        last_attempted_at = v_now, claim_owner = p_worker, claim_token = tasker.uuid_v7(),
        claim_expires_at = v_now + make_interval(secs => p_visibility_seconds),
        transition_seq = s.transition_seq + 1, claim_seq = s.transition_seq + 1, updated_at = v_now
    FROM picked WHERE s.workflow_step_uuid = picked.workflow_step_uuid
    RETURNING s.*
  )
  SELECT array_agg(c) INTO v_rows FROM claimed c;
  IF v_rows IS NULL THEN
    RETURN;
  END IF;

  v_events := tasker.step_events(v_rows, p_worker);
  RETURN QUERY SELECT e FROM unnest(v_events) AS e WHERE e IS NOT NULL;
END $$;

-- Moves due retries of the given namespaces back to the queue and recovers steps whose claim
-- expired (their worker died or hung): each counts as a failed, retryable attempt. Returns the
-- number of steps moved; returns at once, through two probes of the partial indexes, when nothing
-- is due (the common case: every claim runs it first). No bitmap scans: on young tables the
-- expired-claim probe was planned as one, and a bitmap scan never marks dead index entries, so
-- every claim visited each claim ever expired (thousands of dead entries after a few hundred tasks).
CREATE OR REPLACE FUNCTION tasker.recover_steps(p_namespaces text[], p_limit integer) RETURNS integer
LANGUAGE plpgsql
SET enable_bitmapscan = off
AS $$
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
    INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state,
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

-- Due retries and expired claims of the given namespaces put back (recover_steps), and when the
-- next retry of these namespaces falls due: {"moved": steps put back, "next_due_in_ms": ms until
-- then, null when none}. A worker's claimer runs it in the transaction of each claim.
CREATE OR REPLACE FUNCTION tasker.recover_due(p_namespaces text[], p_limit integer) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
  v_moved integer := tasker.recover_steps(p_namespaces, p_limit);
  v_due timestamp;
BEGIN
  SELECT min(next_retry_at) INTO v_due FROM tasker.workflow_steps
  WHERE status = 'waiting_for_retry' AND namespace_name = ANY (p_namespaces);
  RETURN json_build_object('moved', v_moved, 'next_due_in_ms',
    CASE WHEN v_due IS NOT NULL
         THEN greatest(0, ceil(extract(epoch FROM v_due - (clock_timestamp() AT TIME ZONE 'utc')) * 1000))::bigint
    END);
END $$;

-- The claim of a worker in one call: first due retries and expired claims are put back, then up
-- to p_limit enqueued steps are claimed. Returns {"steps": [step event rows], "next_due_in_ms": ms
-- until the next retry of these namespaces falls due (null when none)}. The claimer uses the
-- flush's claim statement instead, and this when that statement fails (claim_steps fails for good
-- only a step whose event cannot be built).
CREATE OR REPLACE FUNCTION tasker.claim(p_worker uuid, p_namespaces text[], p_limit integer,
                                        p_visibility_seconds integer) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
  v_recovered json := tasker.recover_due(p_namespaces, 100);
  v_steps json;
BEGIN
  SELECT coalesce(json_agg(e), '[]'::json) INTO v_steps
  FROM tasker.claim_steps(p_worker, p_namespaces, p_limit, p_visibility_seconds) AS e;
  RETURN json_build_object('steps', v_steps, 'next_due_in_ms', v_recovered->'next_due_in_ms');
END $$;

-- Keeps a worker's claims alive while their handlers run (a heartbeat); returns how many it held.
CREATE OR REPLACE FUNCTION tasker.extend_claims(p_worker uuid, p_tokens jsonb, p_visibility_seconds integer)
RETURNS integer LANGUAGE sql AS $$
  WITH extended AS (
    UPDATE tasker.workflow_steps
    SET claim_expires_at = (clock_timestamp() AT TIME ZONE 'utc') + make_interval(secs => p_visibility_seconds)
    WHERE status = 'in_progress' AND claim_owner = p_worker
      AND claim_token IN (SELECT t::uuid FROM jsonb_array_elements_text(p_tokens) AS t)
    RETURNING 1
  )
  SELECT count(*)::integer FROM extended
$$;

-- Gives claimed but never started steps back to the queue (a stopping worker's unstarted claims).
-- The attempt the claim counted is returned too, since the handler never ran.
CREATE OR REPLACE FUNCTION tasker.release_claims(p_tokens jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_count integer;
  v_namespaces text[];
  v_ns text;
BEGIN
  -- o is the row before this update: the released claim becomes a 'released' history row.
  WITH released AS (
    UPDATE tasker.workflow_steps s
    SET status = 'enqueued', in_process = false, attempts = greatest(s.attempts - 1, 0),
        claim_owner = NULL, claim_token = NULL, claim_expires_at = NULL, claim_seq = NULL, enqueue_seq = NULL,
        transition_seq = s.transition_seq + 1, updated_at = v_now
    FROM tasker.workflow_steps o
    WHERE s.status = 'in_progress' AND o.workflow_step_uuid = s.workflow_step_uuid
      AND s.claim_token IN (SELECT t::uuid FROM jsonb_array_elements_text(p_tokens) AS t)
    RETURNING s.workflow_step_uuid, s.task_uuid, s.transition_seq, s.namespace_name, o.attempts, o.claim_owner,
              o.enqueue_seq, o.ready_at, o.claim_seq, o.last_attempted_at
  ), logged AS (
    INSERT INTO tasker.workflow_step_attempts (attempt_uuid, workflow_step_uuid, task_uuid, kind, attempt,
      worker_uuid, enqueue_seq, enqueued_at, claim_seq, claimed_at, result_seq, result_state, result_event,
      finished_at, success, applied)
    SELECT tasker.uuid_with_last_byte(tasker.uuid_v7(), 0), workflow_step_uuid, task_uuid, 'released', attempts,
           claim_owner, enqueue_seq, ready_at, claim_seq, last_attempted_at, transition_seq, 'enqueued',
           'release_claim', v_now, false, false
    FROM released
  )
  SELECT count(*), array_agg(DISTINCT namespace_name) INTO v_count, v_namespaces FROM released;

  FOREACH v_ns IN ARRAY coalesce(v_namespaces, '{}') LOOP
    PERFORM pg_notify('tasker_steps_' || v_ns, '');
  END LOOP;
  RETURN v_count;
END $$;
