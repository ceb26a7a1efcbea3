# frozen_string_literal: true

require "spec_helper"
require "rbconfig"
require "tmpdir"

RSpec.describe "domain events" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  # Records every domain event it receives, with the thread it ran on.
  class DomainRecorder < TaskerCore::DomainEvents::BaseSubscriber
    subscribes_to "payment.*"
    attr_reader :events, :threads

    def initialize
      super
      @events = Queue.new
      @threads = Queue.new
    end

    def handle(event)
      @threads << Thread.current.name
      @events << event
    end

    def drain = Array.new(@events.size) { @events.pop }
  end

  before { TaskerCore::DomainEvents.reset! }

  after do
    TaskerCore::DomainEvents.reset!
    TaskerCore.config.domain_events_options = {}
  end

  def pay(context)
    TaskerCore::Client.create_task(name: "payment_workflow", namespace: "payments", context: context)["task_uuid"]
  end

  def start_worker = TaskerCore::Worker.start(template_paths: [templates], namespaces: ["payments"], concurrency: 2)

  def outbox(task_uuid)
    psql("SELECT event_name, delivery_mode, payload::text FROM tasker.events_outbox " \
         "WHERE task_uuid = '#{task_uuid}' ORDER BY event_id")
      .map { |name, mode, payload| [name, mode, JSON.parse(payload)] }
  end

  def received_within(recorder, count, seconds: 10)
    got = []
    sleep_until(timeout: seconds) do
      got.concat(recorder.drain)
      got.size >= count
    end
    sleep 0.3 # anything beyond count would arrive now
    got.concat(recorder.drain)
  end

  it "stores durable and broadcast events with the result and delivers every mode to subscribers once" do
    TaskerCore.config.domain_events_options = { poll_interval_ms: 20 }
    recorder = DomainRecorder.start!
    start_worker
    uuid = pay(amount: 1200)
    expect(wait_for_task(uuid)["status"]).to eq("complete")

    stored = outbox(uuid)
    expect(stored.map { |name, mode, _| [name, mode] })
      .to contain_exactly(["payment.processed", "durable"], ["payment.settled", "broadcast"])
    processed = stored.find { |name, _, _| name == "payment.processed" }[2]
    expect(processed["payload"]["payload"]).to eq("payment_id" => "pay_#{uuid[-8..]}", "amount" => 1200)
    expect(processed["payload"]["execution_result"]).to include("success" => true)
    expect(processed["payload"]["task_sequence_step"]["workflow_step"]).to include("name" => "charge", "attempt" => 1)
    expect(processed["metadata"]).to include("task_uuid" => uuid, "step_name" => "charge", "namespace" => "payments",
                                             "fired_by" => "TaskerCore::DomainEvents::BasePublisher")
    expect(processed["metadata"]["correlation_id"]).to match(/\A\h{8}-/)
    expect(processed["event_id"]).to match(/\A\h{8}-\h{4}-7/)

    # fast (observed) and broadcast (settled) in process, durable (processed) through the outbox.
    events = received_within(recorder, 3)
    expect(events.map { |e| [e.event_name, e.delivery_mode] })
      .to contain_exactly(["payment.observed", "fast"], ["payment.settled", "broadcast"], ["payment.processed", "durable"])
    expect(events.find { |e| e.event_name == "payment.processed" }.business_payload["amount"]).to eq(1200)
    expect(recorder.threads.size.times.map { recorder.threads.pop }.uniq).to eq(["tasker-domain-events"])
    # The durable event was acknowledged by the subscribers' consumer: nobody reads it again there.
    expect(TaskerCore::DomainEvents.read(consumer: "subscribers", modes: ["durable"])).to eq([])
  end

  it "publishes the events whose condition matches each attempt's outcome" do
    start_worker
    retried = pay(amount: 5, fail_times: 1)
    declined = pay(amount: 7, decline: true)
    expect(wait_for_task(retried)["status"]).to eq("complete")
    expect(wait_for_task(declined)["status"]).to eq("error")

    expect(outbox(retried).map(&:first)).to eq(%w[payment.retrying payment.processed payment.settled])
    expect(outbox(declined).map(&:first)).to eq(%w[payment.declined])
    retrying = outbox(retried).first[2]
    expect(retrying["payload"]["payload"]["error"]).to include("message" => "gateway timeout", "retryable" => true)
    expect(outbox(declined).first[2]["payload"]["execution_result"]["error"]).to include("message" => "card declined")
  end

  it "skips an event whose payload breaks its schema, counts it, and the step still completes" do
    start_worker
    before = TaskerCore::DomainEvents.stats[:routing_errors]
    uuid = pay(amount: "twelve")
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    expect(outbox(uuid).map(&:first)).to eq(%w[payment.settled])
    expect(TaskerCore::DomainEvents.stats[:routing_errors]).to eq(before + 1)
    expect(captured_log).to include("ERROR -- : tasker domain events: payload of payment.processed does not match its " \
                                    "schema: value at `/amount` is not an integer")
  end

  it "commits events a handler publishes by hand with its result" do
    start_worker
    uuid = pay(amount: 3, publish_manual: true)
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    audit = outbox(uuid).find { |name, _, _| name == "payment.audit_logged" }
    expect(audit[1]).to eq("durable")
    expect(audit[2]["payload"]["payload"]).to eq("amount" => 3)
    expect(audit[2]["metadata"]).to include("step_name" => "charge", "fired_by" => "SpecHandlers::ChargeCard")
  end

  it "leases events to each consumer, hands them out again only after the lease expires, never after the ack" do
    id = TaskerCore::DomainEvents.publish("order.shipped", { "order" => 42 }, metadata: { "source" => "spec" })
    first = TaskerCore::DomainEvents.read(consumer: "billing", visibility_timeout: 1)
    expect(first.map(&:event_id)).to eq([id])
    expect(first.first.business_payload).to eq("order" => 42)
    expect(first.first.metadata).to include("source" => "spec", "fired_by" => "manual")
    expect(first.first.delivery).to include("consumer" => "billing", "read_count" => 1)
    expect(TaskerCore::DomainEvents.read(consumer: "billing")).to eq([]) # leased
    # Another consumer has its own delivery.
    expect(TaskerCore::DomainEvents.read(consumer: "analytics").map(&:event_id)).to eq([id])

    sleep 1.1
    again = TaskerCore::DomainEvents.read(consumer: "billing", visibility_timeout: 1)
    expect(again.map { |e| [e.event_id, e.delivery["read_count"]] }).to eq([[id, 2]])
    expect(TaskerCore::DomainEvents.ack(again, consumer: "billing")).to eq(1)
    expect(TaskerCore::DomainEvents.ack([id], consumer: "billing")).to eq(0) # once per ack
    sleep 1.1
    expect(TaskerCore::DomainEvents.read(consumer: "billing")).to eq([])
    expect(psql_value("SELECT count(*) FROM tasker.domain_event_deliveries WHERE consumer = 'billing' " \
                      "AND delivered_at IS NOT NULL")).to eq("1")
  end

  it "never leases one event to two readers of one consumer at once" do
    ids = Array.new(60) { |i| TaskerCore::DomainEvents.publish("order.created", { "i" => i }) }
    readers = Array.new(4) do
      Thread.new do
        got = []
        5.times { got.concat(TaskerCore::DomainEvents.read(consumer: "shared", limit: 10).map(&:event_id)) }
        got
      end
    end
    read = readers.flat_map(&:value)
    expect(read.size).to eq(read.uniq.size)
    expect(read.sort).to eq(ids.sort)
  end

  it "keeps a raising and a sleeping subscriber away from steps" do
    raising = Class.new(TaskerCore::DomainEvents::BaseSubscriber) do
      attr_reader :errors

      def handle(_event) = raise("subscriber bug")
      def on_handle_error(_event, error) = (@errors ||= []) << error.message
    end.start!
    Class.new(TaskerCore::DomainEvents::BaseSubscriber) { def handle(_event) = sleep(0.5) }.start!
    recorder = DomainRecorder.start!
    start_worker
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    uuids = Array.new(3) { |i| pay(amount: i + 1) }
    uuids.each { |u| expect(wait_for_task(u)["status"]).to eq("complete") }
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 3.0 # 9 sleeps would take 4.5 s
    received_within(recorder, 9, seconds: 20)
    expect(raising.errors).to include("subscriber bug")
    expect(TaskerCore::DomainEvents.stats[:subscriber_errors]).to be >= 9
    expect(captured_log).to match(/ERROR -- : tasker domain event subscriber .* failed on payment\.\w+: RuntimeError: subscriber bug/)
  end

  it "runs lifecycle and domain subscribers inside config.around_handler, like handlers" do
    TaskerCore.config.wrap_handlers do |&run|
      Thread.current[:tasker_wrapped] = true
      run.call
    ensure
      Thread.current[:tasker_wrapped] = nil
    end
    seen = Queue.new
    TaskerCore::Events.subscribe("task.completed") { |_e| seen << [:lifecycle, Thread.current[:tasker_wrapped]] }
    Class.new(TaskerCore::DomainEvents::BaseSubscriber) do
      subscribes_to "payment.observed"
      define_method(:handle) { |_e| seen << [:domain, Thread.current[:tasker_wrapped]] }
    end.start!
    start_worker
    wait_for_task(pay(amount: 1))
    got = Array.new(2) { Timeout.timeout(10) { seen.pop } }
    expect(got).to contain_exactly([:lifecycle, true], [:domain, true])
  ensure
    TaskerCore.config.wrap_handlers
    TaskerCore::Events.reset!
  end

  it "drops fast events when subscribers fall behind a full buffer, and counts them" do
    TaskerCore.config.domain_events_options = { buffer_size: 1, durable: false }
    gate = Queue.new
    Class.new(TaskerCore::DomainEvents::BaseSubscriber) { define_method(:handle) { |_e| gate.pop } }.start!
    before = TaskerCore::DomainEvents.stats[:fast_dropped]
    5.times { TaskerCore::DomainEvents.publish("cache.warmed", {}, delivery_mode: "fast") }
    expect(TaskerCore::DomainEvents.stats[:fast_dropped] - before).to be >= 3
    5.times { gate << true }
  end

  it "reports routing, delivery and outbox counts through Observability.event_stats" do
    TaskerCore.config.domain_events_options = { poll_interval_ms: 20 }
    recorder = DomainRecorder.start!
    start_worker
    uuid = pay(amount: 9)
    wait_for_task(uuid)
    received_within(recorder, 3)
    stats = TaskerCore::Observability.event_stats
    expect(stats.router.fast_routed).to be >= 1
    expect(stats.router.broadcast_routed).to be >= 1
    expect(stats.router.durable_routed).to be >= 2 # processed and settled, stored with the result
    expect(stats.outbox.domain).to eq(2)
    expect(stats.outbox.delivered).to eq(1) # processed, acknowledged by the subscribers
    expect(stats.in_process_bus.ffi_subscriber_count).to eq(1)
    expect(stats.domain[:durable_delivered]).to be >= 1
  end

  it "rejects bad declarations and bad publications with typed errors naming the field" do
    bad = { "name" => "t", "namespace_name" => "n", "version" => "1.0.0",
            "steps" => [{ "name" => "s", "handler" => { "callable" => "X" }, "publishes_events" => [{ "name" => "Bad Name" }] }] }
    expect { TaskerCore::FFI.template_normalize(bad) }
      .to raise_error(TaskerCore::Errors::TemplateError, /publishes_events\[0\]\.name/)
    bad["steps"][0]["publishes_events"] = [{ "name" => "a.b", "delivery_mode" => "carrier_pigeon" }]
    expect { TaskerCore::FFI.template_normalize(bad) }
      .to raise_error(TaskerCore::Errors::TemplateError, /publishes_events\[0\]\.delivery_mode/)
    bad["steps"][0]["publishes_events"] = [{ "name" => "a.b", "condition" => "sometimes" }]
    expect { TaskerCore::FFI.template_normalize(bad) }
      .to raise_error(TaskerCore::Errors::TemplateError, /publishes_events\[0\]\.condition/)
    bad["steps"][0]["publishes_events"] = [{ "name" => "a.b" }]
    normalized = TaskerCore::FFI.template_normalize(bad)["steps"][0]["publishes_events"]
    expect(normalized).to eq([{ "name" => "a.b", "condition" => "success", "delivery_mode" => "durable" }])

    expect { TaskerCore::DomainEvents.publish("NoDots", {}) }
      .to raise_error(TaskerCore::Errors::ValidationError, /event_name/)
    expect { TaskerCore::DomainEvents.publish("a.b", {}, delivery_mode: "pigeon") }
      .to raise_error(TaskerCore::Errors::ValidationError, /delivery_mode/)
    expect { TaskerCore::DomainEvents.read(consumer: "no spaces") }
      .to raise_error(TaskerCore::Errors::ValidationError, /consumer/)
    expect { TaskerCore::DomainEvents.read(limit: 0) }.to raise_error(TaskerCore::Errors::ValidationError, /limit/)
    expect { TaskerCore::DomainEvents.ack(["not-a-uuid"]) }
      .to raise_error(TaskerCore::Errors::ValidationError, /event_ids\[0\]/)
    expect { TaskerCore::FFI.publish_domain_event({ "event_id" => TaskerCore::FFI.uuid_v7, "event_name" => "a.b",
                                                    "delivery_mode" => "fast" }) }
      .to raise_error(TaskerCore::Errors::ValidationError, /fast/)
    expect { TaskerCore::DomainEvents::Bus.new(buffer_size: 0) }
      .to raise_error(TaskerCore::Errors::ValidationError, /buffer_size/)
    expect { Class.new(TaskerCore::DomainEvents::BaseSubscriber) { subscribes_to "Payment Done" } }
      .to raise_error(TaskerCore::Errors::ValidationError, /Payment Done/)
  end

  it "delivers a durable event again after a worker is SIGKILLed between commit and acknowledgement, then never again",
     timeout: 90 do
    received = File.join(Dir.mktmpdir, "received")
    env = { "TASKER_DATABASE_URL" => DATABASE_URL }
    out_r, out_w = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, File.expand_path("../support/domain_worker.rb", __dir__), received,
                        out: out_w, err: child_log_path("domain_worker"))
    out_w.close
    expect(Timeout.timeout(30) { out_r.gets }&.strip).to eq("ready")
    uuid = pay(amount: 77)
    expect(wait_for_task(uuid, timeout: 30)["status"]).to eq("complete")
    _, status = Process.wait2(pid)
    expect(status.termsig).to eq(9) # its subscriber got the event and died before acknowledging it
    event_id, reads = File.read(received).split
    expect([event_id, reads]).to eq([outbox(uuid).find { |n, _, _| n == "payment.processed" }[2]["event_id"], "1"])

    # This process's subscribers share the consumer: the event comes back once the lease expires.
    TaskerCore.config.domain_events_options = { visibility_seconds: 2, poll_interval_ms: 20 }
    recorder = Class.new(DomainRecorder) { subscribes_to "payment.processed" }.start!
    again = received_within(recorder, 1, seconds: 15)
    expect(again.map { |e| [e.event_id, e.delivery["read_count"]] }).to eq([[event_id, 2]])
    sleep 2.5 # past another lease: acknowledged events stay delivered
    expect(recorder.drain).to eq([])
    expect(psql("SELECT d.reads, d.delivered_at IS NOT NULL FROM tasker.domain_event_deliveries d " \
                "JOIN tasker.events_outbox o USING (event_id) WHERE o.event_uuid = '#{event_id}'"))
      .to eq([%w[2 t]])
  ensure
    begin
      Process.kill("KILL", pid) if pid
      Process.wait(pid) if pid
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
  end
end
