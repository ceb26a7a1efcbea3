# frozen_string_literal: true

require "spec_helper"

RSpec.describe "TaskerCore::Client.get_step_audit_history" do
  let(:client) { TaskerCore::Client }
  let(:template) do
    { "name" => "audited", "namespace_name" => "audits", "version" => "1.0.0",
      "steps" => [{ "name" => "charge", "handler" => { "callable" => "SpecHandlers::SquareInput" },
                    "retry" => { "retryable" => true, "max_attempts" => 3 } },
                  { "name" => "notify", "dependencies" => ["charge"], "handler" => { "callable" => "SpecHandlers::SquareInput" } }] }
  end

  before do
    TaskerCore::FFI.template_register(template)
    TaskerCore::FFI.worker_start("namespaces" => ["audits"], "concurrency" => 1, "claim_on_complete" => false,
                                 "poll_interval_ms" => 50)
  end

  after { TaskerCore::FFI.worker_stop }

  def envelope(success, ms, extra = {})
    { "success" => success, "metadata" => { "execution_time_ms" => ms, "retryable" => true } }.merge(extra)
  end

  # charge fails once (retryable), then succeeds on its second attempt; a late result for the first
  # claim is refused.
  def run_charge
    uuid = client.create_task(name: "audited", namespace: "audits", context: { even_number: 2 }).task_uuid
    first = sleep_until { TaskerCore::FFI.next_step(1) }
    TaskerCore::FFI.complete_step(first["step_uuid"], first["claim_token"],
                                  envelope(false, 12, "error" => { "message" => "card declined, try later", "retryable" => true }))
    psql("UPDATE tasker.workflow_steps SET next_retry_at = next_retry_at - interval '1 hour' " \
         "WHERE workflow_step_uuid = '#{first['step_uuid']}'")
    second = sleep_until { TaskerCore::FFI.next_step(1) }
    expect(second["step_uuid"]).to eq(first["step_uuid"])
    TaskerCore::FFI.complete_step(second["step_uuid"], second["claim_token"], envelope(true, 7, "result" => { "charged" => 42 }))
    late = TaskerCore::FFI.complete_step(first["step_uuid"], first["claim_token"], envelope(true, 99, "result" => { "late" => true }))
    expect(late["applied"]).to be(false)
    [uuid, first["step_uuid"]]
  end

  it "lists every transition of the step, newest first, with the results workers reported" do
    uuid, step = run_charge
    worker = TaskerCore::FFI.worker_status["worker_uuid"]
    history = client.get_step_audit_history(uuid, step)
    expect(history).to all(be_a(TaskerCore::Types::ClientTypes::StepAuditResponse))
    expect(history.map { |e| [e.from_state, e.to_state] }).to eq(
      [%w[complete complete],                                     # the refused late result
       %w[enqueued_for_orchestration complete],
       %w[in_progress enqueued_for_orchestration],
       %w[enqueued in_progress],
       %w[pending enqueued],
       %w[waiting_for_retry pending],
       %w[enqueued_as_error_for_orchestration waiting_for_retry],
       %w[in_progress enqueued_as_error_for_orchestration],
       %w[enqueued in_progress],
       %w[pending enqueued],
       [nil, "pending"]]
    )
    expect(history.map(&:recorded_at)).to eq(history.map(&:recorded_at).sort.reverse)
    expect(history.map(&:audit_uuid).uniq.size).to eq(history.size)
    expect(history).to all(have_attributes(step_name: "charge", task_uuid: uuid, workflow_step_uuid: step,
                                           correlation_id: client.get_task(uuid).correlation_id))

    refused, completed, succeeded, started = history.first(4)
    expect(refused).to have_attributes(applied: false, transition_uuid: nil, success: true, execution_time_ms: 99,
                                       worker_uuid: worker, event: "result_refused")
    expect(refused.result).to include("result" => { "late" => true })
    expect(succeeded).to have_attributes(success: true, applied: true, execution_time_ms: 7, worker_uuid: worker,
                                         event: "enqueue_for_orchestration", attempt: 2)
    expect(succeeded.result).to include("result" => { "charged" => 42 })
    expect(completed).to have_attributes(success: true, result: nil)
    expect(started).to have_attributes(event: "start", attempt: 2, worker_uuid: worker)
    expect(started.metadata).not_to have_key("claim_token")

    failed = history.find { |e| e.to_state == "enqueued_as_error_for_orchestration" }
    expect(failed).to have_attributes(success: false, execution_time_ms: 12, attempt: 1)
    expect(failed.result.dig("error", "message")).to eq("card declined, try later")
    expect(history.find { |e| e.to_state == "waiting_for_retry" }).to have_attributes(success: false)

    transitions = psql("SELECT workflow_step_transition_uuid FROM tasker.workflow_step_transitions " \
                       "WHERE workflow_step_uuid = '#{step}' ORDER BY sort_key DESC").flatten
    expect(history.drop(1).map(&:transition_uuid)).to eq(transitions)
    audits = psql("SELECT workflow_step_result_audit_uuid FROM tasker.workflow_step_result_audit " \
                  "WHERE workflow_step_uuid = '#{step}' ORDER BY recorded_at DESC").flatten
    expect(history.select(&:result).map(&:audit_uuid)).to eq(audits)
  end

  it "has one entry for a step that was only created, and refuses steps of other tasks" do
    uuid = client.create_task(name: "audited", namespace: "audits", context: { even_number: 4 }).task_uuid
    notify = client.list_task_steps(uuid).last
    history = client.get_step_audit_history(uuid, notify.step_uuid)
    expect(history.map(&:to_state)).to eq(["pending"])
    expect(history.first).to have_attributes(from_state: nil, success: true, result: nil, worker_uuid: nil, event: "initialize")

    other = client.create_task(name: "audited", namespace: "audits", context: { even_number: 6 }).task_uuid
    expect { client.get_step_audit_history(other, notify.step_uuid) }
      .to raise_error(TaskerCore::Errors::NotFoundError, /step not found: #{notify.step_uuid} in task #{other}/)
    expect { client.get_step_audit_history(uuid, "bad") }
      .to raise_error(TaskerCore::Errors::ValidationError, /Invalid UUID for step_uuid: bad/)
  end
end
