-- The tasker schema: templates, tasks, steps, edges, transitions, audit, DLQ and events outbox.
--
-- The current state of a task or step lives on its row (status); the transition tables are the
-- append-only history of every change, ordered by sort_key. A step row is also its own queue
-- entry: status 'enqueued' rows are claimed with FOR UPDATE SKIP LOCKED, so there is no separate
-- message table to keep in step with the state machine.
--
-- Ids default to tasker.uuid_v7() (sql/functions/util.sql, applied before the migrations).
-- The queue tables are updated several times within seconds per step (enqueued, claimed,
-- completed) and every claim walks the front of the claim index; their autovacuum settings make
-- autovacuum clean and re-analyze them after a fixed, small number of changes instead of the
-- default 20 % of the table.
--
-- This file is the schema every database reaches: a database migrated by the releases that
-- defined functions in migrations (versions 1-18) is recorded as this version by migrate!.

CREATE SCHEMA IF NOT EXISTS tasker;

CREATE TABLE tasker.task_namespaces (
  task_namespace_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_v7(),
  name varchar(64) NOT NULL UNIQUE,
  description varchar(255),
  created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  CONSTRAINT task_namespaces_name_format CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,28}$')
);

CREATE TYPE tasker.identity_strategy AS ENUM ('strict', 'caller_provided', 'always_unique');

-- One row per template (namespace, name, version); configuration holds the normalized template.
CREATE TABLE tasker.named_tasks (
  named_task_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_v7(),
  task_namespace_uuid uuid NOT NULL REFERENCES tasker.task_namespaces,
  name varchar(255) NOT NULL,
  version varchar(50) NOT NULL DEFAULT '0.1.0',
  description text,
  configuration jsonb NOT NULL DEFAULT '{}',
  identity_strategy tasker.identity_strategy NOT NULL DEFAULT 'strict',
  created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  UNIQUE (task_namespace_uuid, name, version)
);

CREATE TABLE tasker.tasks (
  task_uuid uuid PRIMARY KEY,
  named_task_uuid uuid NOT NULL REFERENCES tasker.named_tasks,
  namespace_name varchar(64) NOT NULL,
  status varchar(32) NOT NULL DEFAULT 'pending',
  complete boolean NOT NULL DEFAULT false,
  requested_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  completed_at timestamp,
  initiator varchar(128),
  source_system varchar(128),
  reason varchar(128),
  tags jsonb NOT NULL DEFAULT '[]',
  context jsonb NOT NULL DEFAULT '{}',
  identity_hash varchar(128) NOT NULL UNIQUE,
  priority integer NOT NULL DEFAULT 0,
  correlation_id uuid NOT NULL,
  parent_correlation_id uuid,
  -- Counters that make readiness and finalization O(1) per step result.
  total_steps integer NOT NULL DEFAULT 0,
  unfinished_steps integer NOT NULL DEFAULT 0,   -- not complete / resolved_manually / cancelled
  active_steps integer NOT NULL DEFAULT 0,       -- enqueued, in_progress, waiting_for_retry
  error_steps integer NOT NULL DEFAULT 0,
  transition_seq integer NOT NULL DEFAULT 0,     -- sort_key of the latest task transition
  created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  CONSTRAINT tasks_status_valid CHECK (status IN (
    'pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results',
    'waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures',
    'complete', 'error', 'cancelled', 'resolved_manually'))
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 500,
      autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 500);
-- list_tasks order, newest first, with and without its filters: the uuid breaks ties between
-- tasks created in one transaction (same created_at) without a sort.
CREATE INDEX tasks_created_idx ON tasker.tasks (created_at DESC, task_uuid DESC);
CREATE INDEX tasks_namespace_created_idx ON tasker.tasks (namespace_name, created_at DESC, task_uuid DESC);
CREATE INDEX tasks_status_created_idx ON tasker.tasks (status, created_at DESC, task_uuid DESC);
CREATE INDEX tasks_correlation_idx ON tasker.tasks (correlation_id);
CREATE INDEX tasks_tags_idx ON tasker.tasks USING gin (tags);

