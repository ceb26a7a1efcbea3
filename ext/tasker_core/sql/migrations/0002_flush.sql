-- A worker's results are applied in batches by tasker.flush (sql/functions/result.sql), which
-- replaces the one-result complete_and_claim.
DROP FUNCTION IF EXISTS tasker.complete_and_claim(uuid, uuid, uuid, jsonb, integer, text[], integer);
