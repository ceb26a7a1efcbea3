# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

RSpec.describe "claims, crashes and deployment modes" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  def create(name, context = {}, namespace: "resilience")
    TaskerCore::Client.create_task(name: name, namespace: namespace, context: context)["task_uuid"]
  end

  def spawn_worker(env)
    r, w = IO.pipe
    pid = Process.spawn({ "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path }.merge(env),
                        RbConfig.ruby, File.expand_path("../support/worker_process.rb", __dir__), out: w,
                        err: child_log_path("worker"))
    w.close
    raise "worker did not start" unless Timeout.timeout(30) { r.gets }&.strip == "ready"

    pid
  end

  it "runs a step again on another worker after its worker is SIGKILLed mid-step, counting the attempt" do
    TaskerCore::Templates.load([templates])
    victim = spawn_worker("WORKER_VISIBILITY" => "2", "WORKER_CONCURRENCY" => "1")
    uuid = create("sleepy_workflow")
    sleep_until { psql_value("SELECT claim_owner FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}' AND status = 'in_progress'") }
    Process.kill("KILL", victim)
    Process.wait(victim)

    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    TaskerCore::Worker.start(namespaces: ["resilience"], concurrency: 1, visibility_timeout_seconds: 2, poll_interval_ms: 200)
    task = wait_for_task(uuid, timeout: 20)
    expect(task["status"]).to eq("complete")
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 6
    step = steps_by_name(uuid)["sleepy"]
    expect(step["attempts"]).to eq(2)
    expect(step.dig("results", "result", "pid")).to eq(Process.pid)
    events = psql("SELECT event FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = '#{step['step_uuid']}' ORDER BY sort_key")
    expect(events.flatten).to include("claim_expired", "wait_for_retry", "retry")
  end

  it "lets a running handler finish on SIGTERM, then exits 0" do
    TaskerCore::Templates.load([templates])
    pid = spawn_worker("WORKER_CONCURRENCY" => "1")
    uuid = create("sleepy_workflow")
    sleep_until { psql_value("SELECT status FROM tasker.workflow_steps WHERE task_uuid = '#{uuid}'") == "in_progress" }
    Process.kill("TERM", pid)
    _, status = Process.wait2(pid)
    expect(status.exitstatus).to eq(0)
    task = TaskerCore::Client.get_task(uuid)
    expect(task["status"]).to eq("complete")
    expect(steps_by_name(uuid)["sleepy"]["attempts"]).to eq(1)
  end

  it "keeps a long handler's claim alive with a heartbeat" do
    TaskerCore::Worker.start(template_paths: [templates], concurrency: 1, visibility_timeout_seconds: 1, poll_interval_ms: 200)
    task = wait_for_task(create("sleepy_workflow"), timeout: 20)
    expect(task["status"]).to eq("complete")
    step = steps_by_name(task["task_uuid"])["sleepy"]
    expect(step["attempts"]).to eq(1) # 4 s of work with a 1 s visibility timeout, never taken away
  end

  it "refuses a result whose claim is no longer current, records it in the audit and keeps the step" do
    TaskerCore::Templates.load([templates])
    TaskerCore::FFI.worker_start("namespaces" => ["math"], "concurrency" => 2)
    uuid = create("linear_workflow", { even_number: 2 }, namespace: "math")
    event = sleep_until { TaskerCore::FFI.next_step(1) }
    # Another worker took the step over (its claim expired and was recovered).
    psql("UPDATE tasker.workflow_steps SET claim_token = tasker.uuid_v7() WHERE workflow_step_uuid = '#{event['step_uuid']}'")
    outcome = TaskerCore::FFI.complete_step(event["step_uuid"], event["claim_token"], { "success" => true, "result" => 1 })
    expect(outcome).to include("applied" => false, "reason" => "stale_claim", "step_status" => "in_progress")
    audit = psql("SELECT applied, success FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = '#{event['step_uuid']}'")
    expect(audit).to eq([%w[f t]])
    expect(TaskerCore::FFI.worker_status["stale_total"]).to eq(1)
  ensure
    TaskerCore::FFI.worker_stop
  end

  it "never runs more handlers, nor holds more claims, than its concurrency" do
    tpl = { "name" => "wide_workflow", "namespace_name" => "wide", "version" => "1.0.0",
            "steps" => Array.new(12) { |i| { "name" => "s#{i}", "handler" => { "callable" => "SpecHandlers::Concurrent" } } } }
    TaskerCore::FFI.template_register(tpl)
    SpecHandlers::Concurrent.peak = 0
    TaskerCore::Worker.start(namespaces: ["wide"], concurrency: 3)
    uuids = Array.new(5) { |i| TaskerCore::Client.create_task(name: "wide_workflow", namespace: "wide", context: { i: i })["task_uuid"] }
    held = []
    sampler = Thread.new { loop { st = TaskerCore::FFI.worker_status; held << st["queued"] + st["in_flight"]; sleep 0.002 } }
    uuids.each { |u| expect(wait_for_task(u)["status"]).to eq("complete") }
    sampler.kill
    expect(SpecHandlers::Concurrent.peak).to eq(3)
    expect(held.max).to be <= 3
  end

  %w[PollingOnly EventDrivenOnly Hybrid].each do |mode|
    it "completes workflows in #{mode} mode" do
      TaskerCore::Worker.start(template_paths: [templates], concurrency: 2, deployment_mode: mode, poll_interval_ms: 100)
      task = wait_for_task(create("diamond_workflow", { even_number: 2 }, namespace: "math"))
      expect(task["status"]).to eq("complete")
      expect(TaskerCore::FFI.worker_status["listen_connected"]).to eq(mode != "PollingOnly")
    end
  end

  it "rejects an unknown deployment mode with a clear error" do
    expect { TaskerCore::Worker.start(namespaces: ["math"], deployment_mode: "Sometimes") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /deployment_mode must be Hybrid, PollingOnly or EventDrivenOnly/)
  end

  it "never shares the parent's runtime with a forked child, which can run its own worker" do
    TaskerCore::Templates.load([templates])
    parent_task = create("linear_workflow", { even_number: 4 }, namespace: "math")
    r, w = IO.pipe
    pid = fork do
      r.close
      running_after_fork = TaskerCore::FFI.running?
      TaskerCore::Worker.instance_variable_set(:@current, nil)
      TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
      task = create("linear_workflow", { even_number: 6 }, namespace: "math")
      deadline = Time.now + 15
      status = nil
      until %w[complete error].include?(status) || Time.now > deadline
        status = TaskerCore::Client.get_task(task)["status"]
        sleep 0.01
      end
      TaskerCore.shutdown!
      w.write("#{running_after_fork} #{status} #{task}")
      exit!(0)
    end
    w.close
    _, child = Process.wait2(pid)
    running_after_fork, status, child_task = r.read.split
    expect(child.exitstatus).to eq(0)
    expect(running_after_fork).to eq("false")
    expect(status).to eq("complete")
    # The parent's runtime still works after the child closed its own; the child's worker, serving
    # the same namespace, also ran the parent's task.
    expect(TaskerCore::Client.get_task(child_task)["status"]).to eq("complete")
    expect(TaskerCore::Client.get_task(parent_task)["status"]).to eq("complete")
  end
end
