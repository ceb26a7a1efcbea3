# frozen_string_literal: true

require "spec_helper"
require_relative "../../examples/event_subscribers"

RSpec.describe "docs/events.md subscribers" do
  # Stand-ins for a StatsD client and an error tracker: they record what they are told.
  let(:statsd) do
    Class.new do
      attr_reader :calls

      def initialize = @calls = Queue.new
      def increment(name, tags:) = @calls << [:increment, name, tags]
      def histogram(name, value, tags:) = @calls << [:histogram, name, value, tags]
    end.new
  end
  let(:reports) { Queue.new }

  after { TaskerCore::Events.reset! }

  def drain(queue, until_count:, timeout: 10)
    out = []
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    while out.size < until_count && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      begin
        out << queue.pop(true)
      rescue ThreadError
        sleep 0.01
      end
    end
    out
  end

  it "counts, times and reports a failing and a retried workflow" do
    TaskerCore::Events.subscribe(MetricsSubscriber.new(statsd))
    TaskerCore::Events.subscribe(ErrorReportingSubscriber.new(->(message, **context) { reports << [message, context] }))
    TaskerCore::Worker.start(template_paths: [File.expand_path("../fixtures/templates", __dir__)], concurrency: 2)
    failing = TaskerCore::Client.create_task(name: "failing_workflow", namespace: "math", context: { even_number: 2 })
    flaky = TaskerCore::Client.create_task(name: "flaky_workflow", namespace: "resilience", context: { even_number: 2 })
    wait_for_task(failing["task_uuid"])
    wait_for_task(flaky["task_uuid"])

    got = drain(reports, until_count: 2)
    step_report = got.find { |m, _| m.start_with?("explode failed") }
    expect(step_report[0]).to eq("explode failed: the flux capacitor is empty")
    expect(step_report[1]).to include(exception_class: "PermanentError", task_id: failing["task_uuid"], attempt: 1)
    task_report = got.find { |m, _| m.start_with?("task ") }
    expect(task_report[0]).to eq("task math/failing_workflow failed")
    expect(task_report[1][:execution_duration]).to be > 0

    # failing: start, independent complete; explode fails; task fails. flaky: 2 retries, 2 steps, task completes.
    calls = drain(statsd.calls, until_count: 11)
    names = calls.map { |c| c[1] }.tally
    expect(names).to include("tasker.step.completed" => 4, "tasker.step.failed" => 1, "tasker.step.retried" => 2,
                             "tasker.task.failed" => 1, "tasker.task.completed" => 1,
                             "tasker.task.duration_ms" => 2)
    expect(calls).to include([:increment, "tasker.task.failed", ["namespace:math", "task:failing_workflow"]])
    expect(TaskerCore::Events.stats[:subscriber_errors]).to eq(0)
  end
end
