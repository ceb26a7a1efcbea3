-- One history row per attempt of a step (tasker.workflow_step_attempts) replaces, on the step
-- path, the three or four transition rows and the audit row a step's run used to write. The
-- transitions that are not part of a run (creation, retry promotion, cancellation, operator
-- actions, steps created by decisions and batches, checkpoints) stay rows of their own, in
-- tasker.workflow_step_transition_log. tasker.workflow_step_transitions and
-- tasker.workflow_step_result_audit become views that answer as the tables did
-- (docs/architecture.md, "Step history").

ALTER TABLE tasker.workflow_step_transitions RENAME TO workflow_step_transition_log;

-- claim_seq: the sort key of the current claim's start (enqueued -> in_progress), which is written
-- only with the attempt's end. enqueue_seq: the sort key of a pending -> enqueued move made when
-- the step's last parent completed, not yet written anywhere (the step's next attempt row
-- carries it).
ALTER TABLE tasker.workflow_steps ADD COLUMN claim_seq integer, ADD COLUMN enqueue_seq integer;

CREATE TABLE tasker.workflow_step_attempts (
  -- uuid v7 with its last byte 0: the transitions it stands for are this uuid plus 0-3.
  attempt_uuid uuid PRIMARY KEY,
  workflow_step_uuid uuid NOT NULL,
  task_uuid uuid NOT NULL,
  -- result: a result applied (start, result, outcome transitions); released: a claim given back
  -- unstarted (start, release); refused: a result for a claim no longer current (no transition);
  -- recorded: an audit row kept from before this table (its transitions are in the log).
  kind varchar(16) NOT NULL,
  attempt integer,
  worker_uuid uuid,
  enqueue_seq integer,
  enqueued_at timestamp,
  claim_seq integer,
  claimed_at timestamp,
  result_seq integer,             -- the result transition; the outcome transition is result_seq + 1
  result_state varchar(48),       -- enqueued_for_orchestration, enqueued_as_error_for_orchestration, enqueued
  result_event varchar(64),
  to_state varchar(48),           -- the outcome (or, refused, the step's state then)
  to_event varchar(64),
  to_metadata jsonb,
  finished_at timestamp NOT NULL,
  success boolean NOT NULL,
  applied boolean NOT NULL,
  execution_time_ms bigint,
  result jsonb,
  logged_transition_uuid uuid,    -- recorded: the transition of the log it attributes
  CONSTRAINT workflow_step_attempts_kind_valid CHECK (kind IN ('result', 'released', 'refused', 'recorded'))
) WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000);
CREATE INDEX workflow_step_attempts_step_idx ON tasker.workflow_step_attempts (workflow_step_uuid);

INSERT INTO tasker.workflow_step_attempts (attempt_uuid, workflow_step_uuid, task_uuid, kind, worker_uuid,
  finished_at, success, applied, execution_time_ms, result, logged_transition_uuid)
SELECT tasker.uuid_with_last_byte(a.workflow_step_result_audit_uuid, 0), a.workflow_step_uuid, a.task_uuid,
       CASE WHEN a.workflow_step_transition_uuid IS NULL THEN 'refused' ELSE 'recorded' END, a.worker_uuid,
       a.recorded_at, a.success, a.applied, a.execution_time_ms, a.result, a.workflow_step_transition_uuid
FROM tasker.workflow_step_result_audit a;
DROP TABLE tasker.workflow_step_result_audit;

-- Every step transition: the log's rows, those each attempt row stands for, and the two a step's
-- row holds until its attempt ends (the enqueue by its last parent, the current claim's start).
CREATE VIEW tasker.workflow_step_transitions AS
  SELECT l.workflow_step_transition_uuid, l.workflow_step_uuid, l.task_uuid, l.from_state, l.to_state,
         l.event, l.attempt, l.worker_uuid, l.metadata, l.sort_key, l.created_at
  FROM tasker.workflow_step_transition_log l
  UNION ALL
  SELECT tasker.uuid_with_last_byte(a.attempt_uuid, x.k), a.workflow_step_uuid, a.task_uuid, x.from_state,
         x.to_state, x.event, CASE WHEN x.k = 0 THEN 0 ELSE a.attempt END,
         CASE WHEN x.k > 0 THEN a.worker_uuid END, x.metadata, x.sort_key, x.created_at
  FROM tasker.workflow_step_attempts a
  CROSS JOIN LATERAL (VALUES
    (0, 'pending', 'enqueued', 'enqueue', '{}'::jsonb, a.enqueue_seq, a.enqueued_at),
    (1, 'enqueued', 'in_progress', 'start', '{}'::jsonb, a.claim_seq, a.claimed_at),
    (2, 'in_progress', a.result_state, a.result_event,
     CASE WHEN a.kind = 'result' THEN jsonb_build_object('execution_time_ms', a.execution_time_ms)
          ELSE '{}'::jsonb END, a.result_seq, a.finished_at),
    (3, a.result_state, a.to_state, a.to_event, a.to_metadata, a.result_seq + 1, a.finished_at)
  ) AS x(k, from_state, to_state, event, metadata, sort_key, created_at)
  WHERE x.sort_key IS NOT NULL AND a.kind IN ('result', 'released') AND (x.k < 3 OR a.kind = 'result')
  UNION ALL
  SELECT tasker.uuid_with_last_byte(s.workflow_step_uuid, 254), s.workflow_step_uuid, s.task_uuid, 'pending',
         'enqueued', 'enqueue', 0, NULL, '{}'::jsonb, s.enqueue_seq, s.ready_at
  FROM tasker.workflow_steps s WHERE s.enqueue_seq IS NOT NULL
  UNION ALL
  SELECT s.claim_token, s.workflow_step_uuid, s.task_uuid, 'enqueued', 'in_progress', 'start', s.attempts,
         s.claim_owner, '{}'::jsonb, s.claim_seq, s.last_attempted_at
  FROM tasker.workflow_steps s WHERE s.status = 'in_progress' AND s.claim_seq IS NOT NULL;

-- Attribution of every result a worker submitted, applied or refused (SPEC's result audit).
CREATE VIEW tasker.workflow_step_result_audit AS
  SELECT a.attempt_uuid AS workflow_step_result_audit_uuid, a.workflow_step_uuid,
         CASE a.kind WHEN 'result' THEN tasker.uuid_with_last_byte(a.attempt_uuid, 2)
                     ELSE a.logged_transition_uuid END AS workflow_step_transition_uuid,
         a.task_uuid, a.finished_at AS recorded_at, a.worker_uuid, t.correlation_id, a.success, a.applied,
         a.execution_time_ms, a.result
  FROM tasker.workflow_step_attempts a
  LEFT JOIN tasker.tasks t ON t.task_uuid = a.task_uuid
  WHERE a.kind IN ('result', 'refused', 'recorded');
