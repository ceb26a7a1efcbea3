# frozen_string_literal: true

require "spec_helper"
require "json"

RSpec.describe "operator actions, staleness and the DLQ" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:tail_template) do
    { "name" => "resolvable_workflow", "namespace_name" => "math", "version" => "1.0.0",
      "steps" => [{ "name" => "start", "handler" => { "callable" => "SpecHandlers::SquareInput" } },
                  { "name" => "explode", "dependencies" => ["start"], "handler" => { "callable" => "SpecHandlers::Explode" } },
                  { "name" => "tail", "dependencies" => ["explode"], "handler" => { "callable" => "SpecHandlers::SquareInput" } }] }
  end

  before do
    TaskerCore::FFI.template_register(tail_template)
    TaskerCore::Worker.start(template_paths: [templates], concurrency: 2)
  end

  def failed_task(name, context = { even_number: 4 })
    uuid = TaskerCore::Client.create_task(name: name, namespace: "math", context: context)["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("error")
    uuid
  end

  def task_events(uuid)
    psql("SELECT event FROM tasker.task_transitions WHERE task_uuid = '#{uuid}' ORDER BY sort_key").flatten
  end

  it "completes a failed step manually: its dependents get the operator's result and the task completes" do
    uuid = failed_task("failing_workflow")
    explode = steps_by_name(uuid)["explode"]
    outcome = TaskerCore::Client.complete_step_manually(uuid, explode["step_uuid"], result: { "result" => 5 },
                                                                                    reason: "fixed by hand", completed_by: "ops@example.com")
    expect(outcome).to include("step_status" => "complete", "enqueued" => 1)
    task = wait_for_task(uuid)
    expect(task["status"]).to eq("complete")
    expect(steps_by_name(uuid)["after_explode"].dig("results", "result", "result")).to eq(5)
    expect(task_events(uuid)).to include("reset", "all_steps_successful")
    meta = psql_value("SELECT metadata FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = '#{explode['step_uuid']}' " \
                      "AND event = 'complete_manually'")
    expect(JSON.parse(meta)).to eq("reason" => "fixed by hand", "performed_by" => "ops@example.com")
  end

  it "resolves a failed step manually so the rest of the workflow runs" do
    uuid = failed_task("resolvable_workflow")
    steps = steps_by_name(uuid)
    expect(steps["tail"]["current_state"]).to eq("pending")
    TaskerCore::Client.resolve_step_manually(uuid, steps["explode"]["step_uuid"], reason: "not needed")
    task = wait_for_task(uuid)
    expect(task["status"]).to eq("complete")
    expect(steps_by_name(uuid).transform_values { |s| s["current_state"] })
      .to eq("start" => "complete", "explode" => "resolved_manually", "tail" => "complete")
  end

  it "resets a failed step for retry: it runs again from attempt one and the task re-evaluates" do
    uuid = failed_task("failing_workflow")
    explode = steps_by_name(uuid)["explode"]
    ledger_before = SpecSupport::Ledger.entries.count { |e| e[0] == explode["step_uuid"] }
    outcome = TaskerCore::Client.reset_step_for_retry(uuid, explode["step_uuid"], reason: "flux refilled")
    expect(outcome).to include("step_status" => "enqueued", "task_status" => "steps_in_process")
    task = wait_for_task(uuid)
    expect(task["status"]).to eq("error") # Explode always fails
    expect(SpecSupport::Ledger.entries.count { |e| e[0] == explode["step_uuid"] }).to eq(ledger_before + 1)
    expect(steps_by_name(uuid)["explode"]["attempts"]).to eq(1)
    expect(task_events(uuid).count("give_up")).to eq(2)
  end

  it "rejects actions that do not fit the step or task, with typed errors" do
    uuid = failed_task("failing_workflow")
    steps = steps_by_name(uuid)
    expect { TaskerCore::Client.reset_step_for_retry(uuid, steps["start"]["step_uuid"]) }
      .to raise_error(TaskerCore::Errors::StateError, /start .* is complete: only a step in error can be reset/)
    expect { TaskerCore::Client.update_step(uuid, steps["start"]["step_uuid"], action_type: "explode") }
      .to raise_error(TaskerCore::Errors::ValidationError, /action_type must be one of/)
    expect { TaskerCore::Client.resolve_step_manually(uuid, TaskerCore::FFI.uuid_v7) }
      .to raise_error(TaskerCore::Errors::NotFoundError, /step not found/)
    expect { TaskerCore::Client.resolve_step_manually(uuid, "nope") }
      .to raise_error(TaskerCore::Errors::ValidationError, /Invalid UUID for step_uuid/)
    TaskerCore::Client.complete_step_manually(uuid, steps["explode"]["step_uuid"], result: { "result" => 1 })
    wait_for_task(uuid)
    expect { TaskerCore::Client.resolve_step_manually(uuid, steps["explode"]["step_uuid"]) }
      .to raise_error(TaskerCore::Errors::StateError, /task .* is complete/)
  end

  it "sends a task that stopped making progress to the DLQ with a snapshot, once" do
    TaskerCore::FFI.template_register(tail_template.merge("namespace_name" => "unserved"))
    uuid = TaskerCore::Client.create_task(name: "resolvable_workflow", namespace: "unserved", context: { even_number: 2 })["task_uuid"]
    expect(TaskerCore::DLQ.detect_stale_tasks).to eq([]) # fresh
    psql("UPDATE tasker.tasks SET updated_at = updated_at - interval '31 minutes' WHERE task_uuid = '#{uuid}'")
    dry = TaskerCore::DLQ.detect_stale_tasks(dry_run: true)
    expect(dry.map { |a| a["action"] }).to eq(["would_transition_to_dlq_and_error"])
    expect(TaskerCore::Client.get_task(uuid)["status"]).to eq("steps_in_process")

    actions = TaskerCore::DLQ.detect_stale_tasks
    expect(actions.map { |a| [a["task_uuid"], a["action"]] }).to eq([[uuid, "transitioned_to_dlq_and_error"]])
    expect(TaskerCore::DLQ.detect_stale_tasks).to eq([])
    expect(TaskerCore::Client.get_task(uuid)["status"]).to eq("error")
    entries = TaskerCore::DLQ.list(task_uuid: uuid)
    expect(entries.size).to eq(1)
    entry = entries.first
    expect(entry).to include("dlq_reason" => "staleness_timeout", "resolution_status" => "pending", "original_state" => "steps_in_process")
    expect(entry["task_snapshot"]).to include("task_name" => "resolvable_workflow", "namespace" => "unserved", "threshold_minutes" => 30)
    expect(entry["task_snapshot"]["steps"]).to eq("start" => "enqueued", "explode" => "pending", "tail" => "pending")

    resolved = TaskerCore::DLQ.update(entry["dlq_entry_uuid"], resolution_status: "permanently_failed",
                                                              resolution_notes: "namespace retired", resolved_by: "ops")
    expect(resolved).to include("resolution_status" => "permanently_failed", "resolved_by" => "ops")
    expect(TaskerCore::DLQ.list(resolution_status: "pending")).to eq([])
    expect { TaskerCore::DLQ.update(entry["dlq_entry_uuid"], resolution_status: "forgotten") }
      .to raise_error(TaskerCore::Errors::ValidationError, /resolution_status must be/)
    # The column's limit, in characters, named.
    expect(TaskerCore::DLQ.update(entry["dlq_entry_uuid"], resolved_by: "\u00e9" * 255)["resolved_by"]).to eq("\u00e9" * 255)
    expect { TaskerCore::DLQ.update(entry["dlq_entry_uuid"], resolved_by: "o" * 256) }
      .to raise_error(TaskerCore::Errors::ValidationError, /resolved_by is longer than 255 characters/)
  end

  it "never dead-letters a task whose step is being worked on" do
    TaskerCore::Worker.stop
    TaskerCore::Worker.start(template_paths: [templates], concurrency: 1)
    uuid = TaskerCore::Client.create_task(name: "sleepy_workflow", namespace: "resilience", context: {})["task_uuid"]
    sleep_until { psql_value("SELECT status FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}'") == "in_progress" }
    psql("UPDATE tasker.tasks SET updated_at = updated_at - interval '31 minutes' WHERE task_uuid = '#{uuid}'")
    expect(TaskerCore::DLQ.detect_stale_tasks).to eq([])
    expect(wait_for_task(uuid)["status"]).to eq("complete")
  end
end
