# frozen_string_literal: true

require "spec_helper"
require "net/http"
require "json"
require "rbconfig"
require "socket"

RSpec.describe "bin/tasker worker --processes" do
  # gcc's AddressSanitizer runtime takes no lock of its allocator around fork: a child forked while
  # another thread of the supervisor held it (the log or web thread allocating) waits on it forever.
  def skip_under_asan
    skip "forks a multithreaded process, which the AddressSanitizer runtime cannot (rake asan)" if
      ENV["LD_PRELOAD"].to_s.include?("libasan")
  end

  let(:tasker) { File.expand_path("../../bin/tasker", __dir__) }
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:handlers) { File.expand_path("../support/handlers.rb", __dir__) }

  def children(out)
    File.read(out).scan(/^tasker worker \S+ serving .* \(pid (\d+), process (\d+)\)$/).map { |pid, slot| [slot.to_i, pid.to_i] }
  end

  def alive?(pid)
    Process.kill(0, pid)
    true
  rescue Errno::ESRCH
    false
  end

  # Two sleepy tasks on processes of one handler thread each; the pids that ran them.
  def run_sleepy_tasks
    created = Array.new(2) do |i|
      TaskerCore::Client.create_task(name: "sleepy_workflow", namespace: "resilience", context: { n: i, at: rand })
    end
    tasks = created.map { |c| wait_for_task(c["task_uuid"], timeout: 60) }
    expect(tasks.map { |t| t["status"] }).to eq(%w[complete complete])
    pids = SpecSupport::Ledger.entries.map { |e| e.last.to_i }
    SpecSupport::Ledger.reset!
    pids
  end

  # Runs rounds of two sleepy tasks until every one of pids ran a task (at most four rounds: a
  # process slow to wake may leave both tasks of a round to the other); the pids that ran them.
  def run_until_each_ran(pids)
    ran = []
    4.times do
      ran |= run_sleepy_tasks
      break if (pids - ran).empty?
    end
    ran
  end

  it "forks the workers, restarts one that is killed, and stops them all on SIGTERM" do
    skip_under_asan
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path,
            "TASKER_WEB_BIND_ADDRESS" => "127.0.0.1:0", "TASKER_LOG_LEVEL" => "warn" }
    out = child_log_path("supervisor-out")
    err = child_log_path("supervisor-err")
    pid = Process.spawn(env, RbConfig.ruby, tasker, "worker", "--processes", "2", "--concurrency", "1",
                        "--templates", templates, "--require", handlers, out: out, err: err)
    sleep_until(timeout: 60, interval: 0.05) do
      raise "the supervisor exited:\n#{File.read(err)}" if Process.wait(pid, Process::WNOHANG)

      children(out).size == 2
    end
    first = children(out).to_h
    expect(first.keys.sort).to eq([1, 2])
    expect(File.read(out)).to match(/^tasker supervisor serving .* with 2 worker processes \(pid #{pid}\)$/)

    # The web server runs in the supervisor and reports its children.
    port = File.read(out)[%r{^web server on http://127\.0\.0\.1:(\d+) }, 1]
    expect(port).not_to be_nil
    ready = sleep_until(timeout: 10) do
      r = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/health/ready"))
      r if r.code == "200"
    end
    report = JSON.parse(ready.body)
    expect(report).to include("status" => "ready", "supervisor_pid" => pid, "processes" => 2, "running" => 2,
                              "database" => true)
    expect(report["children"].map { |c| c["pid"] }.sort).to eq(first.values.sort)

    expect(run_until_each_ran(first.values).sort).to eq(first.values.sort)

    # A killed child is replaced.
    Process.kill("KILL", first[1])
    replacement = sleep_until(timeout: 30, interval: 0.05) do
      children(out).reverse.find { |slot, child| slot == 1 && child != first[1] }&.last
    end
    expect(File.read(err)).to match(/worker process 1 \(pid #{first[1]}\) was killed by signal 9; restarting it/)
    expect(run_until_each_ran([first[2], replacement]).sort).to eq([first[2], replacement].sort)
    metrics = Net::HTTP.get(URI("http://127.0.0.1:#{port}/metrics"))
    expect(metrics).to include("tasker_supervisor_restarts_total 1", "tasker_supervisor_processes_running 2")

    Process.kill("TERM", pid)
    _, status = Process.wait2(pid)
    pid = nil
    expect(status.exitstatus).to eq(0)
    expect(File.read(out)).to include("stopped")
    expect([first[2], replacement].map { |child| alive?(child) }).to eq([false, false])
  ensure
    if pid
      Process.kill("KILL", pid)
      Process.wait(pid)
      children(out).each { |_, child| Process.kill("KILL", child) if alive?(child) }
    end
  end

  it "refuses to start, forking nothing, when its explicitly given web address is taken" do
    server = TCPServer.new("127.0.0.1", 0)
    taken = "127.0.0.1:#{server.addr[1]}"
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_WEB_BIND_ADDRESS" => taken }
    out = child_log_path("supervisor-out")
    err = child_log_path("supervisor-err")
    pid = Process.spawn(env, RbConfig.ruby, tasker, "worker", "--processes", "2", "--templates", templates,
                        "--require", handlers, out: out, err: err)
    _, status = Process.wait2(pid)
    expect(status.exitstatus).to eq(1)
    expect(File.read(err)).to include("ConfigurationError: the web server could not listen on #{taken}")
    expect(File.read(out)).not_to include("worker process 1 started")
  ensure
    server&.close
  end

  it "answers its probes while one client holds idle and half-sent connections" do
    skip_under_asan
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_WEB_BIND_ADDRESS" => "127.0.0.1:0", "TASKER_LOG_LEVEL" => "warn" }
    out = child_log_path("supervisor-out")
    err = child_log_path("supervisor-err")
    pid = Process.spawn(env, RbConfig.ruby, tasker, "worker", "--processes", "1", "--concurrency", "1",
                        "--templates", templates, "--require", handlers, out: out, err: err)
    port = sleep_until(timeout: 60, interval: 0.05) do
      raise "the supervisor exited:\n#{File.read(err)}" if Process.wait(pid, Process::WNOHANG)

      File.read(out)[%r{^web server on http://127\.0\.0\.1:(\d+) }, 1]
    end
    flood = Array.new(40) do |i|
      sock = Socket.tcp("127.0.0.1", port.to_i, "127.0.0.2", 0, connect_timeout: 5)
      sock.write(i.odd? ? "GET /health HTTP/1.1\r\n" : "GET /hea") if i % 3 != 0
      sock
    end
    res = Net::HTTP.start("127.0.0.1", port.to_i, open_timeout: 5, read_timeout: 5) { |h| h.get("/health/live") }
    expect(res.code).to eq("200")
    expect(JSON.parse(res.body)).to include("status" => "alive", "supervisor_pid" => pid)
  ensure
    flood&.each(&:close)
    if pid
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
  end
end
