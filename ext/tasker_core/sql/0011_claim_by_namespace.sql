-- The claim walks the claim index once per namespace, so it costs the same with an empty queue and
-- with a backlog of thousands of steps.
--
-- 0002's claim filtered on namespace_name = ANY (p_namespaces): the planner cannot take rows in
-- the order of workflow_steps_claim_idx (namespace_name, priority DESC, ready_at) under an ANY, so
-- it read every enqueued step of those namespaces, checked each one's task and sorted them, to
-- claim one (11 ms with 5,000 steps enqueued, 0.07 ms with an equality).

CREATE OR REPLACE FUNCTION tasker.claim_steps(p_worker uuid, p_namespaces text[], p_limit integer,
                                              p_visibility_seconds integer) RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := now() AT TIME ZONE 'utc';
  v_picked uuid[];
BEGIN
  IF p_limit IS NULL OR p_limit <= 0 OR cardinality(p_namespaces) IS NULL THEN
    RETURN;
  END IF;

  IF cardinality(p_namespaces) = 1 THEN
    SELECT array_agg(s.workflow_step_uuid) INTO v_picked
    FROM (
      SELECT s.workflow_step_uuid FROM tasker.workflow_steps s
      WHERE s.status = 'enqueued' AND s.namespace_name = p_namespaces[1]
        -- A per-row check (not a join), so the plan walks the claim index, whatever the number
        -- of running tasks.
        AND (SELECT t.status FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid) = 'steps_in_process'
      ORDER BY s.priority DESC, s.ready_at
      LIMIT p_limit
      FOR UPDATE OF s SKIP LOCKED
    ) s;
  ELSE
    -- The first p_limit of each namespace in index order, then the best p_limit of those. Rows
    -- locked here but not claimed stay locked only until this transaction ends.
    SELECT array_agg(c.workflow_step_uuid) INTO v_picked
    FROM (
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
    ) c;
  END IF;

  IF v_picked IS NULL THEN
    RETURN;
  END IF;

  RETURN QUERY
  WITH claimed AS (
    UPDATE tasker.workflow_steps s
    SET status = 'in_progress', in_process = true, attempts = s.attempts + 1,
        last_attempted_at = v_now, claim_owner = p_worker, claim_token = tasker.uuid_v7(),
        claim_expires_at = v_now + make_interval(secs => p_visibility_seconds),
        transition_seq = s.transition_seq + 1, updated_at = v_now
    WHERE s.workflow_step_uuid = ANY (v_picked)
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

-- 0005's release_children was a SQL-language function, planned again on every call; as PL/pgSQL
-- its plan is cached for the session.
CREATE OR REPLACE FUNCTION tasker.release_children(p_step uuid, p_now timestamp) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
BEGIN
  WITH released AS (
    UPDATE tasker.workflow_steps c
    SET pending_parents = c.pending_parents - 1,
        status = CASE WHEN c.pending_parents = 1 AND c.status = 'pending' THEN 'enqueued' ELSE c.status END,
        ready_at = CASE WHEN c.pending_parents = 1 AND c.status = 'pending' THEN p_now ELSE c.ready_at END,
        transition_seq = CASE WHEN c.pending_parents = 1 AND c.status = 'pending'
                              THEN c.transition_seq + 1 ELSE c.transition_seq END,
        updated_at = p_now
    FROM tasker.workflow_step_edges e
    WHERE e.from_step_uuid = p_step AND e.to_step_uuid = c.workflow_step_uuid
    RETURNING c.workflow_step_uuid, c.task_uuid, c.status, c.pending_parents, c.transition_seq
  ), logged AS (
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state,
      to_state, event, sort_key, created_at)
    SELECT workflow_step_uuid, task_uuid, 'pending', 'enqueued', 'enqueue', transition_seq, p_now
    FROM released WHERE status = 'enqueued' AND pending_parents = 0
    RETURNING 1
  )
  SELECT count(*)::integer INTO v_count FROM logged;
  RETURN v_count;
END $$;
