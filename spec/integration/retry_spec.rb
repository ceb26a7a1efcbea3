# frozen_string_literal: true

require "spec_helper"

RSpec.describe "retries and backoff" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  before { TaskerCore::Worker.start(template_paths: [templates], concurrency: 2) }

  def attempts_of(step_uuid)
    SpecSupport::Ledger.entries.select { |e| e[0] == step_uuid }.map { |_, n, at| [n.to_i, at.to_f] }
  end

  def create(name, context = {})
    TaskerCore::Client.create_task(name: name, namespace: "resilience", context: context)["task_uuid"]
  end

  it "retries a retryable failure with exponential backoff and then continues the workflow" do
    task = wait_for_task(create("flaky_workflow", { even_number: 2 }))
    expect(task["status"]).to eq("complete")
    flaky = steps_by_name(task["task_uuid"])["flaky"]
    expect(flaky["attempts"]).to eq(3)
    expect(flaky.dig("results", "result")).to eq("attempt" => 3, "was_retry" => true)

    times = attempts_of(flaky["step_uuid"]).sort.map(&:last)
    gaps = times.each_cons(2).map { |a, b| b - a }
    # base 200 ms: about 200 ms after attempt 1 and 400 ms after attempt 2 (+/- 15 % jitter), and
    # picked up on time: within tens of milliseconds, not at the next coarse poll.
    expect(gaps[0]).to be_between(0.17, 0.30)
    expect(gaps[1]).to be_between(0.34, 0.52)

    states = psql(<<~SQL).map(&:first)
      SELECT to_state FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = '#{flaky['step_uuid']}' ORDER BY sort_key
    SQL
    expect(states).to eq(%w[pending enqueued in_progress enqueued_as_error_for_orchestration waiting_for_retry
                            pending enqueued in_progress enqueued_as_error_for_orchestration waiting_for_retry
                            pending enqueued in_progress enqueued_for_orchestration complete])
  end

  it "honours the handler's retry_after instead of the backoff policy" do
    task = wait_for_task(create("retry_after_workflow"))
    expect(task["status"]).to eq("complete")
    step = steps_by_name(task["task_uuid"])["flaky"]
    times = attempts_of(step["step_uuid"]).sort.map(&:last)
    expect(times[1] - times[0]).to be_between(0.38, 0.55) # retry_after 0.4 s, not the 5 s base
  end

  it "puts the step in error once its attempts are exhausted, keeping the last error" do
    task = wait_for_task(create("exhausted_workflow"))
    expect(task["status"]).to eq("error")
    step = steps_by_name(task["task_uuid"])["flaky"]
    expect(step["attempts"]).to eq(2)
    expect(step["current_state"]).to eq("error")
    expect(step.dig("results", "error", "message")).to eq("transient failure 2")
  end

  it "shows a waiting step's next retry time and backoff" do
    TaskerCore::Worker.stop
    TaskerCore::Worker.start(namespaces: ["resilience"], concurrency: 1)
    uuid = create("retry_after_workflow")
    step = sleep_until { steps_by_name(uuid)["flaky"].then { |s| s if s["current_state"] == "waiting_for_retry" } }
    expect(step["next_retry_at"]).not_to be_nil
    expect(psql_value("SELECT backoff_request_seconds FROM tasker.workflow_steps WHERE workflow_step_uuid = '#{step['step_uuid']}'"))
      .to eq("1")
    expect(wait_for_task(uuid)["status"]).to eq("complete")
  end
end
