# frozen_string_literal: true

require "spec_helper"

module FaultSpec
  RUNNING = Queue.new

  # First attempt: tells the spec which thread runs it, then blocks until the thread is killed.
  # Later attempts succeed.
  class Blocking < TaskerCore::StepHandler::Base
    def call(context)
      if context.retry_count.zero?
        RUNNING << Thread.current
        sleep
      end
      success({ "attempt" => context.retry_count + 1 })
    end
  end

  # Returns a Hash that contains itself.
  class SelfReferencing < TaskerCore::StepHandler::Base
    def call(_context)
      result = { "name" => "loop" }
      result["self"] = result
      success(result)
    end
  end

  # Recurses until the stack overflows on its first attempt, runs out of memory on its second.
  class Exhausting < TaskerCore::StepHandler::Base
    def call(context)
      return success({ "attempt" => 3 }) if context.retry_count >= 2
      raise NoMemoryError, "failed to allocate memory" if context.retry_count == 1

      deeper(0)
    end

    def deeper(n) = deeper(n + 1) + 1
  end
end

RSpec.describe "handlers that end with something other than a StandardError" do
  def register(name, callable)
    TaskerCore::FFI.template_register(
      "name" => name, "namespace_name" => "faults", "version" => "1.0.0", "identity_strategy" => "always_unique",
      "steps" => [{ "name" => "only", "handler" => { "callable" => callable },
                    "retry" => { "max_attempts" => 3, "backoff" => "none" } }]
    )
  end

  def run(name)
    uuid = TaskerCore::Client.create_task(name: name, namespace: "faults", context: {})["task_uuid"]
    [wait_for_task(uuid, timeout: 30), steps_by_name(uuid)["only"]]
  end

  def start_worker(**options)
    TaskerCore::Worker.start(namespaces: ["faults"], concurrency: 2, **options)
  end

  before do
    FaultSpec::RUNNING.clear
    register("blocking", "FaultSpec::Blocking")
    register("self_referencing", "FaultSpec::SelfReferencing")
    register("exhausting", "FaultSpec::Exhausting")
  end

  it "gives up the claim of a handler thread killed mid-step, replaces the thread, and the step runs again" do
    worker = start_worker(visibility_timeout_seconds: 2)
    uuid = TaskerCore::Client.create_task(name: "blocking", namespace: "faults", context: {})["task_uuid"]
    victim = sleep_until { !FaultSpec::RUNNING.empty? } && FaultSpec::RUNNING.pop
    expect(victim).to be_a(Thread)
    victim.kill.join

    task = wait_for_task(uuid, timeout: 30)
    expect(task["status"]).to eq("complete")
    step = steps_by_name(uuid)["only"]
    expect(step["attempts"]).to eq(2)
    expect(step.dig("results", "result")).to eq("attempt" => 2)

    threads = worker.threads
    expect(threads.size).to eq(2)
    expect(threads).to all(be_alive)
    expect(threads).not_to include(victim)
    status = sleep_until { (s = worker.status)["in_flight"].zero? && s }
    expect(status).to include("handler_threads" => 2, "handler_threads_lost" => 1)
    expect(TaskerCore::Observability.health_ready.status).to eq("ready")
    expect(captured_log).to include("tasker handler thread 0 ended while the worker runs").or include("tasker handler thread 1 ended while the worker runs")
    expect { TaskerCore::Worker.stop(timeout: 5) }.not_to raise_error
  end

  it "survives an exception that escapes the handler run (here from config.around_handler): claim given up, thread replaced" do
    failed = false
    TaskerCore.config.wrap_handlers do |&run|
      unless failed
        failed = true
        raise NoMemoryError, "failed to allocate memory"
      end
      run.call
    end
    worker = start_worker(visibility_timeout_seconds: 2)
    task, step = run("exhausting")
    expect(task["status"]).to eq("complete")
    expect(step["attempts"]).to eq(3) # the given-up claim counted as an attempt once it expired
    expect(worker.status).to include("handler_threads" => 2, "handler_threads_lost" => 1)
    expect(captured_log).to include("tasker handler thread died: NoMemoryError: failed to allocate memory")
    expect { TaskerCore::Worker.stop(timeout: 5) }.not_to raise_error
  ensure
    TaskerCore.config.wrap_handlers
  end

  it "is not ready while a lost handler thread could not be replaced" do
    worker = start_worker
    uuid = TaskerCore::Client.create_task(name: "blocking", namespace: "faults", context: {})["task_uuid"]
    victim = sleep_until { !FaultSpec::RUNNING.empty? } && FaultSpec::RUNNING.pop
    allow(worker).to receive(:spawn_handler_thread).and_return(nil)
    victim.kill.join

    ready = sleep_until { (r = TaskerCore::Observability.health_ready).status == "not_ready" && r }
    expect(ready.checks[:command_processor].status).to eq("unhealthy")
    expect(ready.checks[:command_processor].message).to include("1 of 2 handler threads (1 lost)")
    expect(worker.status).to include("handler_threads" => 1, "in_flight" => 0)
    expect(TaskerCore::Client.get_task(uuid)["status"]).to eq("steps_in_process")
  end

  it "fails a step whose result refers to itself, naming the cycle, and the thread keeps serving" do
    worker = start_worker
    task, step = run("self_referencing")
    expect(task["status"]).to eq("error")
    expect(step["attempts"]).to eq(1)
    expect(step.dig("results", "error", "message")).to include("result.self refers to itself")
    expect(step.dig("results", "error", "retryable")).to be(false)
    expect(worker.threads).to all(be_alive)
    expect(worker.status).not_to include("handler_threads_lost" => 1)
  end

  it "retries a handler that overflowed its stack or ran out of memory, on threads that survive it" do
    worker = start_worker
    task, step = run("exhausting")
    expect(task["status"]).to eq("complete")
    expect(step["attempts"]).to eq(3)
    expect(worker.status).to include("handler_threads" => 2, "handler_threads_lost" => 0)
    errors = psql("SELECT metadata->'error'->>'exception_class' FROM tasker.workflow_step_transitions " \
                  "WHERE workflow_step_uuid = '#{step['step_uuid']}' AND to_state = 'waiting_for_retry' ORDER BY sort_key")
    expect(errors.flatten).to eq(%w[SystemStackError NoMemoryError])
    expect { TaskerCore::Worker.stop(timeout: 5) }.not_to raise_error
  end

  it "keeps delivering lifecycle events past a subscriber that overflows its stack" do
    seen = Queue.new
    overflowing = Class.new { def deeper(n) = deeper(n + 1) + 1 }.new
    TaskerCore::Events.subscribe("*") { |_e| overflowing.deeper(0) }
    TaskerCore::Events.subscribe("workflow.task_completed") { |e| seen << e[:task_uuid] }
    start_worker
    task, = run("exhausting")
    expect(task["status"]).to eq("complete")
    expect(sleep_until { !seen.empty? } && seen.pop).to eq(task["task_uuid"])
    expect(captured_log).to include("SystemStackError")
  ensure
    TaskerCore::Events.reset!
  end
end
