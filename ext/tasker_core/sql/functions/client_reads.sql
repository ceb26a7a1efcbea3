-- The client's reads: tasks with their execution summary, task lists, steps with readiness, the
-- step audit history.

-- SPEC 2.7's ready_for_execution. In this engine a step whose parents are all complete is moved to
-- 'enqueued' at once, so an enqueued step is the ready one. A SQL function, inlined by the planner.
CREATE OR REPLACE FUNCTION tasker.step_ready(s tasker.workflow_steps) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT s.status = 'enqueued'
      OR (s.status IN ('pending', 'waiting_for_retry') AND s.pending_parents = 0
          AND NOT s.processed AND NOT s.in_process
          AND (s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts))
          AND (s.next_retry_at IS NULL OR s.next_retry_at <= now() AT TIME ZONE 'utc'))
$$;

-- Readiness of one step (SPEC 2.7's fields), given its parent count (its incoming edges) and the
-- time of its last failure. A SQL function, inlined into its callers (an argument used twice, as
-- p_parents is, must be a column or a variable for that, not a subquery).
CREATE OR REPLACE FUNCTION tasker.step_readiness_of(s tasker.workflow_steps, p_parents integer,
                                                    p_last_failure_at timestamp) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'workflow_step_uuid', s.workflow_step_uuid,
    'task_uuid', s.task_uuid,
    'named_step_uuid', NULL,
    'name', s.name,
    'current_state', s.status,
    'dependencies_satisfied', s.pending_parents = 0,
    'retry_eligible', s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts),
    'ready_for_execution', tasker.step_ready(s),
    'last_failure_at', p_last_failure_at,
    'next_retry_at', s.next_retry_at,
    'total_parents', p_parents,
    'completed_parents', p_parents - s.pending_parents,
    'attempts', s.attempts,
    'max_attempts', s.max_attempts,
    'backoff_request_seconds', s.backoff_request_seconds,
    'last_attempted_at', s.last_attempted_at)
$$;

-- Readiness of one step, as stored.
CREATE OR REPLACE FUNCTION tasker.step_readiness(s tasker.workflow_steps) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (WITH parents AS (
    SELECT count(*)::integer AS total FROM tasker.workflow_step_edges e
    WHERE e.to_step_uuid = s.workflow_step_uuid
  ), failure AS (
    SELECT max(created_at) AS at FROM tasker.workflow_step_transitions tr
    WHERE tr.workflow_step_uuid = s.workflow_step_uuid
      AND tr.to_state IN ('error', 'waiting_for_retry', 'enqueued_as_error_for_orchestration')
  )
  SELECT tasker.step_readiness_of(s, parents.total, failure.at)
  FROM parents, failure);
END $$;

-- StepResponse: the readiness fields plus timestamps and results.
CREATE OR REPLACE FUNCTION tasker.step_response(s tasker.workflow_steps) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT r - 'workflow_step_uuid' - 'named_step_uuid' - 'backoff_request_seconds' || jsonb_build_object(
    'step_uuid', s.workflow_step_uuid,
    'step_type', s.step_type,
    -- The DAG, for drawing it: the names of this step's parents.
    'parents', (SELECT coalesce(jsonb_agg(p.name ORDER BY p.position, p.name), '[]'::jsonb)
                FROM tasker.workflow_step_edges e JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
                WHERE e.to_step_uuid = s.workflow_step_uuid),
    'handler_callable', s.handler_callable,
    'created_at', s.created_at,
    'updated_at', s.updated_at,
    'completed_at', CASE WHEN s.status IN ('complete', 'resolved_manually') THEN s.processed_at END,
    'results', s.results)
  FROM tasker.step_readiness(s) AS r);
END $$;

