-- The step event: everything a handler needs, built for each claimed step.

-- The claim's rows for claimed steps p_steps, in their order (ord), from which the worker builds
-- the step event a handler sees (core/tc_step_event.c: the positions are listed there): the task
-- and its context, the step row, the results of all its completed ancestors, and the template's
-- name, version and updated_at, with which the worker finds the step's definition in its own cache.
-- A positional json array per step: json_build_array writes text, where a nested jsonb object costs
-- a conversion per key. SQL, one SELECT, stable: the planner inlines it into the statement that
-- calls it (the flush's claim), so every step's row is one join, not a function call of its own.
-- The ancestors are found level by level through the edges' to_step_uuid index, and each through
-- its primary key (lateral subqueries the planner cannot flatten into a hash join over every edge),
-- so the walk costs what the step's own ancestry costs.
CREATE OR REPLACE FUNCTION tasker.step_event_rows(p_steps tasker.workflow_steps[])
RETURNS TABLE (ord bigint, workflow_step_uuid uuid, event json)
LANGUAGE sql STABLE AS $$
  SELECT s.ordinality, s.workflow_step_uuid, json_build_array(
    s.claim_token, s.task_uuid, s.workflow_step_uuid, t.correlation_id, t.parent_correlation_id,
    s.handler_callable, s.handler_method, s.claim_expires_at,
    t.named_task_uuid, t.complete, t.requested_at, t.initiator, t.source_system, t.reason, t.tags,
    t.context, t.identity_hash, t.priority, t.created_at, t.updated_at,
    nt.name, nt.version, t.namespace_name,
    s.name, s.template_step_name, s.step_type, s.retryable, s.max_attempts, s.in_process, s.processed,
    -- The handler sees the attempts made before this one (the first run sees 0).
    s.processed_at, s.attempts - 1, s.last_attempted_at, s.backoff_request_seconds,
    s.inputs, s.results, s.checkpoint, s.created_at, s.updated_at,
    coalesce(d.results, '{}'::jsonb),
    nt.updated_at)
  FROM unnest(p_steps) WITH ORDINALITY AS s
  JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  LEFT JOIN LATERAL (
    WITH RECURSIVE anc(uuid) AS (
      SELECT e.from_step_uuid FROM tasker.workflow_step_edges e
      WHERE e.to_step_uuid = s.workflow_step_uuid
      UNION
      -- OFFSET 0 keeps the subquery lateral: one index probe per step found so far.
      SELECT p.from_step_uuid FROM anc CROSS JOIN LATERAL (
        SELECT e.from_step_uuid FROM tasker.workflow_step_edges e
        WHERE e.to_step_uuid = anc.uuid OFFSET 0) p
    )
    SELECT jsonb_object_agg(w.name, w.results) AS results
    FROM anc CROSS JOIN LATERAL (
      SELECT w.name, w.results, w.status FROM tasker.workflow_steps w
      WHERE w.workflow_step_uuid = anc.uuid OFFSET 0) w
    WHERE w.status IN ('complete', 'resolved_manually') AND w.results IS NOT NULL
  ) d ON true
$$;

-- The claim's row for one claimed step s (step_event_rows).
CREATE OR REPLACE FUNCTION tasker.step_event(s tasker.workflow_steps) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT e.event FROM tasker.step_event_rows(ARRAY[s]) e
$$;

-- The steps of a template by name ({name: definition}) and the template's updated_at: what the
-- worker caches to complete its step events.
CREATE OR REPLACE FUNCTION tasker.template_step_definitions(p_named_task uuid) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object('updated_at', nt.updated_at, 'steps',
           coalesce((SELECT jsonb_object_agg(d->>'name', d) FROM jsonb_array_elements(nt.configuration->'steps') AS d),
                    '{}'::jsonb))
  FROM tasker.named_tasks nt WHERE nt.named_task_uuid = p_named_task
$$;

-- The event rows of claimed steps p_rows, in their order. They are built in a block of their own
-- (it writes nothing, so the common case costs no subtransaction id); when one cannot be built
-- (its ancestors' results past what one value may hold), they are built one at a time and a step
-- whose event fails fails for good with a StepEventError naming why, its place left NULL.
CREATE OR REPLACE FUNCTION tasker.step_events(p_rows tasker.workflow_steps[], p_worker uuid) RETURNS json[]
LANGUAGE plpgsql AS $$
DECLARE
  v_events json[];
  v_message text;
  v_row tasker.workflow_steps;
BEGIN
  BEGIN
    SELECT array_agg(e.event ORDER BY e.ord) INTO v_events FROM tasker.step_event_rows(p_rows) e;
  EXCEPTION WHEN OTHERS THEN
    v_events := '{}';
    FOREACH v_row IN ARRAY p_rows LOOP
      BEGIN
        v_events := v_events || tasker.step_event(v_row);
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        v_events := array_append(v_events, NULL::json);
        PERFORM tasker.apply_claimed_step_result(v_row, p_worker, jsonb_build_object(
          'step_uuid', v_row.workflow_step_uuid, 'success', false, 'status', 'failed', 'result', NULL,
          'error', jsonb_build_object('message', 'the step event could not be built: ' || v_message,
                                      'error_type', 'StepEventError', 'retryable', false),
          'metadata', jsonb_build_object('retryable', false, 'error_type', 'StepEventError')),
          'step_event_failed');
      END;
    END LOOP;
  END;
  RETURN v_events;
END $$;
