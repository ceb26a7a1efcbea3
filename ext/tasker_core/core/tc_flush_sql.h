/*
 * tc_flush_sql.h - the two statements of a flush (tc_flush.c), prepared once per flusher connection.
 *
 * A flush sends them pipelined, in one round trip and one transaction (the implicit transaction a
 * pipeline runs in until its sync): the completion of every plain result, then the claim on a fresh
 * snapshot. Plain SQL with array parameters and cached generic plans: no PL/pgSQL, no JSON assembled
 * by the server but the step event rows. Every access is a keyed probe; the plans are checked with
 * auto_explain (docs/performance.md).
 *
 * Both read the transaction's start time, now(): the completion stamps the steps it finishes and
 * hands over with it, and the claim recognises the steps handed to its worker in this transaction
 * by it (a child handed earlier, even to the same worker, carries an older time).
 *
 * Each opens with a comment naming it, so pg_stat_activity and the statement statistics show what
 * a flush is doing.
 */
#ifndef TC_FLUSH_SQL_H
#define TC_FLUSH_SQL_H

/*
 * The completion of plain results: successes (without domain events) of steps that create no steps,
 * whose claim is still current and whose task is still running. $1 worker, $2 step uuids, $3 claim
 * tokens, $4 the results (a JSON array, in the same order), $5 whether each result's thread wants
 * the next step, $6 the visibility timeout in seconds.
 *
 * Locks: the claimed steps in uuid order, then their running tasks in uuid order (the order every
 * completion takes them in, so flushes never wait on each other in a cycle; a child is only ever
 * updated under its task's lock). Then, in one statement: the step rows, one history row per
 * attempt, the children's pending-parent counts aggregated per child (a child reaching zero is
 * enqueued, or handed to the first result that wants a next step and whose step has no other
 * child: pending -> in_progress, claimed by $1), the tasks' counters aggregated per task, and the
 * end of every task whose last step this was (complete), or whose last active step this was after a
 * sibling's permanent failure (error), with its transitions. Other workers are woken for children
 * left in the queue.
 *
 * Returns one row per applied result: its position in $2 (1-based), the task's status, how many of
 * its step's children it enqueued, and the step's namespace. A result not returned was not applied
 * (not plain after all, a stale claim, a task that ended): the flusher sends it through
 * tasker.complete_results, which knows every case.
 */
