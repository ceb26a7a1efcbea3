-- Domain events (SPEC 8.2): events a step declares in publishes_events, written to the outbox in
-- the transaction that stores the step's result, and read by named consumers with a lease.
--
--   * complete_and_claim takes the step's candidate events from the result envelope
--     ("domain_events", built by the language worker: the declared events with their condition and
--     delivery mode, and those published by hand from the handler), keeps them out of the stored
--     result, and once the result is applied writes the durable and broadcast ones whose
--     condition matches the outcome. A stale result (its claim was lost) writes nothing.
--   * Each consumer (the in-process subscribers of every worker share one, external consumers
--     name their own) leases events with read_domain_events and acknowledges them with
--     ack_domain_events: an event is handed out again only when its lease expired unacknowledged
--     (at least once), never after its acknowledgement.

ALTER TABLE tasker.events_outbox ADD COLUMN delivery_mode varchar(16);
CREATE UNIQUE INDEX events_outbox_event_uuid_idx ON tasker.events_outbox (event_uuid);
CREATE INDEX events_outbox_domain_idx ON tasker.events_outbox (event_id) WHERE kind = 'domain';

CREATE TABLE tasker.domain_event_deliveries (
  consumer varchar(64) NOT NULL,
  event_id bigint NOT NULL REFERENCES tasker.events_outbox (event_id) ON DELETE CASCADE,
  reads integer NOT NULL DEFAULT 0,
  lease_expires_at timestamp,
  delivered_at timestamp,
  PRIMARY KEY (consumer, event_id)
);
CREATE INDEX domain_event_deliveries_event_idx ON tasker.domain_event_deliveries (event_id);

