# frozen_string_literal: true

require "spec_helper"

RSpec.describe "TaskerCore::Client (seed 000's client API)" do
  let(:client) { TaskerCore::Client }
  let(:t) { TaskerCore::Types::ClientTypes }

  before { TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)]) }

  def diamond(**options)
    client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 2 }, **options)
  end

  describe "create_task" do
    it "returns the created task as a TaskResponse with its steps, with seed 000's defaults" do
      task = diamond
      expect(task).to be_a(t::TaskResponse)
      expect(task.created).to be(true)
      expect(task.step_count).to eq(4)
      expect(task).to have_attributes(name: "diamond_workflow", namespace: "math", version: "1.0.0",
                                      status: "steps_in_process", initiator: "tasker-core-ruby",
                                      source_system: "tasker-core", reason: "Task requested", priority: 0,
                                      tags: [], parent_correlation_id: nil, context: { "even_number" => 2 },
                                      total_steps: 4, pending_steps: 3, in_progress_steps: 1, ready_steps: 1,
                                      completed_steps: 0, failed_steps: 0, execution_status: "has_ready_steps",
                                      recommended_action: "execute_ready_steps", completion_percentage: 0.0,
                                      health_status: "healthy")
      expect(task.completion_percentage).to be_a(Float)
      expect(task.correlation_id).to match(t::UUID_FORMAT)
      expect(task.steps.map(&:name)).to eq(%w[diamond_start diamond_branch_b diamond_branch_c diamond_end])
      expect(task.steps).to all(be_a(t::StepReadiness))
      expect(task.steps.first).to have_attributes(current_state: "enqueued", ready_for_execution: true, total_parents: 0)
      expect(task.steps.last).to have_attributes(current_state: "pending", total_parents: 2, completed_parents: 0,
                                                 dependencies_satisfied: false)
    end

    it "stores every option: tags, priority, correlation ids, requested_at, initiator, source system and reason" do
      correlation = TaskerCore::FFI.uuid_v7
      parent = TaskerCore::FFI.uuid_v7
      task = diamond(initiator: "checkout-web", source_system: "shop", reason: "order 42", tags: %w[web urgent],
                     priority: 7, correlation_id: correlation, parent_correlation_id: parent,
                     requested_at: Time.utc(2026, 1, 2, 3, 4, 5))
      fetched = client.get_task(task.task_uuid)
      expect(fetched).to have_attributes(initiator: "checkout-web", source_system: "shop", reason: "order 42",
                                         tags: %w[web urgent], priority: 7, correlation_id: correlation,
                                         parent_correlation_id: parent)
      expect(psql_value("SELECT priority FROM tasker.workflow_steps WHERE task_uuid = '#{task.task_uuid}' LIMIT 1")).to eq("7")
      expect(psql_value("SELECT requested_at FROM tasker.tasks WHERE task_uuid = '#{task.task_uuid}'")).to eq("2026-01-02 03:04:05")
    end

    it "claims higher-priority tasks first" do
      low = diamond(context: { even_number: 2 }, priority: 1)
      high = diamond(context: { even_number: 4 }, priority: 9)
      TaskerCore::FFI.worker_start("namespaces" => ["math"], "concurrency" => 1)
      event = sleep_until { TaskerCore::FFI.next_step(1) }
      expect(event["task_uuid"]).to eq(high.task_uuid)
      expect(low.task_uuid).not_to eq(high.task_uuid)
    ensure
      TaskerCore::FFI.worker_stop
    end

    it "gives back the existing task for a repeated idempotency key, marked created: false" do
      first = diamond(idempotency_key: "order-7")
      again = diamond(idempotency_key: "order-7", context: { even_number: 8 })
      expect(again).to be_a(t::TaskResponse)
      expect(again.task_uuid).to eq(first.task_uuid)
      expect(again.created).to be(false)
      expect(again.context).to eq("even_number" => 2)
      expect(psql_value("SELECT count(*) FROM tasker.tasks")).to eq("1")
    end

    it "refuses an unknown option instead of dropping it" do
      expect { diamond(idempotency_kye: "x") }
        .to raise_error(TaskerCore::Errors::ValidationError, /unknown create_task option idempotency_kye/) { |e|
          expect(e.field).to eq("idempotency_kye")
        }
    end

    it "names the template it cannot find, and the field at fault in a bad request" do
      expect { client.create_task(name: "nope", namespace: "math", context: {}) }
        .to raise_error(TaskerCore::Errors::NotFoundError, /namespace=math, name=nope, version=1\.0\.0/)
      expect { diamond(version: "2.0.0") }.to raise_error(TaskerCore::Errors::NotFoundError, /version=2\.0\.0/)
      expect { client.create_task(name: "diamond_workflow", namespace: "elsewhere") }
        .to raise_error(TaskerCore::Errors::NotFoundError, /namespace=elsewhere/)
      expect { diamond(context: "x") }.to raise_error(TaskerCore::Errors::ValidationError, /context must be an object/)
      expect { diamond(context: { "big" => "x" * 10_001 }) }
        .to raise_error(TaskerCore::Errors::ValidationError, /context string at context\.big is longer than 10000/)
      deep = (1..11).reduce(1) { |inner, _| { "d" => inner } }
      expect { diamond(context: deep) }.to raise_error(TaskerCore::Errors::ValidationError, /nested deeper than 10 levels/)
      expect { diamond(context: { "k" => (1..1001).to_h { |i| ["k#{i}", i] } }) }
        .to raise_error(TaskerCore::Errors::ValidationError, /context object at context\.k has more than 1000 keys/)
      expect { diamond(priority: "high") }.to raise_error(TaskerCore::Errors::ValidationError, /priority must be an integer/)
      expect { diamond(parent_correlation_id: "nope") }
        .to raise_error(TaskerCore::Errors::ValidationError, /parent_correlation_id must be a UUID/)
    end

    it "refuses a context over 1 MiB serialized" do
      chunks = (1..120).to_h { |i| ["k#{i}", "x" * 9_000] }
      expect { diamond(context: chunks) }.to raise_error(TaskerCore::Errors::ValidationError, /context is \d+ bytes serialized; the limit is 1048576/)
    end

    it "converts Rails-style parameters deeply (to_unsafe_h, to_h), symbols and times" do
      params = Class.new do
        def initialize(hash) = @hash = hash
        def to_unsafe_h = @hash
      end
      plain = Struct.new(:a, :b)
      task = diamond(context: params.new({ even_number: 2, cart: params.new({ items: [plain.new(1, :two)] }) }))
      expect(client.get_task(task.task_uuid).context)
        .to eq("even_number" => 2, "cart" => { "items" => [{ "a" => 1, "b" => "two" }] })
    end
  end

  describe "get_task" do
    it "reports the execution summary as the steps progress" do
      task = diamond
      psql("UPDATE tasker.workflow_steps SET status = 'complete' WHERE task_uuid = '#{task.task_uuid}' AND name = 'diamond_start'")
      psql("UPDATE tasker.workflow_steps SET status = 'error' WHERE task_uuid = '#{task.task_uuid}' AND name = 'diamond_branch_b'")
      fetched = client.get_task(task.task_uuid)
      expect(fetched).to have_attributes(completed_steps: 1, failed_steps: 1, completion_percentage: 25.0,
                                         execution_status: "blocked_by_failures", recommended_action: "handle_failures",
                                         health_status: "blocked")
      psql("UPDATE tasker.workflow_steps SET status = 'complete' WHERE task_uuid = '#{task.task_uuid}'")
      done = client.get_task(task.task_uuid)
      expect(done.completion_percentage).to eql(100.0)
      expect(done).to have_attributes(execution_status: "all_complete", recommended_action: "finalize_task")
    end

    it "raises ValidationError for a malformed uuid and NotFoundError for an unknown one" do
      expect { client.get_task("nope") }.to raise_error(TaskerCore::Errors::ValidationError, /Invalid UUID for task_uuid: nope/)
      expect { client.get_task(42) }.to raise_error(TaskerCore::Errors::ValidationError, /task_uuid must be a String/)
      unknown = TaskerCore::FFI.uuid_v7
      expect { client.get_task(unknown) }.to raise_error(TaskerCore::Errors::NotFoundError, /task not found: #{unknown}/)
    end
  end

  describe "list_tasks" do
    def make(count, namespace: "math", name: "diamond_workflow")
      Array.new(count) { |i| client.create_task(name: name, namespace: namespace, context: { even_number: 2 * i }).task_uuid }
    end

    it "pages newest first with SPEC 5's pagination" do
      uuids = make(7)
      page1 = client.list_tasks(limit: 3)
      expect(page1).to be_a(t::TaskListResponse)
      expect(page1.tasks.map(&:task_uuid)).to eq(uuids.reverse.first(3))
      expect(page1.pagination.to_h.except(:next_cursor)).to eq(page: 1, per_page: 3, total_count: 7, total_pages: 3,
                                                               has_next: true, has_previous: false)
      # next_cursor continues by keyset from the last task of the page.
      page2 = client.list_tasks_after(cursor: page1.pagination.next_cursor, limit: 3)
      expect(page2.tasks.map(&:task_uuid)).to eq(uuids.reverse[3, 3])
      page3 = client.list_tasks(limit: 3, offset: 6)
      expect(page3.tasks.map(&:task_uuid)).to eq([uuids.first])
      expect(page3.pagination.to_h).to include(page: 3, has_next: false, has_previous: true)
      expect(client.list_tasks(limit: 3, offset: 9).tasks).to eq([])
      expect(page1.tasks.first).to have_attributes(total_steps: 4, ready_steps: 1, steps: [])
    end

    it "filters by namespace and status" do
      math = make(3)
      flaky = make(2, namespace: "resilience", name: "flaky_workflow")
      client.cancel_task(math[1])
      expect(client.list_tasks(namespace: "resilience").tasks.map(&:task_uuid)).to eq(flaky.reverse)
      expect(client.list_tasks(status: "cancelled").tasks.map(&:task_uuid)).to eq([math[1]])
      expect(client.list_tasks(namespace: "math", status: "steps_in_process").tasks.map(&:task_uuid))
        .to eq([math[2], math[0]])
      expect(client.list_tasks(namespace: "math", status: :cancelled).pagination.total_count).to eq(1)
      expect(client.list_tasks(namespace: "nowhere").to_h)
        .to eq(tasks: [], pagination: { page: 1, per_page: 50, total_count: 0, total_pages: 0, has_next: false,
                                        has_previous: false, next_cursor: nil })
    end

    it "refuses a limit outside 1..1000, a negative offset and an unknown status" do
      expect { client.list_tasks(limit: 0) }.to raise_error(TaskerCore::Errors::ValidationError, /limit must be between 1 and 1000 \(got 0\)/)
      expect { client.list_tasks(limit: 1001) }.to raise_error(TaskerCore::Errors::ValidationError, /limit .*got 1001/)
      expect { client.list_tasks(limit: 2**80) }.to raise_error(TaskerCore::Errors::ValidationError, /limit must be between/)
      expect { client.list_tasks(offset: -1) }.to raise_error(TaskerCore::Errors::ValidationError, /offset must be between 0 and/)
      expect { client.list_tasks(limit: "10") }.to raise_error(TaskerCore::Errors::ValidationError, /limit must be an Integer, got String/)
      expect { client.list_tasks(status: "done") }
        .to raise_error(TaskerCore::Errors::ValidationError, /status must be one of pending, .*resolved_manually \(got done\)/)
      expect { client.list_tasks(namespace: "") }.to raise_error(TaskerCore::Errors::ValidationError, /namespace must be 1 to 64/)
    end
  end

  describe "list_task_steps and get_step" do
    it "returns StepResponse structs in template order, and one step by uuid" do
      task = diamond
      steps = client.list_task_steps(task.task_uuid)
      expect(steps).to all(be_a(t::StepResponse))
      expect(steps.map(&:name)).to eq(%w[diamond_start diamond_branch_b diamond_branch_c diamond_end])
      expect(steps.last.parents).to eq(%w[diamond_branch_b diamond_branch_c])
      step = client.get_step(task.task_uuid, steps[1].step_uuid)
      expect(step).to be_a(t::StepResponse)
      expect(step).to have_attributes(name: "diamond_branch_b", current_state: "pending", task_uuid: task.task_uuid,
                                      total_parents: 1, completed_parents: 0, attempts: 0, max_attempts: 3,
                                      results: nil, completed_at: nil, step_type: "standard")
    end

    it "raises NotFoundError for an unknown step or a step of another task, ValidationError for a bad uuid" do
      one = diamond
      other = diamond(context: { even_number: 4 })
      foreign = client.list_task_steps(other.task_uuid).first.step_uuid
      expect { client.get_step(one.task_uuid, foreign) }
        .to raise_error(TaskerCore::Errors::NotFoundError, /step not found: #{foreign} in task #{one.task_uuid}/)
      missing = TaskerCore::FFI.uuid_v7
      expect { client.get_step(missing, foreign) }.to raise_error(TaskerCore::Errors::NotFoundError, /task not found: #{missing}/)
      expect { client.get_step(one.task_uuid, "step-1") }
        .to raise_error(TaskerCore::Errors::ValidationError, /Invalid UUID for step_uuid: step-1/)
      expect { client.list_task_steps(missing) }.to raise_error(TaskerCore::Errors::NotFoundError, /task not found/)
    end
  end

  describe "the raw FFI" do
    it "returns plain Hashes and Arrays with string keys" do
      created = TaskerCore::FFI.client_create_task("name" => "diamond_workflow", "namespace" => "math",
                                                   "version" => "1.0.0", "context" => { "even_number" => 2 })
      expect(created).to be_a(Hash).and include("created" => true, "step_count" => 4, "status" => "steps_in_process")
      uuid = created["task_uuid"]
      expect(TaskerCore::FFI.client_get_task(uuid)).to be_a(Hash).and include("task_uuid" => uuid)
      expect(TaskerCore::FFI.client_list_tasks(10, 0, nil, nil)).to include("tasks" => [be_a(Hash)])
      steps = TaskerCore::FFI.client_list_task_steps(uuid)
      expect(steps).to all(be_a(Hash))
      expect(TaskerCore::FFI.client_get_step(uuid, steps[0]["step_uuid"])).to include("name" => "diamond_start")
      expect(TaskerCore::FFI.client_get_step_audit_history(uuid, steps[0]["step_uuid"]).first)
        .to include("to_state" => "enqueued", "step_name" => "diamond_start")
      expect(TaskerCore::FFI.client_health_check).to include("healthy" => true)
      expect(TaskerCore::FFI.client_cancel_task(uuid)).to include("cancelled" => true)
    end
  end
end
