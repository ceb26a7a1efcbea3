# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

RSpec.describe "nothing is lost when processes and the database die" do
  let(:server) { TaskerCore::EmbeddedPostgres.shared }
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  before do
    skip "needs the embedded PostgreSQL (TASKER_TEST_DATABASE_URL is set)" unless server
    TaskerCore::Templates.load([templates])
  end

  def spawn_worker
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path,
            "WORKER_VISIBILITY" => "2", "WORKER_CONCURRENCY" => "4", "WORKER_POLL_MS" => "500" }
    Process.spawn(env, RbConfig.ruby, File.expand_path("../support/worker_process.rb", __dir__),
                  out: File::NULL, err: child_log_path("worker"))
  end

  # Task states by uuid, tolerating the moments the database is down.
  def statuses(uuids)
    rows = psql("SELECT status, count(*) FROM tasker.tasks WHERE task_uuid IN (#{uuids.map { |u| "'#{u}'" }.join(',')}) GROUP BY 1")
    rows.to_h { |status, count| [status, count.to_i] }
  rescue RuntimeError
    {}
  end

  def with_db_retry
    yield
  rescue TaskerCore::Errors::DatabaseError
    sleep 0.1
    retry
  end

  it "completes a run while PostgreSQL stops for a few seconds" do
    TaskerCore::Worker.start(namespaces: ["chaos"], concurrency: 4, visibility_timeout_seconds: 5, poll_interval_ms: 500)
    uuids = Array.new(60) { |i| TaskerCore::Client.create_task(name: "chaos_workflow", namespace: "chaos", context: { i: i })["task_uuid"] }
    sleep 0.1
    server.pause
    sleep 3
    server.resume
    sleep_until(timeout: 60, interval: 0.1) { statuses(uuids)["complete"] == uuids.size }
    steps = psql("SELECT count(*) FROM tasker.workflow_steps WHERE status = 'complete'").dig(0, 0).to_i
    expect(steps).to eq(uuids.size * 4)
    expect(SpecSupport::Ledger.entries.map(&:first).uniq.size).to eq(uuids.size * 4)
  end

  it "starts a worker while the database is down: it waits for the database, then serves" do
    server.pause
    starting = Thread.new { TaskerCore::Worker.start(template_paths: [templates], concurrency: 2) }
    sleep 1
    expect(starting).to be_alive # still waiting, not failed
    server.resume
    expect(starting.value).to be_running
    expect(captured_log).to include("WARN -- : tasker worker waits for the database (database connection failed")
    uuid = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("complete")
  ensure
    server.resume
  end

  it "finishes 500 tasks while workers are SIGKILLed and restarted and PostgreSQL restarts, never running a step twice at once" do
    workers = Array.new(3) { spawn_worker }
    uuids = []
    kills = 0
    restarted_db = false
    # The tasks arrive in ten waves with an act of chaos after each, so every kill and the restart
    # hit a run with work in flight, however fast the engine drains a wave.
    10.times do |wave|
      50.times do |i|
        uuids << with_db_retry do
          TaskerCore::Client.create_task(name: "chaos_workflow", namespace: "chaos", context: { i: (wave * 50) + i })["task_uuid"]
        end
      end
      sleep 0.2
      if kills < 5
        victim = workers.delete_at(rand(workers.size))
        Process.kill("KILL", victim)
        Process.wait(victim)
        workers << spawn_worker
        kills += 1
      elsif !restarted_db
        server.pause
        sleep 2
        server.resume
        restarted_db = true
      end
    end
    sleep_until(timeout: 120, interval: 0.5) { statuses(uuids)["complete"] == uuids.size }
    expect(kills).to eq(5)
    expect(restarted_db).to be(true)

    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps WHERE status <> 'complete'")).to eq("0")
    runs = SpecSupport::Ledger.entries.group_by(&:first)
    step_uuids = psql("SELECT workflow_step_uuid FROM tasker.workflow_steps").flatten
    # Every step's side effect happened, and no two executions of one step overlapped in time.
    expect(step_uuids - runs.keys).to eq([])
    overlapping = runs.select do |_, entries|
      spans = entries.map { |_, started, finished| [started.to_f, finished.to_f] }.sort
      spans.each_cons(2).any? { |(_, end_a), (start_b, _)| start_b < end_a }
    end
    expect(overlapping.keys).to eq([])
  ensure
    workers&.each do |pid|
      Process.kill("TERM", pid)
    rescue Errno::ESRCH
      nil
    end
    workers&.each { |pid| Process.wait(pid) rescue nil } # rubocop:disable Style/RescueModifier
  end
end
