-- The claim answers with a compact row per claimed step (json, sql/functions/step_event.sql) from
-- which the worker builds the step event; the functions whose return type changed go first.
DROP FUNCTION IF EXISTS tasker.flush(uuid, jsonb, integer, text[], integer);
DROP FUNCTION IF EXISTS tasker.claim(uuid, text[], integer, integer);
DROP FUNCTION IF EXISTS tasker.claim_steps(uuid, text[], integer, integer);
DROP FUNCTION IF EXISTS tasker.step_event(tasker.workflow_steps);