-- The execution summary of a task (SPEC 2.9) from the counts of its steps: all of them, pending,
-- in progress (enqueued, in_progress, enqueued_for_orchestration,
-- enqueued_as_error_for_orchestration), completed (complete, resolved_manually), failed (error),
-- retrying (waiting_for_retry) and ready (tasker.step_ready). completion_percentage is a numeric
-- with two decimals, so JSON always carries it as a decimal number (100.00, never 100).
-- health_status is 'recovering' while a failed step waits for its retry (what the reference calls a
-- failed but retry-eligible step), 'blocked' when a step failed for good. Stable, as
-- jsonb_build_object is, so that the planner inlines it.
CREATE OR REPLACE FUNCTION tasker.summary_of(p_total integer, p_pending integer, p_in_progress integer,
                                             p_completed integer, p_failed integer, p_retrying integer,
                                             p_ready integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'total_steps', p_total,
    'pending_steps', p_pending,
    'in_progress_steps', p_in_progress,
    'completed_steps', p_completed,
    'failed_steps', p_failed,
    'ready_steps', p_ready,
    'execution_status', CASE WHEN p_failed > 0 THEN 'blocked_by_failures'
                             WHEN p_ready > 0 THEN 'has_ready_steps'
                             WHEN p_in_progress > 0 THEN 'processing'
                             WHEN p_total > 0 AND p_completed = p_total THEN 'all_complete'
                             ELSE 'waiting_for_dependencies' END,
    'recommended_action', CASE WHEN p_failed > 0 THEN 'handle_failures'
                               WHEN p_ready > 0 THEN 'execute_ready_steps'
                               WHEN p_in_progress > 0 THEN 'wait_for_completion'
                               WHEN p_total > 0 AND p_completed = p_total THEN 'finalize_task'
                               ELSE 'wait_for_dependencies' END,
    'completion_percentage',
      CASE WHEN p_total = 0 THEN 0.00 ELSE round(p_completed::numeric * 100 / p_total, 2) END,
    'health_status', CASE WHEN p_failed > 0 THEN 'blocked'
                          WHEN p_retrying > 0 THEN 'recovering'
                          ELSE 'healthy' END)
$$;

