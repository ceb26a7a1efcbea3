# frozen_string_literal: true

require "json"
require "socket"
require "io/wait"

module TaskerCore
  # `bin/tasker worker --processes N`: a parent that migrates, loads the handlers and registers the
  # templates once, then forks N worker processes (each a normal worker, started after the fork),
  # restarts a child that dies (with backoff), and on SIGTERM/SIGINT forwards TERM to the children,
  # waits for them to finish their running steps and exits 0.
  #
  # The web server (when enabled) runs in the parent, so one address answers for the host while
  # children come and go. It reports the supervisor's view: the children and their restarts, and
  # whether the database answers (GET /health, /health/live, /health/ready, /metrics). A worker's own
  # engine metrics stay in its process (TaskerCore::Observability there).
  class Supervisor
    BACKOFF_FIRST_SECONDS = 0.5
    BACKOFF_MAX_SECONDS = 30.0
    # A child that ran this long before dying restarts after the first delay again.
    BACKOFF_RESET_SECONDS = 60.0

    Child = Struct.new(:slot, :pid, :started_at, :restarts, :failures, keyword_init: true)

    # worker_options: those of TaskerCore::Worker.new (namespaces:, template_paths:, concurrency:, ...).
    def initialize(processes:, out: $stdout, stop_timeout: 30, **worker_options)
      unless processes.is_a?(Integer) && processes.between?(1, 256)
        raise Errors::ConfigurationError, "processes must be an Integer between 1 and 256 (got #{processes.inspect})"
      end

      @processes = processes
      @out = out
      @stop_timeout = stop_timeout
      web = PlainData.call(worker_options.delete(:web) || {})
      @web_enabled = web.fetch("enabled", ENV.fetch("TASKER_WEB_ENABLED", "true") != "false") ? true : false
      explicit = web["bind_address"] || ENV["TASKER_WEB_BIND_ADDRESS"]
      @web_explicit = !explicit.nil?
      @web_address = explicit || Worker::DEFAULT_WEB_BIND_ADDRESS
      @worker_options = worker_options
      @events = Queue.new
      @children = {}
      @mutex = Mutex.new
      @stopping = false
      @restarts = 0
    end

    def run
      WorkerRunner.step(@out, "migrating the schema") { TaskerCore.migrate! }
      WorkerRunner.step(@out, "registering templates") { register_templates }
      previous = %w[TERM INT].to_h { |sig| [sig, trap(sig) { @events << [:stop] }] }
      start_web if @web_enabled
      say "tasker supervisor serving #{@worker_options[:namespaces].join(', ')} with #{@processes} worker processes " \
          "(pid #{Process.pid})"
      say "web server on http://#{@web_address} (/health, /metrics: the supervisor's view)" if @server
      @processes.times { |slot| spawn_child(slot, restarts: 0, failures: 0) }
      supervise
      stop_children
      say "stopped"
    ensure
      stop_children unless @stopping || @children.empty? # the supervisor failed: no orphans
      @server&.close
      previous&.each { |sig, handler| trap(sig, handler || "DEFAULT") }
    end

    private

    def say(line)
      @out.puts line
      @out.flush
    end

    # Loads the templates once in the parent: the children serve their namespaces without reading
    # the files again (the registered templates are in the database).
    def register_templates
      paths = @worker_options[:template_paths] || TaskerCore.config.template_paths
      loaded = paths.nil? || paths.empty? ? [] : Templates.load(paths)
      @worker_options[:namespaces] ||= loaded.map { |t| t["namespace_name"] }.uniq
      if @worker_options[:namespaces].empty?
        raise Errors::ConfigurationError, "the worker has no namespaces: pass namespaces: or template paths"
      end

      @worker_options[:template_paths] = []
    end

    def supervise
      loop do
        event, *args = @events.pop
        case event
        when :stop then return
        when :exit then child_exited(*args)
        when :restart then spawn_child(args[0], **args[1]) unless @stopping
        end
      end
    end

    def spawn_child(slot, restarts:, failures:)
      pid = fork { child_main(slot) }
      child = Child.new(slot: slot, pid: pid, started_at: monotonic, restarts: restarts, failures: failures)
      @mutex.synchronize { @children[slot] = child }
      say "worker process #{slot + 1} started (pid #{pid})"
      Thread.new do
        _, status = Process.wait2(pid)
        @events << [:exit, child, status]
      end
    end

    def child_exited(child, status)
      @mutex.synchronize { @children.delete(child.slot) if @children[child.slot]&.pid == child.pid }
      return if @stopping

      lived = monotonic - child.started_at
      failures = lived >= BACKOFF_RESET_SECONDS ? 0 : child.failures
      delay = [BACKOFF_FIRST_SECONDS * (2**failures), BACKOFF_MAX_SECONDS].min
      TaskerCore.config.logger.warn("tasker supervisor: worker process #{child.slot + 1} (pid #{child.pid}) " \
                                    "#{describe(status)}; restarting it in #{delay}s")
      @restarts += 1
      Thread.new do
        sleep delay
        @events << [:restart, child.slot, { restarts: child.restarts + 1, failures: failures + 1 }]
      end
    end

    def describe(status)
      status.signaled? ? "was killed by signal #{status.termsig}" : "exited with status #{status.exitstatus}"
    end

    # TERM to every child, then waits for them (they finish their running steps within
    # stop_timeout); a child still running after that, plus a grace period, is killed.
    def stop_children
      @stopping = true
      say "stopping: the worker processes finish their running steps"
      children = @mutex.synchronize { @children.values }
      children.each { |c| signal(c.pid, "TERM") }
      Thread.new do
        sleep @stop_timeout + 10
        @events << [:overdue]
      end
      until @mutex.synchronize { @children.empty? }
        event, *args = @events.pop
        child_exited(*args) if event == :exit
        @mutex.synchronize { @children.values }.each { |c| signal(c.pid, "KILL") } if event == :overdue
      end
    end

    def signal(pid, sig)
      Process.kill(sig, pid)
    rescue Errno::ESRCH
      nil
    end

    # In the child: a normal worker (the engine starts its own runtime after a fork), stopped
    # gracefully on SIGTERM/SIGINT.
    def child_main(slot)
      @server&.close
      reader, writer = IO.pipe
      %w[TERM INT].each { |sig| trap(sig) { writer.write_nonblock(".") rescue nil } } # rubocop:disable Style/RescueModifier
      worker = Worker.start(**@worker_options, web: { "enabled" => false })
      say "tasker worker #{worker.status['worker_uuid']} serving #{worker.namespaces.join(', ')} " \
          "with #{worker.concurrency} handler threads (pid #{Process.pid}, process #{slot + 1})"
      reader.read(1)
      Worker.stop(timeout: @stop_timeout)
      TaskerCore.shutdown!
      exit!(0)
    rescue Exception => e # rubocop:disable Lint/RescueException
      TaskerCore.config.logger.error("tasker worker process #{slot + 1}: #{e.class}: #{e.message}")
      exit!(1)
    end

    def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    # --- the supervisor's web server -----------------------------------------------------------

    # The worker's web server's defaults (tc_web.c): connections in all, per client address, and the
    # seconds a request may take to arrive. Each admitted connection is served on a thread of its
    # own, so an idle or half-sent one holds only itself, and for at most WEB_TIMEOUT seconds.
    WEB_MAX_CONNECTIONS = 64
    WEB_MAX_PER_CLIENT = 16
    WEB_TIMEOUT = 10

    def start_web
      host, port = @web_address.split(":", 2)
      @server = TCPServer.new(host == "localhost" ? "127.0.0.1" : host, Integer(port, 10))
      @web_address = "#{@server.addr[3]}:#{@server.addr[1]}"
      @web_open = Hash.new(0)
      @web_mutex = Mutex.new
      Thread.new do
        Thread.current.report_on_exception = false
        loop { admit(@server.accept) }
      end
    rescue Errno::EADDRINUSE, Errno::EADDRNOTAVAIL, SocketError, ArgumentError => e
      @server = nil
      unless e.is_a?(Errno::EADDRINUSE) && !@web_explicit
        raise Errors::ConfigurationError,
              "the web server could not listen on #{@web_address} (address in use or not local?)"
      end

      TaskerCore.config.logger.warn("tasker supervisor: the web server's default address #{@web_address} is taken " \
                                    "(another worker on this host?), so the supervisor serves without HTTP; give it " \
                                    "its own address with worker.web.bind_address or TASKER_WEB_BIND_ADDRESS")
    end

    # Serves socket on a thread of its own, or closes it at once when the server, or its client,
    # holds as many connections as allowed.
    def admit(socket)
      client = begin
        socket.remote_address.ip_address
      rescue SocketError, SystemCallError
        "?"
      end
      admitted = @web_mutex.synchronize do
        next false if @web_open.values.sum >= WEB_MAX_CONNECTIONS || @web_open[client] >= WEB_MAX_PER_CLIENT

        @web_open[client] += 1
      end
      return socket.close unless admitted

      Thread.new do
        Thread.current.report_on_exception = false
        serve(socket)
      ensure
        @web_mutex.synchronize { (@web_open[client] -= 1).zero? && @web_open.delete(client) }
      end
    end

    # The request line and headers, or nil when they do not arrive within WEB_TIMEOUT seconds (or
    # grow past 16 KB, or the client hangs up).
    def read_head(socket)
      deadline = monotonic + WEB_TIMEOUT
      head = +""
      until head.include?("\n\r\n") || head.include?("\n\n")
        return nil if head.bytesize > 16_384

        chunk = socket.read_nonblock(4096, exception: false)
        case chunk
        when nil then return nil
        when :wait_readable
          remaining = deadline - monotonic
          return nil unless remaining.positive? && socket.wait_readable(remaining)
        else head << chunk
        end
      end
      head
    end

    def serve(socket)
      request = read_head(socket) or return
      method, target = request.lines.first.to_s.split(" ", 3)
      status, type, body = route(method, target.to_s.split("?", 2).first.to_s.sub(%r{(?<=.)/+\z}, ""))
      socket.write("HTTP/1.1 #{status} #{status == 200 ? 'OK' : 'Error'}\r\nContent-Type: #{type}\r\n" \
                   "Content-Length: #{body.bytesize}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
      socket.write(body) unless method == "HEAD"
    rescue StandardError
      nil
    ensure
      socket&.close
    end

    def route(method, path)
      return [404, "application/json", JSON.generate(error: "not_found", message: "no route for #{path}")] unless
        %w[/health /health/live /health/ready /metrics].include?(path)
      unless %w[GET HEAD].include?(method)
        return [405, "application/json", JSON.generate(error: "method_not_allowed", message: "#{method} is not allowed")]
      end

      return [200, "text/plain; version=0.0.4; charset=utf-8", prometheus] if path == "/metrics"

      report = report(path)
      [path == "/health/ready" && report[:status] != "ready" ? 503 : 200, "application/json", JSON.generate(report)]
    end

    def children_report
      @mutex.synchronize do
        @children.values.sort_by(&:slot).map do |c|
          { process: c.slot + 1, pid: c.pid, restarts: c.restarts, uptime_seconds: (monotonic - c.started_at).round(1) }
        end
      end
    end

    def report(path)
      children = children_report
      base = { supervisor_pid: Process.pid, processes: @processes, running: children.size, children: children,
               timestamp: Time.now.utc.strftime("%Y-%m-%dT%H:%M:%SZ") }
      case path
      when "/health/live" then { status: "alive" }.merge(base)
      when "/health" then { status: "healthy" }.merge(base)
      else
        database = begin
          TaskerCore::Client.health_check["healthy"] ? true : false
        rescue StandardError
          false
        end
        ready = database && children.size == @processes && !@stopping
        { status: ready ? "ready" : "not_ready", database: database }.merge(base)
      end
    end

    def prometheus
      children = children_report
      lines = ["# HELP tasker_supervisor_processes Worker processes the supervisor keeps running.",
               "# TYPE tasker_supervisor_processes gauge", "tasker_supervisor_processes #{@processes}",
               "# HELP tasker_supervisor_processes_running Worker processes running now.",
               "# TYPE tasker_supervisor_processes_running gauge", "tasker_supervisor_processes_running #{children.size}",
               "# HELP tasker_supervisor_restarts_total Worker processes restarted after dying.",
               "# TYPE tasker_supervisor_restarts_total counter", "tasker_supervisor_restarts_total #{@restarts}"]
      "#{lines.join("\n")}\n"
    end
  end
end
