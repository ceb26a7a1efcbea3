-- The dashboard overview's figures: the tasks by namespace and state, what finished over the last
-- minutes, and what waits in the queue now. The last two read only the rows of their window or of
-- their state through an index, so they cost the same with a million finished tasks as with none.

-- The overview's task counts: {"states": {state: n}, "namespaces": [{namespace, total,
-- unfinished, error}]}. Three reads instead of a count per state and per namespace: the states from
-- an index-only scan of tasks_status_created_idx, the totals per namespace from one of
-- tasks_namespace_created_idx, and the unfinished and failed tasks per namespace from the status
-- index's entries of those states only.
CREATE OR REPLACE FUNCTION tasker.task_counts() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'states', (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
               FROM (SELECT status, count(*) AS n FROM tasker.tasks GROUP BY status) s),
    'namespaces', (SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', a.namespace_name, 'total', a.n,
                                                                'unfinished', coalesce(b.unfinished, 0),
                                                                'error', coalesce(b.error, 0))
                                             ORDER BY a.namespace_name), '[]'::jsonb)
                   FROM (SELECT namespace_name, count(*) AS n FROM tasker.tasks GROUP BY namespace_name) a
                   LEFT JOIN (SELECT namespace_name, count(*) FILTER (WHERE status <> 'error') AS unfinished,
                                     count(*) FILTER (WHERE status = 'error') AS error
                              FROM tasker.tasks
                              WHERE status IN ('pending', 'initializing', 'enqueuing_steps', 'steps_in_process',
                                               'evaluating_results', 'waiting_for_dependencies', 'waiting_for_retry',
                                               'blocked_by_failures', 'error')
                              GROUP BY namespace_name) b USING (namespace_name)))
$$;

-- The registered namespaces' names, sorted.
CREATE OR REPLACE FUNCTION tasker.namespace_names() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(name ORDER BY name), '[]'::jsonb) FROM tasker.task_namespaces
$$;

