# frozen_string_literal: true

require "spec_helper"
require "rbconfig"
require "json"

RSpec.describe "checkpoints" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  def items_processed(step_uuid)
    SpecSupport::Ledger.entries.select { |e| e[0] == step_uuid }.map { |e| e[1] }
  end

  it "saves progress and runs the handler again at once, without consuming an attempt" do
    TaskerCore::Worker.start(template_paths: [templates], concurrency: 1)
    uuid = TaskerCore::Client.create_task(name: "checkpointed_workflow", namespace: "resilience", context: {})["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    step = steps_by_name(uuid)["long_job"]
    expect(step.dig("results", "result")).to eq("sum" => 55, "resumed_from" => 9)
    expect(step["attempts"]).to eq(1)
    expect(items_processed(step["step_uuid"])).to eq((0..9).map { |i| "item#{i}" })
    checkpoint = JSON.parse(psql_value("SELECT checkpoint FROM tasker.workflow_steps WHERE workflow_step_uuid = '#{step['step_uuid']}'"))
    expect(checkpoint).to include("cursor" => 9, "items_processed" => 9, "accumulated_results" => { "sum" => 45 })
    expect(checkpoint["history"].map { |h| h["cursor"] }).to eq([3, 6, 9])
  end

  it "resumes from the last checkpoint after its worker is SIGKILLed" do
    TaskerCore::Templates.load([templates])
    r, w = IO.pipe
    pid = Process.spawn({ "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path,
                          "WORKER_VISIBILITY" => "2", "WORKER_CONCURRENCY" => "1" },
                        RbConfig.ruby, File.expand_path("../support/worker_process.rb", __dir__), out: w,
                        err: child_log_path("worker"))
    w.close
    expect(Timeout.timeout(30) { r.gets }&.strip).to eq("ready")
    uuid = TaskerCore::Client.create_task(name: "checkpointed_workflow", namespace: "resilience",
                                          context: { hang_after_first_checkpoint: true })["task_uuid"]
    sleep_until { psql_value("SELECT checkpoint->>'cursor' FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}'") == "3" }
    Process.kill("KILL", pid)
    Process.wait(pid)
    TaskerCore::Worker.start(namespaces: ["resilience"], concurrency: 1, visibility_timeout_seconds: 2, poll_interval_ms: 200)
    expect(wait_for_task(uuid, timeout: 20)["status"]).to eq("complete")
    step = steps_by_name(uuid)["long_job"]
    expect(step.dig("results", "result")).to eq("sum" => 55, "resumed_from" => 9)
    expect(step["attempts"]).to eq(2)
    # Items before the checkpoint ran once, in the killed worker; the rest once, after the resume.
    expect(items_processed(step["step_uuid"])).to eq((0..9).map { |i| "item#{i}" })
    expect(SpecSupport::Ledger.entries.select { |e| e[0] == step["step_uuid"] }.map(&:last).uniq).to eq([pid.to_s, Process.pid.to_s])
  end

  it "refuses a malformed checkpoint with a clear error" do
    TaskerCore::Templates.load([templates])
    TaskerCore::FFI.worker_start("namespaces" => ["resilience"], "concurrency" => 1)
    TaskerCore::Client.create_task(name: "checkpointed_workflow", namespace: "resilience", context: {})
    event = sleep_until { TaskerCore::FFI.next_step(1) }
    expect { TaskerCore::FFI.checkpoint_step(event["step_uuid"], event["claim_token"], { "cursor" => 1 }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /items_processed must be a number/)
  ensure
    TaskerCore::FFI.worker_stop
  end
end