-- The execution summary of a task, from its step rows.
CREATE OR REPLACE FUNCTION tasker.task_summary(p_task uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
  c record;
BEGIN
  SELECT count(*)::integer AS total,
         count(*) FILTER (WHERE s.status = 'pending')::integer AS pending,
         count(*) FILTER (WHERE s.status IN ('enqueued', 'in_progress', 'enqueued_for_orchestration',
                                             'enqueued_as_error_for_orchestration'))::integer AS in_progress,
         count(*) FILTER (WHERE s.status IN ('complete', 'resolved_manually'))::integer AS completed,
         count(*) FILTER (WHERE s.status = 'error')::integer AS failed,
         count(*) FILTER (WHERE s.status = 'waiting_for_retry')::integer AS retrying,
         count(*) FILTER (WHERE tasker.step_ready(s))::integer AS ready
  INTO c FROM tasker.workflow_steps s WHERE s.task_uuid = p_task;
  RETURN tasker.summary_of(c.total, c.pending, c.in_progress, c.completed, c.failed, c.retrying, c.ready);
END $$;

-- The task's own fields of a TaskResponse.
CREATE OR REPLACE FUNCTION tasker.task_fields(t tasker.tasks, p_name text, p_version text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'task_uuid', t.task_uuid,
    'name', p_name,
    'namespace', t.namespace_name,
    'version', p_version,
    'status', t.status,
    'created_at', t.created_at,
    'updated_at', t.updated_at,
    'completed_at', t.completed_at,
    'context', t.context,
    'initiator', t.initiator,
    'source_system', t.source_system,
    'reason', t.reason,
    'priority', t.priority,
    'tags', t.tags,
    'correlation_id', t.correlation_id,
    'parent_correlation_id', t.parent_correlation_id)
$$;

-- TaskResponse: the task, its execution summary and its steps with readiness. Both read one snapshot.
CREATE OR REPLACE FUNCTION tasker.get_task(p_task uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
  t tasker.tasks;
  nt tasker.named_tasks;
BEGIN
  SELECT * INTO t FROM tasker.tasks WHERE task_uuid = p_task;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'task not found: %', p_task USING ERRCODE = 'TK404';
  END IF;
  SELECT * INTO nt FROM tasker.named_tasks WHERE named_task_uuid = t.named_task_uuid;
  RETURN tasker.task_fields(t, nt.name, nt.version) || tasker.task_summary(p_task)
    || jsonb_build_object('steps',
         (SELECT coalesce(jsonb_agg(tasker.step_readiness(s) ORDER BY s.position, s.created_at, s.name), '[]'::jsonb)
          FROM tasker.workflow_steps s WHERE s.task_uuid = p_task));
END $$;

CREATE OR REPLACE FUNCTION tasker.list_task_steps(p_task uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tasker.tasks WHERE task_uuid = p_task) THEN
    RAISE EXCEPTION 'task not found: %', p_task USING ERRCODE = 'TK404';
  END IF;
  RETURN (SELECT coalesce(jsonb_agg(tasker.step_response(s) ORDER BY s.position, s.created_at, s.name), '[]'::jsonb)
          FROM tasker.workflow_steps s WHERE s.task_uuid = p_task);
END $$;

-- TaskListResponse: one page of tasks, newest first, each with its summary but not its steps, and
-- the pagination of SPEC 5 (page = offset / limit + 1). Dynamic SQL so that each filter
-- combination is planned for its index. Without p_with_total nothing counts the matching rows:
-- total_count and total_pages are null, and has_next comes from reading one row beyond the page.
-- initiator and source_system (NULL: any) have no index of their own: the newest-first walk of
-- the other filters' index reads rows until the page is full (docs/performance.md measures it).
-- next_cursor continues from this page with list_tasks_after (keyset, no offset to skip).
CREATE OR REPLACE FUNCTION tasker.list_tasks(p_limit integer, p_offset integer, p_namespace text, p_status text,
                                             p_with_total boolean, p_initiator text, p_source_system text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_where text := 'true';
  v_total bigint;
  v_tasks jsonb;
  v_has_next boolean;
BEGIN
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
    RAISE EXCEPTION 'limit must be between 1 and 1000 (got %)', p_limit USING ERRCODE = 'TK422';
  END IF;
  IF p_offset IS NULL OR p_offset < 0 THEN
    RAISE EXCEPTION 'offset must not be negative (got %)', p_offset USING ERRCODE = 'TK422';
  END IF;
  IF p_namespace IS NOT NULL THEN
    v_where := v_where || ' AND t.namespace_name = $1';
  END IF;
  IF p_status IS NOT NULL THEN
    v_where := v_where || ' AND t.status = $2';
  END IF;
  IF p_initiator IS NOT NULL THEN
    v_where := v_where || ' AND t.initiator = $5';
  END IF;
  IF p_source_system IS NOT NULL THEN
    v_where := v_where || ' AND t.source_system = $6';
  END IF;
  IF coalesce(p_with_total, true) THEN
    EXECUTE 'SELECT count(*) FROM tasker.tasks t WHERE ' || replace(replace(v_where, '$5', '$3'), '$6', '$4')
    INTO v_total USING p_namespace, p_status, p_initiator, p_source_system;
  END IF;
  -- One row more than the page when there is no total: its presence is has_next, and it is dropped.
  EXECUTE 'SELECT coalesce(jsonb_agg(tasker.task_fields(t, nt.name, nt.version) || tasker.task_summary(t.task_uuid)'
          '                          ORDER BY t.created_at DESC, t.task_uuid DESC), ''[]''::jsonb)'
          ' FROM (SELECT * FROM tasker.tasks t WHERE ' || v_where ||
          '       ORDER BY t.created_at DESC, t.task_uuid DESC LIMIT $3 OFFSET $4) t'
          ' JOIN tasker.named_tasks nt USING (named_task_uuid)'
  INTO v_tasks USING p_namespace, p_status, p_limit + CASE WHEN v_total IS NULL THEN 1 ELSE 0 END, p_offset,
                     p_initiator, p_source_system;
  IF v_total IS NULL THEN
    v_has_next := jsonb_array_length(v_tasks) > p_limit;
    IF v_has_next THEN
      v_tasks := v_tasks - p_limit;
    END IF;
  ELSE
    v_has_next := p_offset + p_limit < v_total;
  END IF;
  RETURN jsonb_build_object('tasks', v_tasks, 'pagination', jsonb_build_object(
    'page', p_offset / p_limit + 1,
    'per_page', p_limit,
    'total_count', v_total,
    'total_pages', ceil(v_total::numeric / p_limit)::bigint,
    'has_next', v_has_next,
    'has_previous', p_offset > 0,
    'next_cursor', CASE WHEN v_has_next AND jsonb_array_length(v_tasks) > 0
                        THEN (v_tasks->(jsonb_array_length(v_tasks) - 1)->>'created_at') || '_'
                             || (v_tasks->(jsonb_array_length(v_tasks) - 1)->>'task_uuid') END));
END $$;

-- A page of tasks, newest first, after a cursor (keyset pagination: the dashboard's task list). The
-- cursor is the last task's "created_at_task_uuid", as next_cursor gives it; the row comparison
-- with it is an index condition of tasks_created_idx, tasks_namespace_created_idx or
-- tasks_status_created_idx, so a page deep in a million tasks costs what the first does. has_next
-- comes from reading one task more; nothing is counted.
CREATE OR REPLACE FUNCTION tasker.list_tasks_after(p_limit integer, p_cursor text, p_namespace text, p_status text,
                                                   p_initiator text, p_source_system text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_where text := 'true';
  v_created timestamp;
  v_uuid uuid;
  v_tasks jsonb;
  v_has_next boolean;
  v_last jsonb;
BEGIN
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
    RAISE EXCEPTION 'limit must be between 1 and 1000 (got %)', p_limit USING ERRCODE = 'TK422';
  END IF;
  IF p_cursor IS NOT NULL THEN
    BEGIN
      v_created := split_part(p_cursor, '_', 1)::timestamp;
      v_uuid := split_part(p_cursor, '_', 2)::uuid;
    EXCEPTION WHEN data_exception THEN
      v_created := NULL;
    END;
    IF v_created IS NULL OR v_uuid IS NULL THEN
      RAISE EXCEPTION 'cursor is not a cursor of the task list (got %)', left(p_cursor, 100) USING ERRCODE = 'TK422';
    END IF;
    v_where := v_where || ' AND (t.created_at, t.task_uuid) < ($4, $5)';
  END IF;
  IF p_namespace IS NOT NULL THEN
    v_where := v_where || ' AND t.namespace_name = $1';
  END IF;
  IF p_status IS NOT NULL THEN
    v_where := v_where || ' AND t.status = $2';
  END IF;
  IF p_initiator IS NOT NULL THEN
    v_where := v_where || ' AND t.initiator = $6';
  END IF;
  IF p_source_system IS NOT NULL THEN
    v_where := v_where || ' AND t.source_system = $7';
  END IF;
  EXECUTE 'SELECT coalesce(jsonb_agg(tasker.task_fields(t, nt.name, nt.version) || tasker.task_summary(t.task_uuid)'
          '                          ORDER BY t.created_at DESC, t.task_uuid DESC), ''[]''::jsonb)'
          ' FROM (SELECT * FROM tasker.tasks t WHERE ' || v_where ||
          '       ORDER BY t.created_at DESC, t.task_uuid DESC LIMIT $3) t'
          ' JOIN tasker.named_tasks nt USING (named_task_uuid)'
  INTO v_tasks USING p_namespace, p_status, p_limit + 1, v_created, v_uuid, p_initiator, p_source_system;
  v_has_next := jsonb_array_length(v_tasks) > p_limit;
  IF v_has_next THEN
    v_tasks := v_tasks - p_limit;
  END IF;
  v_last := v_tasks -> (jsonb_array_length(v_tasks) - 1);
  RETURN jsonb_build_object('tasks', v_tasks, 'per_page', p_limit, 'has_next', v_has_next,
    'next_cursor', CASE WHEN v_has_next THEN (v_last->>'created_at') || '_' || (v_last->>'task_uuid') END);
END $$;

-- The number of tasks of a namespace and/or in any of the given states (NULL: no filter), for
-- "is anything unfinished?" without reading a page. Dynamic SQL so that each combination is
-- planned for its index: tasks_namespace_created_idx or tasks_status_created_idx, both of which
-- answer a count with an index-only scan (status = ANY is an index condition of the latter).
CREATE OR REPLACE FUNCTION tasker.count_tasks(p_namespace text, p_statuses text[])
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_where text := 'true';
  v_count bigint;
BEGIN
  IF p_namespace IS NOT NULL THEN
    v_where := v_where || ' AND t.namespace_name = $1';
  END IF;
  IF p_statuses IS NOT NULL THEN
    v_where := v_where || ' AND t.status = ANY ($2::varchar[])';
  END IF;
  EXECUTE 'SELECT count(*) FROM tasker.tasks t WHERE ' || v_where INTO v_count USING p_namespace, p_statuses;
  RETURN v_count;
END $$;

-- The step of a task, or TK404 naming the task or the step (a step of another task is not found).
CREATE OR REPLACE FUNCTION tasker.task_step(p_task uuid, p_step uuid) RETURNS tasker.workflow_steps
LANGUAGE plpgsql STABLE AS $$
DECLARE
  s tasker.workflow_steps;
BEGIN
  SELECT * INTO s FROM tasker.workflow_steps WHERE workflow_step_uuid = p_step AND task_uuid = p_task;
  IF NOT FOUND THEN
    IF NOT EXISTS (SELECT 1 FROM tasker.tasks WHERE task_uuid = p_task) THEN
      RAISE EXCEPTION 'task not found: %', p_task USING ERRCODE = 'TK404';
    END IF;
    RAISE EXCEPTION 'step not found: % in task %', p_step, p_task USING ERRCODE = 'TK404';
  END IF;
  RETURN s;
END $$;

-- StepResponse of one step.
CREATE OR REPLACE FUNCTION tasker.get_step(p_task uuid, p_step uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN tasker.step_response(tasker.task_step(p_task, p_step));
END $$;

-- StepAuditResponse entries, newest first: every transition of the step, each joined with the
-- result audit row it carries (the transition to enqueued_for_orchestration or
-- enqueued_as_error_for_orchestration records the worker's result), plus results that were refused
-- (a stale claim: applied = false, no transition; from_state = to_state = the step's state then).
--   audit_uuid: the audit row's uuid when there is one, else the transition's uuid.
--   success: the result's success; for transitions without a result, false when the step moved to
--            a failure state (error, enqueued_as_error_for_orchestration, waiting_for_retry).
CREATE OR REPLACE FUNCTION tasker.step_audit_history(p_task uuid, p_step uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
  s tasker.workflow_steps := tasker.task_step(p_task, p_step);
  v_correlation uuid;
BEGIN
  SELECT correlation_id INTO v_correlation FROM tasker.tasks WHERE task_uuid = p_task;
  RETURN (
    SELECT coalesce(jsonb_agg(e.entry ORDER BY e.at DESC, e.seq DESC), '[]'::jsonb)
    FROM (
      SELECT tr.created_at AS at, tr.sort_key AS seq, jsonb_build_object(
        'audit_uuid', coalesce(a.workflow_step_result_audit_uuid, tr.workflow_step_transition_uuid),
        'workflow_step_uuid', p_step,
        'transition_uuid', tr.workflow_step_transition_uuid,
        'task_uuid', p_task,
        'step_name', s.name,
        'from_state', tr.from_state,
        'to_state', tr.to_state,
        'event', tr.event,
        'attempt', tr.attempt,
        'success', coalesce(a.success, tr.to_state NOT IN ('error', 'enqueued_as_error_for_orchestration',
                                                           'waiting_for_retry')),
        'applied', coalesce(a.applied, true),
        'worker_uuid', coalesce(a.worker_uuid, tr.worker_uuid),
        'correlation_id', coalesce(a.correlation_id, v_correlation),
        'execution_time_ms', coalesce(a.execution_time_ms, (tr.metadata->>'execution_time_ms')::numeric::bigint),
        'result', a.result,
        'metadata', tr.metadata - 'claim_token',
        'recorded_at', coalesce(a.recorded_at, tr.created_at)) AS entry
      FROM tasker.workflow_step_transitions tr
      LEFT JOIN tasker.workflow_step_result_audit a
        ON a.workflow_step_uuid = p_step AND a.workflow_step_transition_uuid = tr.workflow_step_transition_uuid
      WHERE tr.workflow_step_uuid = p_step
      UNION ALL
      SELECT a.recorded_at, -1, jsonb_build_object(
        'audit_uuid', a.workflow_step_result_audit_uuid,
        'workflow_step_uuid', p_step,
        'transition_uuid', NULL,
        'task_uuid', p_task,
        'step_name', s.name,
        'from_state', coalesce(then_.state, s.status),
        'to_state', coalesce(then_.state, s.status),
        'event', 'result_refused',
        'attempt', NULL,
        'success', a.success,
        'applied', a.applied,
        'worker_uuid', a.worker_uuid,
        'correlation_id', coalesce(a.correlation_id, v_correlation),
        'execution_time_ms', a.execution_time_ms,
        'result', a.result,
        'metadata', '{}'::jsonb,
        'recorded_at', a.recorded_at)
      FROM tasker.workflow_step_result_audit a
      LEFT JOIN LATERAL (
        SELECT tr.to_state AS state FROM tasker.workflow_step_transitions tr
        WHERE tr.workflow_step_uuid = p_step AND tr.created_at <= a.recorded_at
        ORDER BY tr.sort_key DESC LIMIT 1) then_ ON true
      WHERE a.workflow_step_uuid = p_step AND a.workflow_step_transition_uuid IS NULL
    ) e);
END $$;
