# frozen_string_literal: true

require "json"
require "spec_helper"

RSpec.describe "TaskerCore::Client.create_tasks" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  before { TaskerCore::Templates.load([templates]) }

  def request(number, **overrides)
    { name: "diamond_workflow", namespace: "math", context: { even_number: number } }.merge(overrides)
  end

  def task_count = psql_value("SELECT count(*) FROM tasker.tasks").to_i

  it "creates every task in one call, answers in request order, and each runs to completion with a worker" do
    requests = (1..20).map { |i| request(2, context: { even_number: 2, i: i }) } +
               [request(2, name: "linear_workflow", reason: "batch")]
    created = TaskerCore::Client.create_tasks(requests)
    expect(created.size).to eq(21)
    expect(created).to all(be_a(TaskerCore::Types::ClientTypes::TaskResponse))
    expect(created.map(&:context)).to eq(requests.map { |r| r[:context].transform_keys(&:to_s) })
    expect(created.map(&:created).uniq).to eq([true])
    expect(created.first).to have_attributes(status: "steps_in_process", step_count: 4, name: "diamond_workflow",
                                             ready_steps: 1, pending_steps: 3)
    expect(created.last).to have_attributes(name: "linear_workflow", reason: "batch")
    expect(created.first.steps.size).to eq(4)
    expect(task_count).to eq(21)

    TaskerCore::Worker.start(template_paths: [templates], concurrency: 4)
    created.each { |task| expect(wait_for_task(task.task_uuid)["status"]).to eq("complete") }
    diamond = created.first
    steps = steps_by_name(diamond.task_uuid)
    expect(steps["diamond_end"].dig("results", "result", "result")).to eq(2**16)
  end

  # The rows of a task that do not depend on its uuids or the clock.
  def shape(uuid)
      psql("SELECT name, status, pending_parents, position, handler_callable, transition_seq, retryable, " \
           "max_attempts, priority, inputs FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}' ORDER BY position") +
        psql("SELECT from_state, to_state, event, sort_key, metadata FROM tasker.task_transitions " \
             "WHERE task_uuid = '#{uuid}' ORDER BY sort_key") +
        psql("SELECT s.name, t.from_state, t.to_state, t.event, t.sort_key FROM tasker.workflow_step_transitions t " \
             "JOIN tasker.workflow_steps s USING (workflow_step_uuid) WHERE t.task_uuid = '#{uuid}' " \
             "ORDER BY s.position, t.sort_key") +
        psql("SELECT p.name, c.name FROM tasker.workflow_step_edges e JOIN tasker.workflow_steps p " \
             "ON p.workflow_step_uuid = e.from_step_uuid JOIN tasker.workflow_steps c " \
             "ON c.workflow_step_uuid = e.to_step_uuid WHERE e.task_uuid = '#{uuid}' ORDER BY 1, 2") +
        psql("SELECT namespace_name, status, complete, initiator, source_system, reason, tags, context, priority, " \
             "total_steps, unfinished_steps, active_steps, transition_seq FROM tasker.tasks WHERE task_uuid = '#{uuid}'")
  end

  # Runs a batch through the SQL function itself and tells whether it went one request after
  # another (create_tasks_in_order) rather than set-based.
  def in_order?(requests, function: "create_tasks")
    # What the core sends: each request with its task's uuid and a correlation id.
    batch = requests.map do |r|
      { "correlation_id" => TaskerCore::FFI.uuid_v7 }.merge(TaskerCore::Client.task_request(**r),
                                                            "task_uuid" => TaskerCore::FFI.uuid_v7)
    end
    json = JSON.generate(batch).gsub("'", "''")
    calls = psql_value("SET track_functions = 'all'; SELECT tasker.#{function}('#{json}'::jsonb); " \
                       "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions " \
                       "WHERE funcname = 'create_tasks_in_order'")
    calls.to_i.positive?
  end

  it "creates the same rows as create_task, set-based" do
    single = TaskerCore::Client.create_task(**request(2, idempotency_key: "single"))
    batched = TaskerCore::Client.create_tasks([request(2, idempotency_key: "batched")]).first
    expect(shape(batched.task_uuid)).to eq(shape(single.task_uuid))
    expect(batched.to_h.except(:task_uuid, :correlation_id, :created_at, :updated_at, :steps))
      .to eq(single.to_h.except(:task_uuid, :correlation_id, :created_at, :updated_at, :steps))
  end

  it "creates the same rows set-based as one request after another, for every template shape" do
    requests = %w[diamond_workflow tree_workflow linear_workflow].flat_map do |name|
      [request(2, name: name, tags: %w[a b], priority: 3, reason: "r"), request(4, name: name, idempotency_key: "k-#{name}")]
    end
    uuids = -> { psql("SELECT task_uuid FROM tasker.tasks ORDER BY created_at, task_uuid").flatten }
    expect(in_order?(requests)).to be(false)
    set_based = uuids.call.map { |uuid| shape(uuid) }
    psql("TRUNCATE tasker.tasks CASCADE")
    in_order?(requests, function: "create_tasks_in_order")
    in_order = uuids.call.map { |uuid| shape(uuid) }
    psql("TRUNCATE tasker.tasks CASCADE")
    requests.each { |r| TaskerCore::Client.create_task(**r) }
    one_by_one = uuids.call.map { |uuid| shape(uuid) }
    expect(set_based.size).to eq(6)
    expect(set_based.sort_by(&:to_s)).to eq(one_by_one.sort_by(&:to_s))
    expect(in_order.sort_by(&:to_s)).to eq(one_by_one.sort_by(&:to_s))
  end

  it "takes batches with repeated identities set-based, and falls back to one request after another to name an error" do
    TaskerCore::Client.create_task(**request(2, idempotency_key: "k"))
    expect(in_order?([request(2, idempotency_key: "k"), request(4), request(4), request(6)])).to be(false)
    expect { TaskerCore::Client.create_tasks([request(14), request(16, requested_at: "not a time")]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /requests\[1\]: invalid input syntax for type timestamp/)
    expect(psql_value("SELECT count(*) FROM tasker.tasks WHERE context->>'even_number' IN ('14', '16')")).to eq("0")
  end

  it "keeps the template's identity strategy" do
    %w[caller_provided always_unique].each do |strategy|
      TaskerCore::FFI.template_register({ "name" => "#{strategy}_task", "namespace_name" => "ids", "version" => "1.0.0",
                                          "identity_strategy" => strategy,
                                          "steps" => [{ "name" => "only", "handler" => { "callable" => "X" } }] })
    end
    ids = ->(strategy, **options) { { name: "#{strategy}_task", namespace: "ids", context: { a: 1 }, **options } }
    unique = TaskerCore::Client.create_tasks([ids.call("always_unique"), ids.call("always_unique")])
    expect(unique.map(&:created)).to eq([true, true])
    expect(unique.map(&:task_uuid).uniq.size).to eq(2)
    keyed = TaskerCore::Client.create_tasks([ids.call("caller_provided", idempotency_key: "k1"),
                                             ids.call("caller_provided", idempotency_key: "k1")])
    expect(keyed.map(&:created)).to eq([true, false])
    expect { TaskerCore::Client.create_tasks([ids.call("caller_provided", idempotency_key: "k2"), ids.call("caller_provided")]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[1\]: idempotency_key is required/)
    expect(task_count).to eq(3)
  end

  it "notifies each namespace's workers" do
    reader, writer = IO.pipe
    listener = Process.spawn({ "LD_PRELOAD" => nil }, "psql", DATABASE_URL, "-X", "-q", "-c", "LISTEN tasker_steps_math",
                             "-c", "SELECT pg_sleep(2)", out: writer, err: writer)
    sleep 0.5
    TaskerCore::Client.create_tasks([request(2), request(4)])
    Process.wait(listener)
    writer.close
    expect(reader.read.scan('notification "tasker_steps_math"').size).to eq(1)
  end

  it "applies the identity rules within the batch and against existing tasks" do
    existing = TaskerCore::Client.create_task(**request(2, idempotency_key: "order-1"))
    created = TaskerCore::Client.create_tasks([
                                                request(4, idempotency_key: "order-1"), # the existing task
                                                request(6, idempotency_key: "order-2"),
                                                request(8, idempotency_key: "order-2"), # the one just above
                                                request(10), # strict identity: same context
                                                request(10),
                                                request(12)
                                              ])
    expect(created.map(&:created)).to eq([false, true, false, true, false, true])
    expect(created[0].task_uuid).to eq(existing.task_uuid)
    expect(created[0].context).to eq("even_number" => 2)
    expect(created[2].task_uuid).to eq(created[1].task_uuid)
    expect(created[2].step_count).to eq(4)
    expect(created[4].task_uuid).to eq(created[3].task_uuid)
    expect(created.map(&:task_uuid).uniq.size).to eq(4)
    expect(task_count).to eq(4)
  end

  it "refuses a bad request naming its index, and creates nothing" do
    good = [request(2), request(4), request(6)]
    expect { TaskerCore::Client.create_tasks(good.dup.insert(2, request(8, context: [1, 2]))) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[2\]: context must be an object/)
    expect { TaskerCore::Client.create_tasks(good + [request(8, correlation_id: "nope")]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[3\]: correlation_id must be a UUID/)
    expect { TaskerCore::Client.create_tasks([request(8, idempotency_kye: "x")] + good) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[0\]: unknown create_task option idempotency_kye/)
    expect { TaskerCore::Client.create_tasks(good + [{ context: {} }]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[3\]: name is required/)
    expect { TaskerCore::Client.create_tasks(good + ["x"]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[3\]: the task request must be a Hash/)
    expect { TaskerCore::Client.create_tasks([request(8, context: { deep: "x" * 10_001 })]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[0\]: context string at context\.deep is longer/)
    expect(task_count).to eq(0)
  end

  it "refuses a request the database refuses, naming its index, and creates nothing" do
    expect { TaskerCore::Client.create_tasks([request(2), request(4, version: "9.9.9"), request(6)]) }
      .to raise_error(TaskerCore::Errors::NotFoundError, /\Arequests\[1\]: task template not found: .*version=9\.9\.9/)
    expect(task_count).to eq(0)
  end

  it "validates in the core too, for callers of the FFI" do
    requests = [{ "name" => "diamond_workflow", "namespace" => "math", "context" => { "even_number" => 2 } },
                { "name" => "diamond_workflow", "namespace" => "math", "tags" => "x" }]
    expect { TaskerCore::FFI.client_create_tasks(requests) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[1\]: tags must be a list of strings/)
    expect { TaskerCore::FFI.client_create_tasks([requests.first, 42]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[1\]: the task request must be a Hash/)
    expect { TaskerCore::FFI.client_create_tasks({}) }
      .to raise_error(TaskerCore::Errors::ValidationError, /requests must be an Array/)
    expect(task_count).to eq(0)
    answer = TaskerCore::FFI.client_create_tasks([requests.first])
    expect(answer).to match([include("created" => true, "step_count" => 4, "status" => "steps_in_process")])
  end

  it "answers an empty array with an empty array" do
    expect(TaskerCore::Client.create_tasks([])).to eq([])
    expect(TaskerCore::FFI.client_create_tasks([])).to eq([])
    expect(task_count).to eq(0)
  end

  it "refuses more requests than the limit" do
    expect(TaskerCore::FFI::CREATE_TASKS_MAX).to eq(10_000)
    too_many = Array.new(10_001) { |i| request(2 * i) }
    expect { TaskerCore::Client.create_tasks(too_many) }
      .to raise_error(TaskerCore::Errors::ValidationError, /requests has 10001 task requests; the limit is 10000/)
    expect { TaskerCore::FFI.client_create_tasks(too_many) }
      .to raise_error(TaskerCore::Errors::ValidationError, /the limit is 10000/)
    expect(task_count).to eq(0)
  end

  it "creates 10,000 tasks in one call" do
    requests = Array.new(10_000) { |i| request(2, context: { even_number: 2, i: i }) }
    created = TaskerCore::Client.create_tasks(requests)
    expect(created.size).to eq(10_000)
    expect(created.map { |t| t.context["i"] }).to eq((0...10_000).to_a)
    expect(created.map(&:task_uuid).uniq.size).to eq(10_000)
    expect(task_count).to eq(10_000)
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE status = 'enqueued'")).to eq("10000")
  end

  it "gives the rows of a batch distinct UUIDv7s of the batch's time (tasker.batch_uuid)" do
    before = (Time.now.to_f * 1000).floor - 1000
    TaskerCore::Client.create_tasks([request(2), request(4), request(6, name: "tree_workflow")])
    after = (Time.now.to_f * 1000).ceil + 1000
    uuids = psql("SELECT workflow_step_uuid FROM tasker.workflow_steps UNION ALL " \
                 "SELECT workflow_step_edge_uuid FROM tasker.workflow_step_edges UNION ALL " \
                 "SELECT workflow_step_transition_uuid FROM tasker.workflow_step_transition_log UNION ALL " \
                 "SELECT task_transition_uuid FROM tasker.task_transitions").flatten
    expect(uuids.size).to be > 40
    expect(uuids.uniq.size).to eq(uuids.size)
    expect(uuids).to all(match(/\A\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}\z/))
    expect(uuids.map { |u| u.delete("-")[0, 12].to_i(16) }).to all(be_between(before, after))
  end

  it "creates through a task handler class" do
    handler = Class.new(TaskerCore::TaskHandler::Base) do
      task_name "diamond_workflow"
      namespace "math"
      def initialize_task_context(context) = super.merge("via" => "handler")
    end
    created = handler.create_tasks([{ context: { even_number: 2 } }, { context: { even_number: 4 }, priority: 5 }])
    expect(created.map(&:context)).to eq([{ "even_number" => 2, "via" => "handler" },
                                          { "even_number" => 4, "via" => "handler" }])
    expect(created.map(&:priority)).to eq([0, 5])
    expect { handler.create_tasks({ context: {} }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /requests must be an Array/)
    expect { handler.create_tasks([{ context: { even_number: 2 } }, "nope"]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[1\]: the task request must be a Hash/)
  end
end
