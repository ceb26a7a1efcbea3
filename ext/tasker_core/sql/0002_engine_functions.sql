-- The engine's hot path as SQL functions: one round trip each for create, claim and complete
-- (complete_step and the claim wrapper with recovery live in 0005).
--
-- Custom SQLSTATEs raised here (mapped to Ruby exception classes by the binding):
--   TK404 not found, TK422 invalid request, TK409 invalid state for the operation.
-- Lock order, everywhere: a step row the caller owns, then its task row, then other step rows.

-- Registers (or updates) a normalized template; returns its named_task_uuid.
CREATE OR REPLACE FUNCTION tasker.register_template(p_template jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  v_ns uuid;
  v_uuid uuid;
BEGIN
  INSERT INTO tasker.task_namespaces (name) VALUES (p_template->>'namespace_name')
  ON CONFLICT (name) DO NOTHING;
  SELECT task_namespace_uuid INTO v_ns FROM tasker.task_namespaces
  WHERE name = p_template->>'namespace_name';

  INSERT INTO tasker.named_tasks AS nt (task_namespace_uuid, name, version, description,
                                        configuration, identity_strategy)
  VALUES (v_ns, p_template->>'name', p_template->>'version', p_template->>'description', p_template,
          coalesce(p_template->>'identity_strategy', 'strict')::tasker.identity_strategy)
  ON CONFLICT (task_namespace_uuid, name, version) DO UPDATE
    SET description = EXCLUDED.description,
        configuration = EXCLUDED.configuration,
        identity_strategy = EXCLUDED.identity_strategy,
        updated_at = now() AT TIME ZONE 'utc'
    WHERE nt.configuration IS DISTINCT FROM EXCLUDED.configuration
       OR nt.identity_strategy IS DISTINCT FROM EXCLUDED.identity_strategy
  RETURNING named_task_uuid INTO v_uuid;

  IF v_uuid IS NULL THEN  -- unchanged: the conflict update was skipped
    SELECT named_task_uuid INTO v_uuid FROM tasker.named_tasks
    WHERE task_namespace_uuid = v_ns AND name = p_template->>'name'
      AND version = p_template->>'version';
  END IF;
  RETURN v_uuid;
END $$;

-- Creates a task with its initial steps, edges and transitions, enqueues the root steps and
-- notifies the namespace channel, all in the caller's transaction. A request whose identity
-- (idempotency key or the template's identity strategy) matches an existing task returns that
-- task with "created": false instead of a duplicate.
CREATE OR REPLACE FUNCTION tasker.create_task(p_task_uuid uuid, p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_ns_name text := coalesce(p_request->>'namespace', 'default');
  v_name text := p_request->>'name';
  v_version text := coalesce(p_request->>'version', '1.0.0');
  v_context jsonb := coalesce(p_request->'context', '{}'::jsonb);
  v_key text := p_request->>'idempotency_key';
  v_now timestamp := now() AT TIME ZONE 'utc';
  nt record;
  v_hash text;
  v_task uuid;
  v_total integer;
  v_roots integer;
  v_status text;
  v_existing record;
  v_steps jsonb;
BEGIN
  SELECT n.named_task_uuid, n.configuration, n.identity_strategy INTO nt
  FROM tasker.named_tasks n JOIN tasker.task_namespaces ns USING (task_namespace_uuid)
  WHERE ns.name = v_ns_name AND n.name = v_name AND n.version = v_version;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'task template not found: namespace=%, name=%, version=%',
      v_ns_name, v_name, v_version USING ERRCODE = 'TK404';
  END IF;

  IF v_key IS NOT NULL THEN
    v_hash := encode(sha256(convert_to(nt.named_task_uuid::text || chr(1) || 'key' || chr(1) || v_key, 'UTF8')), 'hex');
  ELSIF nt.identity_strategy = 'caller_provided' THEN
    RAISE EXCEPTION 'idempotency_key is required when named task uses CallerProvided identity strategy'
      USING ERRCODE = 'TK422';
  ELSIF nt.identity_strategy = 'always_unique' THEN
    v_hash := 'unique:' || p_task_uuid::text;
  ELSE
    v_hash := encode(sha256(convert_to(nt.named_task_uuid::text || chr(1) || 'ctx' || chr(1) || v_context::text, 'UTF8')), 'hex');
  END IF;

  INSERT INTO tasker.tasks (task_uuid, named_task_uuid, namespace_name, status, initiator,
                            source_system, reason, tags, context, identity_hash, priority,
                            correlation_id, parent_correlation_id, requested_at)
  VALUES (p_task_uuid, nt.named_task_uuid, v_ns_name, 'pending', p_request->>'initiator',
          p_request->>'source_system', p_request->>'reason',
          coalesce(p_request->'tags', '[]'::jsonb), v_context, v_hash,
          coalesce((p_request->>'priority')::integer, 0),
          (p_request->>'correlation_id')::uuid, (p_request->>'parent_correlation_id')::uuid,
          coalesce((p_request->>'requested_at')::timestamp, v_now))
  ON CONFLICT (identity_hash) DO NOTHING
  RETURNING task_uuid INTO v_task;

  IF v_task IS NULL THEN
    SELECT task_uuid, status, correlation_id INTO v_existing FROM tasker.tasks WHERE identity_hash = v_hash;
    RETURN jsonb_build_object('task_uuid', v_existing.task_uuid, 'status', v_existing.status,
                              'correlation_id', v_existing.correlation_id, 'created', false);
  END IF;

  -- The initial step set: every template step the normalizer marked "initial", with fresh uuids.
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'uuid', tasker.uuid_v7(), 'name', d->>'name', 'def', d, 'position', ord,
           'deps', coalesce(d->'dependencies', '[]'::jsonb),
           'pending', jsonb_array_length(coalesce(d->'dependencies', '[]'::jsonb)))), '[]'::jsonb)
  INTO v_steps
  FROM jsonb_array_elements(nt.configuration->'steps') WITH ORDINALITY AS x(d, ord)
  WHERE coalesce((d->>'initial')::boolean, true);

  SELECT count(*), count(*) FILTER (WHERE (n->>'pending')::integer = 0) INTO v_total, v_roots
  FROM jsonb_array_elements(v_steps) AS n;

  INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, name, template_step_name,
    step_type, position, namespace_name, handler_callable, handler_method, status, retryable, max_attempts,
    priority, pending_parents, ready_at, inputs, transition_seq, created_at, updated_at)
  SELECT (n->>'uuid')::uuid, v_task, n->>'name', n->>'name', coalesce(n->'def'->>'type', 'standard'),
         (n->>'position')::integer, v_ns_name, n->'def'->'handler'->>'callable', coalesce(n->'def'->'handler'->>'method', 'call'),
         CASE WHEN (n->>'pending')::integer = 0 THEN 'enqueued' ELSE 'pending' END,
         coalesce((n->'def'->'retry'->>'retryable')::boolean, true),
         coalesce((n->'def'->'retry'->>'max_attempts')::integer, 3),
         coalesce((p_request->>'priority')::integer, 0), (n->>'pending')::integer,
         CASE WHEN (n->>'pending')::integer = 0 THEN v_now END,
         coalesce(n->'def'->'handler'->'initialization', '{}'::jsonb),
         CASE WHEN (n->>'pending')::integer = 0 THEN 2 ELSE 1 END, v_now, v_now
  FROM jsonb_array_elements(v_steps) AS n;

  INSERT INTO tasker.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid, name)
  SELECT v_task, (p->>'uuid')::uuid, (c->>'uuid')::uuid, 'provides'
  FROM jsonb_array_elements(v_steps) AS c
  CROSS JOIN LATERAL jsonb_array_elements_text(c->'deps') AS d(dep)
  JOIN jsonb_array_elements(v_steps) AS p ON p->>'name' = d.dep;

  INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state,
    to_state, event, sort_key, created_at)
  SELECT (n->>'uuid')::uuid, v_task, NULL, 'pending', 'initialize', 1, v_now
  FROM jsonb_array_elements(v_steps) AS n
  UNION ALL
  SELECT (n->>'uuid')::uuid, v_task, 'pending', 'enqueued', 'enqueue', 2, v_now
  FROM jsonb_array_elements(v_steps) AS n WHERE (n->>'pending')::integer = 0;

  IF v_total = 0 THEN
    v_status := 'complete';
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, created_at)
    VALUES (v_task, NULL, 'pending', 'initialize', 1, v_now),
           (v_task, 'pending', 'initializing', 'start', 2, v_now),
           (v_task, 'initializing', 'complete', 'no_steps_found', 3, v_now);
    UPDATE tasker.tasks SET status = v_status, complete = true, completed_at = v_now,
           transition_seq = 3 WHERE task_uuid = v_task;
  ELSE
    v_status := 'steps_in_process';
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
    VALUES (v_task, NULL, 'pending', 'initialize', 1, '{}', v_now),
           (v_task, 'pending', 'initializing', 'start', 2, '{}', v_now),
           (v_task, 'initializing', 'enqueuing_steps', 'ready_steps_found', 3,
            jsonb_build_object('count', v_roots), v_now),
           (v_task, 'enqueuing_steps', 'steps_in_process', 'steps_enqueued', 4, '{}', v_now);
    UPDATE tasker.tasks SET status = v_status, total_steps = v_total, unfinished_steps = v_total,
           active_steps = v_roots, transition_seq = 4
    WHERE task_uuid = v_task;
    PERFORM pg_notify('tasker_steps_' || v_ns_name, '');
  END IF;

  RETURN jsonb_build_object('task_uuid', v_task, 'status', v_status,
                            'correlation_id', p_request->>'correlation_id', 'created', true,
                            'step_count', v_total);
