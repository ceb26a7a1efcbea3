-- Task creation: one transaction inserts the task, its initial steps, edges and first transitions.

-- A task's first transitions: three for a template without steps (the task is complete), four
-- otherwise (empty: NULL for both); ready_steps_found's metadata (NULL here) counts the steps
-- enqueued. An immutable SQL function over VALUES: the planner inlines it where it is used.
CREATE OR REPLACE FUNCTION tasker.task_creation_transitions()
RETURNS TABLE (from_state text, to_state text, event text, sort_key integer, metadata jsonb, empty boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  VALUES (NULL, 'pending', 'initialize', 1, '{}'::jsonb, NULL::boolean),
         ('pending', 'initializing', 'start', 2, '{}', NULL),
         ('initializing', 'complete', 'no_steps_found', 3, '{}', true),
         ('initializing', 'enqueuing_steps', 'ready_steps_found', 3, NULL, false),
         ('enqueuing_steps', 'steps_in_process', 'steps_enqueued', 4, '{}', false)
$$;

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
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)
    SELECT t.task_uuid, x.from_state, x.to_state, x.event, x.sort_key,
           coalesce(x.metadata, jsonb_build_object('count', t.active_steps)), v_now
    FROM ins_task AS t
    CROSS JOIN tasker.task_creation_transitions() AS x
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

-- Uuid number p_n of a batch: a UUIDv7 (RFC 9562) of the batch's millisecond p_ms whose rand_a and
-- the top 20 bits of rand_b hold the counter p_n (below 2^32) and whose other 42 bits are p_rand,
-- random and drawn once per batch. Distinct counters give distinct uuids within the batch; another
-- batch of the same millisecond would need the same 42 random bits to collide. Generating them
-- this way costs a fraction of tasker.uuid_v7 (gen_random_uuid per row), which is most of a large
-- batch's uuids: steps, edges and transitions.
CREATE OR REPLACE FUNCTION tasker.batch_uuid(p_ms bigint, p_rand bigint, p_n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT encode(int8send((p_ms << 16) | 28672 | ((p_n >> 20) & 4095))
                || int8send((-9223372036854775807 - 1) | ((p_n & 1048575) << 42) | (p_rand & 4398046511103)),
                'hex')::uuid
$$;

-- 42 random bits for tasker.batch_uuid.
CREATE OR REPLACE FUNCTION tasker.batch_rand() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
  SELECT ('x' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16))::bit(64)::bigint & 4398046511103
$$;

