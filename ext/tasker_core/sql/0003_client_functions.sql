-- Read side of the client API: tasks with their execution summary, steps with readiness.

-- Readiness of one step (SPEC 2.7's fields). The read functions are PL/pgSQL so that their plans
-- are cached per session. In this engine a step whose parents are all
-- complete is moved to 'enqueued' at once, so an enqueued step is the ready one.
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
  SELECT jsonb_build_object(
    'workflow_step_uuid', s.workflow_step_uuid,
    'task_uuid', s.task_uuid,
    'named_step_uuid', NULL,
    'name', s.name,
    'current_state', s.status,
    'dependencies_satisfied', s.pending_parents = 0,
    'retry_eligible', s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts),
    'ready_for_execution',
      s.status = 'enqueued'
      OR (s.status IN ('pending', 'waiting_for_retry') AND s.pending_parents = 0
          AND NOT s.processed AND NOT s.in_process
          AND (s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts))
          AND (s.next_retry_at IS NULL OR s.next_retry_at <= now() AT TIME ZONE 'utc')),
    'last_failure_at', failure.at,
    'next_retry_at', s.next_retry_at,
    'total_parents', parents.total,
    'completed_parents', parents.total - s.pending_parents,
    'attempts', s.attempts,
    'max_attempts', s.max_attempts,
    'backoff_request_seconds', s.backoff_request_seconds,
    'last_attempted_at', s.last_attempted_at)
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

-- TaskResponse: the task, its template identity, the execution summary (SPEC 2.9) and its steps.
CREATE OR REPLACE FUNCTION tasker.get_task(p_task uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
  t record;
  c record;
  v_steps jsonb;
  v_exec text;
  v_action text;
  v_health text;
BEGIN
  SELECT tk.*, nt.name AS template_name, nt.version AS template_version INTO t
  FROM tasker.tasks tk JOIN tasker.named_tasks nt USING (named_task_uuid)
  WHERE tk.task_uuid = p_task;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'task not found: %', p_task USING ERRCODE = 'TK404';
  END IF;

  SELECT coalesce(jsonb_agg(tasker.step_readiness(s) ORDER BY s.position, s.created_at, s.name), '[]'::jsonb)
  INTO v_steps FROM tasker.workflow_steps s WHERE s.task_uuid = p_task;

  SELECT
    count(*) AS total,
    count(*) FILTER (WHERE r->>'current_state' = 'pending') AS pending,
    count(*) FILTER (WHERE r->>'current_state' = 'enqueued') AS enqueued,
    count(*) FILTER (WHERE r->>'current_state' = 'in_progress') AS in_progress,
    count(*) FILTER (WHERE r->>'current_state' IN ('enqueued_for_orchestration',
                                                    'enqueued_as_error_for_orchestration')) AS orchestrating,
    count(*) FILTER (WHERE r->>'current_state' IN ('complete', 'resolved_manually')) AS completed,
    count(*) FILTER (WHERE r->>'current_state' = 'error') AS failed,
    count(*) FILTER (WHERE (r->>'ready_for_execution')::boolean) AS ready
  INTO c FROM jsonb_array_elements(v_steps) AS r;

  IF c.failed > 0 THEN
    v_exec := 'blocked_by_failures'; v_action := 'handle_failures'; v_health := 'blocked';
  ELSE
    v_health := 'healthy';
    IF c.ready > 0 THEN
      v_exec := 'has_ready_steps'; v_action := 'execute_ready_steps';
    ELSIF c.in_progress + c.enqueued + c.orchestrating > 0 THEN
      v_exec := 'processing'; v_action := 'wait_for_completion';
    ELSIF c.total > 0 AND c.completed = c.total THEN
      v_exec := 'all_complete'; v_action := 'finalize_task';
    ELSE
      v_exec := 'waiting_for_dependencies'; v_action := 'wait_for_dependencies';
    END IF;
  END IF;

  RETURN jsonb_build_object(
    'task_uuid', t.task_uuid,
    'name', t.template_name,
    'namespace', t.namespace_name,
    'version', t.template_version,
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
    'parent_correlation_id', t.parent_correlation_id,
    'total_steps', c.total,
    'pending_steps', c.pending,
    'in_progress_steps', c.in_progress + c.enqueued + c.orchestrating,
    'completed_steps', c.completed,
    'failed_steps', c.failed,
    'ready_steps', c.ready,
    'execution_status', v_exec,
    'recommended_action', v_action,
    'completion_percentage',
      CASE WHEN c.total = 0 THEN 0.0 ELSE round(c.completed::numeric * 100 / c.total, 2)::float8 END,
    'health_status', v_health,
    'steps', v_steps);
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
