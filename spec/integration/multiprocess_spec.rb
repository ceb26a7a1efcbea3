# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

RSpec.describe "two worker processes sharing one database" do
  def spawn_worker(ledger)
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => ledger, "WORKER_CONCURRENCY" => "4" }
    out_r, out_w = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, File.expand_path("../support/worker_process.rb", __dir__),
                        out: out_w, err: child_log_path("worker"))
    out_w.close
    line = Timeout.timeout(30) { out_r.gets }
    raise "worker #{pid} did not start" unless line&.strip == "ready"

    [pid, out_r]
  end

  it "runs 100 diamond tasks with every step executed exactly once" do
    ledger = SpecSupport::Ledger.path
    workers = Array.new(2) { spawn_worker(ledger) }
    begin
      created = Array.new(100) do |i|
        TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 2, order: i })
      end
      tasks = created.map { |c| wait_for_task(c["task_uuid"], timeout: 60) }
      expect(tasks.map { |t| t["status"] }.uniq).to eq(["complete"])
      ends = tasks.map { |task| steps_by_name(task["task_uuid"])["diamond_end"].dig("results", "result", "result") }
      expect(ends.uniq).to eq([(16 * 16)**2])
    ensure
      workers.each { |pid, _| Process.kill("TERM", pid) }
      statuses = workers.map { |pid, _| Process.wait2(pid).last }
    end
    expect(statuses.map(&:exitstatus)).to eq([0, 0])

    entries = SpecSupport::Ledger.entries
    step_uuids = entries.map(&:first)
    expect(step_uuids.size).to eq(400)
    expect(step_uuids.uniq.size).to eq(400)
    # Both processes took part.
    expect(entries.map(&:last).uniq.size).to eq(2)
    # Nothing is left claimed, and every step went through exactly one claim.
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE status <> 'complete'")).to eq("0")
    expect(psql_value("SELECT count(*) FROM tasker.workflow_step_transitions WHERE to_state = 'in_progress'")).to eq("400")
  end
end
