# frozen_string_literal: true

# A benchmark worker process: serves one namespace with the benchmark handlers until SIGTERM.
#
#   ruby bench/worker.rb NAMESPACE CONCURRENCY
#
# Reads TASKER_DATABASE_URL; prints "ready <pid>" once its worker runs, so that the run can
# start its clock after boot.
require_relative "../lib/tasker_core"
require_relative "handlers"

namespace, concurrency = ARGV
abort "usage: bench/worker.rb NAMESPACE CONCURRENCY" unless namespace && concurrency

TaskerCore.configure do |config|
  config.database_url = ENV.fetch("TASKER_DATABASE_URL")
  config.log_level = "error"
end
TaskerCore::Templates.load([File.expand_path("templates", __dir__)])

stop = Queue.new
trap("TERM") { stop << true }
trap("INT") { stop << true }

TaskerCore::Worker.start(namespaces: [namespace], concurrency: Integer(concurrency))
$stdout.puts "ready #{Process.pid}"
$stdout.flush
stop.pop
TaskerCore::Worker.stop(timeout: 10)
TaskerCore.shutdown!
