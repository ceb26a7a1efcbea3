-- The claim of 0011 picked the steps into an array and updated "= ANY (array)": PostgreSQL planned
-- that UPDATE again on every call (a custom plan per array, about 0.16 ms, seen with
-- pg_stat_statements.track_planning). Here the claim is one statement again, the pick a CTE the
-- UPDATE joins by primary key, so the plan is generic and cached for the session.

CREATE OR REPLACE FUNCTION tasker.claim_steps(p_worker uuid, p_namespaces text[], p_limit integer,
                                              p_visibility_seconds integer) RETURNS SETOF jsonb
LANGUAGE plpgsql
-- Generic plans, cached for the session: with an array of namespaces PostgreSQL would otherwise
-- judge a fresh custom plan cheaper and plan the claim again on every call.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamp := now() AT TIME ZONE 'utc';
BEGIN
  IF p_limit IS NULL OR p_limit <= 0 OR cardinality(p_namespaces) IS NULL THEN
    RETURN;
  END IF;

  -- One namespace (the common case) walks the claim index directly; several take the first
  -- p_limit of each through a lateral walk. The two statements differ only in their pick.
  IF cardinality(p_namespaces) = 1 THEN
    RETURN QUERY
    WITH picked AS (
      SELECT s.workflow_step_uuid FROM tasker.workflow_steps s
      WHERE s.status = 'enqueued' AND s.namespace_name = p_namespaces[1]
        -- A per-row check (not a join), so the plan walks the claim index, whatever the number
        -- of running tasks.
        AND (SELECT t.status FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid) = 'steps_in_process'
      ORDER BY s.priority DESC, s.ready_at
      LIMIT p_limit
      FOR UPDATE OF s SKIP LOCKED
    ), claimed AS (
      UPDATE tasker.workflow_steps s
      SET status = 'in_progress', in_process = true, attempts = s.attempts + 1,
          last_attempted_at = v_now, claim_owner = p_worker, claim_token = tasker.uuid_v7(),
          claim_expires_at = v_now + make_interval(secs => p_visibility_seconds),
          transition_seq = s.transition_seq + 1, updated_at = v_now
      FROM picked WHERE s.workflow_step_uuid = picked.workflow_step_uuid
      RETURNING s.*
    ), logged AS (
      INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state,
        to_state, event, attempt, worker_uuid, sort_key, metadata)
      SELECT c.workflow_step_uuid, c.task_uuid, 'enqueued', 'in_progress', 'start', c.attempts,
             p_worker, c.transition_seq, jsonb_build_object('claim_token', c.claim_token)
      FROM claimed c
    )
    SELECT tasker.step_event(c::tasker.workflow_steps) FROM claimed c;
    RETURN;
  END IF;

  RETURN QUERY
  WITH picked AS (
    -- The first p_limit of each namespace in the claim index's order, then the best p_limit of
    -- those. Rows locked here but not claimed stay locked only until this transaction ends.
    SELECT c.workflow_step_uuid FROM unnest(p_namespaces) AS ns(name)
    CROSS JOIN LATERAL (
      SELECT s.workflow_step_uuid, s.priority, s.ready_at FROM tasker.workflow_steps s
      WHERE s.status = 'enqueued' AND s.namespace_name = ns.name
        AND (SELECT t.status FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid) = 'steps_in_process'
      ORDER BY s.priority DESC, s.ready_at
      LIMIT p_limit
      FOR UPDATE OF s SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.ready_at
    LIMIT p_limit
  ), claimed AS (
    UPDATE tasker.workflow_steps s
    SET status = 'in_progress', in_process = true, attempts = s.attempts + 1,
        last_attempted_at = v_now, claim_owner = p_worker, claim_token = tasker.uuid_v7(),
        claim_expires_at = v_now + make_interval(secs => p_visibility_seconds),
        transition_seq = s.transition_seq + 1, updated_at = v_now
    FROM picked WHERE s.workflow_step_uuid = picked.workflow_step_uuid
    RETURNING s.*
  ), logged AS (
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state,
      to_state, event, attempt, worker_uuid, sort_key, metadata)
    SELECT c.workflow_step_uuid, c.task_uuid, 'enqueued', 'in_progress', 'start', c.attempts,
           p_worker, c.transition_seq, jsonb_build_object('claim_token', c.claim_token)
    FROM claimed c
  )
  SELECT tasker.step_event(c::tasker.workflow_steps) FROM claimed c;
END $$;

-- 0010's complete_and_claim, with the "is work left" probe as its own statement on a text
-- variable: as one expression over the jsonb outcome it was planned again on every call.
CREATE OR REPLACE FUNCTION tasker.complete_and_claim(p_step uuid, p_claim_token uuid, p_worker uuid, p_result jsonb,
                                                     p_claim_next integer, p_namespaces text[],
                                                     p_visibility_seconds integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_outcome jsonb := tasker.complete_step(p_step, p_claim_token, p_worker, p_result, p_claim_next <= 0);
  v_next jsonb := '[]'::jsonb;
  v_ns text;
  v_wake boolean;
BEGIN
  IF p_claim_next > 0 AND (v_outcome->>'applied')::boolean THEN
    SELECT coalesce(jsonb_agg(e), '[]'::jsonb) INTO v_next
    FROM tasker.claim_steps(p_worker, p_namespaces, p_claim_next, p_visibility_seconds) AS e;
    v_outcome := v_outcome || jsonb_build_object('next_steps', v_next);
    -- Wake other workers only when work is left in the queue, or for a retry's due time.
    v_ns := v_outcome->>'namespace';
    v_wake := v_outcome->>'step_status' = 'waiting_for_retry';
    IF NOT v_wake AND (v_outcome->>'enqueued')::integer > 0 THEN
      SELECT EXISTS (SELECT 1 FROM tasker.workflow_steps WHERE status = 'enqueued' AND namespace_name = v_ns)
      INTO v_wake;
    END IF;
    IF v_wake THEN
      PERFORM pg_notify('tasker_steps_' || v_ns, '');
    END IF;
  END IF;
  RETURN v_outcome;
END $$;
