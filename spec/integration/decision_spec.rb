# frozen_string_literal: true

require "spec_helper"
require_relative "../../examples/approvals/handlers"

RSpec.describe "decision points" do
  let(:templates) { File.expand_path("../../examples/approvals/templates", __dir__) }

  before { TaskerCore::Worker.start(template_paths: [templates], concurrency: 2) }

  def approve(amount)
    uuid = TaskerCore::Client.create_task(name: "approval_routing", namespace: "approvals",
                                          context: { amount: amount, requester: "ada", purpose: "laptop" })["task_uuid"]
    task = wait_for_task(uuid)
    [task, steps_by_name(uuid)]
  end

  {
    500 => %w[auto_approve],
    1_000 => %w[manager_approval],
    4_999 => %w[manager_approval],
    5_000 => %w[finance_review manager_approval]
  }.each do |amount, branches|
    it "routes #{amount} to #{branches.join(' and ')} only, and converges on the created branches" do
      task, steps = approve(amount)
      expect(task["status"]).to eq("complete")
      expect(steps.keys).to match_array(%w[validate_request routing_decision finalize_approval] + branches)
      expect(steps.values.map { |s| s["current_state"] }.uniq).to eq(["complete"])
      final = steps["finalize_approval"]
      expect(final["total_parents"]).to eq(branches.size)
      expect(final.dig("results", "result")).to include("approvals" => branches, "amount" => amount)
      expect(steps["routing_decision"].dig("results", "metadata")).to include("decision_point" => true,
                                                                              "branches_created" => branches.size)
      expect(task["total_steps"]).to eq(3 + branches.size)
    end
  end

  it "validates the context against the template's input_schema, listing every violation" do
    expect do
      TaskerCore::Client.create_task(name: "approval_routing", namespace: "approvals", context: { amount: -5, purpose: 3 })
    end.to raise_error(TaskerCore::Errors::ValidationError) { |e|
      expect(e.message).to include("input_schema of approvals/approval_routing@1.0.0")
      expect(e.message).to include("/amount", "/purpose", "requester")
      expect(e.field).to eq("context")
      expect(e.context["violations"].size).to eq(3)
    }
    expect(psql_value("SELECT count(*) FROM tasker.tasks")).to eq("0")
  end

  it "creates only the initial steps when the task starts" do
    TaskerCore::Worker.stop
    uuid = TaskerCore::Client.create_task(name: "approval_routing", namespace: "approvals",
                                          context: { amount: 10, requester: "a", purpose: "b" })["task_uuid"]
    expect(steps_by_name(uuid).keys).to eq(%w[validate_request routing_decision])
  end

  context "with a handler that chooses badly" do
    let(:bad) do
      { "name" => "bad_routing", "namespace_name" => "approvals", "version" => "1.0.0",
        "steps" => [{ "name" => "start", "handler" => { "callable" => "Approvals::ApproveHandler" } },
                    { "name" => "choose", "type" => "decision", "dependencies" => ["start"],
                      "handler" => { "callable" => "BadChoice" } },
                    { "name" => "left", "dependencies" => ["choose"], "handler" => { "callable" => "Approvals::ApproveHandler" } },
                    { "name" => "right", "dependencies" => ["choose"], "handler" => { "callable" => "Approvals::ApproveHandler" } }] }
    end

    before do
      stub_const("BadChoice", Class.new(TaskerCore::StepHandler::Decision) do
        def call(context) = decision_success(steps: [context.get_input("choice")])
      end)
      TaskerCore::FFI.template_register(bad)
    end

    { "start" => "does not depend on it", "nowhere" => "is not a step of this template" }.each do |choice, message|
      it "fails the decision step permanently when it chooses #{choice}" do
        uuid = TaskerCore::Client.create_task(name: "bad_routing", namespace: "approvals", context: { choice: choice })["task_uuid"]
        expect(wait_for_task(uuid)["status"]).to eq("error")
        choose = steps_by_name(uuid)["choose"]
        expect(choose["current_state"]).to eq("error")
        expect(choose["attempts"]).to eq(1)
        expect(choose.dig("results", "error")).to include("error_code" => "INVALID_DECISION_OUTCOME")
        expect(choose.dig("results", "error", "message")).to include(message)
        expect(steps_by_name(uuid).keys).to match_array(%w[start choose])
      end
    end

    it "refuses a decision that names a step twice, in Ruby and in the engine, and counts only created steps" do
      stub_const("BadChoice", Class.new(TaskerCore::StepHandler::Decision) do
        def call(context)
          names = context.get_input("choice")
          # raw: the outcome as a handler might build it by hand, past decision_success's check
          return success({ "decision_point_outcome" => { "type" => "create_steps", "step_names" => names } }) if context.get_input("raw")

          decision_success(steps: names)
        end
      end)
      [false, true].each do |raw|
        uuid = TaskerCore::Client.create_task(name: "bad_routing", namespace: "approvals",
                                              context: { choice: %w[left left], raw: raw })["task_uuid"]
        expect(wait_for_task(uuid)["status"]).to eq("error")
        choose = steps_by_name(uuid)["choose"]
        expect(choose["attempts"]).to eq(1)
        expect(choose.dig("results", "error")).to include("error_code" => "INVALID_DECISION_OUTCOME", "retryable" => false)
        expect(choose.dig("results", "error", "message")).to match(/left more than once/)
        expect(steps_by_name(uuid).keys).to match_array(%w[start choose])
      end

      # A valid choice: the task's counters grow by exactly the steps created.
      uuid = TaskerCore::Client.create_task(name: "bad_routing", namespace: "approvals",
                                            context: { choice: %w[left right], raw: true })["task_uuid"]
      expect(wait_for_task(uuid)["status"]).to eq("complete")
      counts = psql("SELECT t.total_steps, (SELECT count(*) FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid) " \
                    "FROM tasker.tasks t WHERE t.task_uuid = '#{uuid}'").first
      expect(counts).to eq(%w[4 4])
    end

    it "continues without branches on no_branches" do
      stub_const("BadChoice", Class.new(TaskerCore::StepHandler::Decision) do
        def call(_context) = decision_no_branches(result_data: { "why" => "nothing to do" })
      end)
      uuid = TaskerCore::Client.create_task(name: "bad_routing", namespace: "approvals", context: { choice: "x" })["task_uuid"]
      expect(wait_for_task(uuid)["status"]).to eq("complete")
      expect(steps_by_name(uuid).keys).to match_array(%w[start choose])
    end
  end
end
