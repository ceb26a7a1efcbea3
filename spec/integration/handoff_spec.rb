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

  # Handlers that wait at a named gate until the spec opens it, and count their runs.
  module HandoffSpecGates
    @mutex = Mutex.new
    @changed = ConditionVariable.new
    @open = {}
    @waiting = Hash.new(0)
    @runs = Hash.new(0)

    class << self
      def pass(name)
        @mutex.synchronize do
          @waiting[name] += 1
          @changed.wait(@mutex, 1) until @open[name]
          @waiting[name] -= 1
        end
      end

      def open(name) = @mutex.synchronize { @open[name] = true; @changed.broadcast }
      def waiting(name) = @mutex.synchronize { @waiting[name] }
      def ran(step) = @mutex.synchronize { @runs[step] += 1 }
      def runs(step) = @mutex.synchronize { @runs[step] }
    end
  end

  class HandoffSpecHandler < TaskerCore::StepHandler::Base
    def call(context)
      HandoffSpecGates.ran(context.step_name)
      HandoffSpecGates.pass(config["gate"]) if config["gate"]
      success({ "step" => context.step_name })
    end
  end

  it "hands a child whose last two parents finish in one flush to one of them only" do
    dir = Dir.mktmpdir
    File.write(File.join(dir, "join.yml"), <<~YAML)
      name: handoff_join
      namespace_name: handoff
      version: "1.0.0"
      steps:
        - {name: start, handler: {callable: HandoffSpecHandler}}
        - {name: left, dependencies: [start], handler: {callable: HandoffSpecHandler, initialization: {gate: branches}}}
        - {name: right, dependencies: [start], handler: {callable: HandoffSpecHandler, initialization: {gate: branches}}}
        - {name: join, dependencies: [left, right], handler: {callable: HandoffSpecHandler}}
    YAML
    File.write(File.join(dir, "blocker.yml"), <<~YAML)
      name: handoff_blocker
      namespace_name: handoff
      version: "1.0.0"
      steps:
        - {name: blocker, handler: {callable: HandoffSpecHandler, initialization: {gate: blocker}}}
    YAML
    TaskerCore::Worker.start(template_paths: [dir], namespaces: ["handoff"], concurrency: 4)
    join = TaskerCore::Client.create_task(name: "handoff_join", namespace: "handoff", context: { n: 1 })["task_uuid"]
    sleep_until(timeout: 30) { HandoffSpecGates.waiting("branches") == 2 }
    blocker = TaskerCore::Client.create_task(name: "handoff_blocker", namespace: "handoff", context: { n: 2 })["task_uuid"]
    sleep_until(timeout: 30) { HandoffSpecGates.waiting("blocker") == 1 }
    # The blocker's flush waits on its task's lock; both branches' results queue behind it and go
    # together in the next flush, where the join becomes ready.
    lock = SpecSupport::TaskLock.new(DATABASE_URL, [blocker])
    HandoffSpecGates.open("blocker")
    sleep_until(timeout: 30) { TaskerCore::FFI.worker_status["flush_waiting"] == 1 }
    HandoffSpecGates.open("branches")
    sleep_until(timeout: 30) { TaskerCore::FFI.worker_status["flush_waiting"] == 3 }
    lock.release
    expect(wait_for_task(join)["status"]).to eq("complete")
    expect(wait_for_task(blocker)["status"]).to eq("complete")
    expect(HandoffSpecGates.runs("join")).to eq(1)
    expect(handed(join)["join"]).to be(true)
    expect(psql_value("SELECT attempts FROM tasker.workflow_steps WHERE task_uuid = '#{join}' AND name = 'join'")).to eq("1")
  ensure
    lock&.release
    FileUtils.rm_rf(dir) if dir
  end
end

