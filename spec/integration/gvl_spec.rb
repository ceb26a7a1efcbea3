# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

RSpec.describe "waiting in the engine without the GVL" do
  before { TaskerCore::FFI.worker_start("namespaces" => ["idle"], "concurrency" => 2) }
  after { TaskerCore::FFI.worker_stop }

  def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  it "lets other Ruby threads run while a thread waits for a step, and Thread#kill ends the wait at once" do
    ticks = 0
    ticker = Thread.new { loop { ticks += 1; sleep 0.001 } }
    waiter = Thread.new { TaskerCore::FFI.next_step(30) }
    sleep 0.3
    expect(waiter.status).to eq("sleep")
    started = monotonic
    waiter.kill.join
    expect(monotonic - started).to be < 1.0
    expect(ticks).to be > 50
  ensure
    ticker&.kill
  end

  it "returns nil on timeout and false once the worker stops" do
    expect(TaskerCore::FFI.next_step(0.05)).to be_nil
    waiter = Thread.new { TaskerCore::FFI.next_step(30) }
    sleep 0.1
    TaskerCore::FFI.worker_stop
    expect(waiter.value).to be(false)
  end

  it "ends a child process blocked in next_step on SIGINT within a second" do
    script = <<~RUBY
      require "#{File.expand_path('../../lib/tasker_core', __dir__)}"
      TaskerCore.configure { |c| c.database_url = ENV.fetch("URL") }
      TaskerCore.boot!
      TaskerCore::FFI.worker_start("namespaces" => ["idle"], "concurrency" => 1)
      $stdout.puts "waiting"; $stdout.flush
      begin
        TaskerCore::FFI.next_step(30)
      rescue Interrupt
        $stdout.puts "interrupted"
      end
    RUBY
    r, w = IO.pipe
    pid = Process.spawn({ "URL" => DATABASE_URL }, RbConfig.ruby, "-e", script, out: w, err: child_log_path("child"))
    w.close
    expect(Timeout.timeout(20) { r.gets }).to eq("waiting\n")
    sleep 0.2
    started = monotonic
    Process.kill("INT", pid)
    _, status = Process.wait2(pid)
    expect(monotonic - started).to be < 1.5
    expect(r.read).to eq("interrupted\n")
    expect(status.exitstatus).to eq(0)
  end

  it "runs database calls from many Ruby threads at once without holding the GVL" do
    TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)])
    threads = Array.new(16) do |i|
      Thread.new { TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2, i: i }) }
    end
    expect(threads.map(&:value).map { |t| t["task_uuid"] }.uniq.size).to eq(16)
  end

  it "waits for a task to finish without polling, and the wait can time out or be killed" do
    TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)])
    uuid = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    expect(TaskerCore::Client.wait_for_task(uuid, timeout: 0.2)).to be_nil # no worker for "math" yet
    waiter = Thread.new { TaskerCore::Client.wait_for_task(uuid, timeout: 30) }
    sleep 0.1
    TaskerCore::FFI.worker_stop
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
    expect(waiter.value.status).to eq("complete")
    expect(TaskerCore::Client.wait_for_task_status(uuid, timeout: 1)).to eq("complete") # already finished
    killed = Thread.new do
      Thread.current.report_on_exception = false # the error is expected: value re-raises it below
      TaskerCore::Client.wait_for_task(TaskerCore::FFI.uuid_v7, timeout: 30)
    end
    expect { killed.value }.to raise_error(TaskerCore::Errors::NotFoundError)
    blocked = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 4 })
    TaskerCore::Worker.stop
    psql("UPDATE tasker.workflow_steps SET status = 'pending' WHERE task_uuid = '#{blocked['task_uuid']}'")
    slow = Thread.new { TaskerCore::Client.wait_for_task(blocked["task_uuid"], timeout: 30) }
    sleep 0.2
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    slow.kill.join
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 0.5
  end
end
