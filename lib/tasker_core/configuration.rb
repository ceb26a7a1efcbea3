# frozen_string_literal: true

require "logger"

module TaskerCore
  # Process-wide settings, read from the environment, a config file (TaskerCore.load_config) and
  # TaskerCore.configure.
  class Configuration
    LOG_LEVELS = %w[trace debug info warn error off].freeze
    LOGGER_LEVELS = { "trace" => Logger::DEBUG, "debug" => Logger::DEBUG, "info" => Logger::INFO, "warn" => Logger::WARN,
                      "error" => Logger::ERROR, "off" => Logger::UNKNOWN }.freeze

    attr_accessor :database_url, :pool_size, :connect_timeout_seconds, :log_level,
                  :template_paths, :environment, :worker_options
    # Lifecycle event subscribers registered at boot (classes or instances), and the core feeder's
    # options: buffer_size (events held for slow subscribers, default 10000), poll_interval_ms (50).
    attr_accessor :event_subscribers, :events_options
    # Domain event subscribers registered at boot (DomainEvents::BaseSubscriber classes or
    # instances), and the dispatcher's options (DomainEvents::Bus::DEFAULTS): buffer_size,
    # poll_interval_ms, visibility_seconds, batch_size, consumer, durable.
    attr_accessor :domain_event_subscribers, :domain_events_options
    # Where the Ruby side logs (handler threads, client warnings) and where the engine's JSON lines
    # are delivered (TaskerCore::EngineLog); Rails.logger under Rails. The default writes to stderr
    # at log_level.
    attr_writer :logger
    # Whether create_task(s) without connection: joins this thread's open ActiveRecord transaction
    # (creating the task on that connection, so that it commits or rolls back with the app's own
    # writes): false (the default outside Rails: the engine's own pool, in a transaction of its own),
    # true, or :auto, the Railtie's default (config.tasker.join_transactions): join when the engine's
    # database_url is the app's database (active_record_database_url, which the Railtie sets).
    attr_accessor :join_transactions, :active_record_database_url

    def initialize(env = ENV)
      @database_url = env["TASKER_DATABASE_URL"] || env["DATABASE_URL"]
      @pool_size = Integer(env.fetch("TASKER_POOL_SIZE", "10"), 10)
      @connect_timeout_seconds = Integer(env.fetch("TASKER_CONNECT_TIMEOUT", "5"), 10)
      @log_level = env.fetch("TASKER_LOG_LEVEL", "warn")
      @template_paths = (env["TASKER_TEMPLATE_PATH"] || "").split(File::PATH_SEPARATOR).reject(&:empty?)
      @environment = env.fetch("TASKER_ENV", "development")
      @worker_options = {}
      @event_subscribers = []
      @events_options = {}
      @domain_event_subscribers = []
      @domain_events_options = {}
      @handler_wrapper = nil
      @join_transactions = false
      @active_record_database_url = nil
    end

    # join_transactions resolved: :auto compares database_url with active_record_database_url. With
    # warn, a difference under :auto is logged once per process (the task is not joining the
    # app's transaction, and the app should know).
    def join_transactions?(warn: false)
      return join_transactions == true unless join_transactions == :auto
      return true if active_record_database_url && database_url == active_record_database_url

      if warn && !@join_warned
        @join_warned = true
        logger.warn("tasker_core: create_task inside an ActiveRecord transaction runs in a transaction of its own, " \
                    "not the app's: the engine's database_url is not the app's database (ActiveRecord's). Set " \
                    "config.tasker.join_transactions = true if it is the same database, or pass connection: false " \
                    "to create_task to say that this is meant.")
      end
      false
    end

    def logger
      @logger ||= Logger.new($stderr, level: LOGGER_LEVELS.fetch(log_level.to_s, Logger::WARN))
    end

    # Every handler runs inside this block (under Rails: the app's reloader, so autoloaded
    # handlers are safe to use from worker threads and are reloaded in development).
    def wrap_handlers(&block)
      @handler_wrapper = block
    end

    def around_handler
      return yield unless @handler_wrapper

      result = nil
      @handler_wrapper.call { result = yield }
      result
    end

    # The configuration the C runtime receives.
    def to_runtime_config
      validate!
      { "database_url" => database_url, "pool_size" => pool_size,
        "connect_timeout_seconds" => connect_timeout_seconds, "log_level" => log_level.to_s }
    end

    def validate!
      if database_url.nil? || database_url.to_s.empty?
        raise Errors::ConfigurationError,
              "database_url is not set: set TASKER_DATABASE_URL or DATABASE_URL, or TaskerCore.configure"
      end
      # libpq must be able to parse it: a malformed URL (say, an unescaped % in the password) is
      # refused here, by a message that never repeats it, instead of at every connection by
      # libpq's, which quotes the part it could not read.
      FFI.database_url_check(database_url.to_s)
      unless pool_size.is_a?(Integer) && pool_size.between?(1, 500)
        raise Errors::ConfigurationError, "pool_size must be an Integer between 1 and 500 (got #{pool_size.inspect})"
      end
      return if LOG_LEVELS.include?(log_level.to_s)

      raise Errors::ConfigurationError, "log_level must be one of #{LOG_LEVELS.join(', ')} (got #{log_level.inspect})"
    end
  end
end
