-- The workers' registry (tasker.workers): each worker's claimer thread reports itself when it
-- connects and on every claim heartbeat (tc_claimer.c), and marks itself stopped when it stops.

-- Records that a worker is alive now (inserting it the first time, or after its row was removed),
-- and removes the rows of workers silent for a day.
CREATE OR REPLACE FUNCTION tasker.worker_heartbeat(p_worker uuid, p_hostname text, p_pid integer, p_namespaces text[],
                                                   p_concurrency integer, p_busy integer, p_interval_ms integer)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO tasker.workers AS w (worker_uuid, hostname, pid, namespaces, concurrency, busy, heartbeat_interval_ms,
                                   started_at, last_heartbeat_at)
  VALUES (p_worker, left(p_hostname, 255), p_pid, p_namespaces, p_concurrency, p_busy, p_interval_ms,
          clock_timestamp() AT TIME ZONE 'utc', clock_timestamp() AT TIME ZONE 'utc')
  ON CONFLICT (worker_uuid) DO UPDATE
  SET busy = EXCLUDED.busy, last_heartbeat_at = EXCLUDED.last_heartbeat_at, stopped_at = NULL;
  DELETE FROM tasker.workers
  WHERE last_heartbeat_at < (clock_timestamp() AT TIME ZONE 'utc') - interval '1 day';
$$;

CREATE OR REPLACE FUNCTION tasker.worker_stopped(p_worker uuid) RETURNS void
LANGUAGE sql AS $$
  UPDATE tasker.workers SET stopped_at = clock_timestamp() AT TIME ZONE 'utc', busy = 0
  WHERE worker_uuid = p_worker;
$$;

-- The registered workers, alive ones first, then by their last heartbeat, newest first. A worker
-- is alive when it has not stopped and its last heartbeat is less than three of its intervals old
-- (a worker that died without stopping turns not alive after that long).
CREATE OR REPLACE FUNCTION tasker.list_workers(p_limit integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(w) - 'alive_rank' ORDER BY w.alive_rank, w.last_heartbeat_at DESC), '[]'::jsonb)
  FROM (SELECT x.*, CASE WHEN x.alive THEN 0 ELSE 1 END AS alive_rank
        FROM (SELECT worker_uuid, hostname, pid, namespaces, concurrency, busy, heartbeat_interval_ms, started_at,
                     last_heartbeat_at, stopped_at,
                     round(extract(epoch FROM (clock_timestamp() AT TIME ZONE 'utc') - last_heartbeat_at)::numeric, 1)
                       AS heartbeat_age_seconds,
                     stopped_at IS NULL AND last_heartbeat_at > (clock_timestamp() AT TIME ZONE 'utc')
                       - make_interval(secs => 3 * heartbeat_interval_ms / 1000.0) AS alive
              FROM tasker.workers) x
        ORDER BY alive_rank, last_heartbeat_at DESC
        LIMIT p_limit) w
$$;
