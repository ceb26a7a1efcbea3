-- Task creation: one transaction inserts the task, its initial steps, edges and first transitions.

-- The creation itself, shared by create_task and create_tasks. p_notify false leaves the
-- notification of the namespace's workers to the caller (create_tasks sends one per namespace).
-- The answer is {task_uuid, status, correlation_id, created} (and step_count, namespace when
-- created); with p_answer, a created task is answered with its whole TaskResponse instead (as
-- get_task reads it, plus "created" and "step_count"), built from the rows just inserted rather
-- than read back.
CREATE OR REPLACE FUNCTION tasker.insert_task(p_task_uuid uuid, p_request jsonb, p_notify boolean,
                                              p_answer boolean) RETURNS jsonb
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
  v_fields jsonb;
  v_step_answers jsonb;
  v_total integer;
  v_roots integer;
  v_status text;
  v_existing record;
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

  -- One statement: the initial step set (every template step the normalizer marked "initial",
  -- with fresh uuids), the task (nothing more when its identity exists: ON CONFLICT), its steps,
  -- their edges and the first transitions of the steps and the task. It answers the task's fields,
  -- the step counts and (with p_answer) the steps as get_task lists them: a step's parents are its
  -- incoming edges, and none has failed yet.
  WITH tpl AS MATERIALIZED (
    SELECT tasker.uuid_v7() AS uuid, d, d->>'name' AS name, ord::integer AS position,
           coalesce(d->'dependencies', '[]'::jsonb) AS deps,
           jsonb_array_length(coalesce(d->'dependencies', '[]'::jsonb)) AS pending
    FROM jsonb_array_elements(nt.configuration->'steps') WITH ORDINALITY AS x(d, ord)
    WHERE coalesce((d->>'initial')::boolean, true)
  ), counts AS (
    SELECT count(*)::integer AS total, (count(*) FILTER (WHERE pending = 0))::integer AS roots FROM tpl
  ), ins_task AS (
    INSERT INTO tasker.tasks (task_uuid, named_task_uuid, namespace_name, status, complete, completed_at,
                              initiator, source_system, reason, tags, context, identity_hash, priority,
                              correlation_id, parent_correlation_id, requested_at, total_steps,
                              unfinished_steps, active_steps, transition_seq)
    SELECT p_task_uuid, nt.named_task_uuid, v_ns_name,
           CASE WHEN c.total = 0 THEN 'complete' ELSE 'steps_in_process' END, c.total = 0,
           CASE WHEN c.total = 0 THEN v_now END, p_request->>'initiator',
           p_request->>'source_system', p_request->>'reason',
           coalesce(p_request->'tags', '[]'::jsonb), v_context, v_hash,
           coalesce((p_request->>'priority')::integer, 0),
           (p_request->>'correlation_id')::uuid, (p_request->>'parent_correlation_id')::uuid,
           coalesce((p_request->>'requested_at')::timestamp, v_now), c.total, c.total, c.roots,
           CASE WHEN c.total = 0 THEN 3 ELSE 4 END
    FROM counts AS c
    ON CONFLICT (identity_hash) DO NOTHING
    RETURNING *
  ), ins_steps AS (
    INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, name, template_step_name,
      step_type, position, namespace_name, handler_callable, handler_method, status, retryable, max_attempts,
      priority, pending_parents, ready_at, inputs, transition_seq, created_at, updated_at)
    SELECT n.uuid, t.task_uuid, n.name, n.name, coalesce(n.d->>'type', 'standard'),
           n.position, v_ns_name, n.d->'handler'->>'callable', coalesce(n.d->'handler'->>'method', 'call'),
           CASE WHEN n.pending = 0 THEN 'enqueued' ELSE 'pending' END,
           coalesce((n.d->'retry'->>'retryable')::boolean, true),
           coalesce((n.d->'retry'->>'max_attempts')::integer, 3),
           t.priority, n.pending, CASE WHEN n.pending = 0 THEN v_now END,
           coalesce(n.d->'handler'->'initialization', '{}'::jsonb),
           CASE WHEN n.pending = 0 THEN 2 ELSE 1 END, v_now, v_now
    FROM ins_task AS t CROSS JOIN tpl AS n
    ORDER BY n.position
    RETURNING *
  ), ins_edges AS (
    INSERT INTO tasker.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid, name)
    SELECT t.task_uuid, p.uuid, c.uuid, 'provides'
    FROM ins_task AS t CROSS JOIN tpl AS c
    CROSS JOIN LATERAL jsonb_array_elements_text(c.deps) WITH ORDINALITY AS d(dep, ord)
    JOIN tpl AS p ON p.name = d.dep
    ORDER BY c.position, d.ord
    RETURNING to_step_uuid
  ), ins_step_transitions AS (
    INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state,
      to_state, event, sort_key, created_at)
    SELECT x.uuid, t.task_uuid, x.from_state, x.to_state, x.event, x.sort_key, v_now
    FROM ins_task AS t
    CROSS JOIN (SELECT n.uuid, NULL AS from_state, 'pending' AS to_state, 'initialize' AS event, 1 AS sort_key,
                       n.position, 1 AS pass
                FROM tpl AS n
                UNION ALL
                SELECT n.uuid, 'pending', 'enqueued', 'enqueue', 2, n.position, 2 FROM tpl AS n WHERE n.pending = 0) AS x
    ORDER BY x.pass, x.position
  ), ins_task_transitions AS (
    -- Three for a template without steps (the task is complete), four otherwise (empty: NULL is
    -- both); ready_steps_found counts the steps enqueued (metadata NULL here).
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
    SELECT t.task_uuid, x.from_state, x.to_state, x.event, x.sort_key,
           coalesce(x.metadata, jsonb_build_object('count', t.active_steps)), v_now
    FROM ins_task AS t
    CROSS JOIN (VALUES (NULL, 'pending', 'initialize', 1, '{}'::jsonb, NULL::boolean),
                       ('pending', 'initializing', 'start', 2, '{}', NULL),
                       ('initializing', 'complete', 'no_steps_found', 3, '{}', true),
                       ('initializing', 'enqueuing_steps', 'ready_steps_found', 3, NULL, false),
                       ('enqueuing_steps', 'steps_in_process', 'steps_enqueued', 4, '{}', false))
               AS x(from_state, to_state, event, sort_key, metadata, empty)
    WHERE x.empty IS NULL OR x.empty = (t.total_steps = 0)
  )
  SELECT c.total, c.roots, t.task_uuid,
         CASE WHEN p_answer AND t.task_uuid IS NOT NULL THEN tasker.task_fields(ROW(t.*)::tasker.tasks, v_name, v_version) END,
         (SELECT coalesce(jsonb_agg(tasker.step_readiness_of(ROW(s.*)::tasker.workflow_steps, p.parents, NULL)
                                    ORDER BY s.position, s.created_at, s.name), '[]'::jsonb)
          FROM ins_steps AS s
          CROSS JOIN LATERAL (SELECT count(*)::integer AS parents FROM ins_edges AS e
                              WHERE e.to_step_uuid = s.workflow_step_uuid) AS p
          WHERE p_answer)
  INTO v_total, v_roots, v_task, v_fields, v_step_answers
  FROM counts AS c LEFT JOIN ins_task AS t ON true;
  v_status := CASE WHEN v_total = 0 THEN 'complete' ELSE 'steps_in_process' END;

  IF v_task IS NULL THEN
    SELECT task_uuid, status, correlation_id INTO v_existing FROM tasker.tasks WHERE identity_hash = v_hash;
    RETURN jsonb_build_object('task_uuid', v_existing.task_uuid, 'status', v_existing.status,
                              'correlation_id', v_existing.correlation_id, 'created', false);
  END IF;

  IF p_notify AND v_total > 0 THEN
    PERFORM pg_notify('tasker_steps_' || v_ns_name, '');
  END IF;

  IF NOT p_answer THEN
    RETURN jsonb_build_object('task_uuid', v_task, 'status', v_status,
                              'correlation_id', p_request->>'correlation_id', 'created', true,
                              'step_count', v_total, 'namespace', v_ns_name);
  END IF;

  -- get_task's answer for this task, from the rows above. The summary's counts are those of fresh
  -- steps: a step without parents is enqueued (in progress, and ready), the others are pending
  -- with parents to wait for; nothing has completed, failed or is retrying.
  RETURN v_fields
    || tasker.summary_of(v_total, v_total - v_roots, v_roots, 0, 0, 0, v_roots)
    || jsonb_build_object('steps', v_step_answers, 'created', true, 'step_count', v_total);