END $$;

-- Builds the event a handler receives for one claimed step (SPEC 4.2's shape). PL/pgSQL, not SQL:
-- its plan is cached for the session instead of being planned again on every claim.
CREATE OR REPLACE FUNCTION tasker.step_event(s tasker.workflow_steps) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT jsonb_build_object(
    'event_id', s.claim_token,
    'claim_token', s.claim_token,
    'task_uuid', s.task_uuid,
    'step_uuid', s.workflow_step_uuid,
    'correlation_id', t.correlation_id,
    'task_correlation_id', t.correlation_id,
    'parent_correlation_id', t.parent_correlation_id,
    'handler_callable', s.handler_callable,
    'handler_method', s.handler_method,
    'claim_expires_at', s.claim_expires_at,
    'task_sequence_step', jsonb_build_object(
      'task', jsonb_build_object(
        'task', jsonb_build_object(
          'task_uuid', t.task_uuid, 'named_task_uuid', t.named_task_uuid, 'complete', t.complete,
          'requested_at', t.requested_at, 'initiator', t.initiator,
          'source_system', t.source_system, 'reason', t.reason, 'tags', t.tags,
          'context', t.context, 'identity_hash', t.identity_hash, 'priority', t.priority,
          'created_at', t.created_at, 'updated_at', t.updated_at,
          'correlation_id', t.correlation_id, 'parent_correlation_id', t.parent_correlation_id),
        'task_name', nt.name, 'task_version', nt.version, 'namespace_name', t.namespace_name),
      'workflow_step', jsonb_build_object(
        'workflow_step_uuid', s.workflow_step_uuid, 'task_uuid', s.task_uuid, 'name', s.name,
        'template_step_name', s.template_step_name, 'step_type', s.step_type,
        'retryable', s.retryable, 'max_attempts', s.max_attempts, 'in_process', s.in_process,
        'processed', s.processed, 'processed_at', s.processed_at,
        -- The handler sees the attempts made before this one (the first run sees 0).
        'attempts', s.attempts - 1, 'last_attempted_at', s.last_attempted_at,
        'backoff_request_seconds', s.backoff_request_seconds, 'inputs', s.inputs,
        'results', s.results, 'checkpoint', s.checkpoint,
        'created_at', s.created_at, 'updated_at', s.updated_at),
      -- The task's own steps (by its index), kept when they are ancestors of this step.
      'dependency_results', coalesce((
        SELECT jsonb_object_agg(ws.name, ws.results)
        FROM tasker.workflow_steps ws
        WHERE ws.task_uuid = s.task_uuid
          AND ws.status IN ('complete', 'resolved_manually') AND ws.results IS NOT NULL
          AND ws.workflow_step_uuid IN (
            WITH RECURSIVE anc(uuid) AS (
              SELECT e.from_step_uuid FROM tasker.workflow_step_edges e
              WHERE e.to_step_uuid = s.workflow_step_uuid
              UNION
              SELECT e.from_step_uuid FROM tasker.workflow_step_edges e JOIN anc ON e.to_step_uuid = anc.uuid
            )
            SELECT uuid FROM anc)
      ), '{}'::jsonb),
      'step_definition', coalesce((
        SELECT d FROM jsonb_array_elements(nt.configuration->'steps') AS d
        WHERE d->>'name' = s.template_step_name LIMIT 1), '{}'::jsonb)))
  FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid)
  WHERE t.task_uuid = s.task_uuid);
