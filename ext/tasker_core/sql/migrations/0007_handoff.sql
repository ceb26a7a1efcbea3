-- tasker.complete_results takes the claim's visibility, to hand a finished step's only child to
-- the worker that finished it (sql/functions/result.sql); the three-argument form goes.
DROP FUNCTION IF EXISTS tasker.complete_results(uuid, jsonb, boolean);
