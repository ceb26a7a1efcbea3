# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerCore::StepContext do
  let(:event) do
    {
      "task_uuid" => "t-1", "step_uuid" => "s-1", "correlation_id" => "c-1", "handler_callable" => "Demo::Handler",
      "task_sequence_step" => {
        "task" => { "task" => { "context" => { "order_id" => 7, "items" => [{ "sku" => "A" }] } },
                    "task_name" => "demo", "task_version" => "1.0.0", "namespace_name" => "shop" },
        "workflow_step" => { "name" => "charge", "attempts" => 2, "max_attempts" => 3, "retryable" => true,
                             "inputs" => { "gateway" => "x" }, "checkpoint" => nil },
        "dependency_results" => {
          "validate" => { "success" => true, "result" => { "total" => 9.5, "lines" => [{ "qty" => 2 }] } }
        },
        "step_definition" => { "name" => "charge", "handler" => { "initialization" => { "gateway" => "x", "timeout" => 5 } } }
      }
    }
  end
  subject(:context) { described_class.new(event) }

  it "reads the task context by String or Symbol" do
    expect(context.get_input("order_id")).to eq(7)
    expect(context.get_input(:order_id)).to eq(7)
    expect(context.get_task_field(:items)).to eq([{ "sku" => "A" }])
    expect(context.get_input_or(:missing, 42)).to eq(42)
  end

  it "unwraps dependency results and digs into them" do
    expect(context.get_dependency_result("validate")).to eq("total" => 9.5, "lines" => [{ "qty" => 2 }])
    expect(context.get_dependency_field("validate", "total")).to eq(9.5)
    expect(context.get_dependency_field("validate", :lines, 0, "qty")).to eq(2)
    expect(context.get_dependency_field("validate", "nope", "deeper")).to be_nil
    expect(context.get_dependency_result("unknown")).to be_nil
    expect(context.dependency_results.get_result("validate")["success"]).to be(true)
    expect(context.dependency_results.keys).to eq(["validate"])
  end

  it "exposes identity, configuration and retry position" do
    expect([context.task_uuid, context.step_uuid, context.step_name, context.namespace_name])
      .to eq(%w[t-1 s-1 charge shop])
    expect(context.step_config).to eq("gateway" => "x", "timeout" => 5)
    expect(context.get_config(:timeout)).to eq(5)
    expect(context.step_inputs).to eq("gateway" => "x")
    expect(context.retry_count).to eq(2)
    expect(context.max_retries).to eq(3)
    expect(context.is_retry?).to be(true)
    expect(context.is_last_retry?).to be(true)
    expect(context.has_checkpoint?).to be(false)
    expect(context.checkpoint_items_processed).to eq(0)
  end
end
