# frozen_string_literal: true

require "spec_helper"
require "json"
require_relative "../../bench/run"

# The benchmark's large-table generator (bench/large_tables.rb): its copies of a real finished task
# must be what the engine would have written, or the large-table figures measure something else.
RSpec.describe "the benchmark's large-table generator" do
  LARGE_TABLE_COPIES = 100

  def run_prototype
    TaskerCore::Templates.load([File.expand_path("../../bench/templates", __dir__)])
    TaskerCore::Worker.start(namespaces: ["bench"], concurrency: 2)
    uuid = TaskerCore::Client.create_task(name: "bench_linear", namespace: "bench", context: { "even_number" => 6 }).task_uuid
    expect(wait_for_task(uuid, timeout: 30)["status"]).to eq("complete")
    TaskerCore::Worker.stop(timeout: 5)
    uuid
  end

  # A copy's uuid, found the way create_task finds a task: by its identity.
  def copy_uuid(generator, n)
    proto = TaskerCore::Client.get_task(generator.prototype)
    task = TaskerCore::Client.create_task(name: "bench_linear", namespace: "bench",
                                          context: proto.context.merge("large_tables" => n))
    expect(task.created).to be(false)
    task.task_uuid
  end

  # A task's rows in a table, without what differs between copies (uuids, timestamps, context and
  # identity), in a stable order.
  def comparable_rows(table, task, generator)
    cols = generator.tables.fetch(table).reject do |name, type|
      type == "uuid" || type.start_with?("timestamp") || %w[context identity_hash].include?(name)
    end
    json = psql("SELECT jsonb_build_object(#{cols.map { |n, _| "'#{n}', #{n}" }.join(', ')}) " \
                "FROM tasker.#{table} WHERE task_uuid = '#{task}'").map { |r| JSON.parse(r[0]) }
    json.map { |h| h.transform_values { |v| v.is_a?(Hash) ? v.except("step_uuid") : v } }.sort_by(&:to_s)
  end

  before do
    @prototype = run_prototype
    @generator = Bench::LargeTables.new(DATABASE_URL, @prototype, chunk: 40)
    @progress = []
    @generator.generate(LARGE_TABLE_COPIES) { |done, _s| @progress << done }
  end

  it "copies every row of the prototype into every table, in chunks" do
    expect(@progress).to eq([40, 80, 100])
    expect(@generator.tables.keys.first(2)).to eq(%w[tasks workflow_steps])
    expect(@generator.tables.keys).to include("workflow_step_attempts", "workflow_step_edges", "task_transitions",
                                              "workflow_step_transition_log", "events_outbox", "tasks_dlq")
    expect(@generator.prototype_rows).to include("tasks" => 1, "workflow_steps" => 4, "workflow_step_edges" => 3,
                                                 "workflow_step_attempts" => 4, "task_transitions" => 6,
                                                 "workflow_step_transition_log" => 5, "events_outbox" => 0)
    @generator.prototype_rows.each do |table, n|
      expect(psql_value("SELECT count(*) FROM tasker.#{table}").to_i).to eq(n * (LARGE_TABLE_COPIES + 1)), table
    end
    copy = copy_uuid(@generator, 37)
    @generator.tables.each_key do |table|
      expect(comparable_rows(table, copy, @generator)).to eq(comparable_rows(table, @prototype, @generator)), table
    end
  end

  it "keeps every reference within the copy, with uuid v7 times and timestamps moved by the copy's age" do
    copy = copy_uuid(@generator, 5)
    # Steps, edges, attempts and log rows of a copy point at the copy's own steps.
    expect(psql_value("SELECT count(*) FROM tasker.workflow_step_edges e JOIN tasker.workflow_steps a " \
                      "ON a.workflow_step_uuid = e.from_step_uuid JOIN tasker.workflow_steps b " \
                      "ON b.workflow_step_uuid = e.to_step_uuid WHERE e.task_uuid = '#{copy}' " \
                      "AND a.task_uuid = e.task_uuid AND b.task_uuid = e.task_uuid").to_i).to eq(3)
    %w[workflow_step_attempts workflow_step_transition_log].each do |table|
      expect(psql_value("SELECT count(*) FROM tasker.#{table} x JOIN tasker.workflow_steps s " \
                        "USING (workflow_step_uuid) WHERE x.task_uuid = '#{copy}' AND s.task_uuid = x.task_uuid").to_i)
        .to eq(@generator.prototype_rows[table])
    end
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = '#{copy}' " \
                      "AND results->>'step_uuid' = workflow_step_uuid::text").to_i).to eq(4)
    # Copy 5 was created a day and 5 x 8.64 s before the prototype; so was everything it owns,
    # and its uuids' times moved with it (an attempt's uuid still ends in 00).
    age = ->(table, col, task) { psql("SELECT extract(epoch FROM #{col} - (SELECT created_at FROM tasker.tasks WHERE task_uuid = '#{task}')) " \
                                      "FROM tasker.#{table} WHERE task_uuid = '#{task}' ORDER BY 1").flatten }
    %w[workflow_step_attempts.finished_at workflow_steps.processed_at task_transitions.created_at].each do |c|
      table, col = c.split(".")
      expect(age.call(table, col, copy)).to eq(age.call(table, col, @prototype)), c
    end
    expect(psql_value("SELECT extract(epoch FROM p.created_at - c.created_at) FROM tasker.tasks p, tasker.tasks c " \
                      "WHERE p.task_uuid = '#{@prototype}' AND c.task_uuid = '#{copy}'").to_f).to eq(86_400 + 5 * 8.64)
    uuid_ms = "('x' || left(replace(%s::text, '-', ''), 12))::bit(48)::bigint"
    drift = ->(task) { psql_value("SELECT #{format(uuid_ms, 'task_uuid')} - floor(extract(epoch FROM created_at) * 1000) " \
                                  "FROM tasker.tasks WHERE task_uuid = '#{task}'").to_i }
    expect(drift.call(copy)).to eq(drift.call(@prototype))
    expect(copy[14]).to eq("7")
    expect(psql("SELECT right(attempt_uuid::text, 2) FROM tasker.workflow_step_attempts WHERE task_uuid = '#{copy}'")
             .flatten).to all(eq("00"))
  end

  it "reads back through the engine like the task it copies" do
    copy = copy_uuid(@generator, 1)
    task = TaskerCore::Client.get_task(copy)
    proto = TaskerCore::Client.get_task(@prototype)
    expect(task.status).to eq("complete")
    expect(task.total_steps).to eq(proto.total_steps)
    expect(task.context).to eq(proto.context.merge("large_tables" => 1))
    steps = TaskerCore::Client.list_task_steps(copy)
    expect(steps.map { |s| [s.name, s.current_state, s.attempts, s.results["result"]] })
      .to eq(TaskerCore::Client.list_task_steps(@prototype).map { |s| [s.name, s.current_state, s.attempts, s.results["result"]] })
    transitions = ->(t) { psql("SELECT to_state, event, sort_key FROM tasker.workflow_step_transitions v " \
                               "JOIN tasker.workflow_steps s USING (workflow_step_uuid) WHERE v.task_uuid = '#{t}' " \
                               "ORDER BY s.position, v.sort_key") }
    expect(transitions.call(copy)).to eq(transitions.call(@prototype))
    page = TaskerCore::Client.list_tasks(namespace: "bench", limit: 3)
    expect(page.pagination.total_count).to eq(LARGE_TABLE_COPIES + 1)
    expect(page.tasks.map(&:task_uuid)).to eq([@prototype, copy, copy_uuid(@generator, 2)])
  end

  it "is removed by the retention sweep like real finished tasks, rows of every table with it" do
    expect(Bench::LargeTables.due(1, LARGE_TABLE_COPIES)).to eq(LARGE_TABLE_COPIES)
    counts = JSON.parse(psql_value("SELECT tasker.remove_finished_tasks(1, NULL, #{LARGE_TABLE_COPIES * 2})"))
    expect(counts["tasks"]).to eq(LARGE_TABLE_COPIES)
    @generator.prototype_rows.each do |table, n|
      expect(psql_value("SELECT count(*) FROM tasker.#{table}").to_i).to eq(n), table
      expect(counts.fetch(table, 0)).to eq(n * LARGE_TABLE_COPIES), table unless table == "tasks"
    end
    expect(TaskerCore::Client.get_task(@prototype).status).to eq("complete")
  end

  it "refuses a prototype that is not a finished task" do
    uuid = TaskerCore::Client.create_task(name: "bench_linear", namespace: "bench", context: { "even_number" => 2 }).task_uuid
    expect { Bench::LargeTables.new(DATABASE_URL, uuid) }.to raise_error(/is steps_in_process, not finished/)
  end
end
