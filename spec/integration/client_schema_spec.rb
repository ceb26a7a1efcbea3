# frozen_string_literal: true

require "spec_helper"
require "json"
require "logger"
require "open3"
require "rbconfig"
require "stringio"
require "tmpdir"
require_relative "../../examples/approvals/handlers"
require_relative "../../examples/csv_batch/handlers"

# The Client returns the plain Hash when a response does not match its type (seed 000's promise of
# forward compatibility). This spec makes sure that fallback never hides a bug today: it drives tasks
# and steps through every state the engine produces, collects every response of every client call
# along the way, and builds each one's type strictly (Type.new raises naming the field at fault).
RSpec.describe "client responses and their types" do
  let(:ct) { TaskerCore::Types::ClientTypes }
  let(:client) { TaskerCore::Client }
  let(:collected) { Hash.new { |h, k| h[k] = [] } }
  let(:log) { StringIO.new }

  before do
    @previous_logger = client.logger
    client.logger = Logger.new(log)
  end

  after { client.logger = @previous_logger }

  # Every read of one task, raw.
  def snapshot(uuid)
    collected[:task] << TaskerCore::FFI.client_get_task(uuid)
    steps = TaskerCore::FFI.client_list_task_steps(uuid)
    collected[:steps].concat(steps)
    steps.each do |step|
      collected[:steps] << TaskerCore::FFI.client_get_step(uuid, step["step_uuid"])
      collected[:audit].concat(TaskerCore::FFI.client_get_step_audit_history(uuid, step["step_uuid"]))
    end
  end

  def snapshot_lists
    collected[:list] << TaskerCore::FFI.client_list_tasks(1000, 0, nil, nil)
    collected[:list] << TaskerCore::FFI.client_list_tasks(2, 1, nil, nil)
    collected[:list] << TaskerCore::FFI.client_list_tasks(5, 0, "nowhere", "complete")
    collected[:list] << TaskerCore::FFI.client_list_tasks(2, 1, nil, nil, false)
    collected[:health] << TaskerCore::FFI.client_health_check
  end

  def envelope(success, extra = {})
    { "success" => success, "metadata" => { "execution_time_ms" => 3, "retryable" => true } }.merge(extra)
  end

  def claim
    sleep_until { TaskerCore::FFI.next_step(1) }
  end

  # Drives a template by hand through claims, retries, permanent failure, operator actions, stale
  # results and cancellation with a step in progress.
  def drive_by_hand
    TaskerCore::FFI.template_register(
      "name" => "by_hand", "namespace_name" => "schema_hand", "version" => "1.0.0",
      "steps" => [{ "name" => "a", "handler" => { "callable" => "X" }, "retry" => { "retryable" => true, "max_attempts" => 3 } },
                  { "name" => "b", "dependencies" => ["a"], "handler" => { "callable" => "X" } },
                  { "name" => "c", "dependencies" => ["b"], "handler" => { "callable" => "X" } }]
    )
    TaskerCore::FFI.worker_start("namespaces" => ["schema_hand"], "concurrency" => 1, "claim_on_complete" => false,
                                 "poll_interval_ms" => 50)
    create = ->(ctx, **opts) { client.create_task(name: "by_hand", namespace: "schema_hand", context: ctx, **opts) }
    uuid = create.call({ "n" => 1 }, tags: %w[a b], priority: 3, parent_correlation_id: TaskerCore::FFI.uuid_v7).task_uuid
    snapshot(uuid)                                                   # a enqueued, b and c pending
    first = claim
    snapshot(uuid)                                                   # a in_progress
    TaskerCore::FFI.complete_step(first["step_uuid"], first["claim_token"],
                                  envelope(false, "error" => { "message" => "later", "retryable" => true }))
    snapshot(uuid)                                                   # a waiting_for_retry: recovering
    psql("UPDATE tasker.workflow_steps SET next_retry_at = next_retry_at - interval '1 hour' " \
         "WHERE workflow_step_uuid = '#{first['step_uuid']}'")
    again = claim
    TaskerCore::FFI.complete_step(again["step_uuid"], again["claim_token"], envelope(true, "result" => { "big" => 2**62 }))
    TaskerCore::FFI.complete_step(first["step_uuid"], first["claim_token"], envelope(true, "result" => 1)) # refused
    b = claim
    TaskerCore::FFI.complete_step(b["step_uuid"], b["claim_token"],
                                  envelope(false, "error" => { "message" => "no", "retryable" => false },
                                                  "metadata" => { "retryable" => false }))
    snapshot(uuid)                                                   # b error: task error, blocked
    TaskerCore::FFI.worker_stop # nobody claims c while the operator works
    client.complete_step_manually(uuid, b["step_uuid"], result: { "by" => "hand" }, reason: "fixed", completed_by: "ops")
    c = client.list_task_steps(uuid).last
    snapshot(uuid)                                                   # c enqueued again
    client.resolve_step_manually(uuid, c.step_uuid, reason: "not needed")
    snapshot(uuid)                                                   # complete, with resolved_manually

    TaskerCore::FFI.worker_start("namespaces" => ["schema_hand"], "concurrency" => 1, "claim_on_complete" => false,
                                 "poll_interval_ms" => 50)
    running = create.call({ "n" => 2 }).task_uuid
    step = claim
    client.cancel_task(running)
    snapshot(running)                                                # cancelled with a step in progress
    TaskerCore::FFI.complete_step(step["step_uuid"], step["claim_token"], envelope(true, "result" => "late"))
    snapshot(running)
    TaskerCore::FFI.worker_stop
    # Raw creates, new (no initiator, reason or tags given) and a duplicate of the first task.
    collected[:create] << TaskerCore::FFI.client_create_task("name" => "by_hand", "namespace" => "schema_hand",
                                                            "version" => "1.0.0", "context" => { "raw" => true })
    collected[:create] << TaskerCore::FFI.client_create_task("name" => "by_hand", "namespace" => "schema_hand",
                                                            "version" => "1.0.0", "context" => { "n" => 1 })
  ensure
    TaskerCore::FFI.worker_stop
  end

  def run_workflows
    dir = Dir.mktmpdir("tasker-schema")
    templates = [File.expand_path("../fixtures/templates", __dir__),
                 File.expand_path("../../examples/approvals/templates", __dir__),
                 File.expand_path("../../examples/csv_batch/templates", __dir__)]
    TaskerCore::Worker.start(template_paths: templates, concurrency: 4)
    uuids = [
      client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 6 }),
      client.create_task(name: "failing_workflow", namespace: "math", context: { even_number: 2 }),
      client.create_task(name: "approval_routing", namespace: "approvals",
                         context: { amount: 5_000, requester: "ada", purpose: "servers" }),
      client.create_task(name: "csv_product_inventory", namespace: "csv_processing",
                         context: { csv_path: CsvBatch.write_products(File.join(dir, "p.csv"), 300) })
    ].map(&:task_uuid)
    uuids.each { |u| wait_for_task(u, timeout: 30) }
    uuids.each { |u| snapshot(u) }
  ensure
    TaskerCore::Worker.stop(timeout: 5)
    FileUtils.rm_rf(dir) if dir
  end

  it "builds every response of every call, in every state the engine produces, as its type" do
    drive_by_hand
    run_workflows
    snapshot_lists

    types = { create: ct::TaskResponse, task: ct::TaskResponse, list: ct::TaskListResponse, steps: ct::StepResponse,
              audit: ct::StepAuditResponse, health: ct::HealthResponse }
    types.each do |kind, type|
      expect(collected[kind]).not_to be_empty, "no #{kind} responses collected"
      collected[kind].each { |raw| expect { type.new(raw) }.not_to raise_error, "#{kind}: #{raw.inspect[0, 400]}" }
    end

    # The states and summaries covered, so that the check above means something.
    tasks = collected[:task] + collected[:list].flat_map { |l| l["tasks"] }
    readiness = collected[:task].flat_map { |t| t["steps"] }
    expect(tasks.map { |t| t["status"] }.uniq).to include("steps_in_process", "complete", "error", "cancelled")
    expect(tasks.map { |t| t["execution_status"] }.uniq)
      .to match_array(%w[has_ready_steps processing blocked_by_failures all_complete waiting_for_dependencies])
    expect(tasks.map { |t| t["health_status"] }.uniq).to match_array(%w[healthy recovering blocked])
    expect(tasks.map { |t| t["completion_percentage"] }).to all(be_a(Float))
    expect(tasks.map { |t| t["completion_percentage"] }).to include(0.0, 100.0)
    expect(readiness.map { |s| s["current_state"] }.uniq)
      .to include("pending", "enqueued", "in_progress", "waiting_for_retry", "complete", "error", "cancelled", "resolved_manually")
    expect(collected[:steps].map { |s| s["step_type"] }.uniq)
      .to include("standard", "decision", "deferred_convergence", "batchable", "batch_worker")
    expect(collected[:audit].map { |a| a["event"] }.uniq)
      .to include("initialize", "enqueue", "start", "enqueue_as_error_for_orchestration", "wait_for_retry", "retry",
                  "enqueue_for_orchestration", "complete", "fail", "complete_manually", "resolve_manually", "cancel",
                  "result_refused")
    expect(collected[:create].map { |c| c["created"] }).to include(true, false)

    # And the Client hands out the types, never the fallback Hash, for all of them.
    uuid = collected[:task].last["task_uuid"]
    step = collected[:steps].find { |s| s["task_uuid"] == uuid }["step_uuid"]
    expect(client.get_task(uuid)).to be_a(ct::TaskResponse)
    expect(client.list_tasks(limit: 1000)).to be_a(ct::TaskListResponse)
    expect(client.list_tasks(limit: 2, with_total: false)).to be_a(ct::TaskListResponse)
    expect(client.list_task_steps(uuid)).to all(be_a(ct::StepResponse))
    expect(client.get_step(uuid, step)).to be_a(ct::StepResponse)
    expect(client.get_step_audit_history(uuid, step)).to all(be_a(ct::StepAuditResponse))
    expect(client.health_check).to be_a(ct::HealthResponse)
    expect(log.string).to eq("")
  end

  it "builds an unhealthy answer as its type too" do
    script = <<~RUBY
      require "json"
      require #{File.expand_path('../../lib/tasker_core', __dir__).inspect}
      TaskerCore.configure { |c| c.database_url = "postgresql://127.0.0.1:1/x"; c.log_level = "off" }
      TaskerCore.boot!
      puts JSON.generate(TaskerCore::FFI.client_health_check)
    RUBY
    out, status = Open3.capture2(RbConfig.ruby, "-e", script, err: child_log_path("child"))
    expect(status).to be_success
    raw = JSON.parse(out)
    expect(ct::HealthResponse.new(raw)).to have_attributes(healthy: false, status: "unhealthy", schema_version: nil)
  end
end
