# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require "rbconfig"

RSpec.describe "TaskerCore::Client under concurrency" do
  let(:lib) { File.expand_path("../../lib/tasker_core", __dir__) }

  before { TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)]) }

  # A child Ruby process with its own runtime: prints "ready" once connected, waits for a line on
  # stdin, then runs body and prints its result as JSON.
  def spawn_child(body, pool_size: 10)
    script = <<~RUBY
      require "json"
      require #{lib.inspect}
      TaskerCore.configure { |c| c.database_url = ENV.fetch("URL"); c.pool_size = #{pool_size}; c.log_level = "off" }
      TaskerCore.boot!
      TaskerCore::Client.health_check # opens a connection: the race starts with warm connections
      $stdout.puts "ready"
      $stdout.flush
      $stdin.gets
      result = begin
        #{body}
      end
      $stdout.puts JSON.generate(result)
    RUBY
    stdin, stdout, wait = Open3.popen2({ "URL" => DATABASE_URL }, RbConfig.ruby, "-e", script, err: child_log_path("child"))
    { stdin: stdin, stdout: stdout, wait: wait }
  end

  def await_ready(child)
    line = Timeout.timeout(30) { child[:stdout].gets }
    expect(line).to eq("ready\n")
  end

  def finish(child)
    out = child[:stdout].read
    expect(child[:wait].value.exitstatus).to eq(0)
    JSON.parse(out.lines.last)
  end

  it "creates exactly one task when two processes create the same identity at the same instant" do
    body = <<~RUBY
      Array.new(15) do |i|
        key = i < 10 ? { idempotency_key: "race-\#{i}" } : {} # the last five race on the strict identity
        started = Process.clock_gettime(Process::CLOCK_REALTIME)
        t = TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 2 * i }, **key)
        [t.task_uuid, t.created, started, Process.clock_gettime(Process::CLOCK_REALTIME)]
      end
    RUBY
    children = Array.new(2) { spawn_child(body) }
    children.each { |c| await_ready(c) }
    children.each { |c| c[:stdin].puts("go") } # both are blocked on stdin: they start together
    children.each { |c| c[:stdin].close }
    first, second = children.map { |c| finish(c) }

    expect(first.map(&:first)).to eq(second.map(&:first)) # both got the same task for every identity
    first.zip(second).each do |(_, created_a), (_, created_b)|
      expect([created_a, created_b].sort_by(&:to_s)).to eq([false, true]) # exactly one of them created it
    end
    overlapping = first.zip(second).count { |a, b| a[2] < b[3] && b[2] < a[3] }
    warn "idempotency race: #{overlapping} of 15 pairs of creates overlapped in time" if ENV["TASKER_SPEC_VERBOSE"]
    expect(overlapping).to be > 0 # the two processes really raced (typically 8 to 15 of the 15 pairs)
    expect(psql_value("SELECT count(*) FROM tasker.tasks")).to eq("15")
    expect(psql_value("SELECT count(DISTINCT task_uuid) FROM tasker.workflow_steps")).to eq("15")
    expect(psql_value("SELECT count(*) FROM tasker.workflow_steps")).to eq("60")
  end

  it "runs 16 threads' calls at once on 16 connections instead of serializing them" do
    uuid = TaskerCore::Client.create_task(name: "tree_workflow", namespace: "math", context: { even_number: 2 }).task_uuid
    # Hold a lock every read of the tasks table waits for, so that each call stays in flight.
    locker_in, locker_out, locker = Open3.popen2({ "LD_PRELOAD" => nil }, "psql", DATABASE_URL, "-X", "-q", "-At")
    locker_in.puts("BEGIN; LOCK TABLE tasker.tasks IN ACCESS EXCLUSIVE MODE; SELECT 'locked';")
    locker_in.flush
    expect(Timeout.timeout(10) { locker_out.gets }).to eq("locked\n")

    child = spawn_child(<<~RUBY, pool_size: 16)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      threads = Array.new(16) do
        Thread.new do
          task = TaskerCore::Client.get_task(#{uuid.inspect})
          [task.total_steps, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started]
        end
      end
      threads.map(&:value)
    RUBY
    await_ready(child)
    child[:stdin].puts("go")
    child[:stdin].close
    waiting = sleep_until(timeout: 15) do
      n = psql_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tasker_core' " \
                     "AND wait_event_type = 'Lock' AND query LIKE '%tasker.get_task%'").to_i
      n if n == 16
    end
    expect(waiting).to eq(16) # every thread's call is in the database at the same moment
    released_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    locker_in.puts("COMMIT;")
    locker_in.close
    results = finish(child)
    expect(results.map(&:first)).to all(eq(8))
    finished = results.map(&:last)
    expect(finished.max - finished.min).to be < 0.5 # they all end together, when the lock goes
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - released_at).to be < 5
  ensure
    locker_in&.close unless locker_in&.closed?
    locker&.value
  end
end
