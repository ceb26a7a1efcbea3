-- Claim on complete: the worker submitting a result may take its next step in the same round trip,
-- into the handler slot the result frees. A linear chain then runs without waiting for a
-- notification and a separate claim between its steps.

-- tasker.complete_step plus, when p_claim_next > 0 and the result was applied, up to p_claim_next
-- newly claimed steps of p_namespaces in "next_steps".
CREATE OR REPLACE FUNCTION tasker.complete_and_claim(p_step uuid, p_claim_token uuid, p_worker uuid, p_result jsonb,
                                                     p_claim_next integer, p_namespaces text[],
                                                     p_visibility_seconds integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_outcome jsonb := tasker.complete_step(p_step, p_claim_token, p_worker, p_result, p_claim_next <= 0);
  v_next jsonb := '[]'::jsonb;
BEGIN
  IF p_claim_next > 0 AND (v_outcome->>'applied')::boolean THEN
    SELECT coalesce(jsonb_agg(e), '[]'::jsonb) INTO v_next
    FROM tasker.claim_steps(p_worker, p_namespaces, p_claim_next, p_visibility_seconds) AS e;
    v_outcome := v_outcome || jsonb_build_object('next_steps', v_next);
    -- Wake other workers only when work is left in the queue, or for a retry's due time.
    IF v_outcome->>'step_status' = 'waiting_for_retry'
       OR ((v_outcome->>'enqueued')::integer > 0
           AND EXISTS (SELECT 1 FROM tasker.workflow_steps
                       WHERE status = 'enqueued' AND namespace_name = v_outcome->>'namespace')) THEN
      PERFORM pg_notify('tasker_steps_' || (v_outcome->>'namespace'), '');
    END IF;
  END IF;
  RETURN v_outcome;
END $$;