-- Many tasks in one transaction (one statement from the client): create_tasks_in_order's answer,
-- set-based. Every request's template is resolved and its identity hash computed at once; the
-- first request of each identity is inserted (ON CONFLICT on the identity hash, as create_task),
-- with the steps, edges and first transitions of every inserted task, each kind in one INSERT,
-- and the same statement answers each created task from the rows it inserted, as insert_task does
-- (get_task's TaskResponse, plus "created" and "step_count"). A later request of the same
-- identity answers that task with "created": false; one whose identity existed before reads it
-- with get_task in a fresh snapshot (the winner of a concurrent create). The rows are
-- create_task's, column for column; the steps', edges' and transitions' uuids come from
-- tasker.batch_uuid. A batch this path cannot take (an unknown template, a missing idempotency
-- key, any error) goes through create_tasks_in_order instead, which names the request at fault.
-- work_mem: the statement sorts and hashes every request and step of the batch (tens of MB for
-- 10,000 tasks) and would spill them to disk under the default 4MB. enable_nestloop: the planner
-- sees a few rows in each CTE, and a nested loop over two of them (the inserted steps and their
-- source rows) is quadratic in the batch; every join of that statement is an equality that a hash
-- join takes (the statements after it, and the fallback, run with nested loops again). jit: the cost
-- that keeps nested loops out would otherwise have the statement compiled (seconds).
CREATE OR REPLACE FUNCTION tasker.create_tasks(p_requests jsonb) RETURNS jsonb
LANGUAGE plpgsql SET work_mem = '64MB' SET enable_nestloop = off SET jit = off AS $$
DECLARE
  v_now timestamp := now() AT TIME ZONE 'utc';
  v_n integer := jsonb_array_length(p_requests);
  v_ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  v_ok integer;
  v_hashes text[];
  v_answers jsonb[];
  v_missing integer;
  v_notify text[];
BEGIN
  SELECT count(*) INTO v_ok
  FROM jsonb_array_elements(p_requests) AS x(r)
  JOIN tasker.task_namespaces ns ON ns.name = coalesce(x.r->>'namespace', 'default')
  JOIN tasker.named_tasks n ON n.task_namespace_uuid = ns.task_namespace_uuid AND n.name = x.r->>'name'
   AND n.version = coalesce(x.r->>'version', '1.0.0')
  WHERE x.r->>'idempotency_key' IS NOT NULL OR n.identity_strategy <> 'caller_provided';
  IF v_ok <> v_n THEN
    PERFORM set_config('enable_nestloop', 'on', true);
    RETURN tasker.create_tasks_in_order(p_requests);
  END IF;

  BEGIN
    WITH seeds AS MATERIALIZED (
      SELECT tasker.batch_rand() AS steps, tasker.batch_rand() AS edges, tasker.batch_rand() AS step_log,
             tasker.batch_rand() AS task_log
    ), req AS MATERIALIZED (
      SELECT x.ord::integer AS ord, x.r, (x.r->>'task_uuid')::uuid AS task_uuid,
             coalesce(x.r->>'namespace', 'default') AS ns, coalesce(x.r->'context', '{}'::jsonb) AS ctx,
             coalesce((x.r->>'priority')::integer, 0) AS priority, n.named_task_uuid, n.identity_strategy,
             n.name AS tpl_name, n.version AS tpl_version, x.r->>'idempotency_key' AS key
      FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS x(r, ord)
      JOIN tasker.task_namespaces ns ON ns.name = coalesce(x.r->>'namespace', 'default')
      JOIN tasker.named_tasks n ON n.task_namespace_uuid = ns.task_namespace_uuid AND n.name = x.r->>'name'
       AND n.version = coalesce(x.r->>'version', '1.0.0')
    ), hashed AS MATERIALIZED (
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
    ), tpl_steps AS MATERIALIZED (
      -- With the idx of each step's parents (insert_task's edges join the dependencies by name).
      SELECT b.*, ARRAY(SELECT p.idx FROM jsonb_array_elements_text(b.deps) WITH ORDINALITY AS dep(name, ord)
                        JOIN tpl_base p ON p.named_task_uuid = b.named_task_uuid AND p.name = dep.name
                        ORDER BY dep.ord) AS parent_idx
      FROM tpl_base b
    ), tpl AS MATERIALIZED (
      SELECT u.named_task_uuid, count(s.name)::integer AS total,
             (count(s.name) FILTER (WHERE s.pending = 0))::integer AS roots
      FROM (SELECT DISTINCT named_task_uuid FROM req) AS u
      LEFT JOIN tpl_steps s USING (named_task_uuid)
      GROUP BY u.named_task_uuid
    ), stride AS MATERIALIZED (
      -- Counters of tasker.batch_uuid: a task's steps are (ord - 1) * stride + idx.
      SELECT coalesce(max(idx), 0) + 1 AS n FROM tpl_steps
    ), firsts AS MATERIALIZED (
      SELECT DISTINCT ON (hash) * FROM hashed ORDER BY hash, ord
    ), ins AS (
      INSERT INTO tasker.tasks (task_uuid, named_task_uuid, namespace_name, status, complete, completed_at,
                                initiator, source_system, reason, tags, context, identity_hash, priority,
                                correlation_id, parent_correlation_id, requested_at, total_steps,
                                unfinished_steps, active_steps, transition_seq)
      SELECT h.task_uuid, h.named_task_uuid, h.ns,
             CASE WHEN c.total = 0 THEN 'complete' ELSE 'steps_in_process' END, c.total = 0,
             CASE WHEN c.total = 0 THEN v_now END, h.r->>'initiator', h.r->>'source_system', h.r->>'reason',
             coalesce(h.r->'tags', '[]'::jsonb), h.ctx, h.hash, h.priority,
             (h.r->>'correlation_id')::uuid, (h.r->>'parent_correlation_id')::uuid,
             coalesce((h.r->>'requested_at')::timestamp, v_now), c.total, c.total, c.roots,
             CASE WHEN c.total = 0 THEN 3 ELSE 4 END
      FROM firsts h JOIN tpl c USING (named_task_uuid)
      ORDER BY h.ord
      ON CONFLICT (identity_hash) DO NOTHING
      RETURNING *
    ), made AS MATERIALIZED (
      -- The inserted tasks with their request's position.
      SELECT f.ord, i.task_uuid, i.named_task_uuid, i.namespace_name, i.priority, i.total_steps, i.active_steps
      FROM ins i JOIN firsts f USING (task_uuid)
    ), step_rows AS MATERIALIZED (
      SELECT m.task_uuid, m.ord, m.namespace_name, m.priority, s.d, s.name, s.position, s.pending, s.idx,
             s.parent_idx, (m.ord - 1) * k.n + s.idx AS n,
             tasker.batch_uuid(v_ms, seeds.steps, (m.ord - 1) * k.n + s.idx) AS step_uuid
      FROM made m JOIN tpl_steps s USING (named_task_uuid) CROSS JOIN stride k CROSS JOIN seeds
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
      RETURNING *
    ), ins_edges AS (
      -- The parent idx of a step is its task's step (ord - 1) * stride + idx: its uuid is computed again.
      INSERT INTO tasker.workflow_step_edges (workflow_step_edge_uuid, task_uuid, from_step_uuid, to_step_uuid, name)
      SELECT tasker.batch_uuid(v_ms, seeds.edges, row_number() OVER ()), c.task_uuid,
             tasker.batch_uuid(v_ms, seeds.steps, (c.ord - 1) * k.n + p.idx), c.step_uuid, 'provides'
      FROM step_rows c CROSS JOIN LATERAL unnest(c.parent_idx) AS p(idx) CROSS JOIN stride k CROSS JOIN seeds
    ), ins_step_transitions AS (
      INSERT INTO tasker.workflow_step_transition_log (workflow_step_transition_uuid, workflow_step_uuid, task_uuid,
        from_state, to_state, event, sort_key, created_at)
      SELECT tasker.batch_uuid(v_ms, seeds.step_log, n.n * 2 + x.sort_key), n.step_uuid, n.task_uuid, x.from_state,
             x.to_state, x.event, x.sort_key, v_now
      FROM step_rows n CROSS JOIN seeds
      CROSS JOIN LATERAL (VALUES (NULL, 'pending', 'initialize', 1, true),
                                 ('pending', 'enqueued', 'enqueue', 2, n.pending = 0))
                 AS x(from_state, to_state, event, sort_key, wanted)
      WHERE x.wanted
    ), ins_task_transitions AS (
      INSERT INTO tasker.task_transitions (task_transition_uuid, task_uuid, from_state, to_state, event, sort_key,
                                           metadata, created_at)
      SELECT tasker.batch_uuid(v_ms, seeds.task_log, m.ord * 4 + x.sort_key - 1), m.task_uuid, x.from_state,
             x.to_state, x.event, x.sort_key, coalesce(x.metadata, jsonb_build_object('count', m.active_steps)), v_now
      FROM made m CROSS JOIN seeds
      CROSS JOIN tasker.task_creation_transitions() AS x
      WHERE x.empty IS NULL OR x.empty = (m.total_steps = 0)
    ), step_answers AS (
      -- get_task's steps of each created task, from the rows inserted: a step's parents are its
      -- edges (one per parent idx), none has failed yet.
      SELECT s.task_uuid,
             jsonb_agg(tasker.step_readiness_of(ROW(s.*)::tasker.workflow_steps, cardinality(r.parent_idx), NULL)
                       ORDER BY s.position, s.created_at, s.name) AS steps
      FROM ins_steps s JOIN step_rows r ON r.step_uuid = s.workflow_step_uuid
      GROUP BY s.task_uuid
    ), answers AS (
      -- insert_task's answer of each created task. The summary's counts are those of fresh steps:
      -- the roots (active_steps) are enqueued (in progress, and ready), the others pending.
      SELECT h.ord,
             tasker.task_fields(ROW(i.*)::tasker.tasks, h.tpl_name, h.tpl_version)
               || tasker.summary_of(i.total_steps, i.total_steps - i.active_steps, i.active_steps, 0, 0, 0,
                                    i.active_steps)
               || jsonb_build_object('steps', coalesce(a.steps, '[]'::jsonb), 'created', true,
                                     'step_count', i.total_steps) AS answer
      FROM ins i JOIN firsts h USING (task_uuid)
      LEFT JOIN step_answers a ON a.task_uuid = i.task_uuid
    )
    SELECT array_agg(h.hash ORDER BY h.ord), array_agg(a.answer ORDER BY h.ord),
           count(*) FILTER (WHERE a.answer IS NULL),
           (SELECT array_agg(DISTINCT m.namespace_name) FROM made m WHERE m.total_steps > 0)
    INTO v_hashes, v_answers, v_missing, v_notify
    FROM hashed h LEFT JOIN answers a ON a.ord = h.ord;
  EXCEPTION WHEN OTHERS THEN
    -- Nothing of the statement is left; one request after another finds and names the request at fault.
    PERFORM set_config('enable_nestloop', 'on', true);
    RETURN tasker.create_tasks_in_order(p_requests);
  END;
  -- The rest reads single tasks by their indexes (set_config is local to this function: its SET).
  PERFORM set_config('enable_nestloop', 'on', true);

  PERFORM pg_notify('tasker_steps_' || ns, '') FROM unnest(v_notify) AS ns;

  IF v_missing > 0 THEN
    -- The requests whose task was not created by themselves, in a fresh snapshot: a later request
    -- of an identity created above answers that task; an identity that existed (or that another
    -- transaction committed while this one waited) is read with get_task.
    WITH x AS (
      SELECT * FROM unnest(v_hashes, v_answers) WITH ORDINALITY AS u(hash, answer, ord)
    ), made AS (
      SELECT hash, answer FROM x WHERE answer IS NOT NULL
    )
    SELECT array_agg(coalesce(x.answer, m.answer || '{"created": false}'::jsonb,
                              (SELECT g || jsonb_build_object('created', false, 'step_count', g->'total_steps')
                               FROM tasker.get_task(t.task_uuid) AS g))
                     ORDER BY x.ord)
    INTO v_answers
    FROM x LEFT JOIN made m ON x.answer IS NULL AND m.hash = x.hash
    LEFT JOIN tasker.tasks t ON x.answer IS NULL AND m.hash IS NULL AND t.identity_hash = x.hash;
  END IF;
  RETURN to_jsonb(v_answers);
END $$;
