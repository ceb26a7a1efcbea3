-- The dead-letter queue's reports (SPEC 9.2, the reference's GET /v1/dlq/stats,
-- /v1/dlq/investigation-queue and /v1/dlq/staleness). The DLQ is small (one row per task the
-- staleness detector gave up on); the staleness view reads only the tasks in an active state
-- (tasks_status_created_idx).

-- Per dlq_reason: how many entries, by resolution, the oldest and newest, and the mean minutes
-- from entry to resolution of the resolved ones.
CREATE OR REPLACE FUNCTION tasker.dlq_stats() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'dlq_reason', dlq_reason, 'total_entries', total_entries, 'pending', pending,
           'manually_resolved', manually_resolved, 'permanent_failures', permanent_failures,
           'cancelled', cancelled, 'oldest_entry', oldest_entry, 'newest_entry', newest_entry,
           'avg_resolution_time_minutes', avg_resolution_time_minutes) ORDER BY dlq_reason), '[]'::jsonb)
  FROM (SELECT dlq_reason::text AS dlq_reason, count(*) AS total_entries,
               count(*) FILTER (WHERE resolution_status = 'pending') AS pending,
               count(*) FILTER (WHERE resolution_status = 'manually_resolved') AS manually_resolved,
               count(*) FILTER (WHERE resolution_status = 'permanently_failed') AS permanent_failures,
               count(*) FILTER (WHERE resolution_status = 'cancelled') AS cancelled,
               min(dlq_timestamp) AS oldest_entry, max(dlq_timestamp) AS newest_entry,
               round(avg(extract(epoch FROM resolution_timestamp - dlq_timestamp) / 60)
                     FILTER (WHERE resolution_status <> 'pending' AND resolution_timestamp IS NOT NULL), 2)
                 AS avg_resolution_time_minutes
        FROM tasker.tasks_dlq GROUP BY dlq_reason) s
$$;

-- The pending entries, most urgent first: priority_score = a base per reason (dependency cycle
-- 1000, max retries 500, staleness 100, worker unavailable 50, else 10) plus the minutes in the DLQ.
CREATE OR REPLACE FUNCTION tasker.dlq_investigation_queue(p_limit integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.priority_score DESC, q.dlq_timestamp), '[]'::jsonb)
  FROM (SELECT d.dlq_entry_uuid, d.task_uuid, d.original_state, d.dlq_reason::text AS dlq_reason, d.dlq_timestamp,
               round(m.minutes, 2) AS minutes_in_dlq, t.namespace_name, nt.name AS task_name,
               t.status AS current_state,
               floor(extract(epoch FROM (clock_timestamp() AT TIME ZONE 'utc') - t.updated_at) / 60)::integer
                 AS time_in_state_minutes,
               round(CASE d.dlq_reason WHEN 'dependency_cycle_detected' THEN 1000 WHEN 'max_retries_exceeded' THEN 500
                                       WHEN 'staleness_timeout' THEN 100 WHEN 'worker_unavailable' THEN 50 ELSE 10 END
                     + m.minutes, 2) AS priority_score
        FROM tasker.tasks_dlq d
        CROSS JOIN LATERAL (SELECT extract(epoch FROM (clock_timestamp() AT TIME ZONE 'utc') - d.dlq_timestamp)::numeric
                                   / 60 AS minutes) m
        LEFT JOIN tasker.tasks t ON t.task_uuid = d.task_uuid
        LEFT JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        WHERE d.resolution_status = 'pending'
        ORDER BY priority_score DESC, d.dlq_timestamp
        LIMIT p_limit) q
$$;

-- The tasks in an active state (waiting_for_dependencies, waiting_for_retry, steps_in_process),
-- closest to their staleness threshold first: minutes in the state (since the task last changed),
-- age, the threshold (the template's lifecycle.max_steps_in_process_minutes, else
-- p_threshold_minutes, for steps_in_process; 60 and 30 minutes for the waiting states) and
-- health_status: healthy under 80 % of it, warning from 80 %, stale from 100 %.
CREATE OR REPLACE FUNCTION tasker.dlq_staleness(p_limit integer, p_threshold_minutes integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  WITH now_utc AS (SELECT clock_timestamp() AT TIME ZONE 'utc' AS now),
  -- The steps_in_process threshold of each template (a stored value that is no whole number of
  -- minutes is ignored, as the detector does).
  th AS (SELECT named_task_uuid, name,
                coalesce(CASE WHEN (configuration->'lifecycle'->>'max_steps_in_process_minutes') ~ '^[0-9]{1,6}$'
                              THEN (configuration->'lifecycle'->>'max_steps_in_process_minutes')::integer END,
                         p_threshold_minutes) AS in_process
         FROM tasker.named_tasks),
  x AS (SELECT t.task_uuid, t.namespace_name, th.name AS task_name, t.status AS current_state, t.priority,
               extract(epoch FROM n.now - t.updated_at) / 60 AS in_state, extract(epoch FROM n.now - t.created_at) / 60 AS age,
               CASE t.status WHEN 'steps_in_process' THEN th.in_process WHEN 'waiting_for_dependencies' THEN 60 ELSE 30 END
                 AS threshold
        FROM tasker.tasks t JOIN th USING (named_task_uuid) CROSS JOIN now_utc n
        WHERE t.status IN ('waiting_for_dependencies', 'waiting_for_retry', 'steps_in_process')
        ORDER BY (extract(epoch FROM n.now - t.updated_at) / 60) / greatest(
                   CASE t.status WHEN 'steps_in_process' THEN th.in_process WHEN 'waiting_for_dependencies' THEN 60 ELSE 30 END, 1)
                 DESC, t.updated_at
        LIMIT p_limit)
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'task_uuid', task_uuid, 'namespace_name', namespace_name, 'task_name', task_name,
           'current_state', current_state, 'time_in_state_minutes', floor(in_state)::integer,
           'task_age_minutes', floor(age)::integer, 'staleness_threshold_minutes', threshold,
           'health_status', CASE WHEN in_state >= threshold THEN 'stale' WHEN in_state >= 0.8 * threshold THEN 'warning'
                                 ELSE 'healthy' END,
           'priority', priority) ORDER BY in_state / greatest(threshold, 1) DESC), '[]'::jsonb)
  FROM x
$$;
