# frozen_string_literal: true

require "spec_helper"
require "tasker_core/testing"

module TestingSpec
  class Checkout < TaskerCore::StepHandler::Base
    def call(context)
      total = context.get_dependency_field("price_cart", "total")
      raise TaskerCore::Errors::PermanentError.new("empty cart", error_code: "EMPTY_CART") if total.nil? || total.zero?
      raise TaskerCore::Errors::RetryableError.new("gateway busy", retry_after: 30) if context.get_input("busy")
      raise ArgumentError, "boom" if context.get_input("boom")

      success({ "charged" => total * context.get_config("rate"), "attempt" => context.retry_count })
    end
  end

  class Linear < TaskerCore::TaskHandler::Base
    task_name "linear_workflow"
    namespace "math"
    version "1.0.0"

    def initialize_task_context(context)
      super.merge("even_number" => context.fetch("n", 0) * 2)
    end

    def validate_task_request(context)
      raise TaskerCore::Errors::ValidationError.new("n must be positive", field: "n") unless context["n"].to_i.positive?
    end
  end
end

RSpec.describe TaskerCore::Testing do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  describe ".build_test_context" do
    it "builds the StepContext a handler receives, without a database" do
      context = build_test_context({ order_id: 7 }, dependency_results: { "price_cart" => { "total" => 12 } },
                                                    step_config: { "rate" => 2 }, step_name: "checkout", retry_count: 1,
                                                    max_retries: 2, step_inputs: { "cursor" => 5 }, namespace: "shop")
      expect(context.get_input("order_id")).to eq(7)
      expect(context.get_dependency_result("price_cart")).to eq("total" => 12)
      expect(context.dependency_results.get_result("price_cart")).to include("success" => true)
      expect(context.get_config("rate")).to eq(2)
      expect(context.step_name).to eq("checkout")
      expect(context.namespace_name).to eq("shop")
      expect(context.input_data).to eq("cursor" => 5)
      expect([context.retry_count, context.is_retry?, context.is_last_retry?]).to eq([1, true, true])
      expect(context.task_uuid).to match(/\A\h{8}-/)
    end

    it "keeps a dependency result given as a full envelope" do
      envelope = { "success" => true, "result" => { "total" => 3 }, "metadata" => { "x" => 1 } }
      context = build_test_context({}, dependency_results: { "price_cart" => envelope })
      expect(context.dependency_results.get_result("price_cart")).to eq(envelope)
      expect(context.get_dependency_field("price_cart", "total")).to eq(3)
    end
  end

  describe "call_handler and the matchers" do
    def context_for(input = {}, total: 10)
      build_test_context(input, dependency_results: { "price_cart" => { "total" => total } }, step_config: { "rate" => 3 })
    end

    it "judges successes, with their result" do
      expect(call_handler(TestingSpec::Checkout, context_for)).to be_success.with_result("charged" => 30, "attempt" => 0)
      expect(TestingSpec::Checkout.new(config: { "rate" => 3 }).call(context_for)).to be_success
      expect(call_handler(TestingSpec::Checkout, context_for)).not_to be_permanent_failure
    end

    it "turns raised errors into failures as the worker does, and judges blocks" do
      expect(call_handler(TestingSpec::Checkout, context_for(total: 0)))
        .to be_permanent_failure.with_error_code("EMPTY_CART").with_message("empty cart")
      expect(call_handler(TestingSpec::Checkout, context_for({ "busy" => true }))).to be_retryable_failure.with_retry_after(30)
      expect(call_handler(TestingSpec::Checkout, context_for({ "boom" => true }))).to be_retryable_failure.with_message("boom")
      expect { TestingSpec::Checkout.new(config: {}).call(context_for(total: 0)) }.to be_permanent_failure
      expect { TestingSpec::Checkout.new(config: {}).call(context_for({ "busy" => true })) }.to be_retryable_failure
    end

    it "judges stored result envelopes and Hash results" do
      expect({ "success" => false, "error" => { "message" => "x", "retryable" => true } }).to be_retryable_failure
      expect({ "success" => false, "metadata" => { "retryable" => false, "error_code" => "E1" } })
        .to be_permanent_failure.with_error_code("E1")
      expect({ success: true, result: { a: 1 } }).to be_success.with_result("a" => 1)
    end

    it "explains a mismatch" do
      matcher = be_success
      expect(matcher.matches?(call_handler(TestingSpec::Checkout, context_for(total: 0)))).to be(false)
      expect(matcher.failure_message).to eq("expected be a success, got a permanent failure (PermanentError EMPTY_CART: empty cart)")
      matcher = be_retryable_failure.with_retry_after(10)
      matcher.matches?(call_handler(TestingSpec::Checkout, context_for({ "busy" => true })))
      expect(matcher.failure_message).to start_with("expected be a retryable failure with retry_after 10, got a retryable failure")
      matcher = be_success
      expect(matcher.matches?(42)).to be(false)
      expect(matcher.failure_message).to eq("expected be a success, got 42 (not a step result)")
    end

    it "leaves be_success on other objects with success? to mean success?" do
      expect(Struct.new(:success?).new(true)).to be_success
      matcher = be_success
      expect(matcher.matches?(Struct.new(:success?).new(false))).to be(false)
      expect(matcher.failure_message).to match(/success\?` to be truthy, got false/)
      expect(be_permanent_failure.matches?(Struct.new(:success?).new(false))).to be(false)
    end
  end

  describe ".run_task" do
    it "runs a whole template with the real engine and handlers and returns its steps and results" do
      run = run_task("linear_workflow", namespace: "math", context: { even_number: 6 }, template_paths: [templates])
      expect(run).to be_complete
      expect(run.result("linear_step_4")).to include("result" => 1_679_616**2)
      expect(run.results.keys).to eq(%w[linear_step_1 linear_step_2 linear_step_3 linear_step_4])
      expect(run.errors).to eq({})
      expect(TaskerCore::Worker.running?).to be(false)
      again = run_task("linear_workflow", namespace: "math", context: { even_number: 6 }, template_paths: [templates])
      expect(again.task_uuid).not_to eq(run.task_uuid)
    end

    it "reports a failed workflow with its errors" do
      run = run_task("failing_workflow", namespace: "math", context: { even_number: 2 }, template_paths: [templates])
      expect(run).to be_failed
      expect(run.status).to eq("error")
      expect(run.errors.keys).to eq(["explode"])
      expect(run.errors["explode"]).to include("message" => "the flux capacitor is empty", "error_code" => "FLUX_EMPTY")
      expect(run.step("explode")["results"]).to be_permanent_failure.with_error_code("FLUX_EMPTY")
      expect { run.step("nope") }.to raise_error(TaskerCore::Errors::NotFoundError, /has no step nope/)
    end

    it "takes a task handler class, with its context hook and validation" do
      run = run_task(TestingSpec::Linear, context: { n: 3 }, template_paths: [templates])
      expect(run.result("linear_step_1")).to include("result" => 36)
      expect { run_task(TestingSpec::Linear, context: { n: 0 }, template_paths: [templates]) }
        .to raise_error(TaskerCore::Errors::ValidationError, "n must be positive")
    end

    it "uses a running worker of the namespace, and refuses one of another namespace" do
      TaskerCore::Worker.start(template_paths: [templates], concurrency: 2)
      run = run_task("diamond_workflow", namespace: "math", context: { even_number: 2 })
      expect(run).to be_complete
      expect(TaskerCore::Worker.running?).to be(true)
      expect { run_task("other", namespace: "elsewhere") }
        .to raise_error(TaskerCore::Errors::StateError, /serving .*math.* is running in this process; run_task needs one serving elsewhere/)
    end

    it "raises a TimeoutError naming the task when it does not finish in time" do
      expect { run_task("sleepy_workflow", namespace: "resilience", template_paths: [templates], timeout: 0.5) }
        .to raise_error(TaskerCore::Errors::TimeoutError, %r{resilience/sleepy_workflow \S+ still \w+ after 0.5s})
    end
  end
end

RSpec.describe TaskerCore::TaskHandler::Base do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  it "creates tasks of its template after its context hook and validation" do
    TaskerCore::Templates.load([templates])
    task = TestingSpec::Linear.create_task(context: { n: 2 }, tags: ["from-spec"])
    expect(task["name"]).to eq("linear_workflow")
    expect(task["namespace"]).to eq("math")
    expect(task["context"]).to eq("n" => 2, "even_number" => 4)
    expect(task["tags"]).to eq(["from-spec"])
    expect { TestingSpec::Linear.create_task(context: {}) }.to raise_error(TaskerCore::Errors::ValidationError) { |e| expect(e.field).to eq("n") }
  end

  it "defaults its names from the class" do
    klass = Class.new(described_class)
    stub_const("OrderProcess", klass)
    expect([klass.task_name, klass.namespace, klass.version]).to eq(%w[order_process default 1.0.0])
  end
end
