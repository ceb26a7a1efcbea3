# frozen_string_literal: true

require "spec_helper"

module ExecutorSpec
  class Ok < TaskerCore::StepHandler::Base
    def call(_context) = success(result: { "n" => 1 }, metadata: { "operation" => "noop" })
  end

  class Retry < TaskerCore::StepHandler::Base
    def call(_context) = raise(TaskerCore::Errors::RetryableError.new("gateway timeout", retry_after: 30))
  end

  class Permanent < TaskerCore::StepHandler::Base
    def call(_context) = raise(TaskerCore::Errors::ValidationError.new("bad card", field: "card", error_code: "CARD"))
  end

  class Plain < TaskerCore::StepHandler::Base
    def call(_context) = [1, 2, 3]
  end

  class HashFailure < TaskerCore::StepHandler::Base
    def call(_context) = { success: false, message: "nope", retryable: true }
  end

  # Results whose envelope cannot be built as they are.
  class SetResult < TaskerCore::StepHandler::Base
    def call(_context) = success(Set[1, 2])
  end

  class ArrayMetadata < TaskerCore::StepHandler::Base
    def call(_context) = success({ "ok" => true }, metadata: [1, 2])
  end

  class RetryAfter < TaskerCore::StepHandler::Base
    def call(context) = raise(TaskerCore::Errors::RetryableError.new("busy", retry_after: context.get_config("after")))
  end

  class BinaryMessage < TaskerCore::StepHandler::Base
    def call(_context) = raise(TaskerCore::Errors::RetryableError, "upstream said \xff\xfe\0".b)
  end

  class SelfReferencing < TaskerCore::StepHandler::Base
    def call(_context)
      result = { "name" => "loop" }
      result["self"] = result
      success(result)
    end
  end

  class Recursing < TaskerCore::StepHandler::Base
    def call(context) = depth(context)
    def depth(context) = depth(context) + 1
  end

  # An exception whose message raises, from a handler whose version raises.
  class Unreadable < TaskerCore::StepHandler::Base
    def self.handler_version = raise("no version")

    def call(_context)
      error = Class.new(StandardError) { def message = raise(ArgumentError, "no message") }
      raise error
    end
  end

  # A handler whose own database call fails while the database is away.
  class Outage < TaskerCore::StepHandler::Base
    def call(_context) = raise(TaskerCore::Errors::DatabaseError, "database connection failed: server closed the connection")
  end
end

