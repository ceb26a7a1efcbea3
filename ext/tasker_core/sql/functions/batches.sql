-- Batch processing: the batch workers a batchable step's outcome creates, and the steps downstream.

-- Checks a batch outcome; returns an error message, or NULL when valid.
CREATE OR REPLACE FUNCTION tasker.batch_outcome_error(p_step tasker.workflow_steps, p_result jsonb)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_outcome jsonb := p_result->'result'->'batch_processing_outcome';
  v_type text := v_outcome->>'type';
  v_configs jsonb := v_outcome->'cursor_configs';
  v_template text;
BEGIN
  IF v_outcome IS NULL OR jsonb_typeof(v_outcome) <> 'object' THEN
    RETURN format('batchable step %s returned no batch_processing_outcome', p_step.name);
  END IF;
  IF v_type = 'no_batches' THEN
    RETURN NULL;
  END IF;
  IF v_type IS DISTINCT FROM 'create_batches' THEN
    RETURN format('batch_processing_outcome.type must be create_batches or no_batches (got %s)', coalesce(v_type, 'nothing'));
  END IF;
  SELECT d->'batch_config'->>'worker_template' INTO v_template
  FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid),
       jsonb_array_elements(nt.configuration->'steps') AS d
  WHERE t.task_uuid = p_step.task_uuid AND d->>'name' = p_step.template_step_name;
  IF v_outcome->>'worker_template_name' IS DISTINCT FROM v_template THEN
    RETURN format('worker_template_name must be %s, the step''s batch_config.worker_template (got %s)',
                  v_template, coalesce(v_outcome->>'worker_template_name', 'nothing'));
  END IF;
  IF v_configs IS NULL OR jsonb_typeof(v_configs) <> 'array' OR jsonb_array_length(v_configs) = 0 THEN
    RETURN 'batch_processing_outcome.cursor_configs must be a non-empty list';
  END IF;
  IF jsonb_array_length(v_configs) > 1000 THEN
    RETURN format('%s batches requested; at most 1000 workers per batchable step', jsonb_array_length(v_configs));
  END IF;
  -- worker_count is optional; when given it is a number equal to the number of configs (never cast
  -- before its type is known: text from a handler must not raise here).
  IF (CASE jsonb_typeof(v_outcome->'worker_count')
        WHEN 'number' THEN (v_outcome->>'worker_count')::numeric <> jsonb_array_length(v_configs)
        WHEN 'null' THEN false
        ELSE v_outcome ? 'worker_count' END) THEN
    RETURN format('worker_count %s does not match the %s cursor_configs', v_outcome->>'worker_count', jsonb_array_length(v_configs));
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_configs) c
             WHERE coalesce(c->>'batch_id', '') !~ '^[A-Za-z0-9_]{1,32}$') THEN
    RETURN 'every cursor_config needs a batch_id of 1 to 32 letters, digits or underscores';
  END IF;
  IF (SELECT count(DISTINCT c->>'batch_id') FROM jsonb_array_elements(v_configs) c) <> jsonb_array_length(v_configs) THEN
    RETURN 'batch_id values must be unique';
  END IF;
  RETURN NULL;
END $$;

-- Creates the worker steps ({worker_template}_{batch_id}; for no_batches one no-op placeholder)
-- and the convergence step(s) that depend on the worker template. The batchable step itself
-- counts as an unfinished parent of each worker: the caller releases its children right after.
CREATE OR REPLACE FUNCTION tasker.expand_batches(p_step tasker.workflow_steps, p_result jsonb, p_now timestamp)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_outcome jsonb := p_result->'result'->'batch_processing_outcome';
  v_steps jsonb;
  v_template jsonb;
  v_batch jsonb;
  v_configs jsonb;
  v_no_op boolean := v_outcome->>'type' = 'no_batches';
  v_workers jsonb;
  v_count integer;
  v_conv integer := 0;
