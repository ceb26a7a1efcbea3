# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

RSpec.describe "group commit of results" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  before { TaskerCore::Templates.load([templates]) }

  def create_linear(count)
    Array.new(count) do |i|
      TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2, i: i })["task_uuid"]
    end
  end

  # Every step has exactly one applied success: nothing applied twice, nothing lost.
  def expect_one_applied_success_each(steps)
    successes = psql("SELECT workflow_step_uuid, count(*) FROM tasker.workflow_step_result_audit " \
                     "WHERE applied AND success GROUP BY 1")
    expect(successes.size).to eq(steps)
    expect(successes.map(&:last).uniq).to eq(["1"])
  end

  def flush_waiting_on_lock?
    psql_value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' " \
               "AND query LIKE '%tasker.flush%'").to_i.positive?
  end

  it "applies the results that arrive during one flush together in the next" do
    uuids = create_linear(4)
    lock = SpecSupport::TaskLock.new(DATABASE_URL, uuids)
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 4)
    # One flush waits on a task's lock with the first results; the others wait behind it.
    sleep_until(timeout: 30, interval: 0.1) { flush_waiting_on_lock? && TaskerCore::FFI.worker_status["flush_waiting"] == 4 }
    lock.release
    uuids.each { |uuid| expect(wait_for_task(uuid)["status"]).to eq("complete") }
    # A flush's counters move once its leader has the answer, just after the commit a waiter sees.
    status = sleep_until(timeout: 10) { TaskerCore::FFI.worker_status.then { |s| s if s["flushed_results"] == 16 } }
    expect(status["flushes"]).to be < 16
    # The round trips' time, summed: at least the wait on the task's lock the first flush sat in.
    expect(status["flush_ms"]).to be > 0
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE status = 'complete'")).to eq("16")
  ensure
    lock&.release
  end

  it "takes a result posted during another thread's flush along, its thread going on at once" do
    uuids = create_linear(4)
    lock = SpecSupport::TaskLock.new(DATABASE_URL, uuids.first(1))
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 4)
    # The flush carrying the locked task's result waits on the lock; every result that finishes
    # meanwhile joins it without waiting (posted), until all four slots hold a waiting result.
    status = sleep_until(timeout: 30, interval: 0.1) do
      TaskerCore::FFI.worker_status.then { |s| s if flush_waiting_on_lock? && s["flush_waiting"] == 4 }
    end
    expect(status["posted_results"]).to be >= 3
    expect(status["in_flight"]).to eq(4)
    lock.release
    uuids.each { |uuid| expect(wait_for_task(uuid)["status"]).to eq("complete") }
    status = sleep_until(timeout: 10) do
      TaskerCore::FFI.worker_status.then { |s| s if s["completed_total"] == 16 && s["in_flight"].zero? }
    end
    expect(status["queued"]).to eq(0)
    expect_one_applied_success_each(16)
  ensure
    lock&.release
  end

  it "loses nothing when a worker dies with results waiting in its flusher: the steps run again elsewhere" do
    uuids = create_linear(4)
    lock = SpecSupport::TaskLock.new(DATABASE_URL, uuids)
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path,
            "WORKER_VISIBILITY" => "2", "WORKER_CONCURRENCY" => "4", "WORKER_POLL_MS" => "200" }
    script = File.expand_path("../support/worker_process.rb", __dir__)
    victim = Process.spawn(env, RbConfig.ruby, script, out: File::NULL, err: File::NULL)
    sleep_until(timeout: 30, interval: 0.1) { flush_waiting_on_lock? && SpecSupport::Ledger.entries.size == 4 }
    Process.kill("KILL", victim)
    Process.wait(victim)
    # The dead process's backend would still commit the flush it was waiting in once the lock goes:
    # end it the way the server ends a session whose client is gone, so nothing of it commits.
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%tasker.flush%' " \
         "AND pid <> pg_backend_pid()")
    sleep_until(timeout: 10, interval: 0.1) { !flush_waiting_on_lock? }
    lock.release
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE status = 'complete'")).to eq("0")

    survivor = Process.spawn(env, RbConfig.ruby, script, out: File::NULL, err: File::NULL)
    uuids.each { |uuid| expect(wait_for_task(uuid, timeout: 30)["status"]).to eq("complete") }

    first_steps = psql("SELECT workflow_step_uuid, attempts FROM tasker.workflow_steps WHERE name = 'linear_step_1'")
    runs = SpecSupport::Ledger.entries.group_by(&:first)
    first_steps.each do |step_uuid, attempts|
      # Ran in the dead worker, then once more in the survivor after the claim expired.
      expect(runs[step_uuid].map(&:last).uniq.size).to eq(2)
      expect(attempts).to eq("2")
    end
    expect_one_applied_success_each(16)
  ensure
    lock&.release
    [victim, survivor].compact.each do |pid|
      Process.kill("TERM", pid)
      Process.wait(pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
  end
end