CREATE TABLE tasker.workflow_steps (
  workflow_step_uuid uuid PRIMARY KEY,
  task_uuid uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
  name varchar(128) NOT NULL,
  template_step_name varchar(128) NOT NULL,       -- differs from name for batch workers
  step_type varchar(32) NOT NULL DEFAULT 'standard',
  position integer NOT NULL DEFAULT 0,            -- order of the step in its template
  namespace_name varchar(64) NOT NULL,            -- copied from the task: claims filter on it
  handler_callable text NOT NULL,
  handler_method varchar(128) NOT NULL DEFAULT 'call',
  status varchar(48) NOT NULL DEFAULT 'pending',
  retryable boolean NOT NULL DEFAULT true,
  max_attempts integer NOT NULL DEFAULT 3,
  attempts integer NOT NULL DEFAULT 0,
  in_process boolean NOT NULL DEFAULT false,
  processed boolean NOT NULL DEFAULT false,
  processed_at timestamp,
  last_attempted_at timestamp,
  backoff_request_seconds integer,
  next_retry_at timestamp,
  priority integer NOT NULL DEFAULT 0,            -- the task's priority, copied for the claim order
  pending_parents integer NOT NULL DEFAULT 0,     -- parents not yet complete
  ready_at timestamp,                             -- when it became claimable (FIFO within priority)
  claim_owner uuid,                               -- worker that holds the claim
  claim_token uuid,                               -- this claim; a result must present it
  claim_expires_at timestamp,
  inputs jsonb NOT NULL DEFAULT '{}',
  results jsonb,
  checkpoint jsonb,
  transition_seq integer NOT NULL DEFAULT 0,      -- sort_key of the latest step transition
  created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  UNIQUE (task_uuid, name),
  CONSTRAINT workflow_steps_status_valid CHECK (status IN (
    'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration',
    'enqueued_as_error_for_orchestration', 'waiting_for_retry',
    'complete', 'error', 'cancelled', 'resolved_manually')),
  CONSTRAINT workflow_steps_step_type_valid CHECK (step_type IN (
    'standard', 'decision', 'deferred_convergence', 'batchable', 'batch_worker'))
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 500,
      autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 500);
-- The queue: claimable steps per namespace, highest priority first, then oldest.
CREATE INDEX workflow_steps_claim_idx ON tasker.workflow_steps
  (namespace_name, priority DESC, ready_at) WHERE status = 'enqueued';
CREATE INDEX workflow_steps_claim_expiry_idx ON tasker.workflow_steps (claim_expires_at)
  WHERE status = 'in_progress';
CREATE INDEX workflow_steps_retry_idx ON tasker.workflow_steps (next_retry_at)
  WHERE status = 'waiting_for_retry';

CREATE TABLE tasker.workflow_step_edges (
  workflow_step_edge_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_v7(),
  task_uuid uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
  from_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
  to_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
  name varchar(64) NOT NULL DEFAULT 'provides',
  created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  UNIQUE (from_step_uuid, to_step_uuid, name),
  CONSTRAINT workflow_step_edges_no_self CHECK (from_step_uuid <> to_step_uuid)
) WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 500);
CREATE INDEX workflow_step_edges_to_idx ON tasker.workflow_step_edges (to_step_uuid);

CREATE TABLE tasker.task_transitions (
  task_transition_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_v7(),
  task_uuid uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
  from_state varchar(32),
  to_state varchar(32) NOT NULL,
  event varchar(64) NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  sort_key integer NOT NULL,
  processor_uuid uuid,
  created_at timestamp NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'utc'),
  UNIQUE (task_uuid, sort_key)
);

