# frozen_string_literal: true

require "spec_helper"

RSpec.describe "lifecycle events" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  # Collects every event of the tasks it is told about, in arrival order.
  class Recorder < TaskerCore::Events::Subscribers::BaseSubscriber
    subscribe_to "*"
    attr_reader :events

    def initialize
      super
      @events = Queue.new
    end

    def handle_event(_name, event) = @events << event

    def self.pop_within(queue, seconds)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
      loop do
        return queue.pop(true)
      rescue ThreadError
        return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.005
      end
    end

    def pop_within(queue, seconds) = self.class.pop_within(queue, seconds)

    def for_task(uuid, until_name:, timeout: 10)
      got = []
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      until got.any? { |e| e[:task_uuid] == uuid && e[:event_name] == until_name }
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        raise "no #{until_name} for #{uuid}; got #{got.map { |e| e[:event_name] }}" if left <= 0

        e = pop_within(@events, left)
        got << e if e
      end
      got.select { |e| e[:task_uuid] == uuid }
    end
  end

  after { TaskerCore::Events.reset! }

  def pop_within(queue, seconds) = Recorder.pop_within(queue, seconds)

  def create(name, namespace: "math", context: { even_number: 2 })
    TaskerCore::Client.create_task(name: name, namespace: namespace, context: context)["task_uuid"]
  end

  def start_worker = TaskerCore::Worker.start(template_paths: [templates], concurrency: 2)

  def names_for(events, step = nil)
    events.select { |e| e[:step_name] == step }.map { |e| e[:event_name] }
  end

  it "reports every transition of a linear workflow in order, with the documented payload" do
    recorder = Recorder.subscribe
    start_worker
    uuid = create("linear_workflow")
    events = recorder.for_task(uuid, until_name: "workflow.task_completed")
    expect(wait_for_task(uuid)["status"]).to eq("complete")

    expect(names_for(events)).to eq(%w[task.initialize_requested workflow.task_started
                                       task.steps_discovery_completed task.steps_enqueued
                                       task.step_results_received task.completed workflow.task_completed])
    (1..4).each do |i|
      expect(names_for(events, "linear_step_#{i}")).to eq(%w[step.initialize_requested step.enqueue_requested
                                                             workflow.viable_steps_discovered step.execution_requested
                                                             step.enqueued_for_orchestration step.result_submitted
                                                             step.completed workflow.step_completed])
    end
    # Steps run one after another: each step completes before the next one is enqueued.
    order = events.map { |e| [e[:event_name], e[:step_name]] }
    (1..3).each do |i|
      expect(order.index(["step.completed", "linear_step_#{i}"]))
        .to be < order.index(["step.enqueue_requested", "linear_step_#{i + 1}"])
    end
    expect(order.index(["step.completed", "linear_step_4"])).to be < order.index(["task.completed", nil])

    task = TaskerCore::Client.get_task(uuid)
    completed = events.find { |e| e[:event_name] == "task.completed" }
    expect(completed).to include(task_uuid: uuid, task_id: uuid, task_name: "linear_workflow", namespace: "math",
                                 task_version: "1.0.0", correlation_id: task["correlation_id"], category: "task",
                                 from_state: "evaluating_results", to_state: "complete")
    expect(completed[:execution_duration]).to be_a(Float).and be > 0
    expect(TaskerCore::Events.event_info("task.completed")[:payload_keys] - completed.keys).to eq([])

    step = events.find { |e| e[:event_name] == "step.completed" && e[:step_name] == "linear_step_2" }
    step_uuid = steps_by_name(uuid)["linear_step_2"]["step_uuid"]
    expect(step).to include(step_uuid: step_uuid, step_id: step_uuid, task_id: uuid, attempt: 1, category: "step",
                            from_state: "enqueued_for_orchestration", to_state: "complete")
    expect(TaskerCore::Events.event_info("step.completed")[:payload_keys] - step.keys).to eq([])
    expect(events.map { |e| e[:transitioned_at] }).to eq(events.map { |e| e[:transitioned_at] }.sort)
  end

  it "reports a failing workflow's step failure with its error and the task's failure last" do
    recorder = Recorder.subscribe
    start_worker
    uuid = create("failing_workflow")
    events = recorder.for_task(uuid, until_name: "workflow.task_failed")
    expect(wait_for_task(uuid)["status"]).to eq("error")

    expect(names_for(events, "explode")).to eq(%w[step.initialize_requested step.enqueue_requested
                                                  workflow.viable_steps_discovered step.execution_requested
                                                  step.enqueued_as_error_for_orchestration step.result_submitted
                                                  step.failed workflow.step_failed])
    failed = events.find { |e| e[:event_name] == "step.failed" }
    expect(failed).to include(step_name: "explode", error_message: "the flux capacitor is empty",
                              exception_class: "PermanentError", to_state: "error")
    expect(names_for(events, "after_explode")).to eq(%w[step.initialize_requested])
    expect(names_for(events).last(3)).to eq(%w[task.blocked_by_failures task.failed workflow.task_failed])
    expect(events.last(2).map { |e| e[:execution_duration] }).to all(be_a(Float))
  end

  it "reports each attempt of a retried step, with its attempt number" do
    recorder = Recorder.subscribe
    start_worker
    uuid = create("flaky_workflow", namespace: "resilience")
    events = recorder.for_task(uuid, until_name: "task.completed")
    flaky = events.select { |e| e[:step_name] == "flaky" }
    failing_attempt = %w[step.execution_requested step.enqueued_as_error_for_orchestration step.result_submitted
                         step.retry_requested step.retry_requested step.enqueue_requested
                         workflow.viable_steps_discovered]
    expect(flaky.map { |e| e[:event_name] })
      .to eq(%w[step.initialize_requested step.enqueue_requested workflow.viable_steps_discovered] +
             failing_attempt + failing_attempt +
             %w[step.execution_requested step.enqueued_for_orchestration step.result_submitted step.completed
                workflow.step_completed])
    expect(flaky.select { |e| e[:event_name] == "step.execution_requested" }.map { |e| e[:attempt] }).to eq([1, 2, 3])
    waiting = flaky.select { |e| e[:to_state] == "waiting_for_retry" }
    expect(waiting.map { |e| e[:error_message] }).to eq(["transient failure 1", "transient failure 2"])
    expect(waiting.map { |e| e[:exception_class] }).to eq(%w[RetryableError RetryableError])
    expect(names_for(events, "after")).to include("step.completed")
    expect(names_for(events).last).to eq("task.completed")
  end

  it "keeps workflow results untouched by a raising and a blocked subscriber, which still get every event" do
    release = Queue.new
    blocked = []
    raising = TaskerCore::Events.subscribe("step.*") { |_e| raise "subscriber bug" }
    blocker = TaskerCore::Events.subscribe("*") do |e|
      blocked << e
      release.pop if blocked.size == 1 # holds the dispatcher until the workflow is done
    end
    recorder = Recorder.subscribe
    start_worker
    uuid = create("linear_workflow")
    sleep_until { blocked.size == 1 }
    task = wait_for_task(uuid)
    # The workflow finished while the first event's subscriber call was (and still is) blocked.
    expect(blocked.size).to eq(1)
    expect(task["status"]).to eq("complete")
    expect(steps_by_name(uuid)["linear_step_4"].dig("results", "result", "result")).to eq(65_536)

    release << true
    events = recorder.for_task(uuid, until_name: "workflow.task_completed")
    expect(events.size).to eq(39)
    stats = TaskerCore::Events.stats
    expect(stats[:subscriber_errors]).to be >= events.count { |e| e[:category] == "step" }
    expect(stats[:errors_by_subscriber]["block"]).to eq(stats[:subscriber_errors])
    expect(captured_log).to include("ERROR -- : tasker event subscriber block failed on step.completed: RuntimeError: subscriber bug")
    expect(stats[:dropped]).to eq(0)
    event_stats = TaskerCore::Observability.event_stats
    bus = event_stats.in_process_bus
    # The bus also carries this process's fast domain events (docs/events.md#domain-events).
    fast = event_stats.domain
    expect(bus.ffi_channel_dispatches).to eq(stats[:delivered] + fast[:fast_dispatched])
    expect(bus.total_events_dispatched).to eq(stats[:emitted] + fast[:fast_dispatched])
    expect(bus.ffi_channel_drops).to eq(fast[:fast_dropped])
    TaskerCore::Events.unsubscribe(raising)
    TaskerCore::Events.unsubscribe(blocker)
  end

  it "drops and counts events when subscribers fall behind a full buffer" do
    TaskerCore::Events.reset!
    TaskerCore.config.events_options = { buffer_size: 4 }
    release = Queue.new
    first = true
    TaskerCore::Events.subscribe("*") do |_e|
      release.pop if first
      first = false
    end
    start_worker
    uuid = create("linear_workflow")
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    sleep_until { TaskerCore::Events.stats[:dropped].positive? }
    stats = TaskerCore::Events.stats
    expect(stats).to include(buffer_size: 4)
    expect(stats[:queued]).to be <= 4
    release << true
  ensure
    TaskerCore.config.events_options = {}
  end

  it "routes x.y to handle_x_y, lets wildcards catch the rest and reads keys safely" do
    seen = Queue.new
    klass = Class.new(TaskerCore::Events::Subscribers::BaseSubscriber) do
      subscribe_to "task.completed", "step.*"
      define_method(:handle_task_completed) { |e| seen << [:completed, safe_get(e, :task_name), safe_get(e, :nope, 7)] }
      define_method(:handle_step_failed) { |e| seen << [:failed, e[:step_name]] }
      define_method(:handle_event) { |name, _e| seen << [:other, name] }
    end
    sub = klass.subscribe
    expect(sub.subscribed_to?("task.failed")).to be(false)
    expect(sub.subscribed_to?("step.handle")).to be(true)
    start_worker
    uuid = create("linear_workflow")
    wait_for_task(uuid)
    got = []
    got << pop_within(seen, 10) until got.last&.first == :completed
    expect(got.last).to eq([:completed, "linear_workflow", 7])
    expect(got.map(&:first).uniq).to eq(%i[other completed])
    expect(got.select { |g| g.first == :other }.map(&:last)).to all(start_with("step."))
    expect(sub.safe_get({ "a" => 1 }, :a)).to eq(1)
    expect(sub.safe_get(nil, :a, :d)).to eq(:d)
  end

  it "registers config.event_subscribers at boot and starts delivery" do
    TaskerCore::Events.reset!
    recorder = Recorder.new
    TaskerCore.config.event_subscribers = [recorder]
    TaskerCore.boot_event_subscribers
    expect(TaskerCore::Events.bus.running?).to be(true)
    expect(TaskerCore::Events.bus.subscribers).to eq([recorder])
    start_worker
    uuid = create("linear_workflow")
    expect(recorder.for_task(uuid, until_name: "task.completed").first[:event_name]).to eq("task.initialize_requested")
  ensure
    TaskerCore.config.event_subscribers = []
  end

  it "survives threads starting, stopping and reading the feeder and the worker all at once" do
    start_worker
    stop_at = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 1.5
    running = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) < stop_at }
    popped = 0
    threads = [
      Thread.new { TaskerCore::FFI.events_start({ poll_interval_ms: 1 }) while running.call },
      Thread.new { TaskerCore::FFI.events_stop while running.call },
      Thread.new { TaskerCore::FFI.events_stop while running.call },
      Thread.new { (popped += 1 if TaskerCore::FFI.events_next(0.001).is_a?(Hash)) while running.call },
      Thread.new { TaskerCore::FFI.events_stats while running.call },
      Thread.new do
        while running.call
          TaskerCore::FFI.worker_stop
          TaskerCore::Worker.stop
          start_worker
        end
      end,
      Thread.new { 20.times { create("linear_workflow") } }
    ]
    threads.each(&:join)
    TaskerCore::FFI.events_stop
    expect(TaskerCore::FFI.events_start({})).to be(true)
    expect(TaskerCore::FFI.events_stats).to include("running" => true)
    expect(TaskerCore::FFI.events_stop).to be(true)
    # A stopped feeder still hands out what it buffered, then reports the end.
    drained = Array.new(10_001) { TaskerCore::FFI.events_next(0.01) }.index(false)
    expect(drained).not_to be_nil
  ensure
    TaskerCore::Worker.stop
  end

  it "rejects subscriptions outside the catalog, naming them" do
    expect { Class.new(TaskerCore::Events::Subscribers::BaseSubscriber) { subscribe_to "task.exploded" } }
      .to raise_error(TaskerCore::Errors::ValidationError, /task\.exploded.*not in the catalog/)
    expect { TaskerCore::Events.subscribe("Task Completed") { nil } }
      .to raise_error(TaskerCore::Errors::ValidationError, /Task Completed/)
    expect { TaskerCore::Events.subscribe(Object.new) }.to raise_error(TaskerCore::Errors::ValidationError, /call/)
    expect { TaskerCore::FFI.events_start({ buffer_size: 0 }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /buffer_size/)
  end
end

RSpec.describe TaskerCore::Events do
  it "lists the catalogue by category with each event's description and payload keys" do
    expect(described_class.task_events).to include("task.completed", "task.failed", "task.retry_requested")
    expect(described_class.step_events).to include("step.completed", "step.failed", "step.handle")
    expect(described_class.workflow_events).to include("workflow.task_completed", "workflow.step_failed")
    expect(described_class.catalog.keys)
      .to match_array(described_class.task_events + described_class.step_events + described_class.workflow_events)
    info = described_class.event_info("step.failed")
    expect(info).to include(name: "step.failed", category: "step")
    expect(info[:payload_keys]).to include(:step_id, :step_name, :error_message, :exception_class, :task_id)
    expect(described_class.event_info(:"task.completed")[:payload_keys]).to include(:execution_duration)
    expect { described_class.event_info("task.nope") }.to raise_error(TaskerCore::Errors::ValidationError, /task\.nope/)
  end

  it "names the events of every transition the engine makes from the core's table" do
    expect(TaskerCore::FFI.event_names("task", "blocked_by_failures", "error")).to eq(%w[task.failed workflow.task_failed])
    expect(TaskerCore::FFI.event_names("step", nil, "pending")).to eq(%w[step.initialize_requested])
    expect(TaskerCore::FFI.event_names("step", "waiting_for_retry", "pending")).to eq(%w[step.retry_requested])
    expect(TaskerCore::FFI.event_names("step", "pending", "in_progress")).to eq(%w[step.handle])
    %w[pending initializing enqueuing_steps steps_in_process evaluating_results waiting_for_dependencies
       waiting_for_retry blocked_by_failures complete error cancelled resolved_manually].each do |to|
      TaskerCore::FFI.event_names("task", "evaluating_results", to).each { |n| expect(described_class.catalog).to have_key(n) }
    end
  end
end
