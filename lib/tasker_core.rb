# frozen_string_literal: true

# tasker_core: PostgreSQL-backed workflow orchestration with a C engine.
#
# Load order: version, errors (the binding raises these classes), the native extension, then the
# Ruby layers that call it.
require_relative "tasker_core/version"
require_relative "tasker_core/errors"
# TASKER_EXT_PATH loads another build of the extension (the sanitizer build of `rake asan`).
if ENV["TASKER_EXT_PATH"]
  require ENV["TASKER_EXT_PATH"]
else
  require_relative "tasker_core/tasker_core"
end
require_relative "tasker_core/plain_data"
require_relative "tasker_core/configuration"
require_relative "tasker_core/engine_log"
require_relative "tasker_core/template_format"
require_relative "tasker_core/templates"
require_relative "tasker_core/input_schema"
require_relative "tasker_core/handler_registry"
require_relative "tasker_core/step_context"
require_relative "tasker_core/step_handler_call_result"
require_relative "tasker_core/step_handler/base"
require_relative "tasker_core/step_handler/decision"
require_relative "tasker_core/step_handler/batchable"
require_relative "tasker_core/step_handler/api"
require_relative "tasker_core/step_executor"
require_relative "tasker_core/worker"
require_relative "tasker_core/types"
require_relative "tasker_core/types/client_types"
require_relative "tasker_core/caller_connection"
require_relative "tasker_core/client"
require_relative "tasker_core/types/observability_types"
require_relative "tasker_core/observability"
require_relative "tasker_core/operations"
require_relative "tasker_core/web"
require_relative "tasker_core/config_file"
require_relative "tasker_core/database_url"
require_relative "tasker_core/task_handler/base"
require_relative "tasker_core/worker_runner"
require_relative "tasker_core/supervisor"
require_relative "tasker_core/events"
require_relative "tasker_core/domain_events"

module TaskerCore
  BOOT_MUTEX = Mutex.new

  class << self
    def config
      @config ||= Configuration.new
    end

    def configure
      yield config
      config.validate!
      config
    end

    # Starts the engine runtime for this process (idempotent; again after a fork).
    def boot!
      return true if FFI.running? && EngineLog.running?

      BOOT_MUTEX.synchronize do
        FFI.bootstrap(config.to_runtime_config) unless FFI.running?
        # The engine's log goes to config.logger through the log thread from here on.
        EngineLog.start
      end
      boot_event_subscribers
      true
    end

    # Applies the embedded schema migrations; safe to run from several processes at once.
    def migrate!
      boot!
      FFI.migrate
    end

    # One line saying what a migrate! report did (bin/tasker migrate, rake tasker:migrate).
    def migration_summary(report)
      version = report["current_version"]
      done = []
      done << "applied migrations #{report['applied'].join(', ')}" unless report["applied"].empty?
      done << "applied function files #{report['functions'].join(', ')}" unless report["functions"].to_a.empty?
      done.empty? ? "schema is current (version #{version})" : "#{done.join('; ')} (now at version #{version})"
    end

    # Stops the worker (if any) and closes every database connection.
    def shutdown!
      Worker.stop if Worker.running?
      Events.bus.stop
      DomainEvents.bus.stop
      FFI.shutdown
      # What the engine logged while stopping reaches the logger before shutdown! returns.
      EngineLog.flush
    end

    # Registers config.event_subscribers once, then (re)starts event delivery when anyone subscribed.
    def boot_event_subscribers
      pending = config.event_subscribers - (@booted_subscribers ||= [])
      pending.each { |s| Events.subscribe(s) }
      @booted_subscribers += pending
      Events.bus.start
      domain = config.domain_event_subscribers - (@booted_domain_subscribers ||= [])
      domain.each { |s| DomainEvents.subscribe(s) }
      @booted_domain_subscribers += domain
      DomainEvents.start
    end

    def reset_config!
      @config = nil
    end

    # Applies the section of environment of a tasker.yml (see ConfigFile) to TaskerCore.config;
    # relative template paths are taken from root.
    def load_config(path, environment: config.environment, root: File.dirname(File.dirname(File.expand_path(path))))
      ConfigFile.apply(config, ConfigFile.read(path, environment: environment), root: root)
      config.validate! if config.database_url
      config
    end
  end
end

# Under Rails (loaded by Bundler.require after the framework), the Railtie wires the app in.
require_relative "tasker_core/railtie" if defined?(Rails::Railtie)
