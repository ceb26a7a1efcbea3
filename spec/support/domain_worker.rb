# frozen_string_literal: true

# A worker process whose domain event subscriber dies (SIGKILL, no cleanup) the moment a durable
# payment.processed reaches it: after the step's result and the event were committed, before the
# event was acknowledged. Writes the event id it received to ARGV[0] first.
require_relative "../../lib/tasker_core"
require_relative "handlers"

RECEIVED = ARGV.fetch(0)

class DyingSubscriber < TaskerCore::DomainEvents::BaseSubscriber
  subscribes_to "payment.processed"

  def handle(event)
    File.write(RECEIVED, "#{event.event_id} #{event.delivery['read_count']}\n")
    Process.kill("KILL", Process.pid)
    sleep
  end
end

TaskerCore.configure do |c|
  c.database_url = ENV.fetch("TASKER_DATABASE_URL")
  c.log_level = ENV.fetch("TASKER_LOG_LEVEL", "error")
  c.domain_events_options = { visibility_seconds: 2, poll_interval_ms: 20 }
  c.domain_event_subscribers = [DyingSubscriber]
end
TaskerCore.boot!
TaskerCore::Worker.start(template_paths: [File.expand_path("../fixtures/templates", __dir__)], namespaces: ["payments"],
                         concurrency: 2)
$stdout.puts "ready"
$stdout.flush
sleep
