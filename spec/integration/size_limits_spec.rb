# frozen_string_literal: true

require "spec_helper"

module SizeLimitsSpec
  # Returns a result just over the engine's limit.
  class Oversized < TaskerCore::StepHandler::Base
    def call(context)
      SpecSupport::Ledger.record(context.step_uuid)
      success({ "blob" => "x" * TaskerCore::FFI::STEP_RESULT_MAX_BYTES })
    end
  end
end

RSpec.describe "size limits of what a task carries" do
  let(:limit) { TaskerCore::FFI::STEP_RESULT_MAX_BYTES }

  before do
    TaskerCore::FFI.template_register(
      "name" => "sizes", "namespace_name" => "sizes", "version" => "1.0.0", "identity_strategy" => "always_unique",
      "steps" => [{ "name" => "only", "handler" => { "callable" => "SizeLimitsSpec::Oversized" },
                    "retry" => { "max_attempts" => 3, "backoff" => "none" } }]
    )
  end

  def create(**options)
    TaskerCore::Client.create_task(name: "sizes", namespace: "sizes", context: options.delete(:context) || {}, **options)
  end

  it "caps tags by count and bytes, and counts them with the context against one budget" do
    expect(TaskerCore::FFI::TAGS_MAX).to eq(100)
    expect { create(tags: Array.new(101) { |i| "t#{i}" }) }
      .to raise_error(TaskerCore::Errors::ValidationError, "tags has 101 entries; the limit is 100")
    expect { create(tags: ["ok", "x" * 129]) }
      .to raise_error(TaskerCore::Errors::ValidationError, "tags[1] is 129 bytes; the limit is 128")
    big = { "text" => Array.new(130) { "y" * 8_000 } } # under 1 MiB alone
    expect { create(context: big, tags: Array.new(100) { "z" * 128 }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /context and tags are \d+ bytes serialized; the limit is 1048576 for both/)
    expect(psql_value("SELECT count(*) FROM tasker.tasks")).to eq("0")
    expect(create(tags: Array.new(100) { "z" * 128 })["tags"].size).to eq(100)
  end

  it "fails a step whose result is over the limit permanently, naming its size, running the handler once" do
    TaskerCore::Worker.start(namespaces: ["sizes"], concurrency: 2)
    uuid = create["task_uuid"]
    expect(wait_for_task(uuid, timeout: 20)["status"]).to eq("error")
    step = steps_by_name(uuid)["only"]
    expect(step["attempts"]).to eq(1)
    expect(step.dig("results", "error")).to include("error_type" => "StepCompletionError", "retryable" => false)
    expect(step.dig("results", "error", "message"))
      .to match(/the step result is \d+ bytes serialized; the limit is #{limit}/)
    expect(SpecSupport::Ledger.entries.size).to eq(1)

    expect { TaskerCore::Client.complete_step_manually(uuid, step["step_uuid"], result: { "blob" => "x" * limit }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /result is \d+ bytes serialized; the limit is #{limit}/)
  end
end
