# frozen_string_literal: true

require "spec_helper"

RSpec.describe "TaskerCore::Client.wait_for_task" do
  let(:client) { TaskerCore::Client }
  let(:t) { TaskerCore::Types::ClientTypes }
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  before { TaskerCore::Templates.load([templates]) }

  def create(even_number = 2)
    client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: even_number }).task_uuid
  end

  it "returns the finished task as a TaskResponse, as get_task reads it" do
    uuid = create
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
    task = client.wait_for_task(uuid, timeout: 15)
    expect(task).to be_a(t::TaskResponse)
    expect(task).to have_attributes(task_uuid: uuid, status: "complete", total_steps: 4, completed_steps: 4,
                                    completion_percentage: 100.0)
    expect(task.completed_at).not_to be_nil
    expect(task.steps.map(&:current_state).uniq).to eq(["complete"])
    expect(task.to_h).to eq(client.get_task(uuid).to_h)
  end

  it "reconnects when its connection is cut during the wait and returns the final state" do
    uuid = create # no worker yet
    waiter = Thread.new { client.wait_for_task_status(uuid, timeout: 30) }
    # The waiting session: its last statement is the LISTEN or the status read.
    waiting = lambda do
      psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'tasker_core' " \
           "AND (query LIKE 'LISTEN%' OR query LIKE '%to_jsonb(status) FROM tasker.tasks%')").flatten
    end
    pids = sleep_until { waiting.call.then { |p| p.empty? ? nil : p } }
    # The server ends the session, as a restart or a failover would.
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (#{pids.join(',')})")
    sleep_until(timeout: 15) { (waiting.call - pids).first } # waiting again, on a new session
    expect(waiter).to be_alive
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
    expect(waiter.value).to eq("complete")
  end

  it "returns nil on timeout" do
    uuid = create # no worker for "math": the task cannot finish
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(client.wait_for_task(uuid, timeout: 0.3)).to be_nil
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be_between(0.25, 5)
  end

  it "wakes for a task named by its upper-case uuid, and the other calls take it too" do
    uuid = create
    loud = uuid.upcase
    waiter = Thread.new { client.wait_for_task_status(loud, timeout: 20) }
    sleep_until { waiter.status == "sleep" }
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
    expect(waiter.value).to eq("complete")
    expect(client.get_task(loud).task_uuid).to eq(uuid)
    expect(client.wait_for_task(loud, timeout: 1).status).to eq("complete")
  end

  it "re-reads the status now and then, so a notification it missed cannot make it wait until its timeout" do
    uuid = create # no worker: the status changes behind the engine's back, without a notification
    waiter = Thread.new do
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      [client.wait_for_task_status(uuid, timeout: 30), Process.clock_gettime(Process::CLOCK_MONOTONIC) - started]
    end
    sleep_until { waiter.status == "sleep" }
    psql("SET session_replication_role = replica; UPDATE tasker.tasks SET status = 'cancelled' WHERE task_uuid = '#{uuid}'")
    status, waited = waiter.value
    expect(status).to eq("cancelled")
    expect(waited).to be < 20
  end

  describe "wait_for_task_status" do
    it "returns the terminal state as a String without reading the task, or nil on timeout" do
      uuid = create
      expect(client.wait_for_task_status(uuid, timeout: 0.2)).to be_nil
      TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
      expect(client.wait_for_task_status(uuid, timeout: 15)).to eq("complete")
      expect(client.wait_for_task_status(uuid, timeout: 1)).to eq("complete") # already finished
    end

    it "raises NotFoundError for an unknown task, like wait_for_task" do
      expect { client.wait_for_task_status(TaskerCore::FFI.uuid_v7, timeout: 1) }
        .to raise_error(TaskerCore::Errors::NotFoundError)
      expect { client.wait_for_task(TaskerCore::FFI.uuid_v7, timeout: 1) }
        .to raise_error(TaskerCore::Errors::NotFoundError)
    end
  end
end
