# frozen_string_literal: true

# A worker process for multi-process specs: serves the fixture templates until SIGTERM/SIGINT,
# then stops gracefully and exits 0. Prints "ready" once it is claiming.
require_relative "../../lib/tasker_core"
require_relative "handlers"

TaskerCore.configure do |c|
  c.database_url = ENV.fetch("TASKER_DATABASE_URL")
  c.log_level = ENV.fetch("TASKER_LOG_LEVEL", "error")
end
templates = ENV.fetch("WORKER_TEMPLATES", File.expand_path("../fixtures/templates", __dir__))
worker = TaskerCore::Worker.start(template_paths: [templates],
                                  concurrency: Integer(ENV.fetch("WORKER_CONCURRENCY", "4"), 10),
                                  visibility_timeout_seconds: Integer(ENV.fetch("WORKER_VISIBILITY", "30"), 10),
                                  poll_interval_ms: Integer(ENV.fetch("WORKER_POLL_MS", "1000"), 10),
                                  deployment_mode: ENV.fetch("WORKER_MODE", "Hybrid"))
reader, writer = IO.pipe
%w[TERM INT].each do |signal|
  trap(signal) { writer.write_nonblock("x") rescue nil } # rubocop:disable Style/RescueModifier
end
$stdout.puts "ready"
$stdout.flush
reader.read(1)
worker.stop(timeout: 10)
TaskerCore.shutdown!
exit!(0)
