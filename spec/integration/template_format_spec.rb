# frozen_string_literal: true

require "spec_helper"

module OrderProcess
  module StepHandler
    %w[FetchOrderHandler ValidateInventoryHandler ProcessPaymentHandler UpdateInventoryHandler SendConfirmationHandler].each do |name|
      const_set(name, Class.new(TaskerCore::StepHandler::Base) do
        define_method(:call) { |context| success({ "step" => context.step_name, "config" => context.step_config }) }
      end)
    end
  end
end

RSpec.describe "template formats" do
  let(:legacy) { File.expand_path("../fixtures/legacy/order_process.yaml", __dir__) }

  def with_environment(env)
    previous = TaskerCore.config.environment
    TaskerCore.config.environment = env
    yield
  ensure
    TaskerCore.config.environment = previous
  end

  it "converts seed 002's Rails format" do
    tpl = with_environment("test") { TaskerCore::Templates.validate(legacy) }
    expect(tpl).to include("name" => "order_process", "namespace_name" => "order_process", "version" => "1.0.0")
    expect(tpl["input_schema"]["required"]).to eq(%w[order_id customer_id])
    steps = tpl["steps"].to_h { |s| [s["name"], s] }
    expect(steps["validate_inventory"]["dependencies"]).to eq(["fetch_order"])
    expect(steps["process_payment"]["handler"]["callable"]).to eq("OrderProcess::StepHandler::ProcessPaymentHandler")
    expect(steps["process_payment"]["retry"]).to include("retryable" => true, "max_attempts" => 2)
    expect(steps["send_confirmation"]["retry"]["max_attempts"]).to eq(5)
    expect(tpl["metadata"]["legacy"]).to eq("module_namespace" => "OrderProcess", "task_handler_class" => "OrderProcess",
                                            "concurrent" => true)
  end

  it "applies the current environment's overrides (TASKER_ENV)" do
    dev = with_environment("development") { TaskerCore::Templates.validate(legacy) }
    prod = with_environment("production") { TaskerCore::Templates.validate(legacy) }
    pay = ->(t) { t["steps"].find { |s| s["name"] == "process_payment" }["handler"]["initialization"] }
    expect(pay.call(dev)).to eq("payment_processor" => "test")
    expect(pay.call(prod)).to eq("payment_processor" => "stripe", "timeout" => 30)
  end

  it "merges initialization, replaces timeout and the whole retry block, and understands ALL" do
    data = { "name" => "t", "namespace_name" => "ns", "version" => "1",
             "steps" => [{ "name" => "a", "handler" => { "callable" => "X", "initialization" => { "k" => 1, "j" => 2 } },
                           "retry" => { "max_attempts" => 7, "backoff" => "linear" }, "timeout_seconds" => 60 }],
             "environments" => { "test" => { "steps" => [{ "name" => "ALL", "timeout_seconds" => 5, "retry" => { "max_attempts" => 1 } },
                                                         { "name" => "a", "handler" => { "initialization" => { "j" => 3 } } }] } } }
    step = TaskerCore::TemplateFormat.apply_environment(data, "test")["steps"].first
    expect(step["handler"]["initialization"]).to eq("k" => 1, "j" => 3)
    expect(step["timeout_seconds"]).to eq(5)
    expect(step["retry"]).to eq("max_attempts" => 1)
    normalized = TaskerCore::FFI.template_normalize(TaskerCore::TemplateFormat.apply_environment(data, "test"))
    expect(normalized["steps"].first["retry"]).to include("max_attempts" => 1, "backoff" => "exponential")
  end

  it "runs a converted legacy workflow end to end" do
    TaskerCore::Worker.start(template_paths: [legacy], concurrency: 2)
    uuid = TaskerCore::Client.create_task(name: "order_process", namespace: "order_process",
                                          context: { order_id: 1, customer_id: 2 })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    expect(steps_by_name(uuid).keys).to eq(%w[fetch_order validate_inventory process_payment update_inventory send_confirmation])
  end
end
