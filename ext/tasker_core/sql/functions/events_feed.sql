-- The lifecycle events feed (tc_events.c): the transitions committed since a cursor, in delivery
-- order, with what an event needs of its task and step.

-- The horizon: a uuid v7 at the start of the oldest transaction (or statement) still running in
-- this database, or now. Rows below it were written by transactions that have all finished. Read
-- in a statement of its own, before events_since: that statement's snapshot is taken after this
-- one saw which transactions were open, so every transaction it saw finished is visible there.
CREATE OR REPLACE FUNCTION tasker.events_horizon() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
  SELECT (lpad(to_hex(floor(extract(epoch FROM least(clock_timestamp(),
            (SELECT min(CASE WHEN backend_xid IS NOT NULL THEN xact_start ELSE query_start END)
               FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()
                 AND (backend_xid IS NOT NULL OR state = 'active')))) * 1000)::bigint), 12, '0')
          || '70008000000000000000')::uuid
$$;

-- Up to p_limit task transitions, p_limit logged step transitions and the transitions of up to
-- p_limit step attempts after p_cursor (exclusive) and below the horizon p_upper, one JSON text
-- per transition, in delivery order: time, then per task the task's setup transitions, its steps'
-- transitions (in template order), its other transitions. A committed transaction with rows at or
-- past the horizon lowers it below its first row, so each transaction's rows arrive in one poll.
-- An attempt's transitions (its start included) are read once its history row is committed, that
-- is when the attempt ends.
CREATE OR REPLACE FUNCTION tasker.events_since(p_cursor uuid, p_limit integer, p_upper uuid) RETURNS SETOF text
LANGUAGE sql VOLATILE AS $$
  WITH h0 AS (SELECT p_upper AS upper, tasker.uuid_with_last_byte(p_cursor, 0) AS floor),
  late AS (SELECT x.xmin::text AS xid FROM tasker.task_transitions x, h0
           WHERE x.task_transition_uuid >= h0.upper
           UNION SELECT y.xmin::text FROM tasker.workflow_step_transition_log y, h0
           WHERE y.workflow_step_transition_uuid >= h0.upper
           UNION SELECT a.xmin::text FROM tasker.workflow_step_attempts a, h0
           WHERE a.attempt_uuid >= h0.upper),
  h AS (SELECT least(h0.upper,
          (SELECT x.task_transition_uuid FROM tasker.task_transitions x
           WHERE x.task_transition_uuid > p_cursor AND x.task_transition_uuid < h0.upper
             AND x.xmin::text IN (SELECT xid FROM late) ORDER BY 1 LIMIT 1),
          (SELECT y.workflow_step_transition_uuid FROM tasker.workflow_step_transition_log y
           WHERE y.workflow_step_transition_uuid > p_cursor AND y.workflow_step_transition_uuid < h0.upper
             AND y.xmin::text IN (SELECT xid FROM late) ORDER BY 1 LIMIT 1),
          (SELECT a.attempt_uuid FROM tasker.workflow_step_attempts a
           WHERE a.attempt_uuid >= h0.floor AND a.attempt_uuid < h0.upper
             AND a.xmin::text IN (SELECT xid FROM late) ORDER BY 1 LIMIT 1)) AS upper, h0.floor FROM h0),
  attempts AS (
    SELECT a.* FROM tasker.workflow_step_attempts a, h
    WHERE a.attempt_uuid >= h.floor AND a.attempt_uuid < h.upper AND a.kind IN ('result', 'released')
    ORDER BY a.attempt_uuid LIMIT p_limit),
  tr AS (
    (SELECT 'task'::text AS kind, x.task_transition_uuid AS uuid, x.task_uuid, NULL::uuid AS step_uuid,
            x.from_state::text AS from_state, x.to_state::text AS to_state, x.event::text AS event,
            NULL::int AS attempt, x.metadata, x.sort_key, x.created_at
     FROM tasker.task_transitions x, h
     WHERE x.task_transition_uuid > p_cursor AND x.task_transition_uuid < h.upper
     ORDER BY x.task_transition_uuid LIMIT p_limit)
    UNION ALL
    (SELECT 'step', y.workflow_step_transition_uuid, y.task_uuid, y.workflow_step_uuid,
            y.from_state::text, y.to_state::text, y.event::text, y.attempt, y.metadata, y.sort_key, y.created_at
     FROM tasker.workflow_step_transition_log y, h
     WHERE y.workflow_step_transition_uuid > p_cursor AND y.workflow_step_transition_uuid < h.upper
     ORDER BY y.workflow_step_transition_uuid LIMIT p_limit)
    UNION ALL
    SELECT 'step', tasker.uuid_with_last_byte(a.attempt_uuid, x.k), a.task_uuid, a.workflow_step_uuid,
           x.from_state::text, x.to_state::text, x.event::text, CASE WHEN x.k = 0 THEN 0 ELSE a.attempt END,
           x.metadata, x.sort_key, x.created_at
    FROM attempts a
    CROSS JOIN LATERAL (VALUES
      (0, 'pending', 'enqueued', 'enqueue', '{}'::jsonb, a.enqueue_seq, a.enqueued_at),
      (1, 'enqueued', 'in_progress', 'start', '{}'::jsonb, a.claim_seq, a.claimed_at),
      (2, 'in_progress', a.result_state, a.result_event,
       CASE WHEN a.kind = 'result' THEN jsonb_build_object('execution_time_ms', a.execution_time_ms)
            ELSE '{}'::jsonb END, a.result_seq, a.finished_at),
      (3, a.result_state, a.to_state, a.to_event, a.to_metadata, a.result_seq + 1, a.finished_at)
    ) AS x(k, from_state, to_state, event, metadata, sort_key, created_at)
    WHERE x.sort_key IS NOT NULL AND (x.k < 3 OR a.kind = 'result')
      AND tasker.uuid_with_last_byte(a.attempt_uuid, x.k) > p_cursor)
  SELECT jsonb_build_object('kind', tr.kind, 'transition_uuid', tr.uuid, 'task_uuid', tr.task_uuid,
           'step_uuid', tr.step_uuid, 'from_state', tr.from_state, 'to_state', tr.to_state,
           'transition_event', tr.event, 'attempt', coalesce(tr.attempt, s.attempts), 'metadata', tr.metadata,
           'transitioned_at', to_char(tr.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US'),
           'task_name', nt.name, 'task_version', nt.version, 'namespace', t.namespace_name,
           'named_task_uuid', t.named_task_uuid, 'correlation_id', t.correlation_id,
           'parent_correlation_id', t.parent_correlation_id, 'step_name', s.name,
           'task_created_at', to_char(t.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US'),
           'execution_duration', CASE WHEN tr.kind = 'task' AND tr.to_state IN
               ('complete', 'error', 'cancelled', 'resolved_manually')
             THEN round(extract(epoch FROM tr.created_at - t.created_at)::numeric, 6) END,
           'error', CASE WHEN tr.kind = 'step' AND tr.to_state IN ('error', 'waiting_for_retry')
             THEN coalesce(tr.metadata->'error', s.results->'error') END)::text
  FROM tr JOIN tasker.tasks t ON t.task_uuid = tr.task_uuid
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  LEFT JOIN tasker.workflow_steps s ON s.workflow_step_uuid = tr.step_uuid
  ORDER BY tr.created_at, tr.task_uuid,
    CASE WHEN tr.kind = 'step' THEN 1 WHEN tr.to_state IN ('initializing', 'enqueuing_steps')
      AND tr.from_state IS DISTINCT FROM 'waiting_for_dependencies' THEN 0 ELSE 2 END,
    s.position, tr.step_uuid, tr.sort_key
$$;
