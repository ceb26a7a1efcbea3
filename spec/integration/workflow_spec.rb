# frozen_string_literal: true

require "spec_helper"

RSpec.describe "running workflows end to end" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  before { TaskerCore::Worker.start(template_paths: [templates], concurrency: 4) }

  def run_task(name, context)
    created = TaskerCore::Client.create_task(name: name, namespace: "math", context: context)
    expect(created["created"]).to be(true)
    wait_for_task(created["task_uuid"])
  end

  it "runs the linear workflow: 6 -> 36 -> 1296 -> 1679616 -> 1679616^2" do
    task = run_task("linear_workflow", { even_number: 6 })
    expect(task["status"]).to eq("complete")
    steps = steps_by_name(task["task_uuid"])
    expect(steps.transform_values { |s| s.dig("results", "result", "result") }).to eq(
      "linear_step_1" => 36, "linear_step_2" => 1296, "linear_step_3" => 1_679_616,
      "linear_step_4" => 1_679_616**2
    )
    expect(steps.values.map { |s| s["current_state"] }.uniq).to eq(["complete"])
    expect(steps.values.map { |s| s["attempts"] }.uniq).to eq([1])
    # Dependency results are transitive: the last step sees every ancestor.
    expect(steps["linear_step_4"].dig("results", "result", "seen")).to eq(%w[linear_step_1 linear_step_2 linear_step_3])
    expect(task).to include("completed_steps" => 4, "total_steps" => 4, "execution_status" => "all_complete",
                            "completion_percentage" => 100)
  end

  it "runs the diamond: the join step sees both branches' results" do
    task = run_task("diamond_workflow", { even_number: 6 })
    expect(task["status"]).to eq("complete")
    steps = steps_by_name(task["task_uuid"])
    expect(steps["diamond_branch_b"].dig("results", "result", "result")).to eq(1296)
    expect(steps["diamond_branch_c"].dig("results", "result", "result")).to eq(1296)
    expect(steps["diamond_end"].dig("results", "result", "seen")).to eq(%w[diamond_branch_b diamond_branch_c diamond_start])
    expect(steps["diamond_end"].dig("results", "result", "result")).to eq((1296 * 1296)**2)
  end

  it "runs an 8-step tree whose final step joins four leaves" do
    task = run_task("tree_workflow", { even_number: 2 })
    expect(task["status"]).to eq("complete")
    steps = steps_by_name(task["task_uuid"])
    expect(steps.size).to eq(8)
    final = steps["tree_final_convergence"]
    expect(final.dig("results", "result", "result")).to eq(256**4)
    expect(final.dig("results", "result", "seen")).to include("tree_leaf_d", "tree_leaf_e", "tree_leaf_f", "tree_leaf_g")
    expect(final["total_parents"]).to eq(4)
    # The join ran only after all four leaves completed.
    leaf_done = %w[tree_leaf_d tree_leaf_e tree_leaf_f tree_leaf_g].map { |n| steps[n]["completed_at"] }.max
    expect(final.dig("results", "metadata", "started_at")).to be >= leaf_done
  end

  it "records every transition of a step and of its task, in order" do
    task = run_task("linear_workflow", { even_number: 6 })
    step_states = psql(<<~SQL).map(&:first)
      SELECT tr.to_state FROM tasker.workflow_step_transitions tr
      JOIN tasker.workflow_steps s USING (workflow_step_uuid)
      WHERE s.task_uuid = '#{task['task_uuid']}' AND s.name = 'linear_step_2' ORDER BY tr.sort_key
    SQL
    expect(step_states).to eq(%w[pending enqueued in_progress enqueued_for_orchestration complete])
    task_states = psql("SELECT to_state FROM tasker.task_transitions WHERE task_uuid = '#{task['task_uuid']}' ORDER BY sort_key")
    expect(task_states.map(&:first)).to eq(%w[pending initializing enqueuing_steps steps_in_process evaluating_results complete])
  end

  it "puts a permanently failing step and its task in error with the message stored, after independent branches finish" do
    task = run_task("failing_workflow", { even_number: 4 })
    expect(task["status"]).to eq("error")
    steps = steps_by_name(task["task_uuid"])
    expect(steps["explode"]["current_state"]).to eq("error")
    expect(steps["explode"].dig("results", "error")).to include("message" => "the flux capacitor is empty",
                                                                "error_code" => "FLUX_EMPTY", "retryable" => false)
    expect(steps["independent"]["current_state"]).to eq("complete")
    expect(steps["after_explode"]["current_state"]).to eq("pending")
    expect(task).to include("execution_status" => "blocked_by_failures", "health_status" => "blocked", "failed_steps" => 1)
    states = psql("SELECT to_state FROM tasker.task_transitions WHERE task_uuid = '#{task['task_uuid']}' ORDER BY sort_key")
    expect(states.map(&:first).last(3)).to eq(%w[evaluating_results blocked_by_failures error])
  end

  it "stores an unexpected exception's class, message and backtrace" do
    TaskerCore::Worker.stop
    crash = { "name" => "crash_workflow", "namespace_name" => "math", "version" => "1.0.0",
              "steps" => [{ "name" => "boom", "handler" => { "callable" => "SpecHandlers::Crash" } }] }
    TaskerCore::FFI.template_register(crash)
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 1)
    task = run_task("crash_workflow", {})
    error = steps_by_name(task["task_uuid"])["boom"].dig("results", "error")
    expect(error).to include("message" => "bad argument inside the handler", "exception_class" => "ArgumentError",
                             "error_type" => "UnexpectedError")
    expect(error["backtrace"].first).to include("handlers.rb")
  end

  it "fails a step whose callable names no handler, naming the callable" do
    TaskerCore::Worker.stop
    tpl = { "name" => "ghost_workflow", "namespace_name" => "math", "version" => "1.0.0",
            "steps" => [{ "name" => "ghost", "handler" => { "callable" => "Nope::NotAHandler" } }] }
    TaskerCore::FFI.template_register(tpl)
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 1)
    task = run_task("ghost_workflow", {})
    expect(task["status"]).to eq("error")
    expect(steps_by_name(task["task_uuid"])["ghost"].dig("results", "error", "message")).to include("Nope::NotAHandler")
  end

  it "fails a step permanently when its result cannot be stored, saying why" do
    TaskerCore::Worker.stop
    tpl = { "name" => "huge_workflow", "namespace_name" => "math", "version" => "1.0.0",
            "steps" => [{ "name" => "huge", "handler" => { "callable" => "SpecHandlers::Huge" } }] }
    TaskerCore::FFI.template_register(tpl)
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 1)
    task = run_task("huge_workflow", {})
    error = steps_by_name(task["task_uuid"])["huge"].dig("results", "error")
    expect(error["error_type"]).to eq("StepCompletionError")
    expect(error["message"]).to include("result.result.n is an Integer outside the 64-bit range")
  end
end
