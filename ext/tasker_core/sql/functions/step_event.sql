-- The step event: everything a handler needs, built for each claimed step.

-- The event of a claimed step s: the task and its context, the step row, its template definition
-- and the results of all its completed ancestors. The ancestors are found level by level through
-- the edges' to_step_uuid index (a lateral subquery the planner cannot flatten into a hash join
-- over every edge), so the walk costs what the step's own ancestry costs.
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
      -- The task's own steps, kept when they are ancestors of this step.
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
              -- OFFSET 0 keeps the subquery lateral: one index probe per step found so far.
              SELECT p.from_step_uuid FROM anc CROSS JOIN LATERAL (
                SELECT e.from_step_uuid FROM tasker.workflow_step_edges e
                WHERE e.to_step_uuid = anc.uuid OFFSET 0) p
            )
            SELECT uuid FROM anc)
      ), '{}'::jsonb),
      'step_definition', coalesce((
        SELECT d FROM jsonb_array_elements(nt.configuration->'steps') AS d
        WHERE d->>'name' = s.template_step_name LIMIT 1), '{}'::jsonb)))
  FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid)
  WHERE t.task_uuid = s.task_uuid);
END $$;