END $$;

-- Claims up to p_limit enqueued steps of the given namespaces for worker p_worker, highest
-- priority first, skipping rows other workers are claiming and steps of tasks that already ended.
-- Each claim gets a fresh token and an expiry; returns one step event per claimed step.
CREATE OR REPLACE FUNCTION tasker.claim_steps(p_worker uuid, p_namespaces text[], p_limit integer,
                                              p_visibility_seconds integer) RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := now() AT TIME ZONE 'utc';
BEGIN
  RETURN QUERY
  WITH picked AS (
    SELECT s.workflow_step_uuid FROM tasker.workflow_steps s
    WHERE s.status = 'enqueued' AND s.namespace_name = ANY (p_namespaces)
      -- A per-row check (not a join), so the plan walks the claim index, whatever the number of
      -- running tasks.
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
END $$;

-- tasker.complete_step, which applies a worker's result, is defined with the retry logic in 0005.

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
  WITH released AS (
    UPDATE tasker.workflow_steps s
    SET status = 'enqueued', in_process = false, attempts = greatest(s.attempts - 1, 0),
        claim_owner = NULL, claim_token = NULL, claim_expires_at = NULL,
        transition_seq = s.transition_seq + 1, updated_at = v_now
    WHERE s.status = 'in_progress'
      AND s.claim_token IN (SELECT t::uuid FROM jsonb_array_elements_text(p_tokens) AS t)
    RETURNING s.workflow_step_uuid, s.task_uuid, s.transition_seq, s.attempts, s.namespace_name
  ), logged AS (
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state,
      to_state, event, attempt, sort_key, created_at)
    SELECT workflow_step_uuid, task_uuid, 'in_progress', 'enqueued', 'release_claim', attempts,
           transition_seq, v_now
    FROM released
  )
  SELECT count(*), array_agg(DISTINCT namespace_name) INTO v_count, v_namespaces FROM released;

  FOREACH v_ns IN ARRAY coalesce(v_namespaces, '{}') LOOP
    PERFORM pg_notify('tasker_steps_' || v_ns, '');
  END LOOP;
  RETURN v_count;
END $$;
