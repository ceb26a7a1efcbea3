# frozen_string_literal: true

require "logger"
require "socket"

module TaskerCore
  # A worker in this process: the C engine claims steps of its namespaces (LISTEN/NOTIFY plus a
  # fallback poll), and `concurrency` Ruby threads run their handlers.
  #
  #   worker = TaskerCore::Worker.start(namespaces: ["ecommerce"], concurrency: 4)
  #   ...
  #   TaskerCore::Worker.stop(timeout: 30)
  class Worker
    NEXT_STEP_WAIT_SECONDS = 0.5
    RESPAWN_PAUSE_SECONDS = 1.0
    DEFAULT_WEB_BIND_ADDRESS = "127.0.0.1:8081"

    class << self
      attr_reader :current

      def start(**options)
        raise Errors::StateError, "a worker is already running in this process" if @current&.running?

        @current = new(**options).start
      end

      def stop(timeout: 30)
        worker = @current
        worker&.stop(timeout: timeout)
        @current = nil
        worker
      end

      def running? = @current&.running? || false
    end

    attr_reader :namespaces, :concurrency, :errors

    # namespaces: the namespaces to serve (default: those of the templates loaded from
    # template_paths); template_paths: files/directories of YAML templates to register first.
    def initialize(namespaces: nil, concurrency: 10, template_paths: nil, poll_interval_ms: 1000,
                   visibility_timeout_seconds: 30, deployment_mode: "Hybrid", logger: nil,
                   staleness_check_interval_seconds: 60, staleness_threshold_minutes: 30, max_task_lifetime_hours: 24,
                   observability: {}, web: {}, startup_timeout_seconds: 60, retention: nil)
      unless concurrency.is_a?(Integer) && concurrency.between?(1, 1000)
        raise Errors::ConfigurationError, "concurrency must be an Integer between 1 and 1000 (got #{concurrency.inspect})"
      end

      unless startup_timeout_seconds.is_a?(Numeric) && startup_timeout_seconds >= 0
        raise Errors::ConfigurationError,
              "startup_timeout_seconds must be a number of seconds >= 0 (got #{startup_timeout_seconds.inspect})"
      end

      @startup_timeout = startup_timeout_seconds
      @concurrency = concurrency
      @template_paths = template_paths
      @namespaces = namespaces&.map(&:to_s)
      @options = { "concurrency" => concurrency, "poll_interval_ms" => poll_interval_ms,
                   "visibility_timeout_seconds" => visibility_timeout_seconds,
                   "deployment_mode" => deployment_mode.to_s,
                   "staleness_check_interval_seconds" => staleness_check_interval_seconds,
                   "staleness_threshold_minutes" => staleness_threshold_minutes,
                   "max_task_lifetime_hours" => max_task_lifetime_hours }
      @options["retention"] = retention_options(retention) if retention
      @observability = PlainData.call(observability)
      @web = web_options(PlainData.call(web || {}))
      @logger = logger || TaskerCore.config.logger
      @threads = []
      @threads_lock = Mutex.new
      @lost_at = {}
      @errors = []
      @running = false
    end

    def start
      TaskerCore.boot!
      paths = @template_paths || TaskerCore.config.template_paths
      loaded = paths.nil? || paths.empty? ? [] : while_database_starts { Templates.load(paths) }
      @namespaces ||= loaded.map { |t| t["namespace_name"] }.uniq
      if @namespaces.empty?
        raise Errors::ConfigurationError, "the worker has no namespaces: pass namespaces: or template paths"
      end

      @status = while_database_starts { start_engine }
      @worker_id = "worker_#{@status['worker_uuid']}"
      @pid = Process.pid
      @running = true
      @threads_lock.synchronize { @threads = Array.new(@concurrency) { |i| spawn_handler_thread(i) } }
      self
    end

    # False in a forked child: the engine's threads do not survive a fork, so a child starts its own.
    def running? = @running && @pid == Process.pid

    def status = FFI.worker_status

    # The web server's port (nil when it is off): useful with bind_address "127.0.0.1:0".
    def web_port = status&.dig("web", "port")

    # Stops claiming, lets running handlers finish within timeout seconds (then kills them; their
    # steps run again when their claims expire), and gives unstarted claims back at once.
    def stop(timeout: 30)
      return self unless running?

      threads = @threads_lock.synchronize do
        @running = false
        @threads.dup
      end
      FFI.worker_stop
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      threads.each do |thread|
        next unless thread

        remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        thread.join([remaining, 0].max) || thread.kill.join
      end
      @threads_lock.synchronize { @threads.clear }
      self
    end

    # The handler threads serving now (a thread that died is replaced by a new one).
    def threads = @threads_lock.synchronize { @threads.dup }

    private

    # A worker that starts while the database is unreachable (a restart, a deploy where the pods
    # come up first) waits for it, retrying with backoff for up to startup_timeout_seconds.
    def while_database_starts
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @startup_timeout
      delay = 0.1
      begin
        yield
      rescue Errors::DatabaseError, Errors::TimeoutError => e
        raise if Process.clock_gettime(Process::CLOCK_MONOTONIC) + delay > deadline

        @logger.warn("tasker worker waits for the database (#{e.message.lines.first&.strip}); retrying in #{delay}s")
        sleep delay
        delay = [delay * 2, 2.0].min
        retry
      end
    end

    def start_engine
      FFI.worker_start(engine_options)
    rescue Errors::ConfigurationError => e
      raise unless @web["enabled"] && !@web_bind_explicit && address_in_use?(@web["bind_address"], e)

      # Several workers on one host with default settings: the first one serves HTTP on the
      # default address, the others run without a web server instead of refusing to start.
      @logger.warn("tasker worker: the web server's default address #{@web['bind_address']} is taken " \
                   "(another worker on this host?), so this worker serves without HTTP; give each worker " \
                   "its own address with worker.web.bind_address or TASKER_WEB_BIND_ADDRESS (port 0 picks a free one)")
      @web = @web.merge("enabled" => false)
      FFI.worker_start(engine_options)
    end

    def engine_options
      @options.merge("namespaces" => @namespaces, "observability" => observability_options, "web" => @web)
    end

    # Whether the web server failed because something listens on its address already (and not
    # because the address is not local, or malformed).
    def address_in_use?(address, error)
      return false unless error.message.include?("could not listen on")

      host, port = address.split(":", 2)
      TCPServer.new(host == "localhost" ? "127.0.0.1" : host, Integer(port, 10)).close
      false
    rescue Errno::EADDRINUSE
      true
    rescue StandardError
      false
    end

    # worker.web: off unless enabled (a worker inside another app's processes must not take a
    # port; `bin/tasker worker` turns it on). bind_address: TASKER_WEB_BIND_ADDRESS or 127.0.0.1:8081;
    # only the default one may be given up when it is taken (see start_engine).
    def web_options(web)
      auth = web["auth"] || {}
      explicit = web["bind_address"] || ENV["TASKER_WEB_BIND_ADDRESS"]
      @web_bind_explicit = !explicit.nil?
      { "enabled" => web.fetch("enabled", false) ? true : false,
        "bind_address" => explicit || DEFAULT_WEB_BIND_ADDRESS,
        "api_key" => auth["api_key"] || web["api_key"],
        "api_key_header" => auth["api_key_header"] || web["api_key_header"] || "X-API-Key" }
        .merge(web.slice(*WEB_LIMITS))
    end

    # retention: {completed_days:, error_days:, batch_size:} (docs/operations.md), passed on with
    # string keys; the engine checks the values and names the one it refuses.
    def retention_options(retention)
      unless retention.is_a?(Hash)
        raise Errors::ConfigurationError,
              "retention must be a Hash of completed_days, error_days, batch_size (got #{retention.class})"
      end

      PlainData.call(retention.transform_keys(&:to_s))
    end

    # The web server's connection settings, passed on as given (the engine checks them).
    WEB_LIMITS = %w[threads max_connections max_connections_per_client connection_timeout_seconds].freeze

    # What the core's observability services show (TaskerCore::Observability): the environment and
    # the configuration (redacted there), plus circuit breaker / queue thresholds when given.
    def observability_options
      config = TaskerCore.config
      shown = { "common" => { "database" => { "url" => config.database_url, "pool" => { "max_connections" => config.pool_size } },
                              "task_templates" => { "search_paths" => Array(@template_paths || config.template_paths) } },
                "worker" => @options.merge("namespaces" => @namespaces,
                                             "web" => @web.merge("auth" => { "enabled" => !@web["api_key"].nil?,
                                                                             "api_key" => @web["api_key"] }).except("api_key")) }
      { "environment" => config.environment.to_s, "config" => shown }.merge(@observability)
    end

    # A handler thread for slot index, counted by the engine (readiness wants one per slot). Called
    # with @threads_lock held. A thread that ends while the worker runs (an exception that escaped,
    # Thread#kill) is replaced at once; nil when no thread could be created (the engine's count
    # stays short, so the worker is not ready).
    def spawn_handler_thread(index, pause: 0)
      FFI.worker_handler_threads(1, false)
      Thread.new do
        Thread.current.name = "tasker-handler-#{index}"
        # run_loop logs the error that ends the thread; Ruby's own report would print it again.
        Thread.current.report_on_exception = false
        begin
          sleep(pause) if pause.positive?
          run_loop
        ensure
          handler_thread_ended(index)
        end
      end
    rescue ThreadError, NoMemoryError => e
      FFI.worker_handler_threads(-1, true)
      @logger.error("tasker could not start handler thread #{index}: #{e.class}: #{e.message}")
      nil
    end

    def handler_thread_ended(index)
      @threads_lock.synchronize do
        lost = @running && @threads[index].equal?(Thread.current)
        FFI.worker_handler_threads(-1, lost)
        next unless lost

        # A slot whose threads keep dying at once waits a second before each new one.
        now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        pause = @lost_at[index] && now - @lost_at[index] < RESPAWN_PAUSE_SECONDS ? RESPAWN_PAUSE_SECONDS : 0
        @lost_at[index] = now
        @logger.error("tasker handler thread #{index} ended while the worker runs; starting a new one")
        @threads[index] = spawn_handler_thread(index, pause: pause)
      end
    rescue Exception => e # rubocop:disable Lint/RescueException
      @logger.error("tasker could not replace handler thread #{index}: #{e.class}: #{e.message}")
    end

    def run_loop
      while @running
        event = FFI.next_step(NEXT_STEP_WAIT_SECONDS)
        break if event == false

        execute(event) if event
      end
    rescue Exception => e # rubocop:disable Lint/RescueException
      # The thread ends (handler_thread_ended replaces it); Worker#stop must not raise this again.
      @errors << e
      @logger.error("tasker handler thread died: #{e.class}: #{e.message}") unless e.is_a?(Interrupt)
    end

    # Runs the handler; a checkpoint is saved and the handler runs again at once with it, in the
    # same claim (unless the claim was lost meanwhile). The submission of a result may bring the
    # next step (claim on complete), which runs next on this thread.
    def execute(event)
      carried = [] # events published by runs that yielded a checkpoint: they go with the result
      while event
        settled = false # whether this event's claim was completed, saved as a checkpoint or given up
        begin
          envelope = TaskerCore.config.around_handler { StepExecutor.call(event, worker_id: @worker_id) }
          checkpoint = envelope[StepExecutor::CHECKPOINT_KEY]
          if checkpoint
            carried.concat(envelope["domain_events"] || [])
            following = save_checkpoint(event, checkpoint)
            settled = true
            event = following
            carried.clear unless event
            next
          end
          envelope["domain_events"] = carried + (envelope["domain_events"] || []) unless carried.empty?
          carried = []
          answer = submit(event, envelope)
          settled = true
          DomainEvents.dispatch_fast(envelope, answer) if envelope["domain_events"]
          event = answer && answer["next_steps"]&.first
        ensure
          # Whatever ended this run early (an exception of the engine or of config.around_handler,
          # Thread#kill), the claim is given up, so the step runs again once it expires instead of
          # being kept alive by the heartbeat with nobody working on it.
          give_up(event) unless settled
        end
      end
    rescue StandardError => e
      # An engine error (not a handler's: those become results); the claim was given up above, and
      # this thread keeps serving.
      @errors << e
      @logger.error("tasker could not run step #{event && event['step_uuid']}: #{e.class}: #{e.message}")
    end

    def give_up(event)
      FFI.abandon_step(event["claim_token"]) if event
    rescue StandardError => e
      @logger.error("tasker could not give up the claim of step #{event['step_uuid']}: #{e.class}: #{e.message}")
    end

    def save_checkpoint(event, checkpoint)
      answer = FFI.checkpoint_step(event["step_uuid"], event["claim_token"], checkpoint)
      return answer["event"] if answer["applied"]

      FFI.abandon_step(event["claim_token"])
      nil
    rescue Errors::ValidationError => e
      submit(event, StepExecutor.unstorable(event, e.message))
      nil
    end

    # Hands the result to the engine. While the database is unreachable the step stays claimed (the
    # engine keeps its claim alive) and the submission is retried with backoff; after twice the
    # visibility timeout it is given up, and the step runs again once its claim expires.
    def submit(event, envelope)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + (2 * @options["visibility_timeout_seconds"])
      delay = 0.05
      substituted = false
      begin
        FFI.complete_step(event["step_uuid"], event["claim_token"], envelope)
      rescue Errors::ValidationError => e
        # A result that cannot be stored (not plain data, too large, refused by the database as bad
        # data) is replaced once by a permanent failure that says why.
        raise if substituted

        substituted = true
        envelope = StepExecutor.unstorable(event, e.message)
        retry
      rescue Errors::DatabaseError, Errors::TimeoutError => e
        if Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
          @logger.info("tasker could not submit step #{event['step_uuid']} (#{e.message}); retrying in #{delay}s")
          sleep delay
          delay = [delay * 2, 2.0].min
          retry
        end
        @logger.error("tasker gave up submitting step #{event['step_uuid']}: #{e.message}")
        FFI.abandon_step(event["claim_token"])
      end
    end
  end
end
