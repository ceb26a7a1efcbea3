# frozen_string_literal: true

require "spec_helper"

# tasker.claim_steps (sql/functions/claim.sql) called directly, as a worker's claim calls it. Its rows
# are positional (sql/functions/step_event.sql): the task's uuid is the second value.
RSpec.describe "the claim across namespaces and with a backlog" do
  before { TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)]) }

  let(:worker) { "01a20000-0000-7000-8000-00000000000a" }

  def create(name, namespace, priority, tag)
    TaskerCore::FFI.client_create_task("name" => name, "namespace" => namespace, "version" => "1.0.0",
                                       "priority" => priority, "context" => { "even_number" => 2, "tag" => tag })
  end

  def claim(namespaces, limit)
    list = "ARRAY[#{namespaces.map { |n| "'#{n}'" }.join(',')}]::text[]"
    psql("SELECT e->>1 FROM tasker.claim_steps('#{worker}', #{list}, #{limit}, 30) AS e").flatten
  end

  it "takes the highest priorities across every namespace served, no more than the limit" do
    low = create("diamond_workflow", "math", 1, "low")
    top = create("flaky_workflow", "resilience", 9, "top")
    mid = create("diamond_workflow", "math", 5, "mid")

    expect(claim(%w[math resilience], 2)).to contain_exactly(top["task_uuid"], mid["task_uuid"])
    expect(psql_value("SELECT status FROM tasker.workflow_steps WHERE task_uuid = '#{low['task_uuid']}' " \
                      "AND name = 'diamond_start'")).to eq("enqueued")
    expect(claim(%w[math resilience], 5)).to eq([low["task_uuid"]])
    expect(claim(%w[math resilience], 5)).to eq([])
  end

  it "fails only the step whose event cannot be built, and claims the others" do
    # A stand-in for an event too large to build (its ancestors' results past jsonb's limit).
    psql(<<~SQL)
      ALTER FUNCTION tasker.step_event_rows(tasker.workflow_steps[]) RENAME TO step_event_rows_real;
      CREATE FUNCTION tasker.step_event_rows(p_steps tasker.workflow_steps[])
      RETURNS TABLE (ord bigint, workflow_step_uuid uuid, event json) LANGUAGE plpgsql STABLE AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM unnest(p_steps) s JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
                   WHERE t.context->>'tag' = 'poison') THEN
          RAISE EXCEPTION 'total size of jsonb object elements exceeds the maximum' USING ERRCODE = '54000';
        END IF;
        RETURN QUERY SELECT * FROM tasker.step_event_rows_real(p_steps);
      END $$;
    SQL
    begin
      good = create("diamond_workflow", "math", 5, "good")
      bad = create("diamond_workflow", "math", 9, "poison")
      expect(claim(%w[math], 5)).to eq([good["task_uuid"]])
      status, message = psql("SELECT status, results->'error'->>'message' FROM tasker.workflow_steps " \
                             "WHERE task_uuid = '#{bad['task_uuid']}' AND name = 'diamond_start'").first
      expect(status).to eq("error")
      expect(message).to include("the step event could not be built", "exceeds the maximum")
      expect(psql_value("SELECT status FROM tasker.tasks WHERE task_uuid = '#{bad['task_uuid']}'")).to eq("error")
    ensure
      psql("DROP FUNCTION tasker.step_event_rows(tasker.workflow_steps[]); " \
           "ALTER FUNCTION tasker.step_event_rows_real(tasker.workflow_steps[]) RENAME TO step_event_rows")
    end
  end

  it "claims by priority, oldest first within a priority, from a backlog of one namespace" do
    tasks = Array.new(30) { |i| create("diamond_workflow", "math", i % 3, "b#{i}") }
    claimed = claim(%w[math], 12)
    by_priority = tasks.group_by { |t| t["priority"] }
    # The ten of priority 2, then the two oldest of priority 1 (a claim's events come back unordered).
    expect(claimed).to contain_exactly(*(by_priority[2] + by_priority[1].first(2)).map { |t| t["task_uuid"] })
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE status = 'in_progress'")).to eq("12")
  end

  it "claims nothing for a limit of zero or no namespaces" do
    create("diamond_workflow", "math", 0, "z")
    expect(claim(%w[math], 0)).to eq([])
    expect(psql("SELECT count(*) FROM tasker.claim_steps('#{worker}', ARRAY[]::text[], 5, 30)").dig(0, 0)).to eq("0")
  end
end

# tasker.uuid_v7 (SQL since migration 0012): every row's default uuid.
RSpec.describe "tasker.uuid_v7" do
  it "gives version 7 uuids with the RFC 4122 variant, in time order" do
    rows = psql("SELECT tasker.uuid_v7()::text, (extract(epoch FROM clock_timestamp()) * 1000)::bigint " \
                "FROM generate_series(1, 200)")
    uuids = rows.map(&:first)
    expect(uuids.uniq.size).to eq(200)
    expect(uuids).to all(match(/\A\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}\z/))
    millis = uuids.map { |u| u.delete("-")[0, 12].to_i(16) }
    expect(millis).to eq(millis.sort)
    expect((millis.first - rows.first.last.to_i).abs).to be <= 1
  end
end
