# frozen_string_literal: true

require "spec_helper"
require "tasker"
require "tasker/testing"

module CompatSpec
  class Sum < Tasker::StepHandler::Base
    def process(task, sequence, step)
      { total: task.context["base"] + get_previous_step_data(sequence, "fetch", :amount), step: step.name,
        seen: sequence.steps.map(&:name) }
    end
  end

  class Shaped < Tasker::StepHandler::Base
    def process(_task, _sequence, _step) = 21

    def process_results(step, process_output, initial_results)
      step.results = { doubled: process_output * 2, initial: initial_results }
    end
  end

  class SetsResults < Tasker::StepHandler::Base
    def process(_task, _sequence, step)
      step.results = { set: true }
      { returned: true }
    end
  end

  class Raises < Tasker::StepHandler::Base
    def process(task, _sequence, _step)
      raise Tasker::PermanentError, "no such order" if task.context["permanent"]

      raise "gateway down"
    end
  end

  class Publishes < Tasker::StepHandler::Base
    def process(_task, _sequence, step)
      publish_step_completed(step, custom_data: "value")
      { ok: true }
    end
  end

  class Fetch < Tasker::StepHandler::Api
    def process(task, _sequence, _step)
      connection.get("/items", { sku: task.context["sku"] }, { "X-Extra" => "1" })
    end
  end

  class Send < Tasker::StepHandler::Api
    def process(_task, _sequence, _step)
      connection.post("/orders") do |req|
        req.params["dry_run"] = "1"
        req.body = { order_id: 5 }
      end
    end

    def process_results(step, process_output, _initial_results)
      step.results = { status: process_output.status, body: JSON.parse(process_output.body) }
    end
  end

  class Watcher < Tasker::Events::Subscribers::BaseSubscriber
    subscribe_to "task.completed", "step.failed"

    def handle_task_completed(event) = [:completed, safe_get(event, :task_name, "unknown"), safe_get(event, :missing, 0)]
    def handle_event(name, _event) = [:other, name]
  end
end