BEGIN
  SELECT nt.configuration->'steps' INTO v_steps
  FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid) WHERE t.task_uuid = p_step.task_uuid;
  SELECT d->'batch_config' INTO v_batch FROM jsonb_array_elements(v_steps) d WHERE d->>'name' = p_step.template_step_name;
  SELECT d INTO v_template FROM jsonb_array_elements(v_steps) d WHERE d->>'name' = v_batch->>'worker_template';
  v_configs := CASE WHEN v_no_op THEN '[{"batch_id": "000"}]'::jsonb ELSE v_outcome->'cursor_configs' END;

  SELECT jsonb_agg(jsonb_build_object('uuid', tasker.uuid_v7(), 'config', c, 'ord', ord)) INTO v_workers
  FROM jsonb_array_elements(v_configs) WITH ORDINALITY AS x(c, ord);

  INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, name, template_step_name, step_type,
    position, namespace_name, handler_callable, handler_method, status, retryable, max_attempts, priority,
    pending_parents, inputs, transition_seq, created_at, updated_at)
  SELECT (w->>'uuid')::uuid, p_step.task_uuid, (v_template->>'name') || '_' || (w->'config'->>'batch_id'),
         v_template->>'name', 'batch_worker', p_step.position * 10000 + (w->>'ord')::integer,
         p_step.namespace_name, v_template->'handler'->>'callable', coalesce(v_template->'handler'->>'method', 'call'),
         'pending', coalesce((v_template->'retry'->>'retryable')::boolean, true),
         coalesce((v_template->'retry'->>'max_attempts')::integer, 3), p_step.priority, 1,
         coalesce(v_template->'handler'->'initialization', '{}'::jsonb) || jsonb_build_object(
           'cursor', w->'config',
           'batch_metadata', jsonb_build_object('cursor_field', coalesce(v_batch->>'cursor_field', 'id'),
                                                'failure_strategy', coalesce(v_batch->>'failure_strategy', 'continue_on_failure')),
           'is_no_op', v_no_op,
           '__template_step_name', v_template->>'name'),
         1, p_now, p_now
  FROM jsonb_array_elements(v_workers) AS w;
  -- The task's counters (and each convergence step's pending parents) count the rows created.
  GET DIAGNOSTICS v_count = ROW_COUNT;

  INSERT INTO tasker.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid, name)
  SELECT p_step.task_uuid, p_step.workflow_step_uuid, (w->>'uuid')::uuid, 'batch_dependency'
  FROM jsonb_array_elements(v_workers) AS w;

  INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
    event, sort_key, metadata, created_at)
  SELECT (w->>'uuid')::uuid, p_step.task_uuid, NULL, 'pending', 'initialize', 1,
         jsonb_build_object('created_by_batch', p_step.name), p_now
  FROM jsonb_array_elements(v_workers) AS w;

  -- The convergence steps: deferred_convergence steps that depend on the worker template.
  WITH conv AS (
    SELECT tasker.uuid_v7() AS uuid, d, ord FROM jsonb_array_elements(v_steps) WITH ORDINALITY AS x(d, ord)
    WHERE d->>'type' = 'deferred_convergence' AND d->'dependencies' ? (v_template->>'name')
      AND NOT EXISTS (SELECT 1 FROM tasker.workflow_steps w WHERE w.task_uuid = p_step.task_uuid
                        AND w.template_step_name = d->>'name')
  ), inserted AS (
    INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, name, template_step_name, step_type,
      position, namespace_name, handler_callable, handler_method, status, retryable, max_attempts, priority,
      pending_parents, inputs, transition_seq, created_at, updated_at)
    SELECT c.uuid, p_step.task_uuid, c.d->>'name', c.d->>'name', 'deferred_convergence', c.ord::integer * 10000 + 9999,
           p_step.namespace_name, c.d->'handler'->>'callable', coalesce(c.d->'handler'->>'method', 'call'), 'pending',
           coalesce((c.d->'retry'->>'retryable')::boolean, true), coalesce((c.d->'retry'->>'max_attempts')::integer, 3),
           p_step.priority,
           v_count + (SELECT count(*) FROM jsonb_array_elements_text(c.d->'dependencies') dep
                      JOIN tasker.workflow_steps w ON w.task_uuid = p_step.task_uuid AND w.template_step_name = dep
                      WHERE w.status NOT IN ('complete', 'resolved_manually') AND w.step_type <> 'batch_worker'),
           coalesce(c.d->'handler'->'initialization', '{}'::jsonb), 1, p_now, p_now
    FROM conv c
    RETURNING workflow_step_uuid
  ), edges AS (
    INSERT INTO tasker.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid, name)
    SELECT p_step.task_uuid, (w->>'uuid')::uuid, c.uuid, 'worker_to_convergence'
    FROM conv c CROSS JOIN jsonb_array_elements(v_workers) AS w
    UNION ALL
    SELECT p_step.task_uuid, parent.workflow_step_uuid, c.uuid, 'provides'
    FROM conv c CROSS JOIN LATERAL jsonb_array_elements_text(c.d->'dependencies') AS dep
    JOIN tasker.workflow_steps parent ON parent.task_uuid = p_step.task_uuid AND parent.template_step_name = dep
         AND parent.step_type <> 'batch_worker'
  ), logged AS (
    INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
      event, sort_key, metadata, created_at)
    SELECT c.uuid, p_step.task_uuid, NULL, 'pending', 'initialize', 1,
           jsonb_build_object('created_by_batch', p_step.name), p_now
    FROM conv c
  )
  SELECT count(*) INTO v_conv FROM inserted;

  UPDATE tasker.tasks
  SET total_steps = total_steps + v_count + v_conv, unfinished_steps = unfinished_steps + v_count + v_conv,
      updated_at = p_now
  WHERE task_uuid = p_step.task_uuid;
  -- What lies after the convergence step (e.g. a report on the aggregate).
  v_conv := v_conv + tasker.add_downstream_steps(p_step.task_uuid,
    ARRAY(SELECT d->>'name' FROM jsonb_array_elements(v_steps) d
          WHERE d->>'type' = 'deferred_convergence' AND d->'dependencies' ? (v_template->>'name')), p_now);
  RETURN v_count + v_conv;
