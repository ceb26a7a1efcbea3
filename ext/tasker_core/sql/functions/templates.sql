-- Template registration.

-- Registers (or updates) a normalized template; returns its named_task_uuid.
CREATE OR REPLACE FUNCTION tasker.register_template(p_template jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  v_ns uuid;
  v_uuid uuid;
BEGIN
  INSERT INTO tasker.task_namespaces (name) VALUES (p_template->>'namespace_name')
  ON CONFLICT (name) DO NOTHING;
  SELECT task_namespace_uuid INTO v_ns FROM tasker.task_namespaces
  WHERE name = p_template->>'namespace_name';

  INSERT INTO tasker.named_tasks AS nt (task_namespace_uuid, name, version, description,
                                        configuration, identity_strategy)
  VALUES (v_ns, p_template->>'name', p_template->>'version', p_template->>'description', p_template,
          coalesce(p_template->>'identity_strategy', 'strict')::tasker.identity_strategy)
  ON CONFLICT (task_namespace_uuid, name, version) DO UPDATE
    SET description = EXCLUDED.description,
        configuration = EXCLUDED.configuration,
        identity_strategy = EXCLUDED.identity_strategy,
        updated_at = now() AT TIME ZONE 'utc'
    WHERE nt.configuration IS DISTINCT FROM EXCLUDED.configuration
       OR nt.identity_strategy IS DISTINCT FROM EXCLUDED.identity_strategy
  RETURNING named_task_uuid INTO v_uuid;

  IF v_uuid IS NULL THEN  -- unchanged: the conflict update was skipped
    SELECT named_task_uuid INTO v_uuid FROM tasker.named_tasks
    WHERE task_namespace_uuid = v_ns AND name = p_template->>'name'
      AND version = p_template->>'version';
  END IF;
  RETURN v_uuid;
END $$;
