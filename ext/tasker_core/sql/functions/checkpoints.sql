-- Checkpoints: a running step saves its progress within its claim.

-- Persists a checkpoint for the step the worker holds; returns the step's fresh event row (with
-- the checkpoint) to run the handler again, or {"applied": false} when the claim is no longer current.
CREATE OR REPLACE FUNCTION tasker.checkpoint_step(p_step uuid, p_claim_token uuid, p_worker uuid,
                                                  p_checkpoint jsonb, p_visibility_seconds integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamp := clock_timestamp() AT TIME ZONE 'utc';
  s tasker.workflow_steps;
BEGIN
  IF jsonb_typeof(p_checkpoint->'items_processed') IS DISTINCT FROM 'number'
     OR (p_checkpoint->>'items_processed')::numeric < 0 THEN
    RAISE EXCEPTION 'checkpoint items_processed must be a number >= 0' USING ERRCODE = 'TK422';
  END IF;
  IF NOT p_checkpoint ? 'cursor' OR p_checkpoint->'cursor' = 'null'::jsonb THEN
    RAISE EXCEPTION 'checkpoint cursor is required' USING ERRCODE = 'TK422';
  END IF;
  UPDATE tasker.workflow_steps
  SET checkpoint = jsonb_build_object(
        'cursor', p_checkpoint->'cursor',
        'items_processed', p_checkpoint->'items_processed',
        'accumulated_results', p_checkpoint->'accumulated_results',
        'timestamp', v_now,
        'history', coalesce(checkpoint->'history', '[]'::jsonb)
                   || jsonb_build_array(jsonb_build_object('cursor', p_checkpoint->'cursor', 'timestamp', v_now))),
      claim_expires_at = v_now + make_interval(secs => p_visibility_seconds),
      transition_seq = transition_seq + 1,
      updated_at = v_now
  WHERE workflow_step_uuid = p_step AND claim_token = p_claim_token AND status = 'in_progress'
  RETURNING * INTO s;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('applied', false, 'reason', 'stale_claim');
  END IF;
  INSERT INTO tasker.workflow_step_transition_log (workflow_step_uuid, task_uuid, from_state, to_state,
    event, attempt, worker_uuid, sort_key, metadata, created_at)
  VALUES (p_step, s.task_uuid, 'in_progress', 'in_progress', 'checkpoint', s.attempts, p_worker, s.transition_seq,
          jsonb_build_object('cursor', p_checkpoint->'cursor', 'items_processed', p_checkpoint->'items_processed'), v_now);
  UPDATE tasker.tasks SET updated_at = v_now WHERE task_uuid = s.task_uuid;
  RETURN jsonb_build_object('applied', true, 'event', tasker.step_event(s));
END $$;