END $$;

-- Creates the template steps downstream of p_from (names of steps just created at run time): a
-- step joins when all its declared dependencies exist and at least one was just created; repeated
-- until nothing more joins. Returns the number of steps created.
CREATE OR REPLACE FUNCTION tasker.add_downstream_steps(p_task uuid, p_from text[], p_now timestamp)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_steps jsonb;
  v_ns text;
  v_priority integer;
  v_frontier text[] := p_from;
  v_more text[];
  v_new jsonb;
  v_created integer;
  v_total integer := 0;
BEGIN
  SELECT nt.configuration->'steps', t.namespace_name, t.priority INTO v_steps, v_ns, v_priority
  FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid) WHERE t.task_uuid = p_task;
  LOOP
    SELECT array_agg(d->>'name') INTO v_more
    FROM jsonb_array_elements(v_steps) AS d
    WHERE d->>'type' NOT IN ('batch_worker', 'deferred_convergence')
      AND NOT EXISTS (SELECT 1 FROM tasker.workflow_steps w WHERE w.task_uuid = p_task AND w.template_step_name = d->>'name')
      AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(d->'dependencies') x WHERE x = ANY (v_frontier))
      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(d->'dependencies') x
                      WHERE NOT EXISTS (SELECT 1 FROM tasker.workflow_steps w
                                        WHERE w.task_uuid = p_task AND w.template_step_name = x));
    EXIT WHEN v_more IS NULL;

    SELECT jsonb_agg(jsonb_build_object('uuid', tasker.uuid_v7(), 'def', d, 'ord', ord)) INTO v_new
    FROM jsonb_array_elements(v_steps) WITH ORDINALITY AS x(d, ord) WHERE (d->>'name') = ANY (v_more);

    INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, name, template_step_name, step_type,
      position, namespace_name, handler_callable, handler_method, status, retryable, max_attempts, priority,
      pending_parents, inputs, transition_seq, created_at, updated_at)
    SELECT (n->>'uuid')::uuid, p_task, n->'def'->>'name', n->'def'->>'name', n->'def'->>'type',
           (n->>'ord')::integer * 10000 + 9999, v_ns, n->'def'->'handler'->>'callable',
           coalesce(n->'def'->'handler'->>'method', 'call'), 'pending',
           coalesce((n->'def'->'retry'->>'retryable')::boolean, true),
           coalesce((n->'def'->'retry'->>'max_attempts')::integer, 3), v_priority,
           (SELECT count(*) FROM jsonb_array_elements_text(n->'def'->'dependencies') dep
            JOIN tasker.workflow_steps w ON w.task_uuid = p_task AND w.template_step_name = dep
            WHERE w.status NOT IN ('complete', 'resolved_manually')),
           coalesce(n->'def'->'handler'->'initialization', '{}'::jsonb), 1, p_now, p_now
    FROM jsonb_array_elements(v_new) AS n;
    GET DIAGNOSTICS v_created = ROW_COUNT;

    INSERT INTO tasker.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid, name)
    SELECT p_task, parent.workflow_step_uuid, (n->>'uuid')::uuid, 'provides'
    FROM jsonb_array_elements(v_new) AS n
    CROSS JOIN LATERAL jsonb_array_elements_text(n->'def'->'dependencies') AS dep
    JOIN tasker.workflow_steps parent ON parent.task_uuid = p_task AND parent.template_step_name = dep;

    INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
      event, sort_key, created_at)
    SELECT (n->>'uuid')::uuid, p_task, NULL, 'pending', 'initialize', 1, p_now FROM jsonb_array_elements(v_new) AS n;

    v_total := v_total + v_created;
    v_frontier := v_more;
  END LOOP;
  IF v_total > 0 THEN
    UPDATE tasker.tasks SET total_steps = total_steps + v_total, unfinished_steps = unfinished_steps + v_total
    WHERE task_uuid = p_task;
  END IF;
  RETURN v_total;
END $$;