END $$;

CREATE OR REPLACE FUNCTION tasker.insert_task(p_task_uuid uuid, p_request jsonb, p_notify boolean) RETURNS jsonb
LANGUAGE sql AS $$
  SELECT tasker.insert_task(p_task_uuid, p_request, p_notify, false)
$$;

CREATE OR REPLACE FUNCTION tasker.create_task(p_task_uuid uuid, p_request jsonb) RETURNS jsonb
LANGUAGE sql AS $$
  SELECT tasker.insert_task(p_task_uuid, p_request, true) - 'namespace'
$$;

-- create_task answering with the whole TaskResponse (plus "created" and "step_count"), in the same
-- round trip: a created task as insert_task builds it, an existing one (its identity's) read with
-- get_task. Under a concurrent duplicate the read runs after the insert's wait for the other
-- transaction, with a fresh snapshot (this function is volatile), so it sees the winner's task.
CREATE OR REPLACE FUNCTION tasker.create_task_response(p_task_uuid uuid, p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_created jsonb := tasker.insert_task(p_task_uuid, p_request, true, true);
  v_task jsonb;
BEGIN
  IF (v_created->>'created')::boolean THEN
    RETURN v_created;
  END IF;
  v_task := tasker.get_task((v_created->>'task_uuid')::uuid);
  RETURN v_task || jsonb_build_object('created', false, 'step_count', v_task->'total_steps');
END $$;

-- Many tasks in one transaction, one request after another: p_requests is an array of
-- create_task requests, each with its "task_uuid" (the uuid a new task gets). Each goes through
-- insert_task in order, so a repeated identity within the batch, or one that already exists,
-- gives back the existing task ("created": false), exactly as one create_task after another would.
-- The workers of each namespace that received steps are notified once. The answer is an array of
-- create_task_response answers in request order. An error names the request's index
-- ("requests[i]: ...", from 0) and aborts the whole batch. create_tasks runs this when its
-- set-based path cannot take the batch: it is the reference for what create_tasks does.
CREATE OR REPLACE FUNCTION tasker.create_tasks_in_order(p_requests jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_i integer := 0;   -- requests done; the one being created is requests[v_i] (0-based)
  v_req jsonb;
  v_created jsonb;
  v_uuids uuid[] := '{}';   -- subscript assignment appends in place (an expanded array)
  v_notify text[] := '{}';
  v_state text;
  v_message text;
BEGIN
  BEGIN
    FOR v_req IN SELECT r FROM jsonb_array_elements(p_requests) AS x(r) LOOP
      v_created := tasker.insert_task((v_req->>'task_uuid')::uuid, v_req - 'task_uuid', false);
      v_i := v_i + 1;
      v_uuids[v_i] := (v_created->>'task_uuid')::uuid;
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
  RETURN tasker.create_tasks_answer(p_requests, v_uuids);
END $$;

-- The answer of create_tasks: for each request, in order, the task (as get_task reads it) that
-- p_tasks names at the same position, with "created" (the task has the uuid the request brought)
-- and "step_count" (the task's steps, as create_task_response answers).
CREATE OR REPLACE FUNCTION tasker.create_tasks_answer(p_requests jsonb, p_tasks uuid[]) RETURNS jsonb
LANGUAGE sql AS $$
  SELECT coalesce(jsonb_agg(g.task || jsonb_build_object(
                    'created', g.task->>'task_uuid' = x.r->>'task_uuid', 'step_count', g.task->'total_steps')
                  ORDER BY x.ord), '[]'::jsonb)
  FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS x(r, ord)
  CROSS JOIN LATERAL tasker.get_task(p_tasks[x.ord::integer]) AS g(task)
$$;

-- Many tasks in one transaction (one statement from the client): create_tasks_in_order's answer,
-- set-based. Every request's template is resolved and its identity hash computed at once; the
-- first request of each identity is inserted (ON CONFLICT on the identity hash, as create_task),
-- with the steps, edges and first transitions of every inserted task, each kind in one INSERT.
-- A later request of the same identity, or one whose task existed, answers that task with
-- "created": false. The rows are create_task's, column for column. A batch this path cannot
-- take (an unknown template, a missing idempotency key, any error) goes through
-- create_tasks_in_order instead, which names the request at fault.
CREATE OR REPLACE FUNCTION tasker.create_tasks(p_requests jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := now() AT TIME ZONE 'utc';
  v_n integer := jsonb_array_length(p_requests);
  v_ok integer;
  v_hashes text[];
  v_notify text[];
  v_tasks uuid[];
BEGIN
  SELECT count(*) INTO v_ok
  FROM jsonb_array_elements(p_requests) AS x(r)
  JOIN tasker.task_namespaces ns ON ns.name = coalesce(x.r->>'namespace', 'default')
  JOIN tasker.named_tasks n ON n.task_namespace_uuid = ns.task_namespace_uuid AND n.name = x.r->>'name'
   AND n.version = coalesce(x.r->>'version', '1.0.0')
  WHERE x.r->>'idempotency_key' IS NOT NULL OR n.identity_strategy <> 'caller_provided';
  IF v_ok <> v_n THEN
    RETURN tasker.create_tasks_in_order(p_requests);
  END IF;

  BEGIN
    WITH req AS (
      SELECT x.ord, x.r, (x.r->>'task_uuid')::uuid AS task_uuid, coalesce(x.r->>'namespace', 'default') AS ns,
             coalesce(x.r->'context', '{}'::jsonb) AS ctx, coalesce((x.r->>'priority')::integer, 0) AS priority,
             n.named_task_uuid, n.identity_strategy, x.r->>'idempotency_key' AS key
      FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS x(r, ord)
      JOIN tasker.task_namespaces ns ON ns.name = coalesce(x.r->>'namespace', 'default')
      JOIN tasker.named_tasks n ON n.task_namespace_uuid = ns.task_namespace_uuid AND n.name = x.r->>'name'
       AND n.version = coalesce(x.r->>'version', '1.0.0')
    ), hashed AS (
      SELECT req.*, CASE
          WHEN key IS NOT NULL THEN
            encode(sha256(convert_to(named_task_uuid::text || chr(1) || 'key' || chr(1) || key, 'UTF8')), 'hex')
          WHEN identity_strategy = 'always_unique' THEN 'unique:' || task_uuid::text
          ELSE encode(sha256(convert_to(named_task_uuid::text || chr(1) || 'ctx' || chr(1) || ctx::text, 'UTF8')), 'hex')
        END AS hash
      FROM req
    ), tpl_base AS (
      -- The initial steps of each template in the batch, as insert_task builds them; idx numbers
      -- them 1..n in template order.
      SELECT t.named_task_uuid, d, d->>'name' AS name, ord::integer AS position,
             coalesce(d->'dependencies', '[]'::jsonb) AS deps,
             jsonb_array_length(coalesce(d->'dependencies', '[]'::jsonb)) AS pending,
             row_number() OVER (PARTITION BY t.named_task_uuid ORDER BY ord)::integer AS idx
      FROM (SELECT DISTINCT named_task_uuid FROM req) AS u
      JOIN tasker.named_tasks t USING (named_task_uuid)
      CROSS JOIN LATERAL jsonb_array_elements(t.configuration->'steps') WITH ORDINALITY AS x(d, ord)
      WHERE coalesce((d->>'initial')::boolean, true)
    ), tpl_steps AS (
      -- With the idx of each step's parents (insert_task's edges join the dependencies by name).
      SELECT b.*, ARRAY(SELECT p.idx FROM jsonb_array_elements_text(b.deps) WITH ORDINALITY AS dep(name, ord)
                        JOIN tpl_base p ON p.named_task_uuid = b.named_task_uuid AND p.name = dep.name
                        ORDER BY dep.ord) AS parent_idx
      FROM tpl_base b
    ), tpl AS (
      SELECT u.named_task_uuid, count(s.name)::integer AS total,
             (count(s.name) FILTER (WHERE s.pending = 0))::integer AS roots
      FROM (SELECT DISTINCT named_task_uuid FROM req) AS u
      LEFT JOIN tpl_steps s USING (named_task_uuid)
      GROUP BY u.named_task_uuid
    ), firsts AS (
      SELECT DISTINCT ON (hash) * FROM hashed ORDER BY hash, ord
    ), ins AS (
      INSERT INTO tasker.tasks (task_uuid, named_task_uuid, namespace_name, status, complete, completed_at,
                                initiator, source_system, reason, tags, context, identity_hash, priority,
                                correlation_id, parent_correlation_id, requested_at, total_steps,
                                unfinished_steps, active_steps, transition_seq)
      SELECT f.task_uuid, f.named_task_uuid, f.ns,
             CASE WHEN c.total = 0 THEN 'complete' ELSE 'steps_in_process' END, c.total = 0,
             CASE WHEN c.total = 0 THEN v_now END, f.r->>'initiator', f.r->>'source_system', f.r->>'reason',
             coalesce(f.r->'tags', '[]'::jsonb), f.ctx, f.hash, f.priority,
             (f.r->>'correlation_id')::uuid, (f.r->>'parent_correlation_id')::uuid,
             coalesce((f.r->>'requested_at')::timestamp, v_now), c.total, c.total, c.roots,
             CASE WHEN c.total = 0 THEN 3 ELSE 4 END
      FROM firsts f JOIN tpl c USING (named_task_uuid)
      ORDER BY f.ord
      ON CONFLICT (identity_hash) DO NOTHING
      RETURNING task_uuid, named_task_uuid, namespace_name, priority, total_steps, active_steps
    ), step_rows AS (
      -- Fresh step uuids in task and template order; task_steps[idx] is the uuid of the task's step idx.
      SELECT y.*, array_agg(y.step_uuid) OVER (PARTITION BY y.task_uuid ORDER BY y.idx
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS task_steps
      FROM (SELECT x.*, tasker.uuid_v7() AS step_uuid
            FROM (SELECT i.task_uuid, i.namespace_name, i.priority, s.d, s.name, s.position, s.pending, s.idx,
                         s.parent_idx
                  FROM ins i JOIN tpl_steps s USING (named_task_uuid) ORDER BY i.task_uuid, s.idx) AS x) AS y
    ), ins_steps AS (
      INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, name, template_step_name,
        step_type, position, namespace_name, handler_callable, handler_method, status, retryable, max_attempts,
        priority, pending_parents, ready_at, inputs, transition_seq, created_at, updated_at)
      SELECT n.step_uuid, n.task_uuid, n.name, n.name, coalesce(n.d->>'type', 'standard'),
             n.position, n.namespace_name, n.d->'handler'->>'callable', coalesce(n.d->'handler'->>'method', 'call'),
             CASE WHEN n.pending = 0 THEN 'enqueued' ELSE 'pending' END,
             coalesce((n.d->'retry'->>'retryable')::boolean, true),
             coalesce((n.d->'retry'->>'max_attempts')::integer, 3),
             n.priority, n.pending, CASE WHEN n.pending = 0 THEN v_now END,
             coalesce(n.d->'handler'->'initialization', '{}'::jsonb),
             CASE WHEN n.pending = 0 THEN 2 ELSE 1 END, v_now, v_now
      FROM step_rows n
    ), ins_edges AS (
      INSERT INTO tasker.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid, name)
      SELECT c.task_uuid, c.task_steps[p.idx], c.step_uuid, 'provides'
      FROM step_rows c CROSS JOIN LATERAL unnest(c.parent_idx) AS p(idx)
    ), ins_step_transitions AS (
      INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state,
        to_state, event, sort_key, created_at)
      SELECT n.step_uuid, n.task_uuid, NULL, 'pending', 'initialize', 1, v_now FROM step_rows n
      UNION ALL
      SELECT n.step_uuid, n.task_uuid, 'pending', 'enqueued', 'enqueue', 2, v_now FROM step_rows n WHERE n.pending = 0
    ), ins_empty_task_transitions AS (
      INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, created_at)
      SELECT i.task_uuid, t.from_state, t.to_state, t.event, t.sort_key, v_now
      FROM ins i
      CROSS JOIN (VALUES (NULL, 'pending', 'initialize', 1), ('pending', 'initializing', 'start', 2),
                         ('initializing', 'complete', 'no_steps_found', 3)) AS t(from_state, to_state, event, sort_key)
      WHERE i.total_steps = 0
    ), ins_task_transitions AS (
      INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
      SELECT i.task_uuid, t.from_state, t.to_state, t.event, t.sort_key,
             CASE WHEN t.sort_key = 3 THEN jsonb_build_object('count', i.active_steps) ELSE '{}'::jsonb END, v_now
      FROM ins i
      CROSS JOIN (VALUES (NULL, 'pending', 'initialize', 1), ('pending', 'initializing', 'start', 2),
                         ('initializing', 'enqueuing_steps', 'ready_steps_found', 3),
                         ('enqueuing_steps', 'steps_in_process', 'steps_enqueued', 4))
                 AS t(from_state, to_state, event, sort_key)
      WHERE i.total_steps > 0
    )
    SELECT (SELECT array_agg(h.hash ORDER BY h.ord) FROM hashed h),
           (SELECT array_agg(DISTINCT i.namespace_name) FROM ins i WHERE i.total_steps > 0)
    INTO v_hashes, v_notify;
  EXCEPTION WHEN OTHERS THEN
    -- Nothing of the statement is left; one request after another finds and names the request at fault.
    RETURN tasker.create_tasks_in_order(p_requests);
  END;

  PERFORM pg_notify('tasker_steps_' || ns, '') FROM unnest(v_notify) AS ns;

  -- A fresh snapshot: the task of an identity another transaction committed while this one waited.
  SELECT array_agg(t.task_uuid ORDER BY h.ord) INTO v_tasks
  FROM unnest(v_hashes) WITH ORDINALITY AS h(hash, ord)
  LEFT JOIN tasker.tasks t ON t.identity_hash = h.hash;
  RETURN tasker.create_tasks_answer(p_requests, v_tasks);
END $$;