#define TC_FLUSH_COMPLETE_SQL \
  "/* tasker.flush: completion */ " \
  "WITH input AS MATERIALIZED (" \
  "  SELECT i.step, i.token, i.want_next, i.result - 'domain_events' AS result, i.ord" \
  "  FROM ROWS FROM (unnest($2::uuid[]), unnest($3::uuid[]), unnest($5::boolean[])," \
  "                  jsonb_array_elements($4::jsonb)) WITH ORDINALITY AS i(step, token, want_next, result, ord)" \
  "), claims AS MATERIALIZED (" \
  /* Each step through its primary key (OFFSET 0 keeps the conditions out of the lateral subquery, so \
   * no partial index of in-progress steps is walked instead), in uuid order. */ \
  "  SELECT s.workflow_step_uuid, s.task_uuid, s.attempts, s.transition_seq, s.namespace_name, s.enqueue_seq," \
  "         s.ready_at, s.claim_seq, s.last_attempted_at, i.result, i.ord, i.want_next," \
  "         (i.result->'metadata'->>'execution_time_ms')::numeric::bigint AS exec_ms" \
  "  FROM (SELECT * FROM input WHERE result->'success' = 'true'::jsonb ORDER BY step) i" \
  "  CROSS JOIN LATERAL (" \
  "    SELECT s.workflow_step_uuid, s.task_uuid, s.attempts, s.transition_seq, s.namespace_name, s.enqueue_seq," \
  "           s.ready_at, s.claim_seq, s.last_attempted_at, s.claim_token, s.status, s.step_type" \
  "    FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = i.step OFFSET 0 FOR UPDATE) s" \
  "  WHERE s.claim_token = i.token AND s.status = 'in_progress' AND s.step_type NOT IN ('decision', 'batchable')" \
  "), running AS MATERIALIZED (" \
  "  SELECT t.task_uuid FROM (SELECT DISTINCT c.task_uuid FROM claims c ORDER BY 1) c" \
  "  CROSS JOIN LATERAL (" \
  "    SELECT t.task_uuid, t.status FROM tasker.tasks t WHERE t.task_uuid = c.task_uuid OFFSET 0 FOR UPDATE) t" \
  "  WHERE t.status = 'steps_in_process'" \
  "), done AS (" \
  "  UPDATE tasker.workflow_steps s" \
  "  SET status = 'complete', in_process = false, processed = true, processed_at = now() AT TIME ZONE 'utc'," \
  "      results = c.result, claim_owner = NULL, claim_token = NULL, claim_expires_at = NULL, claim_seq = NULL," \
  "      enqueue_seq = NULL, next_retry_at = NULL, transition_seq = c.transition_seq + 2," \
  "      updated_at = now() AT TIME ZONE 'utc'" \
  "  FROM claims c" \
  "  WHERE s.workflow_step_uuid = c.workflow_step_uuid AND c.task_uuid = ANY (ARRAY(SELECT task_uuid FROM running))" \
  "  RETURNING c.*" \
  "), history AS (" \
  "  INSERT INTO tasker.workflow_step_attempts (attempt_uuid, workflow_step_uuid, task_uuid, kind, attempt," \
  "    worker_uuid, enqueue_seq, enqueued_at, claim_seq, claimed_at, result_seq, result_state, result_event," \
  "    to_state, to_event, to_metadata, finished_at, success, applied, execution_time_ms, result)" \
  "  SELECT tasker.uuid_with_last_byte(tasker.uuid_v7(), 0), d.workflow_step_uuid, d.task_uuid, 'result'," \
  "         d.attempts, $1::uuid, d.enqueue_seq, d.ready_at, d.claim_seq, d.last_attempted_at," \
  "         d.transition_seq + 1, 'enqueued_for_orchestration', 'enqueue_for_orchestration', 'complete'," \
  "         'complete', '{}'::jsonb, now() AT TIME ZONE 'utc', true, true, d.exec_ms, d.result" \
  "  FROM done d" \
  "), released AS (" \
  "  UPDATE tasker.workflow_steps c" \
  "  SET pending_parents = c.pending_parents - k.n," \
  "      status = CASE WHEN c.pending_parents = k.n AND c.status = 'pending'" \
  "                    THEN CASE WHEN k.taker IS NULL THEN 'enqueued' ELSE 'in_progress' END" \
  "                    ELSE c.status END," \
  "      ready_at = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' THEN now() AT TIME ZONE 'utc'" \
  "                      ELSE c.ready_at END," \
  "      transition_seq = CASE WHEN c.pending_parents = k.n AND c.status = 'pending'" \
  "                            THEN c.transition_seq + CASE WHEN k.taker IS NULL THEN 1 ELSE 2 END" \
  "                            ELSE c.transition_seq END," \
  "      enqueue_seq = CASE WHEN c.pending_parents = k.n AND c.status = 'pending'" \
  "                         THEN c.transition_seq + 1 ELSE c.enqueue_seq END," \
  "      in_process = c.in_process OR (c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL)," \
  "      attempts = c.attempts + (c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL)::integer," \
  "      last_attempted_at = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL" \
  "                               THEN now() AT TIME ZONE 'utc' ELSE c.last_attempted_at END," \
  "      claim_owner = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL" \
  "                         THEN $1::uuid ELSE c.claim_owner END," \
  "      claim_token = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL" \
  "                         THEN tasker.uuid_v7() ELSE c.claim_token END," \
  "      claim_expires_at = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL" \
  "                              THEN now() AT TIME ZONE 'utc' + make_interval(secs => $6::integer)" \
  "                              ELSE c.claim_expires_at END," \
  "      claim_seq = CASE WHEN c.pending_parents = k.n AND c.status = 'pending' AND k.taker IS NOT NULL" \
  "                       THEN c.transition_seq + 2 ELSE c.claim_seq END," \
  "      updated_at = now() AT TIME ZONE 'utc'" \
  /* The children through one probe of the edges per finished step (OFFSET 0 keeps the subquery \
   * lateral: joined, the planner may scan every edge of the table into a hash). */ \
  "  FROM (SELECT e.to_step_uuid, count(*)::integer AS n," \
  "               min(e.ord) FILTER (WHERE e.want_next AND e.children = 1) AS taker, array_agg(e.ord) AS parents" \
  "        FROM (SELECT x.to_step_uuid, d.ord, d.want_next," \
  "                     count(*) OVER (PARTITION BY d.workflow_step_uuid) AS children" \
  "              FROM done d CROSS JOIN LATERAL (" \
  "                SELECT y.to_step_uuid FROM tasker.workflow_step_edges y" \
  "                WHERE y.from_step_uuid = d.workflow_step_uuid OFFSET 0) x) e" \
  "        GROUP BY e.to_step_uuid) k" \
  "  WHERE c.workflow_step_uuid = k.to_step_uuid" \
  "  RETURNING c.task_uuid, c.namespace_name, k.parents," \
  "            c.status = 'enqueued' AND c.pending_parents = 0 AS ready, c.status = 'in_progress' AS handed" \
  /* Per task, in one aggregate over its finished steps and the children they released (no join: \
   * its generic plan is a nested loop, quadratic in the group's size). */ \
  "), per_task AS (" \
  "  SELECT u.task_uuid, count(u.ord)::integer AS n_done, count(*) FILTER (WHERE u.active)::integer AS n_ready" \
  "  FROM (SELECT d.task_uuid, d.ord, false AS active FROM done d" \
  "        UNION ALL SELECT r.task_uuid, NULL, r.ready OR r.handed FROM released r) u" \
  "  GROUP BY u.task_uuid HAVING count(u.ord) > 0" \
  "), tasks_done AS (" \
  "  UPDATE tasker.tasks t" \
  "  SET unfinished_steps = t.unfinished_steps - p.n_done," \
  "      active_steps = t.active_steps - p.n_done + p.n_ready," \
  "      status = CASE WHEN t.unfinished_steps = p.n_done THEN 'complete'" \
  "                    WHEN t.active_steps - p.n_done + p.n_ready = 0 AND t.error_steps > 0 THEN 'error'" \
  "                    ELSE t.status END," \
  "      complete = t.unfinished_steps = p.n_done," \
  "      completed_at = CASE WHEN t.unfinished_steps = p.n_done THEN now() AT TIME ZONE 'utc' ELSE t.completed_at END," \
  "      transition_seq = t.transition_seq" \
  "        + CASE WHEN t.unfinished_steps = p.n_done THEN 2" \
  "               WHEN t.active_steps - p.n_done + p.n_ready = 0 AND t.error_steps > 0 THEN 3 ELSE 0 END," \
  "      updated_at = now() AT TIME ZONE 'utc'" \
  "  FROM per_task p" \
  "  WHERE t.task_uuid = p.task_uuid" \
  "  RETURNING t.task_uuid, t.status, t.transition_seq, t.error_steps" \
  "), tasks_logged AS (" \
  "  INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, metadata, created_at)" \
  "  SELECT x.task_uuid, v.from_state, v.to_state, v.event, x.transition_seq - v.back, v.metadata," \
  "         now() AT TIME ZONE 'utc'" \
  "  FROM tasks_done x CROSS JOIN LATERAL (VALUES" \
  "    ('complete', 'steps_in_process', 'evaluating_results', 'all_steps_completed', 1, '{}'::jsonb)," \
  "    ('complete', 'evaluating_results', 'complete', 'all_steps_successful', 0, '{}'::jsonb)," \
  "    ('error', 'steps_in_process', 'evaluating_results', 'step_completed', 2, '{}'::jsonb)," \
  "    ('error', 'evaluating_results', 'blocked_by_failures', 'permanent_failure', 1," \
  "     jsonb_build_object('error_steps', x.error_steps))," \
  "    ('error', 'blocked_by_failures', 'error', 'give_up', 0, '{}'::jsonb)" \
  "  ) AS v(status, from_state, to_state, event, back, metadata)" \
  "  WHERE v.status = x.status" \
  "), woken AS (" \
  "  SELECT pg_notify('tasker_steps_' || n.namespace_name, '') FROM (" \
  "    SELECT DISTINCT r.namespace_name FROM released r WHERE r.ready) n" \
  ")" \
  /* Each applied result with its task's status and how many of its children it made ready: window \
   * aggregates over one sorted list of the finished steps, their tasks and the ready children's \
   * parents (one row per edge), not joins. */ \
  "SELECT z.ord, z.status::varchar(32) AS status, z.enqueued, z.namespace_name, (SELECT count(*) FROM woken) AS woken" \
  " FROM (SELECT u.ord, u.namespace_name, max(u.status) OVER (PARTITION BY u.task_uuid) AS status," \
  "              count(u.parent) OVER (PARTITION BY u.task_uuid, u.k) AS enqueued" \
  "       FROM (SELECT d.task_uuid, d.ord AS k, d.ord, d.namespace_name, NULL::text AS status, NULL::bigint AS parent" \
  "             FROM done d" \
  "             UNION ALL SELECT x.task_uuid, NULL, NULL, NULL, x.status, NULL FROM tasks_done x" \
  "             UNION ALL SELECT r.task_uuid, p.parent, NULL, NULL, NULL, p.parent" \
  "             FROM released r CROSS JOIN LATERAL unnest(r.parents) AS p(parent) WHERE r.ready) u) z" \
  " WHERE z.ord IS NOT NULL AND z.status IS NOT NULL" \
  " ORDER BY z.ord"