-- Tasks finished (complete, error, cancelled) and step attempts ended (succeeded, failed) per
-- bucket of p_bucket_minutes over the last p_minutes, oldest bucket first, with the totals and the
-- error rates (errored / finished tasks, failed / ended attempts; null when nothing ended). The
-- finishing task transitions are read from their partial index (task_transitions_finished_idx);
-- step attempts are keyed by uuid v7, so the window is a range of their primary key (a minute
-- early: a row's key is taken a little after the timestamp it records). Either read costs the
-- window's rows, not the history's.
CREATE OR REPLACE FUNCTION tasker.activity(p_minutes integer, p_bucket_minutes integer) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_since timestamp;
  v_bucket interval;
  v_buckets jsonb;
BEGIN
  IF p_minutes IS NULL OR p_minutes < 1 OR p_minutes > 1440 THEN
    RAISE EXCEPTION 'minutes must be between 1 and 1440 (got %)', p_minutes USING ERRCODE = 'TK422';
  END IF;
  IF p_bucket_minutes IS NULL OR p_bucket_minutes < 1 OR p_bucket_minutes > p_minutes THEN
    RAISE EXCEPTION 'bucket_minutes must be between 1 and minutes (%) (got %)', p_minutes, p_bucket_minutes
      USING ERRCODE = 'TK422';
  END IF;
  v_since := v_now - make_interval(mins => p_minutes);
  v_bucket := make_interval(mins => p_bucket_minutes);
  WITH b AS (
    SELECT v_since + v_bucket * i AS start
    FROM generate_series(0, ceil(p_minutes::numeric / p_bucket_minutes)::integer - 1) AS i
  ), t AS (
    SELECT date_bin(v_bucket, created_at, v_since) AS start,
           count(*) FILTER (WHERE to_state = 'complete') AS completed,
           count(*) FILTER (WHERE to_state = 'error') AS errored,
           count(*) FILTER (WHERE to_state = 'cancelled') AS cancelled
    FROM tasker.task_transitions
    WHERE created_at >= v_since AND to_state IN ('complete', 'error', 'cancelled')
    GROUP BY 1
  ), s AS (
    SELECT date_bin(v_bucket, finished_at, v_since) AS start,
           count(*) FILTER (WHERE success) AS succeeded,
           count(*) FILTER (WHERE NOT success) AS failed
    FROM tasker.workflow_step_attempts
    WHERE attempt_uuid >= tasker.uuid_v7_floor(v_since - interval '1 minute')
      AND finished_at >= v_since AND kind = 'result'
    GROUP BY 1
  )
  SELECT jsonb_agg(jsonb_build_object(
           'start', b.start,
           'tasks_completed', coalesce(t.completed, 0), 'tasks_errored', coalesce(t.errored, 0),
           'tasks_cancelled', coalesce(t.cancelled, 0),
           'steps_succeeded', coalesce(s.succeeded, 0), 'steps_failed', coalesce(s.failed, 0)) ORDER BY b.start)
  INTO v_buckets
  FROM b LEFT JOIN t USING (start) LEFT JOIN s USING (start);
  RETURN (
    SELECT jsonb_build_object(
      'since', v_since, 'until', v_now, 'minutes', p_minutes, 'bucket_minutes', p_bucket_minutes,
      'buckets', v_buckets,
      'totals', jsonb_build_object('tasks_completed', tc, 'tasks_errored', te, 'tasks_cancelled', tx,
                                   'steps_succeeded', ss, 'steps_failed', sf),
      'task_error_rate', CASE WHEN tc + te > 0 THEN round(te::numeric / (tc + te), 4) END,
      'step_error_rate', CASE WHEN ss + sf > 0 THEN round(sf::numeric / (ss + sf), 4) END)
    FROM (SELECT sum((e->>'tasks_completed')::bigint) AS tc, sum((e->>'tasks_errored')::bigint) AS te,
                 sum((e->>'tasks_cancelled')::bigint) AS tx, sum((e->>'steps_succeeded')::bigint) AS ss,
                 sum((e->>'steps_failed')::bigint) AS sf
          FROM jsonb_array_elements(v_buckets) AS e) x);
END $$;

-- Per namespace, the steps waiting in the queue now: enqueued (claimable; the oldest's wait),
-- in progress (claimed by a worker), waiting for retry (and how many of those are due). Each
-- count reads the partial index of its state (workflow_steps_claim_idx, _claim_expiry_idx,
-- _retry_idx), so it costs the queue's size, not the table's. Every registered namespace is listed.
CREATE OR REPLACE FUNCTION tasker.queue_depth() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  WITH now_utc AS (SELECT clock_timestamp() AT TIME ZONE 'utc' AS now),
  e AS (SELECT namespace_name, count(*) AS n, min(ready_at) AS oldest
        FROM tasker.workflow_steps WHERE status = 'enqueued' GROUP BY 1),
  p AS (SELECT namespace_name, count(*) AS n
        FROM tasker.workflow_steps WHERE status = 'in_progress' GROUP BY 1),
  r AS (SELECT namespace_name, count(*) AS n, count(*) FILTER (WHERE next_retry_at <= (SELECT now FROM now_utc)) AS due
        FROM tasker.workflow_steps WHERE status = 'waiting_for_retry' GROUP BY 1),
  ns AS (SELECT name AS namespace_name FROM tasker.task_namespaces
         UNION SELECT namespace_name FROM e UNION SELECT namespace_name FROM p UNION SELECT namespace_name FROM r)
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'namespace', ns.namespace_name,
           'enqueued', coalesce(e.n, 0),
           'in_progress', coalesce(p.n, 0),
           'waiting_for_retry', coalesce(r.n, 0),
           'retry_due', coalesce(r.due, 0),
           'oldest_enqueued_at', e.oldest,
           'oldest_enqueued_seconds', round(extract(epoch FROM (SELECT now FROM now_utc) - e.oldest)::numeric, 1))
         ORDER BY ns.namespace_name), '[]'::jsonb)
  FROM ns LEFT JOIN e USING (namespace_name) LEFT JOIN p USING (namespace_name) LEFT JOIN r USING (namespace_name)
$$;
