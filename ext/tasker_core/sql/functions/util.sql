-- Functions that read no table, so the migrations' DDL may call them (column defaults): applied
-- before the migrations.

-- UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, version 7, then the random bits (and the
-- variant) of a version 4 UUID. SQL, so the planner inlines it into INSERT defaults.
CREATE OR REPLACE FUNCTION tasker.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
  SELECT (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7'
          || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid
$$;

-- The delay before a retry, in milliseconds: the handler's requested delay (retry_after, carried as
-- a ServerRequested backoff hint or a retry-after header) when given, capped at one hour; else the
-- step's backoff policy (none, linear, exponential, fibonacci over backoff_base_ms, capped at
-- max_backoff_ms) with +/- 15 % jitter.
CREATE OR REPLACE FUNCTION tasker.retry_delay_ms(p_attempts integer, p_retry jsonb, p_result jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  -- The hint comes from the result: read only when it is a JSON number (never cast blindly).
  v_hint numeric := CASE WHEN jsonb_typeof(p_result->'orchestration_metadata'->'backoff_hint'->'delay_seconds') = 'number'
                         THEN (p_result->'orchestration_metadata'->'backoff_hint'->>'delay_seconds')::numeric END;
  v_header text := p_result->'orchestration_metadata'->'headers'->>'retry-after';
  v_policy text := coalesce(p_retry->>'backoff', 'exponential');
  v_base numeric := coalesce((p_retry->>'backoff_base_ms')::numeric, 1000);
  v_max numeric := coalesce((p_retry->>'max_backoff_ms')::numeric, 30000);
  v_n integer := greatest(p_attempts, 1);
  v_delay numeric;
  a numeric := 1;
  b numeric := 1;
BEGIN
  IF v_hint IS NULL AND v_header ~ '^\s*\d+(\.\d+)?\s*$' THEN
    v_hint := v_header::numeric;
  END IF;
  IF v_hint IS NOT NULL AND v_hint >= 0 THEN
    RETURN least(v_hint * 1000, 3600000)::bigint;
  END IF;

  IF v_policy = 'none' THEN
    RETURN 0;
  ELSIF v_policy = 'linear' THEN
    v_delay := v_base * v_n;
  ELSIF v_policy = 'fibonacci' THEN
    FOR i IN 3..least(v_n, 60) LOOP
      SELECT b, a + b INTO a, b;
    END LOOP;
    v_delay := v_base * b;
  ELSE
    v_delay := v_base * power(2::numeric, least(v_n - 1, 40));
  END IF;
  v_delay := least(v_delay, v_max);
  v_delay := v_delay * (1 + (random() * 0.3 - 0.15));
  RETURN greatest(v_delay, 0)::bigint;
END $$;

-- p with its last byte replaced by k (0-255): the uuids of the transitions an attempt row stands
-- for are its own uuid (whose last byte is 0) plus 1, 2, 3, so they sort together, right after it.
CREATE OR REPLACE FUNCTION tasker.uuid_with_last_byte(p uuid, k integer) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (left(p::text, 34) || lpad(to_hex(k), 2, '0'))::uuid
$$;

-- The smallest UUID version 7 of the millisecond p (a naive UTC timestamp): uuid_v7() keys
-- created at p or later sort at or after it, so "rows since p" is a range of their primary key.
CREATE OR REPLACE FUNCTION tasker.uuid_v7_floor(p timestamp) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (lpad(to_hex(greatest(floor(extract(epoch FROM p) * 1000), 0)::bigint), 12, '0') || '7'
          || repeat('0', 19))::uuid
$$;