/*
 * The claim, on the snapshot after the completion (and stamped with the clock, which is past the
 * completion's start time, so a child it enqueued sorts before its claim): the steps handed to $1 in this transaction (the
 * children of $5, the steps of the results that wanted a next step), then up to $3 less those newly
 * claimed steps of the namespaces $2, highest priority first, skipping rows other workers are
 * claiming and steps of tasks that ended, each for $4 seconds. The claim walks the claim index once
 * per namespace (an ANY over namespaces cannot use its order), taking the first of each, then the
 * best of those, so it costs the same with an empty queue and with a backlog.
 *
 * Returns one row per step: the step it was handed over by (NULL for a claimed step) and its step
 * event row (tasker.step_event_rows, inlined here).
 */
#define TC_FLUSH_CLAIM_SQL \
  "/* tasker.flush: claim */ " \
  "WITH handed AS MATERIALIZED (" \
  /* Through the edges' and the steps' keys, one probe each (OFFSET 0 keeps the subqueries lateral). \
   * A step is handed over by a parent with no other child; a child of several of $5 (its last \
   * parents finished together) goes to one of them, the first. */ \
  "  SELECT DISTINCT ON (c.workflow_step_uuid) p.uuid AS parent, c.step" \
  "  FROM unnest($5::uuid[]) WITH ORDINALITY AS p(uuid, ord)" \
  "  CROSS JOIN LATERAL (" \
  "    SELECT e.to_step_uuid, count(*) OVER () AS children FROM tasker.workflow_step_edges e" \
  "    WHERE e.from_step_uuid = p.uuid OFFSET 0) e" \
  "  CROSS JOIN LATERAL (" \
  "    SELECT c AS step, c.workflow_step_uuid, c.status, c.claim_owner, c.last_attempted_at" \
  "    FROM tasker.workflow_steps c WHERE c.workflow_step_uuid = e.to_step_uuid OFFSET 0) c" \
  "  WHERE e.children = 1 AND c.status = 'in_progress' AND c.claim_owner = $1::uuid" \
  "    AND c.last_attempted_at = now() AT TIME ZONE 'utc'" \
  "  ORDER BY c.workflow_step_uuid, p.ord" \
  "), wanted AS MATERIALIZED (" \
  "  SELECT greatest($3::integer - (SELECT count(*)::integer FROM handed), 0) AS n" \
  "), clock AS MATERIALIZED (" \
  "  SELECT clock_timestamp() AT TIME ZONE 'utc' AS now" \
  "), picked AS (" \
  "  SELECT p.workflow_step_uuid FROM unnest($2::text[]) AS ns(name)" \
  "  CROSS JOIN LATERAL (" \
  "    SELECT s.workflow_step_uuid, s.priority, s.ready_at FROM tasker.workflow_steps s" \
  "    WHERE s.status = 'enqueued' AND s.namespace_name = ns.name" \
  /* A per-row check (not a join), so the plan walks the claim index whatever the number of \
   * running tasks. */ \
  "      AND (SELECT t.status FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid) = 'steps_in_process'" \
  "    ORDER BY s.priority DESC, s.ready_at" \
  "    LIMIT (SELECT n FROM wanted)" \
  "    FOR UPDATE OF s SKIP LOCKED" \
  "  ) p" \
  "  ORDER BY p.priority DESC, p.ready_at" \
  "  LIMIT (SELECT n FROM wanted)" \
  "), claimed AS (" \
  "  UPDATE tasker.workflow_steps s" \
  "  SET status = 'in_progress', in_process = true, attempts = s.attempts + 1," \
  "      last_attempted_at = k.now, claim_owner = $1::uuid, claim_token = tasker.uuid_v7()," \
  "      claim_expires_at = k.now + make_interval(secs => $4::integer)," \
  "      transition_seq = s.transition_seq + 1, claim_seq = s.transition_seq + 1, updated_at = k.now" \
  "  FROM picked, clock k WHERE s.workflow_step_uuid = picked.workflow_step_uuid" \
  "  RETURNING s AS step" \
  ")" \
  /* One step_event_rows for both kinds of step: the plan holds (and each execution sets up) its \
   * event part once, not twice. */ \
  "SELECT x.parent, e.event" \
  " FROM (SELECT h.parent, h.step FROM handed h UNION ALL SELECT NULL::uuid, c.step FROM claimed c) x" \
  " CROSS JOIN LATERAL tasker.step_event_rows(ARRAY[x.step]) e"

#endif
