# frozen_string_literal: true

module TaskerCore
  # Runs a worker in the foreground until SIGTERM or SIGINT, then stops it gracefully: what
  # `bin/tasker worker` and `bin/rails tasker:worker` do.
  module WorkerRunner
    module_function

    # options: those of TaskerCore::Worker.new (namespaces:, concurrency:, template_paths:, ...).
    # A dedicated worker process serves the web server by default (web: { enabled: false } turns
    # it off; TASKER_WEB_ENABLED=false too).
    def run(out: $stdout, stop_timeout: 30, **options)
      web_default = ENV.fetch("TASKER_WEB_ENABLED", "true") != "false"
      options[:web] = { "enabled" => web_default }.merge(PlainData.call(options[:web] || {}))
      step(out, "migrating the schema") { TaskerCore.migrate! }
      worker = step(out, "registering templates and starting the worker") { Worker.start(**options) }
      reader, writer = IO.pipe
      previous = %w[TERM INT].to_h { |sig| [sig, trap(sig) { writer.write_nonblock(".") rescue nil }] } # rubocop:disable Style/RescueModifier
      out.puts "tasker worker #{worker.status['worker_uuid']} serving #{worker.namespaces.join(', ')} " \
               "with #{worker.concurrency} handler threads (pid #{Process.pid})"
      web = worker.status["web"]
      out.puts "web server on http://#{web['bind_address']} (/health, /metrics, ...)" if web && web["enabled"]
      out.flush
      reader.read(1)
      out.puts "stopping: finishing running steps"
      out.flush
      Worker.stop(timeout: stop_timeout)
      TaskerCore.shutdown!
      out.puts "stopped"
      out.flush
    ensure
      previous&.each { |sig, handler| trap(sig, handler || "DEFAULT") }
    end

    # Prints "label ... done (N ms)" around a slow step.
    def step(out, label)
      out.print "#{label} ... "
      out.flush
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      result = yield
      out.puts "done (#{((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round} ms)"
      out.flush
      result
    rescue StandardError
      out.puts "failed"
      raise
    end
  end
end
