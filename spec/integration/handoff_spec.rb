# frozen_string_literal: true

require "spec_helper"

# tasker.complete_results hands a finished step's only child, once ready, to the worker that
# finished it: pending -> in_progress in the completion's own statement, no enqueue and no claim
# of the queue. Such a step became ready and was claimed at the same instant.
RSpec.describe "a finished step's only child handed to its worker" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  def run(name, context)
    uuid = TaskerCore::Client.create_task(name: name, namespace: "math", context: context)["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    uuid
  end

  def handed(uuid)
    psql("SELECT name, ready_at = last_attempted_at FROM tasker.workflow_steps " \
         "WHERE task_uuid = '#{uuid}' ORDER BY position").to_h { |name, same| [name, same == "t"] }
  end

  def transitions(uuid, step)
    psql("SELECT tr.from_state, tr.to_state, tr.event FROM tasker.workflow_step_transitions tr " \
         "JOIN tasker.workflow_steps s USING (workflow_step_uuid) " \
         "WHERE s.task_uuid = '#{uuid}' AND s.name = '#{step}' ORDER BY tr.sort_key")
  end

  it "runs a chain's next steps without enqueueing them, their history and results intact" do
    TaskerCore::Worker.start(template_paths: [templates], concurrency: 1)
    uuid = run("linear_workflow", { even_number: 6 })
    expect(handed(uuid)).to eq("linear_step_1" => false, "linear_step_2" => true,
                               "linear_step_3" => true, "linear_step_4" => true)
    # A handed step's event carries its ancestors' results like any other.
    expect(steps_by_name(uuid)["linear_step_4"].dig("results", "result"))
      .to eq("result" => 1_679_616**2, "seen" => %w[linear_step_1 linear_step_2 linear_step_3])
    expect(transitions(uuid, "linear_step_3")).to eq(
      [[nil.to_s, "pending", "initialize"], %w[pending enqueued enqueue], %w[enqueued in_progress start],
       %w[in_progress enqueued_for_orchestration enqueue_for_orchestration],
       %w[enqueued_for_orchestration complete complete]]
    )
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}' " \
                      "AND attempts <> 1")).to eq("0")
  end

  it "enqueues the children of a step that has several" do
    TaskerCore::Worker.start(template_paths: [templates], concurrency: 1)
    uuid = run("diamond_workflow", { even_number: 6 })
    flags = handed(uuid)
    expect(flags.values_at("diamond_branch_b", "diamond_branch_c")).to eq([false, false])
    expect(flags["diamond_end"]).to be(true) # the second branch to finish was its last parent
  end
end