RSpec.describe TaskerCore::StepExecutor do
  def run(callable, config = {})
    event = { "step_uuid" => "s-1", "handler_callable" => callable, "task_sequence_step" => {} }
    event["task_sequence_step"] = { "step_definition" => { "handler" => { "initialization" => config } } } unless config.empty?
    described_class.call(event, worker_id: "worker_x")
  end

  it "builds a success envelope with timing metadata and the handler's metadata" do
    env = run("ExecutorSpec::Ok")
    expect(env).to include("success" => true, "status" => "completed", "result" => { "n" => 1 })
    expect(env["metadata"]).to include("operation" => "noop", "worker_id" => "worker_x")
    expect(env["metadata"]["execution_time_ms"]).to be_a(Integer)
  end

  it "turns a RetryableError into a retryable failure with a server-requested backoff hint" do
    env = run("ExecutorSpec::Retry")
    expect(env["error"]).to include("message" => "gateway timeout", "error_type" => "RetryableError", "retryable" => true)
    expect(env["metadata"]["retryable"]).to be(true)
    expect(env.dig("orchestration_metadata", "backoff_hint")).to include("backoff_type" => "ServerRequested", "delay_seconds" => 30.0)
  end

  it "turns a PermanentError subclass into a permanent failure keeping its code" do
    env = run("ExecutorSpec::Permanent")
    expect(env["error"]).to include("error_type" => "ValidationError", "retryable" => false, "error_code" => "CARD")
  end

  it "wraps a plain return value and interprets a Hash with success: false" do
    expect(run("ExecutorSpec::Plain")).to include("success" => true, "result" => [1, 2, 3])
    expect(run("ExecutorSpec::Plain")["metadata"]).to include("wrapped" => true, "original_type" => "Array")
    expect(run("ExecutorSpec::HashFailure")["error"]).to include("message" => "nope", "retryable" => true)
  end

  it "runs nothing of a class that is no step handler, or of a method the handler does not define" do
    env = run("File")
    expect(env["error"]).to include("error_type" => "PermanentError", "retryable" => false, "exception_class" => "TaskerCore::Errors::TemplateError")
    expect(env["error"]["message"]).to include("handler.callable 'File'", "not a step handler")
    env = described_class.call({ "step_uuid" => "s-1", "handler_callable" => "ExecutorSpec::Ok", "handler_method" => "instance_eval",
                                 "task_sequence_step" => {} }, worker_id: "worker_x")
    expect(env["error"]["message"]).to include("handler.method 'instance_eval' of callable 'ExecutorSpec::Ok'")
  end

  it "fails permanently when the callable resolves to nothing" do
    env = run("Nope::Missing")
    expect(env["error"]).to include("error_type" => "PermanentError", "retryable" => false)
    expect(env["error"]["message"]).to include("Nope::Missing")
  end

  it "fails retryably when a handler hits a database outage (engine errors are no verdict on the step)" do
    %w[DatabaseError StateError FFIError WorkerStoppedError].each do |name|
      expect(TaskerCore::Errors.const_get(name).ancestors).to include(TaskerCore::Errors::EngineError)
      expect(TaskerCore::Errors.const_get(name).ancestors).not_to include(TaskerCore::Errors::PermanentError)
    end
    env = run("ExecutorSpec::Outage")
    expect(env["error"]).to include("retryable" => true, "exception_class" => "TaskerCore::Errors::DatabaseError")
    require "tasker_core/testing"
    context = TaskerCore::Testing.build_test_context
    expect(TaskerCore::Testing.call_handler(ExecutorSpec::Outage, context).retryable).to be(true)
  end

  it "never raises while building the envelope: a failure envelope says why" do
    env = run("ExecutorSpec::ArrayMetadata")
    expect(env).to include("success" => false)
    expect(env["error"]).to include("error_type" => "StepCompletionError", "retryable" => false)
    expect(env["error"]["message"]).to include("could not be built", "metadata must be a Hash")
    # A Set is left for the engine, which refuses it naming the path (a permanent failure).
    expect(run("ExecutorSpec::SetResult")).to include("success" => true, "result" => Set[1, 2])
  end

  it "still builds an envelope when the exception's message or the handler's version raises" do
    env = run("ExecutorSpec::Unreadable")
    expect(env["error"]).to include("retryable" => true, "error_type" => "UnexpectedError")
    expect(env["error"]["message"]).to include("reading it raised ArgumentError")
    expect(env["metadata"]["handler_version"]).to be_nil
  end

  it "clamps retry_after to a finite maximum and ignores one that is no number" do
    { Float::INFINITY => 3600.0, 10**400 => 3600.0, "9" * 400 => 3600.0, 7200 => 3600.0, 2.5 => 2.5 }.each do |given, delay|
      env = run("ExecutorSpec::RetryAfter", "after" => given)
      expect(env["error"]).to include("retryable" => true)
      expect(env.dig("orchestration_metadata", "backoff_hint", "delay_seconds")).to eq(delay)
      expect(env.dig("orchestration_metadata", "headers", "retry-after")).to eq(delay.ceil.to_s)
    end
    [Float::NAN, -1, "soon"].each do |given|
      env = run("ExecutorSpec::RetryAfter", "after" => given)
      expect(env["error"]).to include("retryable" => true, "message" => "busy")
      expect(env).not_to have_key("orchestration_metadata")
    end
  end

  it "stores an error message that is not valid UTF-8 as valid UTF-8" do
    message = run("ExecutorSpec::BinaryMessage")["error"]["message"]
    expect(message).to eq("upstream said \uFFFD\uFFFD\uFFFD")
    expect(message.encoding).to eq(Encoding::UTF_8)
  end

  it "fails a step whose result refers to itself, naming the path, instead of overflowing the stack" do
    env = run("ExecutorSpec::SelfReferencing")
    expect(env["error"]).to include("error_type" => "StepCompletionError", "retryable" => false)
    expect(env["error"]["message"]).to include("result.self refers to itself")
  end

  it "turns a handler's SystemStackError into a retryable failure instead of letting it end the thread" do
    env = run("ExecutorSpec::Recursing")
    expect(env["error"]).to include("retryable" => true, "exception_class" => "SystemStackError")
  end
end