RSpec.describe "require \"tasker\" (seed 002's API)" do
  def context_for(handler, task_context = {}, **options)
    build_test_context(task_context, handler: handler.name, **options)
  end

  describe Tasker::Types::TaskRequest do
    it "keeps the context as plain data with String keys, and copies with changes" do
      request = described_class.new(name: :order_process, context: { order_id: 1, items: [{ sku: "A" }] })
      expect(request.name).to eq("order_process")
      expect(request.context).to eq("order_id" => 1, "items" => [{ "sku" => "A" }])
      expect(request.with(context: { b: 2 }).context).to eq("b" => 2)
      expect(described_class.new("name" => "x").to_h).to include(name: "x", context: {}, initiator: "unknown")
    end

    it "refuses bad attributes with a ValidationError naming the field" do
      [[{ name: nil }, "name"], [{ name: "" }, "name"], [{ name: 5 }, "name"], [{ name: "x", context: "text" }, "context"],
       [{ name: "x", version: [] }, "version"], [{ name: "x", colour: "red" }, "colour"]].each do |attributes, field|
        expect { described_class.new(**attributes) }
          .to raise_error(TaskerCore::Errors::ValidationError) { |e| expect(e.field).to eq(field) }
      end
    end
  end

  describe Tasker::StepHandler::Base do
    it "runs process(task, sequence, step) on the worker's context; the return value is the result" do
      context = context_for(CompatSpec::Sum, { "base" => 1 }, step_name: "sum",
                                                              dependency_results: { "fetch" => { "amount" => 41 } })
      result = call_handler(CompatSpec::Sum, context)
      expect(result).to be_success.with_result("total" => 42, "step" => "sum", "seen" => %w[fetch sum])
    end

    it "hands process's output to process_results, and keeps results process set itself" do
      expect(call_handler(CompatSpec::Shaped, context_for(CompatSpec::Shaped)))
        .to be_success.with_result("doubled" => 42, "initial" => nil)
      expect(call_handler(CompatSpec::SetsResults, context_for(CompatSpec::SetsResults)))
        .to be_success.with_result("set" => true)
    end

    it "turns exceptions into the engine's verdicts: PermanentError fails, anything else is retried" do
      expect(call_handler(CompatSpec::Raises, context_for(CompatSpec::Raises, { "permanent" => true })))
        .to be_permanent_failure.with_message("no such order")
      expect(call_handler(CompatSpec::Raises, context_for(CompatSpec::Raises)))
        .to be_retryable_failure.with_message("gateway down")
    end

    it "keeps publish_step_completed's custom data with the result" do
      result = CompatSpec::Publishes.new.call(context_for(CompatSpec::Publishes, step_name: "notify"))
      expect(result.metadata).to eq("tasker_events" => [{ "event" => "step.completed", "step_name" => "notify",
                                                          "payload" => { "custom_data" => "value" } }])
    end

    it "says which method is missing" do
      klass = Class.new(described_class)
      expect { klass.new.process(nil, nil, nil) }.to raise_error(TaskerCore::Errors::ConfigurationError, /process\(task, sequence, step\)/)
    end

    it "is a step handler the registry resolves by its class name" do
      expect(TaskerCore::HandlerRegistry.new.resolve("CompatSpec::Sum")).to eq(CompatSpec::Sum)
    end
  end

  describe Tasker::StepHandler::Api do
    let(:stub) do
      TaskerCore::Testing::HttpStub.new("/items" => [[503, { "Retry-After" => "7" }, "{}"], [200, {}, '{"sku":"A","qty":3}']],
                                        "/orders" => [201, {}, '{"id":9}'])
    end

    around do |example|
      ENV["COMPAT_API_BASE"] = "127.0.0.1"
      ENV["COMPAT_TOKEN"] = "t0k"
      example.run
    ensure
      stub.stop
      ENV.delete("COMPAT_API_BASE")
      ENV.delete("COMPAT_TOKEN")
    end

    let(:config) do
      { "url" => "http://${COMPAT_API_BASE}:#{stub.port}", "timeout" => 2, "headers" => { "Authorization" => "Bearer ${COMPAT_TOKEN}" } }
    end

    it "offers a Faraday-style connection from handler_config (url, headers, ${VAR}, timeout); 503 is retried after Retry-After" do
      context = context_for(CompatSpec::Fetch, { "sku" => "A" }, step_config: config)
      expect(call_handler(CompatSpec::Fetch, context)).to be_retryable_failure.with_retry_after(7.0).with_error_code("HTTP_503")
      expect(call_handler(CompatSpec::Fetch, context)).to be_success.with_result("sku" => "A", "qty" => 3)
      requests = stub.recorded
      expect(requests.map(&:path)).to eq(["/items?sku=A"] * 2)
      expect(requests.last.headers).to include("authorization" => "Bearer t0k", "x-extra" => "1")
      expect(CompatSpec::Fetch.new(config: config).send(:read_timeout)).to eq(2)
    end

    it "sends a body and params set in a block, and hands the response to process_results" do
      context = context_for(CompatSpec::Send, step_config: config)
      expect(call_handler(CompatSpec::Send, context)).to be_success.with_result("status" => 201, "body" => { "id" => 9 })
      request = stub.recorded.last
      expect([request.method, request.path, JSON.parse(request.body)]).to eq(["POST", "/orders?dry_run=1", { "order_id" => 5 }])
    end

    it "names the missing environment variable" do
      ENV.delete("COMPAT_TOKEN")
      context = context_for(CompatSpec::Fetch, { "sku" => "A" }, step_config: config)
      expect(call_handler(CompatSpec::Fetch, context))
        .to be_permanent_failure.with_message(/header Authorization needs the environment variable COMPAT_TOKEN/)
    end
  end

  describe Tasker::Events do
    it "is the engine's catalogue, by category" do
      expect(described_class.catalog.keys).to include("task.completed", "task.failed", "step.completed", "step.failed")
      expect(described_class.task_events.keys).to all(start_with("task."))
      expect(described_class.step_events.keys).to all(start_with("step."))
      expect(described_class.workflow_events.keys).to all(start_with("workflow."))
      expect(described_class.event_info("task.completed"))
        .to include(name: "task.completed", category: "task", description: String)
      expect(described_class.event_info("task.completed")[:payload_keys]).to include(:task_id, :task_name, :execution_duration)
      expect(described_class.event_info("step.failed")[:payload_keys])
        .to include(:step_id, :step_name, :error_message, :exception_class)
      expect { described_class.event_info("task.exploded") }.to raise_error(TaskerCore::Errors::ValidationError, /task\.exploded/)
    end

    it "routes to handle_<event> and reads payloads with safe_get" do
      watcher = CompatSpec::Watcher.new
      expect(watcher.subscribed_to?("task.completed")).to be(true)
      expect(watcher.subscribed_to?("task.failed")).to be(false)
      expect(watcher.call({ event_name: "task.completed", task_name: "order_process" })).to eq([:completed, "order_process", 0])
      expect(watcher.call({ event_name: "step.failed" })).to eq([:other, "step.failed"])
      expect { Class.new(Tasker::Events::Subscribers::BaseSubscriber) { subscribe_to "task.nope" } }
        .to raise_error(TaskerCore::Errors::ValidationError, /task\.nope/)
    end
  end

  describe "tasks, sequences and steps without a database" do
    let(:app_templates) { File.expand_path("../fixtures/tasker_engine_app/config/tasker/tasks", __dir__) }

    around do |example|
      previous = TaskerCore.config.template_paths
      TaskerCore.config.template_paths = [app_templates]
      example.run
    ensure
      TaskerCore.config.template_paths = previous
    end

    it "builds a task of a template and the sequence of its steps (build_task, build_sequence_for)" do
      task = build_task(name: "order_process", context: { order_id: 1 })
      expect(task.context).to eq("order_id" => 1)
      expect(task.workflow_steps.count).to eq(5)
      expect(task.workflow_steps.pluck(:name).first(2)).to eq(%w[fetch_order validate_inventory])
      sequence = build_sequence_for(task)
      step = sequence.find_step_by_name("process_payment")
      expect([step.name, step.results, step.retry_limit, step.dependencies]).to eq(["process_payment", nil, 2, ["validate_inventory"]])
      expect(sequence.find_step_by_name("nope")).to be_nil
    end

    it "refuses what it cannot build, with typed errors" do
      expect { build_task(name: "no_such_task").workflow_steps }
        .to raise_error(TaskerCore::Errors::NotFoundError, /no template named "no_such_task"/)
      expect { build_sequence_for("order_process") }
        .to raise_error(TaskerCore::Errors::ValidationError) { |e| expect(e.field).to eq("task") }
      expect { Tasker::HandlerFactory.instance.get("no_such_task") }.to raise_error(TaskerCore::Errors::NotFoundError)
    end

    it "reads task_handler_class from the legacy YAML" do
      template = Tasker::TemplateLookup.for_task("order_process")
      expect(template["task_handler"]).to eq("callable" => "OrderProcess")
      expect(template.dig("metadata", "legacy", "task_handler_class")).to eq("OrderProcess")
    end
  end
end
