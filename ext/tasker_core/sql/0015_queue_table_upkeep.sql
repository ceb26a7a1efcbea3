-- workflow_steps is a queue: each step's row is updated several times within seconds (enqueued,
-- claimed, completed), and every claim walks the front of the claim index. The default
-- autovacuum thresholds (20 % of the table) let dead entries pile up at that front for long
-- stretches of a busy hour; these make autovacuum clean and re-analyze the engine's busiest
-- tables after a fixed, small number of changes instead.
ALTER TABLE tasker.workflow_steps SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 500,
                                       autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 500);
ALTER TABLE tasker.tasks SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 500,
                              autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 500);
ALTER TABLE tasker.workflow_step_edges SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 500);
ALTER TABLE tasker.workflow_step_transitions SET (autovacuum_analyze_scale_factor = 0.02,
                                                  autovacuum_analyze_threshold = 1000);
