# frozen_string_literal: true

require "spec_helper"

module HostileTextSpec
  # Fails retryably on its first attempt, succeeds on the second.
  class Flaky < TaskerCore::StepHandler::Base
    def call(context)
      return success({ "attempt" => 2 }) if context.retry_count.positive?

      raise TaskerCore::Errors::RetryableError.new("busy", retry_after: 1)
    end
  end

  # Returns a result with a Hash key that is not valid UTF-8 (the value is fine).
  class BadKey < TaskerCore::StepHandler::Base
    def call(context)
      SpecSupport::Ledger.record(context.step_uuid)
      success({ "ok" => { "caf\xE9".dup.force_encoding(Encoding::UTF_8) => 1 } })
    end
  end
end

RSpec.describe "hostile text in requests and results" do
  let(:broken) { "caf\xE9".dup.force_encoding(Encoding::UTF_8) }

  before do
    TaskerCore::FFI.template_register(
      "name" => "bad_key", "namespace_name" => "hostile", "version" => "1.0.0", "identity_strategy" => "always_unique",
      "steps" => [{ "name" => "only", "handler" => { "callable" => "HostileTextSpec::BadKey" },
                    "retry" => { "max_attempts" => 3, "backoff" => "none" } }]
    )
  end

  def create(context)
    TaskerCore::Client.create_task(name: "bad_key", namespace: "hostile", context: context)
  end

  it "refuses a Hash key that is not valid UTF-8 like a value, naming where it is" do
    expect { create({ "order" => { broken => 1 } }) }.to raise_error(TaskerCore::Errors::ValidationError) { |e|
      expect(e.message).to eq("request.context.order has a key that is not valid UTF-8")
    }
    expect { create({ "caf\xE9".dup.force_encoding(Encoding::ISO_8859_1) => 1 }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /request.context has a key that is a String in ISO-8859-1/)
    expect { create({ "order" => broken }) }.to raise_error(TaskerCore::Errors::ValidationError, "request.context.order is not valid UTF-8")
    expect(psql_value("SELECT count(*) FROM tasker.tasks")).to eq("0")
  end

  it "refuses a name that is not valid UTF-8 before it reaches the database" do
    expect { TaskerCore::Client.list_tasks(namespace: broken) }
      .to raise_error(TaskerCore::Errors::ValidationError, "namespace is not valid UTF-8 text")
  end

  it "fails a step whose result has such a key permanently, at once, running the handler once" do
    TaskerCore::Worker.start(namespaces: ["hostile"], concurrency: 2)
    uuid = create({})["task_uuid"]
    task = wait_for_task(uuid, timeout: 20)
    expect(task["status"]).to eq("error")
    step = steps_by_name(uuid)["only"]
    expect(step["attempts"]).to eq(1)
    expect(step.dig("results", "error")).to include("error_type" => "StepCompletionError", "retryable" => false)
    expect(step.dig("results", "error", "message")).to include("result.result.ok has a key that is not valid UTF-8")
    expect(SpecSupport::Ledger.entries.size).to eq(1)
  end

  it "retries a failure whose backoff hint is no number with the step's backoff instead of refusing the result" do
    TaskerCore::FFI.template_register(
      "name" => "hint", "namespace_name" => "hostile", "version" => "1.0.0", "identity_strategy" => "always_unique",
      "steps" => [{ "name" => "only", "handler" => { "callable" => "HostileTextSpec::Flaky" },
                    "retry" => { "max_attempts" => 3, "backoff" => "none" } }]
    )
    # A result as another binding (or a careless wrapper) might send it.
    TaskerCore.config.wrap_handlers do |&run|
      envelope = run.call
      envelope.dig("orchestration_metadata", "backoff_hint")&.store("delay_seconds", "soon")
      envelope
    end
    TaskerCore::Worker.start(namespaces: ["hostile"], concurrency: 2)
    uuid = TaskerCore::Client.create_task(name: "hint", namespace: "hostile", context: {})["task_uuid"]
    expect(wait_for_task(uuid, timeout: 20)["status"]).to eq("complete")
    expect(steps_by_name(uuid)["only"]["attempts"]).to eq(2)
  ensure
    TaskerCore.config.wrap_handlers
  end
end
