# frozen_string_literal: true

require "spec_helper"

RSpec.describe "TaskerCore::Client.cancel_task" do
  let(:client) { TaskerCore::Client }
  # Three steps in a chain, in a namespace of their own; the specs drive the worker by hand
  # (FFI.next_step / FFI.complete_step) so that a step is in progress exactly when they cancel.
  let(:template) do
    { "name" => "cancellable", "namespace_name" => "cancels", "version" => "1.0.0",
      "steps" => [{ "name" => "first", "handler" => { "callable" => "SpecHandlers::SquareInput" },
                    "retry" => { "retryable" => true, "max_attempts" => 3 } },
                  { "name" => "second", "dependencies" => ["first"], "handler" => { "callable" => "SpecHandlers::SquareInput" } },
                  { "name" => "third", "dependencies" => ["second"], "handler" => { "callable" => "SpecHandlers::SquareInput" } }] }
  end

  before { TaskerCore::FFI.template_register(template) }
  after { TaskerCore::FFI.worker_stop }

  def create(context = { n: rand })
    client.create_task(name: "cancellable", namespace: "cancels", context: context).task_uuid
  end

  def states(uuid)
    client.list_task_steps(uuid).to_h { |s| [s.name, s.current_state] }
  end

  def claim_first
    TaskerCore::FFI.worker_start("namespaces" => ["cancels"], "concurrency" => 1, "claim_on_complete" => false)
    sleep_until { TaskerCore::FFI.next_step(1) }
  end

  it "cancels the pending and enqueued steps and the task, with transitions, in one go" do
    uuid = create
    result = client.cancel_task(uuid)
    expect(result).to be_a(Hash)
    expect(result).to include("cancelled" => true, "task_uuid" => uuid, "status" => "cancelled",
                              "previous_status" => "steps_in_process", "cancelled_steps" => 3, "running_steps" => 0)
    expect(states(uuid)).to eq("first" => "cancelled", "second" => "cancelled", "third" => "cancelled")
    task = client.get_task(uuid)
    expect(task.status).to eq("cancelled")
    expect(psql("SELECT name, processed, in_process FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}' ORDER BY position"))
      .to eq([%w[first t f], %w[second t f], %w[third t f]])
    expect(psql("SELECT from_state, to_state, event FROM tasker.task_transitions WHERE task_uuid = '#{uuid}' " \
                "ORDER BY sort_key DESC LIMIT 1")).to eq([%w[steps_in_process cancelled cancel]])
    expect(psql("SELECT s.name, t.from_state, t.event FROM tasker.workflow_step_transitions t JOIN tasker.workflow_steps s " \
                "USING (workflow_step_uuid) WHERE t.task_uuid = '#{uuid}' AND t.to_state = 'cancelled' ORDER BY s.position"))
      .to eq([%w[first enqueued cancel], %w[second pending cancel], %w[third pending cancel]])
    expect(psql("SELECT unfinished_steps, active_steps FROM tasker.tasks WHERE task_uuid = '#{uuid}'")).to eq([%w[0 0]])
    expect(client.wait_for_task_status(uuid, timeout: 1)).to eq("cancelled")
    expect(client.wait_for_task(uuid, timeout: 1).status).to eq("cancelled")
  end

  it "wakes a thread waiting for the task" do
    uuid = create
    waiter = Thread.new { client.wait_for_task(uuid, timeout: 10) }
    sleep 0.2
    client.cancel_task(uuid)
    expect(waiter.value).to be_a(TaskerCore::Types::ClientTypes::TaskResponse)
    expect(waiter.value.status).to eq("cancelled")
  end

  it "leaves a step in progress alone: its result is recorded in the audit but never resumes the task" do
    uuid = create
    event = claim_first
    expect(client.cancel_task(uuid)).to include("cancelled_steps" => 2, "running_steps" => 1)
    expect(states(uuid)).to eq("first" => "in_progress", "second" => "cancelled", "third" => "cancelled")

    TaskerCore::FFI.complete_step(event["step_uuid"], event["claim_token"], { "success" => true, "result" => { "v" => 1 } })
    expect(client.get_task(uuid).status).to eq("cancelled")
    expect(states(uuid).values_at("second", "third")).to eq(%w[cancelled cancelled])
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}' AND status = 'enqueued'")).to eq("0")
    expect(psql("SELECT success, result->'result'->>'v' FROM tasker.workflow_step_result_audit " \
                "WHERE workflow_step_uuid = '#{event['step_uuid']}'")).to eq([%w[t 1]])
    history = client.get_step_audit_history(uuid, event["step_uuid"])
    expect(history.find { |e| e.result }).to have_attributes(success: true, result: include("result" => { "v" => 1 }))
    expect(psql("SELECT to_state FROM tasker.task_transitions WHERE task_uuid = '#{uuid}' ORDER BY sort_key DESC LIMIT 1"))
      .to eq([["cancelled"]])
    expect(TaskerCore::FFI.next_step(0.3)).to be_nil # nothing of the cancelled task is claimable
  end

  it "never lets a failed result of a running step move the cancelled task to error or schedule a retry" do
    uuid = create
    event = claim_first
    client.cancel_task(uuid)
    TaskerCore::FFI.complete_step(event["step_uuid"], event["claim_token"],
                                  { "success" => false, "error" => { "message" => "late failure", "retryable" => true },
                                    "metadata" => { "retryable" => true } })
    expect(client.get_task(uuid).status).to eq("cancelled")
    step = client.get_step(uuid, event["step_uuid"])
    expect(step.current_state).not_to eq("waiting_for_retry")
    expect(step.next_retry_at).to be_nil
    expect(psql_value("SELECT count(*) FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = '#{event['step_uuid']}' " \
                      "AND NOT success")).to eq("1")
  end

  it "cancels a step waiting for its retry" do
    uuid = create
    event = claim_first
    TaskerCore::FFI.complete_step(event["step_uuid"], event["claim_token"],
                                  { "success" => false, "error" => { "message" => "try later", "retryable" => true },
                                    "metadata" => { "retryable" => true } })
    expect(states(uuid)["first"]).to eq("waiting_for_retry")
    expect(client.cancel_task(uuid)).to include("cancelled_steps" => 3, "running_steps" => 0)
    step = client.get_step(uuid, event["step_uuid"])
    expect(step).to have_attributes(current_state: "cancelled", next_retry_at: nil)
    expect(psql("SELECT unfinished_steps, active_steps FROM tasker.tasks WHERE task_uuid = '#{uuid}'")).to eq([%w[0 0]])
  end

  it "raises StateError naming the task and its state for a finished task, NotFoundError for an unknown one" do
    uuid = create
    client.cancel_task(uuid)
    expect { client.cancel_task(uuid) }
      .to raise_error(TaskerCore::Errors::StateError, /task #{uuid} is cancelled: only a task that has not finished can be cancelled/) { |e|
        expect(e.sqlstate).to eq("TK409")
      }
    done = create
    psql("UPDATE tasker.tasks SET status = 'complete' WHERE task_uuid = '#{done}'")
    expect { client.cancel_task(done) }.to raise_error(TaskerCore::Errors::StateError, /is complete/)
    missing = TaskerCore::FFI.uuid_v7
    expect { client.cancel_task(missing) }.to raise_error(TaskerCore::Errors::NotFoundError, /task not found: #{missing}/)
    expect { client.cancel_task("x") }.to raise_error(TaskerCore::Errors::ValidationError, /Invalid UUID for task_uuid: x/)
  end

  it "refuses operator actions on the steps of a cancelled task" do
    uuid = create
    client.cancel_task(uuid)
    step = client.list_task_steps(uuid).first
    expect { client.resolve_step_manually(uuid, step.step_uuid) }.to raise_error(TaskerCore::Errors::StateError, /is cancelled/)
  end

  it "cancels exactly once when many threads race to cancel the same task" do
    uuid = create
    results = Array.new(8) { Thread.new { client.cancel_task(uuid) rescue $! } }.map(&:value) # rubocop:disable Style/RescueModifier
    expect(results.count { |r| r.is_a?(Hash) && r["cancelled"] }).to eq(1)
    expect(results.grep(TaskerCore::Errors::StateError).size).to eq(7)
    expect(psql_value("SELECT count(*) FROM tasker.task_transitions WHERE task_uuid = '#{uuid}' AND event = 'cancel'")).to eq("1")
  end
end
