# frozen_string_literal: true

require "spec_helper"

RSpec.describe "TaskerCore::Client.create_task" do
  before { TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)]) }

  def create(**overrides)
    TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 2 }, **overrides)
  end

  it "creates the task, its steps, edges and first transitions, and enqueues only the root step" do
    created = create
    uuid = created["task_uuid"]
    expect(created).to include("status" => "steps_in_process", "created" => true, "step_count" => 4)
    expect(created["correlation_id"]).to match(/\A\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}\z/)
    states = psql("SELECT name, status, pending_parents FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}' ORDER BY position")
    expect(states).to eq([%w[diamond_start enqueued 0], %w[diamond_branch_b pending 1],
                          %w[diamond_branch_c pending 1], %w[diamond_end pending 2]])
    expect(psql_value("SELECT count(*) FROM tasker.workflow_step_edges WHERE task_uuid = '#{uuid}'")).to eq("4")
    expect(psql_value("SELECT count(*) FROM tasker.workflow_step_transitions WHERE task_uuid = '#{uuid}'")).to eq("5")
    task = TaskerCore::Client.get_task(uuid)
    expect(task).to include("name" => "diamond_workflow", "namespace" => "math", "version" => "1.0.0",
                            "initiator" => "tasker-core-ruby", "source_system" => "tasker-core",
                            "reason" => "Task requested", "ready_steps" => 1, "pending_steps" => 3)
  end

  it "notifies the namespace channel in the same transaction" do
    reader, writer = IO.pipe
    listener = Process.spawn({ "LD_PRELOAD" => nil }, "psql", DATABASE_URL, "-X", "-q", "-c", "LISTEN tasker_steps_math",
                             "-c", "SELECT pg_sleep(2)", out: writer, err: writer)
    sleep 0.5
    create
    Process.wait(listener)
    writer.close
    expect(reader.read).to include('notification "tasker_steps_math"')
  end

  it "returns the existing task for a repeated idempotency key" do
    first = create(idempotency_key: "order-42")
    second = create(idempotency_key: "order-42", context: { even_number: 4 })
    expect(second["task_uuid"]).to eq(first["task_uuid"])
    expect(second["created"]).to be(false)
    expect(psql_value("SELECT count(*) FROM tasker.tasks")).to eq("1")
  end

  it "returns the existing task for the same context under the strict identity strategy (the default)" do
    first = create
    expect(first["created"]).to be(true)
    second = create
    expect(second["task_uuid"]).to eq(first["task_uuid"])
    expect(second["created"]).to be(false)
    expect(create(context: { even_number: 8 })["task_uuid"]).not_to eq(first["task_uuid"])
  end

  it "raises NotFoundError naming the template it could not find" do
    expect { create(version: "9.9.9") }.to raise_error(TaskerCore::Errors::NotFoundError,
                                                       /namespace=math, name=diamond_workflow, version=9\.9\.9/)
  end

  it "raises ValidationError naming the bad field" do
    expect { create(context: [1, 2]) }.to raise_error(TaskerCore::Errors::ValidationError, /context must be an object/)
    expect { create(correlation_id: "nope") }.to raise_error(TaskerCore::Errors::ValidationError, /correlation_id must be a UUID/)
    expect { create(tags: "x") }.to raise_error(TaskerCore::Errors::ValidationError, /tags must be a list/)
    expect { create(context: { t: Object.new }) }.to raise_error(TaskerCore::Errors::ValidationError, /request\.context\.t is a Object/)
    deep = (1..12).reduce(1) { |acc, _| { "x" => acc } }
    expect { create(context: deep) }.to raise_error(TaskerCore::Errors::ValidationError, /nested deeper than 10/)
    expect { create(context: { big: "x" * 10_001 }) }.to raise_error(TaskerCore::Errors::ValidationError, /context\.big is longer/)
    expect { TaskerCore::Client.get_task("not-a-uuid") }.to raise_error(TaskerCore::Errors::ValidationError, /Invalid UUID/)
    expect { TaskerCore::Client.get_task(TaskerCore::FFI.uuid_v7) }.to raise_error(TaskerCore::Errors::NotFoundError, /task not found/)
  end

  it "counts the context's string limit and the request's name limits in characters, not bytes" do
    cjk = "\u6f22" * 10_000 # 10,000 characters, 30,000 bytes
    task = create(context: { even_number: 2, note: cjk })
    expect(TaskerCore::Client.get_task(task["task_uuid"])["context"]["note"]).to eq(cjk)
    expect { create(context: { even_number: 2, note: "#{cjk}x" }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /context\.note is longer than 10000 characters/)
    initiator = "\u00e9" * 128 # 128 characters, 256 bytes: the column holds 128 characters
    expect(create(initiator: initiator, context: { even_number: 4 })["initiator"]).to eq(initiator)
    expect { create(initiator: "#{initiator}e", context: { even_number: 6 }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /initiator is longer than 128 characters/)
  end

  it "accepts Rails-style parameter objects and symbols deeply" do
    params = Class.new do
      def initialize(hash) = @hash = hash
      def to_unsafe_h = @hash
    end
    created = create(context: params.new({ even_number: 2, nested: params.new({ at: Time.utc(2026, 1, 2) }) }))
    task = TaskerCore::Client.get_task(created["task_uuid"])
    expect(task["context"]).to eq("even_number" => 2, "nested" => { "at" => "2026-01-02T00:00:00.000000Z" })
  end

  context "with the template's identity strategy" do
    def register(strategy)
      TaskerCore::FFI.template_register({ "name" => "#{strategy}_task", "namespace_name" => "ids", "version" => "1.0.0",
                                          "identity_strategy" => strategy,
                                          "steps" => [{ "name" => "only", "handler" => { "callable" => "X" } }] })
    end

    def create_in(strategy, **options)
      TaskerCore::Client.create_task(name: "#{strategy}_task", namespace: "ids", context: { a: 1 }, **options)
    end

    it "requires an idempotency key under caller_provided" do
      register("caller_provided")
      expect { create_in("caller_provided") }
        .to raise_error(TaskerCore::Errors::ValidationError, /idempotency_key is required .*CallerProvided/)
      first = create_in("caller_provided", idempotency_key: "k1")
      expect(create_in("caller_provided", idempotency_key: "k1")["task_uuid"]).to eq(first["task_uuid"])
      expect(create_in("caller_provided", idempotency_key: "k2")["task_uuid"]).not_to eq(first["task_uuid"])
    end

    it "creates a new task every time under always_unique" do
      register("always_unique")
      expect(create_in("always_unique")["task_uuid"]).not_to eq(create_in("always_unique")["task_uuid"])
      key = create_in("always_unique", idempotency_key: "same")
      expect(create_in("always_unique", idempotency_key: "same")["task_uuid"]).to eq(key["task_uuid"])
    end
  end
end
