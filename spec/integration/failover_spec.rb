# frozen_string_literal: true

require "spec_helper"
require "rbconfig"
require_relative "../support/postgres_pair"

# A primary failing over to its synchronous standby while two worker processes run diamond tasks
# and a client keeps creating tasks (docs/operations.md). Tagged :failover: it builds its own pair of
# clusters and takes about half a minute; `rspec --tag failover` runs it alone.
RSpec.describe "failover to a synchronous standby", :failover, timeout: 240 do
  TEMPLATES = File.expand_path("../fixtures/failover_templates", __dir__)

  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  def spawn_worker(url, ledger)
    env = { "TASKER_DATABASE_URL" => url, "TASKER_SPEC_LEDGER" => ledger, "WORKER_CONCURRENCY" => "4",
            "WORKER_TEMPLATES" => TEMPLATES, "WORKER_VISIBILITY" => "5", "WORKER_POLL_MS" => "500" }
    out_r, out_w = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, File.expand_path("../support/worker_process.rb", __dir__),
                        out: out_w, err: child_log_path("failover-worker"))
    out_w.close
    line = Timeout.timeout(60) { out_r.gets }
    raise "worker #{pid} did not start" unless line&.strip == "ready"

    pid
  end

  # Runs the engine of this process against url for the block, then back on the suite's database.
  def on_database(url)
    TaskerCore.shutdown!
    TaskerCore.config.database_url = url
    yield
  ensure
    TaskerCore.shutdown!
    TaskerCore.config.database_url = DATABASE_URL
    TaskerCore.boot! # the other specs expect the runtime running, as the suite left it
  end

  # Creates tasks until stopped: each key once; a create that raised is retried with the same key
  # until it succeeds. Returns the outcomes: [key, :created | :failed | :retried, uuid or error class].
  def creating_client(stop)
    Thread.new do
      outcomes = []
      i = 0
      until stop.closed?
        key = "live-#{i += 1}"
        begin
          task = TaskerCore::Client.create_task(name: "failover_diamond", namespace: "failover",
                                                context: { n: i }, idempotency_key: key)
          outcomes << [key, :created, task["task_uuid"]]
        rescue TaskerCore::Errors::DatabaseError => e
          outcomes << [key, :failed, e.class]
          begin
            sleep 0.05 # the database is switching over: retry the same key (a client's retry loop)
            task = TaskerCore::Client.create_task(name: "failover_diamond", namespace: "failover",
                                                  context: { n: i }, idempotency_key: key)
            outcomes << [key, :retried, task["task_uuid"]]
          rescue TaskerCore::Errors::DatabaseError => e
            outcomes << [key, :failed, e.class]
            retry
          end
        end
        sleep 0.01
      end
      outcomes
    end
  end

  it "writes only to the primary: a standby listed first is skipped, and one reached anyway is never kept" do
    pair = SpecSupport::PostgresPair.new.start
    standby_first = "host=#{pair.standby.socket_dir},#{pair.primary.socket_dir} port=#{pair.standby.port},#{pair.primary.port} " \
                    "dbname=tasker user=postgres"
    on_database(standby_first) do
      TaskerCore.migrate!
      TaskerCore::Templates.load([TEMPLATES])
      task = TaskerCore::Client.create_task(name: "failover_slow", namespace: "failover", context: {})
      expect(SpecSupport::Database.psql_on(pair.primary.url, "SELECT count(*) FROM tasker.tasks").dig(0, 0)).to eq("1")
      expect(TaskerCore::Client.get_task(task["task_uuid"])["status"]).not_to be_nil
    end
    standby_only = "host=#{pair.standby.socket_dir} port=#{pair.standby.port} dbname=tasker user=postgres " \
                   "target_session_attrs=any"
    on_database(standby_only) do
      expect { TaskerCore::Client.create_task(name: "failover_slow", namespace: "failover", context: { n: 2 }) }
        .to raise_error(TaskerCore::Errors::DatabaseError, /read-only/)
      # Neither the connection that hit the read-only server nor the one of the retry stays open.
      sleep_until(timeout: 10) do
        SpecSupport::Database.psql_on(pair.standby.url, "SELECT count(*) FROM pg_stat_activity " \
                                                        "WHERE application_name = 'tasker_core'").dig(0, 0) == "0"
      end
    end
  ensure
    pair&.stop
  end

  it "loses no committed work, runs no step twice at once, and recovers on the new primary" do
    pair = SpecSupport::PostgresPair.new.start
    ledger = SpecSupport::Ledger.path
    workers = []
    on_database(pair.url) do
      TaskerCore.migrate!
      TaskerCore::Templates.load([TEMPLATES])
      expect(pair.primary.running? && pair.standby.running?).to be(true)
      expect(SpecSupport::Database.psql_on(pair.primary.url, "SELECT sync_state FROM pg_stat_replication")).to eq([["sync"]])

      workers = Array.new(2) { spawn_worker(pair.url, ledger) }
      batch = TaskerCore::Client.create_tasks(Array.new(300) do |i|
        { name: "failover_diamond", namespace: "failover", context: { batch: i } }
      end)
      created = batch.map { |t| t["task_uuid"] }
      stop = Queue.new
      client = creating_client(stop)

      # The switch happens while tasks are running and a slow step is in a worker's hands.
      done = -> { SpecSupport::Database.psql_on(pair.primary.url, "SELECT count(*) FROM tasker.tasks WHERE complete").dig(0, 0).to_i }
      sleep_until(timeout: 60) { done.call >= 60 }
      slow = TaskerCore::Client.create_task(name: "failover_slow", namespace: "failover", context: {})["task_uuid"]
      sleep_until(timeout: 30) do
        SpecSupport::Database.psql_on(pair.primary.url, "SELECT status FROM tasker.workflow_steps WHERE task_uuid = '#{slow}'")
                             .dig(0, 0) == "in_progress"
      end
      waiter = Thread.new { TaskerCore::Client.wait_for_task(slow, timeout: 90) }
      # The wait must have begun (it LISTENs, then reads the status) before the primary goes: a
      # database unreachable when a wait starts fails it at once, as any call.
      sleep_until(timeout: 30) do
        SpecSupport::Database.psql_on(pair.primary.url, "SELECT count(*) FROM pg_stat_activity " \
                                                        "WHERE query LIKE 'SELECT to_jsonb(status) FROM tasker.tasks WHERE task_uuid%'")
                             .dig(0, 0).to_i.positive?
      end

      killed_at = Time.now.utc
      pair.primary.kill!
      pair.standby.promote!
      promoted_at = Time.now.utc
      promoted_mono = now

      # The client succeeds again on the new primary, and the workers claim there.
      sleep_until(timeout: 60) do
        SpecSupport::Database.psql_on(pair.standby.url, "SELECT count(*) FROM tasker.workflow_step_attempts " \
                                                        "WHERE claimed_at > '#{promoted_at.strftime('%F %T.%N')}'").dig(0, 0).to_i.positive?
      end
      claimed_again_s = now - promoted_mono
      sleep_until(timeout: 60) do
        SpecSupport::Database.psql_on(pair.standby.url, "SELECT count(*) FROM tasker.tasks WHERE created_at > " \
                                                        "'#{promoted_at.strftime('%F %T.%N')}'").dig(0, 0).to_i >= 10
      end
      stop.close
      outcomes = client.value

      # wait_for_task ran across the switch and answers the final state.
      expect(waiter.value&.fetch("status")).to eq("complete")

      # Every create that returned, first time or on a retry, names a task that completes.
      returned = created + outcomes.select { |_, kind, _| kind != :failed }.map(&:last)
      returned.each { |uuid| expect(TaskerCore::Client.wait_for_task(uuid, timeout: 60)&.fetch("status")).to eq("complete") }
      recovered_s = now - promoted_mono

      # A failed create raised DatabaseError, and its key, retried, gave exactly one task.
      failed_keys = outcomes.select { |_, kind, _| kind == :failed }.map(&:first).uniq
      expect(outcomes.select { |_, kind, _| kind == :failed }.map(&:last).uniq).to eq([TaskerCore::Errors::DatabaseError]).or eq([])
      expect(failed_keys - outcomes.select { |_, kind, _| kind == :retried }.map(&:first)).to eq([])
      keys = SpecSupport::Database.psql_on(pair.standby.url, "SELECT count(*), count(DISTINCT identity_hash) FROM tasker.tasks " \
                                                             "WHERE namespace_name = 'failover'").first.map(&:to_i)
      expect(keys[0]).to eq(keys[1])
      expect(keys[0]).to eq(returned.uniq.size + 1) # and the slow task

      # Each step has one applied result; a step that ran more than once was in flight at the kill
      # (its first result never committed), and no two runs of a step overlapped.
      applied = SpecSupport::Database.psql_on(pair.standby.url, <<~SQL).to_h { |uuid, n, claimed| [uuid, [n.to_i, claimed]] }
        SELECT workflow_step_uuid, count(*), max(claimed_at) FROM tasker.workflow_step_attempts
        WHERE kind = 'result' AND applied AND success GROUP BY workflow_step_uuid
      SQL
      steps = SpecSupport::Database.psql_on(pair.standby.url, "SELECT count(*) FROM tasker.workflow_steps").dig(0, 0).to_i
      expect(applied.size).to eq(steps)
      expect(applied.values.map(&:first).uniq).to eq([1])
      runs = SpecSupport::Ledger.entries.group_by(&:first)
      expect(runs.size).to eq(steps)
      again = runs.select { |_, r| r.size > 1 }
      again.each do |uuid, r|
        expect(Time.parse("#{applied.fetch(uuid).last} UTC")).to be > killed_at - 1
        spans = r.map { |_, _, started, finished| [started.to_f, finished.to_f] }.sort
        spans.each_cons(2) { |(_, first_end), (second_start, _)| expect(second_start).to be >= first_end }
      end
      expect(again.size).to be <= 8 # at most the steps in the workers' hands at the kill

      File.write(File.join(SpecSupport::LogCapture::DIR, "failover-timing.txt"),
                 "claimed again #{claimed_again_s.round(2)} s after promotion; all #{returned.size} tasks complete " \
                 "#{recovered_s.round(1)} s after it; #{failed_keys.size} creates failed and were retried; " \
                 "#{again.size} steps ran again\n")
    end
  ensure
    workers.each { |pid| Process.kill("TERM", pid) rescue nil } # rubocop:disable Style/RescueModifier
    workers.each { |pid| Process.wait2(pid) rescue nil } # rubocop:disable Style/RescueModifier
    pair&.stop
  end
end
