-- Domain events (SPEC 8.2): written to the outbox with a step's result, leased and acknowledged per
-- consumer.

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
