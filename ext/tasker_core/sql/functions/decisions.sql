-- Decision points: the steps a decision step's outcome creates.

-- Checks a decision outcome against the template; returns an error message, or NULL when valid.
CREATE OR REPLACE FUNCTION tasker.decision_outcome_error(p_step tasker.workflow_steps, p_result jsonb)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_outcome jsonb := p_result->'result'->'decision_point_outcome';
  v_type text := v_outcome->>'type';
  v_names jsonb := v_outcome->'step_names';
  v_steps jsonb;
  v_name text;
  v_def jsonb;
BEGIN
  IF v_outcome IS NULL OR jsonb_typeof(v_outcome) <> 'object' THEN
    RETURN format('decision step %s returned no decision_point_outcome', p_step.name);
  END IF;
  IF v_type = 'no_branches' THEN
    RETURN NULL;
  END IF;
  IF v_type IS DISTINCT FROM 'create_steps' THEN
    RETURN format('decision_point_outcome.type must be create_steps or no_branches (got %s)', coalesce(v_type, 'nothing'));
  END IF;
  IF v_names IS NULL OR jsonb_typeof(v_names) <> 'array' OR jsonb_array_length(v_names) = 0 THEN
    RETURN 'decision_point_outcome.step_names must be a non-empty list of step names';
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_names) x WHERE jsonb_typeof(x) <> 'string') THEN
    RETURN 'decision_point_outcome.step_names must be a list of step names (strings)';
  END IF;
  SELECT string_agg(DISTINCT n, ', ') INTO v_name
  FROM (SELECT n FROM jsonb_array_elements_text(v_names) AS n GROUP BY n HAVING count(*) > 1) dup;
  IF v_name IS NOT NULL THEN
    RETURN format('decision step %s chose %s more than once', p_step.name, v_name);
  END IF;
  IF jsonb_array_length(v_names) > 100 THEN
    RETURN format('decision step %s requested %s steps; max_steps_per_decision is 100', p_step.name, jsonb_array_length(v_names));
  END IF;
  SELECT nt.configuration->'steps' INTO v_steps
  FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid) WHERE t.task_uuid = p_step.task_uuid;
  FOR v_name IN SELECT jsonb_array_elements_text(v_names) LOOP
    SELECT d INTO v_def FROM jsonb_array_elements(v_steps) AS d WHERE d->>'name' = v_name;
    IF v_def IS NULL THEN
      RETURN format('decision step %s chose %s, which is not a step of this template', p_step.name, v_name);
    END IF;
    IF NOT (v_def->'dependencies' ? p_step.template_step_name) THEN
      RETURN format('decision step %s chose %s, which does not depend on it', p_step.name, v_name);
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

-- Creates the chosen steps and what lies downstream of them: a step joins when all its declared
-- dependencies exist (or are being created) and at least one is being created; a
-- deferred_convergence step joins when any of its declared dependencies is being created, and
-- waits only for those that exist. Returns the number of steps created. The decision step itself
-- counts as an unfinished parent: the caller releases its children right after.
CREATE OR REPLACE FUNCTION tasker.expand_decision(p_step tasker.workflow_steps, p_result jsonb, p_now timestamp)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_outcome jsonb := p_result->'result'->'decision_point_outcome';
  v_steps jsonb;
  v_existing text[];
  v_created text[];
  v_new jsonb;
  v_more text[];
  v_count integer;
BEGIN
  IF v_outcome->>'type' <> 'create_steps' THEN
    RETURN 0;
  END IF;
  SELECT nt.configuration->'steps' INTO v_steps
  FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid) WHERE t.task_uuid = p_step.task_uuid;
  SELECT array_agg(template_step_name) INTO v_existing FROM tasker.workflow_steps WHERE task_uuid = p_step.task_uuid;
  SELECT array_agg(DISTINCT n) INTO v_created
  FROM jsonb_array_elements_text(v_outcome->'step_names') AS n WHERE NOT n = ANY (v_existing);
  v_created := coalesce(v_created, '{}');

  LOOP
    SELECT array_agg(d->>'name') INTO v_more
    FROM jsonb_array_elements(v_steps) AS d
    WHERE NOT (d->>'name') = ANY (v_existing || v_created)
      AND d->>'type' <> 'batch_worker'
      AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(d->'dependencies') x WHERE x = ANY (v_created))
      AND (d->>'type' = 'deferred_convergence'
           OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(d->'dependencies') x
                          WHERE NOT x = ANY (v_existing || v_created)));
    EXIT WHEN v_more IS NULL;
    v_created := v_created || v_more;
  END LOOP;
  v_count := coalesce(array_length(v_created, 1), 0);
  IF v_count = 0 THEN
    RETURN 0;
  END IF;

  -- The new steps, with fresh uuids; their parents are their declared dependencies that exist.
  SELECT jsonb_agg(jsonb_build_object('uuid', tasker.uuid_v7(), 'name', d->>'name', 'def', d, 'position', ord))
  INTO v_new
  FROM jsonb_array_elements(v_steps) WITH ORDINALITY AS x(d, ord)
  WHERE (d->>'name') = ANY (v_created);

  INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, name, template_step_name, step_type,
    position, namespace_name, handler_callable, handler_method, status, retryable, max_attempts, priority,
    pending_parents, inputs, transition_seq, created_at, updated_at)
  SELECT (n->>'uuid')::uuid, p_step.task_uuid, n->>'name', n->>'name', n->'def'->>'type',
         (n->>'position')::integer, p_step.namespace_name, n->'def'->'handler'->>'callable',
         coalesce(n->'def'->'handler'->>'method', 'call'), 'pending',
         coalesce((n->'def'->'retry'->>'retryable')::boolean, true),
         coalesce((n->'def'->'retry'->>'max_attempts')::integer, 3), p_step.priority,
         (SELECT count(*) FROM jsonb_array_elements_text(n->'def'->'dependencies') AS dep
          WHERE dep = ANY (v_created)
             OR dep = p_step.template_step_name
             OR EXISTS (SELECT 1 FROM tasker.workflow_steps w WHERE w.task_uuid = p_step.task_uuid
                          AND w.template_step_name = dep AND w.status NOT IN ('complete', 'resolved_manually'))),
         coalesce(n->'def'->'handler'->'initialization', '{}'::jsonb), 1, p_now, p_now
  FROM jsonb_array_elements(v_new) AS n;
  -- The task's counters grow by the rows created, never by the names asked for.
  GET DIAGNOSTICS v_count = ROW_COUNT;

  INSERT INTO tasker.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid, name)
  SELECT p_step.task_uuid, parent.workflow_step_uuid, (n->>'uuid')::uuid, 'provides'
  FROM jsonb_array_elements(v_new) AS n
  CROSS JOIN LATERAL jsonb_array_elements_text(n->'def'->'dependencies') AS dep
  JOIN tasker.workflow_steps parent ON parent.task_uuid = p_step.task_uuid AND parent.template_step_name = dep;

  INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
    event, sort_key, metadata, created_at)
  SELECT (n->>'uuid')::uuid, p_step.task_uuid, NULL, 'pending', 'initialize', 1,
         jsonb_build_object('created_by_decision', p_step.name), p_now
  FROM jsonb_array_elements(v_new) AS n;

  UPDATE tasker.tasks
  SET total_steps = total_steps + v_count, unfinished_steps = unfinished_steps + v_count, updated_at = p_now
  WHERE task_uuid = p_step.task_uuid;
  RETURN v_count;
END $$;
