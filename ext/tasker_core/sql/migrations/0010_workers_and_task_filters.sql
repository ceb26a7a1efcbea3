-- The workers of the deployment, as their claimer threads last reported them (sql/functions/
-- workers.sql): a row per worker, written when its claimer connects and on every heartbeat, marked
-- stopped when it stops. The dashboard's "workers alive" reads it; nothing on the step path does.
-- Rows of workers silent for a day are removed by the heartbeats of the others.
CREATE TABLE tasker.workers (
  worker_uuid uuid PRIMARY KEY,
  hostname varchar(255) NOT NULL,
  pid integer NOT NULL,
  namespaces text[] NOT NULL,
  concurrency integer NOT NULL,
  busy integer NOT NULL DEFAULT 0,               -- steps claimed and not yet finished, at the last beat
  heartbeat_interval_ms integer NOT NULL,
  started_at timestamp NOT NULL,
  last_heartbeat_at timestamp NOT NULL,
  stopped_at timestamp
);

-- The dashboard's last hour (tasker.activity) counts the tasks that finished in it: the transitions
-- into a final state, one per finished task, are the only rows of this index, so the read costs the
-- window's finished tasks and every other transition is written without it.
CREATE INDEX task_transitions_finished_idx ON tasker.task_transitions (created_at)
  WHERE to_state IN ('complete', 'error', 'cancelled');

-- tasker.list_tasks and tasker.list_tasks_after take the initiator and source_system filters
-- (sql/functions/client_reads.sql): the old signatures go.
DROP FUNCTION IF EXISTS tasker.list_tasks(integer, integer, text, text, boolean);
DROP FUNCTION IF EXISTS tasker.list_tasks_after(integer, text, text, text);