CREATE TABLE tasker.workflow_step_transitions (
  workflow_step_transition_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_v7(),
  workflow_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
  task_uuid uuid NOT NULL,
  from_state varchar(48),
  to_state varchar(48) NOT NULL,
  event varchar(64) NOT NULL,
  attempt integer NOT NULL DEFAULT 0,
  worker_uuid uuid,
  metadata jsonb NOT NULL DEFAULT '{}',
  sort_key integer NOT NULL,
  created_at timestamp NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'utc'),
  UNIQUE (workflow_step_uuid, sort_key)
) WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000);
CREATE INDEX workflow_step_transitions_task_idx ON tasker.workflow_step_transitions (task_uuid);

-- Attribution of every result a worker submitted, applied or refused.
CREATE TABLE tasker.workflow_step_result_audit (
  workflow_step_result_audit_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_v7(),
  workflow_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
  workflow_step_transition_uuid uuid,
  task_uuid uuid NOT NULL,
  recorded_at timestamp NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'utc'),
  worker_uuid uuid,
  correlation_id uuid,
  success boolean NOT NULL,
  applied boolean NOT NULL DEFAULT true,
  execution_time_ms bigint,
  result jsonb
);
CREATE INDEX workflow_step_result_audit_step_idx ON tasker.workflow_step_result_audit (workflow_step_uuid);

CREATE TYPE tasker.dlq_reason AS ENUM ('staleness_timeout', 'max_retries_exceeded',
  'dependency_cycle_detected', 'worker_unavailable', 'manual_dlq');
CREATE TYPE tasker.dlq_resolution_status AS ENUM ('pending', 'manually_resolved',
  'permanently_failed', 'cancelled');

CREATE TABLE tasker.tasks_dlq (
  dlq_entry_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_v7(),
  task_uuid uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
  original_state varchar(50) NOT NULL,
  dlq_reason tasker.dlq_reason NOT NULL,
  dlq_timestamp timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  resolution_status tasker.dlq_resolution_status NOT NULL DEFAULT 'pending',
  resolution_timestamp timestamp,
  resolution_notes text,
  resolved_by varchar(255),
  task_snapshot jsonb NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
  updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE UNIQUE INDEX tasks_dlq_one_pending ON tasker.tasks_dlq (task_uuid)
  WHERE resolution_status = 'pending';

-- Transactional outbox: events written in the transaction that caused them, delivered later.
-- Domain events (kind domain, SPEC 8.2) carry their delivery mode; named consumers lease them.
CREATE TABLE tasker.events_outbox (
  event_id bigserial PRIMARY KEY,
  event_uuid uuid NOT NULL DEFAULT tasker.uuid_v7(),
  event_name varchar(128) NOT NULL,
  kind varchar(16) NOT NULL DEFAULT 'lifecycle',  -- lifecycle | domain
  namespace_name varchar(64),
  task_uuid uuid,
  step_uuid uuid,
  payload jsonb NOT NULL DEFAULT '{}',
  created_at timestamp NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'utc'),
  delivered_at timestamp,
  delivery_mode varchar(16)                        -- durable | fast | broadcast (domain events)
);
CREATE INDEX events_outbox_undelivered_idx ON tasker.events_outbox (event_id) WHERE delivered_at IS NULL;
CREATE UNIQUE INDEX events_outbox_event_uuid_idx ON tasker.events_outbox (event_uuid);
CREATE INDEX events_outbox_domain_idx ON tasker.events_outbox (event_id) WHERE kind = 'domain';

-- Each consumer of domain events: how often an event was handed out, its lease, its acknowledgement.
CREATE TABLE tasker.domain_event_deliveries (
  consumer varchar(64) NOT NULL,
  event_id bigint NOT NULL REFERENCES tasker.events_outbox (event_id) ON DELETE CASCADE,
  reads integer NOT NULL DEFAULT 0,
  lease_expires_at timestamp,
  delivered_at timestamp,
  PRIMARY KEY (consumer, event_id)
);
CREATE INDEX domain_event_deliveries_event_idx ON tasker.domain_event_deliveries (event_id);