-- Writes the durable and broadcast events of p_events whose condition matches the applied
-- outcome p_outcome (complete_step's answer) of p_result. Returns how many were written.
CREATE OR REPLACE FUNCTION tasker.publish_step_events(p_step uuid, p_events jsonb, p_outcome jsonb,
                                                      p_result jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_status text := p_outcome->>'step_status';
  v_conditions text[];
  v_written integer;
BEGIN
  IF jsonb_typeof(p_events) IS DISTINCT FROM 'array' OR jsonb_array_length(p_events) = 0 THEN
    RETURN 0;
  END IF;
  v_conditions := CASE
    WHEN v_status = 'complete' AND coalesce((p_result->>'success')::boolean, false) THEN ARRAY['success', 'always']
    WHEN v_status = 'waiting_for_retry' THEN ARRAY['failure', 'retryable_failure', 'always']
    ELSE ARRAY['failure', 'permanent_failure', 'always'] END;
  INSERT INTO tasker.events_outbox (event_uuid, event_name, kind, namespace_name, task_uuid, step_uuid,
                                    payload, delivery_mode)
  SELECT (e->>'event_id')::uuid, e->>'event_name', 'domain', s.namespace_name, s.task_uuid, s.workflow_step_uuid,
         e - 'condition' - 'delivery_mode', e->>'delivery_mode'
  FROM jsonb_array_elements(p_events) AS e, tasker.workflow_steps s
  WHERE s.workflow_step_uuid = p_step
    AND e->>'delivery_mode' IN ('durable', 'broadcast')
    AND coalesce(e->>'condition', 'success') = ANY (v_conditions)
  ON CONFLICT (event_uuid) DO NOTHING;
  GET DIAGNOSTICS v_written = ROW_COUNT;
  IF v_written > 0 THEN
    PERFORM pg_notify('tasker_domain_events', '');
  END IF;
  RETURN v_written;
END $$;

-- 0013's complete_and_claim, taking the domain events out of the result and writing them with it.
CREATE OR REPLACE FUNCTION tasker.complete_and_claim(p_step uuid, p_claim_token uuid, p_worker uuid, p_result jsonb,
                                                     p_claim_next integer, p_namespaces text[],
                                                     p_visibility_seconds integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_events jsonb := p_result->'domain_events';
  v_outcome jsonb;
  v_next jsonb := '[]'::jsonb;
  v_ns text;
  v_wake boolean;
BEGIN
  IF v_events IS NOT NULL THEN
    p_result := p_result - 'domain_events';
  END IF;
  v_outcome := tasker.complete_step(p_step, p_claim_token, p_worker, p_result, p_claim_next <= 0);
  IF v_events IS NOT NULL AND (v_outcome->>'applied')::boolean THEN
    v_outcome := v_outcome || jsonb_build_object('domain_events_written',
                                                 tasker.publish_step_events(p_step, v_events, v_outcome, p_result));
  END IF;
  IF p_claim_next > 0 AND (v_outcome->>'applied')::boolean THEN
    SELECT coalesce(jsonb_agg(e), '[]'::jsonb) INTO v_next
    FROM tasker.claim_steps(p_worker, p_namespaces, p_claim_next, p_visibility_seconds) AS e;
    v_outcome := v_outcome || jsonb_build_object('next_steps', v_next);
    -- Wake other workers only when work is left in the queue, or for a retry's due time.
    v_ns := v_outcome->>'namespace';
    v_wake := v_outcome->>'step_status' = 'waiting_for_retry';
    IF NOT v_wake AND (v_outcome->>'enqueued')::integer > 0 THEN
      SELECT EXISTS (SELECT 1 FROM tasker.workflow_steps WHERE status = 'enqueued' AND namespace_name = v_ns)
      INTO v_wake;
    END IF;
    IF v_wake THEN
      PERFORM pg_notify('tasker_steps_' || v_ns, '');
    END IF;
  END IF;
  RETURN v_outcome;
END $$;

-- Writes one event published outside a step result (FFI publish_domain_event): p_event is a
-- DomainEvent {event_id, event_name, event_version, payload, metadata} plus delivery_mode.
CREATE OR REPLACE FUNCTION tasker.publish_domain_event(p_event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_meta jsonb := coalesce(p_event->'metadata', '{}'::jsonb);
  v_written integer;
BEGIN
  INSERT INTO tasker.events_outbox (event_uuid, event_name, kind, namespace_name, task_uuid, step_uuid,
                                    payload, delivery_mode)
  VALUES ((p_event->>'event_id')::uuid, p_event->>'event_name', 'domain', v_meta->>'namespace',
          (v_meta->>'task_uuid')::uuid, (v_meta->>'step_uuid')::uuid, p_event - 'delivery_mode' - 'condition',
          coalesce(p_event->>'delivery_mode', 'durable'))
  ON CONFLICT (event_uuid) DO NOTHING;
  GET DIAGNOSTICS v_written = ROW_COUNT;
  IF v_written > 0 THEN
    PERFORM pg_notify('tasker_domain_events', '');
  END IF;
  RETURN jsonb_build_object('event_id', p_event->>'event_id', 'written', v_written > 0);
END $$;

-- Leases up to p_limit events of the given delivery modes that consumer p_consumer has neither
-- acknowledged nor holds an unexpired lease on, oldest first, for p_visibility_seconds. Two readers
-- of one consumer never lease the same event at once (the second one's insert meets the first
-- one's lease row and skips it). Each event comes with its delivery {consumer, read_count}.
CREATE OR REPLACE FUNCTION tasker.read_domain_events(p_consumer text, p_limit integer, p_visibility_seconds integer,
                                                     p_modes text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_out jsonb;
BEGIN
  WITH candidates AS (
    SELECT o.event_id FROM tasker.events_outbox o
    WHERE o.kind = 'domain' AND o.delivery_mode = ANY (p_modes)
      AND NOT EXISTS (SELECT 1 FROM tasker.domain_event_deliveries d
                      WHERE d.consumer = p_consumer AND d.event_id = o.event_id
                        AND (d.delivered_at IS NOT NULL OR d.lease_expires_at > v_now))
    ORDER BY o.event_id
    LIMIT p_limit
  ), leased AS (
    INSERT INTO tasker.domain_event_deliveries AS d (consumer, event_id, reads, lease_expires_at)
    SELECT p_consumer, event_id, 1, v_now + make_interval(secs => p_visibility_seconds) FROM candidates
    ON CONFLICT (consumer, event_id) DO UPDATE
      SET reads = d.reads + 1, lease_expires_at = EXCLUDED.lease_expires_at
      WHERE d.delivered_at IS NULL AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= v_now)
    RETURNING d.event_id, d.reads
  )
  SELECT coalesce(jsonb_agg(o.payload || jsonb_build_object(
           'delivery_mode', o.delivery_mode,
           'delivery', jsonb_build_object('consumer', p_consumer, 'read_count', l.reads,
                                          'stored_at', o.created_at))
           ORDER BY o.event_id), '[]'::jsonb)
  INTO v_out
  FROM leased l JOIN tasker.events_outbox o USING (event_id);
  RETURN v_out;
END $$;

-- Acknowledges events (by event_id uuid) for p_consumer; returns how many were newly
-- acknowledged. An acknowledged event is never handed to that consumer again.
CREATE OR REPLACE FUNCTION tasker.ack_domain_events(p_consumer text, p_event_ids uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  v_acked integer;
BEGIN
  INSERT INTO tasker.domain_event_deliveries AS d (consumer, event_id, reads, delivered_at)
  SELECT p_consumer, o.event_id, 0, v_now FROM tasker.events_outbox o
  WHERE o.event_uuid = ANY (p_event_ids) AND o.kind = 'domain'
  ON CONFLICT (consumer, event_id) DO UPDATE SET delivered_at = v_now, lease_expires_at = NULL
    WHERE d.delivered_at IS NULL;
  GET DIAGNOSTICS v_acked = ROW_COUNT;
  RETURN v_acked;
END $$;

-- Deletes domain events stored before p_before (their deliveries go with them).
CREATE OR REPLACE FUNCTION tasker.purge_domain_events(p_before timestamp) RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM tasker.events_outbox WHERE kind = 'domain' AND created_at < p_before RETURNING 1)
  SELECT count(*)::integer FROM gone;
$$;
