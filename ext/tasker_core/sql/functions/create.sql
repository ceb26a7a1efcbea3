-- Task creation: one transaction inserts the task, its initial steps, edges and first transitions.

-- The creation itself, shared by create_task and create_tasks. p_notify false leaves the
-- notification of the namespace's workers to the caller (create_tasks sends one per namespace).
CREATE OR REPLACE FUNCTION tasker.insert_task(p_task_uuid uuid, p_request jsonb, p_notify boolean) RETURNS jsonb
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

  v_status := CASE WHEN v_total = 0 THEN 'complete' ELSE 'steps_in_process' END;

  INSERT INTO tasker.tasks (task_uuid, named_task_uuid, namespace_name, status, complete, completed_at,
                            initiator, source_system, reason, tags, context, identity_hash, priority,
                            correlation_id, parent_correlation_id, requested_at, total_steps,
                            unfinished_steps, active_steps, transition_seq)
  VALUES (p_task_uuid, nt.named_task_uuid, v_ns_name, v_status, v_total = 0,
          CASE WHEN v_total = 0 THEN v_now END, p_request->>'initiator',
          p_request->>'source_system', p_request->>'reason',
          coalesce(p_request->'tags', '[]'::jsonb), v_context, v_hash,
          coalesce((p_request->>'priority')::integer, 0),
          (p_request->>'correlation_id')::uuid, (p_request->>'parent_correlation_id')::uuid,
          coalesce((p_request->>'requested_at')::timestamp, v_now), v_total, v_total, v_roots,
          CASE WHEN v_total = 0 THEN 3 ELSE 4 END)
  ON CONFLICT (identity_hash) DO NOTHING
  RETURNING task_uuid INTO v_task;

  IF v_task IS NULL THEN
    SELECT task_uuid, status, correlation_id INTO v_existing FROM tasker.tasks WHERE identity_hash = v_hash;
    RETURN jsonb_build_object('task_uuid', v_existing.task_uuid, 'status', v_existing.status,
                              'correlation_id', v_existing.correlation_id, 'created', false);
  END IF;

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
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, created_at)
    VALUES (v_task, NULL, 'pending', 'initialize', 1, v_now),
           (v_task, 'pending', 'initializing', 'start', 2, v_now),
           (v_task, 'initializing', 'complete', 'no_steps_found', 3, v_now);
  ELSE
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
    VALUES (v_task, NULL, 'pending', 'initialize', 1, '{}', v_now),
           (v_task, 'pending', 'initializing', 'start', 2, '{}', v_now),
           (v_task, 'initializing', 'enqueuing_steps', 'ready_steps_found', 3,
            jsonb_build_object('count', v_roots), v_now),
           (v_task, 'enqueuing_steps', 'steps_in_process', 'steps_enqueued', 4, '{}', v_now);
    IF p_notify THEN
      PERFORM pg_notify('tasker_steps_' || v_ns_name, '');
    END IF;
  END IF;

  RETURN jsonb_build_object('task_uuid', v_task, 'status', v_status,
                            'correlation_id', p_request->>'correlation_id', 'created', true,
                            'step_count', v_total, 'namespace', v_ns_name);
END $$;

CREATE OR REPLACE FUNCTION tasker.create_task(p_task_uuid uuid, p_request jsonb) RETURNS jsonb
LANGUAGE sql AS $$
  SELECT tasker.insert_task(p_task_uuid, p_request, true) - 'namespace'
$$;

-- create_task answering with the whole TaskResponse (plus "created" and "step_count"), in the same
-- round trip. Under a concurrent duplicate the read runs after create_task's wait for the other
-- transaction, with a fresh snapshot (this function is volatile), so it sees the winner's task.
CREATE OR REPLACE FUNCTION tasker.create_task_response(p_task_uuid uuid, p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_created jsonb := tasker.create_task(p_task_uuid, p_request);
  v_task jsonb;
BEGIN
  v_task := tasker.get_task((v_created->>'task_uuid')::uuid);
  RETURN v_task || jsonb_build_object('created', v_created->'created',
                                      'step_count', coalesce(v_created->'step_count', v_task->'total_steps'));
END $$;

-- Many tasks in one transaction: p_requests is an array of create_task requests, each with its
-- "task_uuid" (the uuid a new task gets). Each goes through insert_task in order, so a repeated
-- identity within the batch, or one that already exists, gives back the existing task
-- ("created": false), exactly as one create_task after another would. The workers of each
-- namespace that received steps are notified once. The answer is an array of create_task_response
-- answers in request order. An error names the request's index and aborts the whole batch.
CREATE OR REPLACE FUNCTION tasker.create_tasks(p_requests jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_i integer := 0;   -- requests done; the one being created is requests[v_i] (0-based)
  v_req jsonb;
  v_created jsonb;
  v_uuids uuid[] := '{}';
  v_flags jsonb[] := '{}';  -- subscript assignment appends in place (an expanded array)
  v_notify text[] := '{}';
  v_state text;
  v_message text;
BEGIN
  BEGIN
    FOR v_req IN SELECT r FROM jsonb_array_elements(p_requests) AS x(r) LOOP
      v_created := tasker.insert_task((v_req->>'task_uuid')::uuid, v_req - 'task_uuid', false);
      v_i := v_i + 1;
      v_uuids[v_i] := (v_created->>'task_uuid')::uuid;
      v_flags[v_i] := jsonb_strip_nulls(jsonb_build_object('created', v_created->'created',
                                                           'step_count', v_created->'step_count'));
      IF (v_created->>'created')::boolean AND (v_created->>'step_count')::integer > 0
         AND NOT (v_created->>'namespace' = ANY (v_notify)) THEN
        v_notify := v_notify || (v_created->>'namespace');
      END IF;
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    RAISE EXCEPTION 'requests[%]: %', v_i, v_message USING ERRCODE = v_state;
  END;

  PERFORM pg_notify('tasker_steps_' || ns, '') FROM unnest(v_notify) AS ns;

  RETURN (SELECT coalesce(jsonb_agg(t.task || jsonb_build_object(
                   'created', v_flags[t.ord::integer]->'created',
                   'step_count', coalesce(v_flags[t.ord::integer]->'step_count', t.task->'total_steps'))
                 ORDER BY t.ord), '[]'::jsonb)
          FROM (SELECT u.ord, tasker.get_task(u.uuid) AS task
                FROM unnest(v_uuids) WITH ORDINALITY AS u(uuid, ord)) AS t);
END $$;
