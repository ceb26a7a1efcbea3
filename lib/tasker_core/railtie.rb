# frozen_string_literal: true

require "rails/railtie"

module TaskerCore
  # Wires tasker_core into a Rails app (loaded only when Rails is; the gem does not depend on it):
  #
  # - settings from config/tasker.yml (the Rails.env section, ERB, ${VAR:-default});
  # - the app's database (ActiveRecord's connection config) unless tasker.yml's database_url or
  #   TASKER_DATABASE_URL says otherwise;
  # - create_task inside an open ActiveRecord transaction joins it (config.tasker.join_transactions,
  #   :auto: when the engine's database is the app's; true; false);
  # - templates from config/tasker/tasks/, handlers autoloaded from app/tasks/ (Zeitwerk); every
  #   handler runs inside the app's reloader, so code and templates reload in development;
  # - Rails.logger for the Ruby side's log;
  # - the event subscribers of app/subscribers/, registered in a process when it starts a worker;
  # - seed 002's Tasker:: API (require "tasker") on the first reference to Tasker, or at boot with
  #   config.tasker.legacy_api = true;
  # - rake tasks tasker:install, tasker:migrate, tasker:worker.
  class Railtie < ::Rails::Railtie
    config.tasker = ActiveSupport::OrderedOptions.new
    config.tasker.config_file = "config/tasker.yml"
    config.tasker.template_paths = ["config/tasker/tasks"]
    config.tasker.subscriber_paths = ["app/subscribers"]
    config.tasker.join_transactions = :auto
    # Seed 002's Tasker:: API (lib/tasker.rb): loaded on the first reference to Tasker (autoload),
    # or at boot with config.tasker.legacy_api = true.
    config.tasker.legacy_api = false

    initializer "tasker_core.legacy_api" do |app|
      Object.autoload(:Tasker, File.expand_path("../tasker", __dir__)) unless Object.const_defined?(:Tasker, false)
      require_relative "../tasker" if app.config.tasker.legacy_api
    end

    initializer "tasker_core.configure", before: :load_config_initializers do |app|
      Railtie.configure(app)
    end

    initializer "tasker_core.watch_templates" do |app|
      TaskerCore.config.template_paths.each do |dir|
        app.config.watchable_dirs[dir.to_s] = %w[yml yaml] if File.directory?(dir)
      end
    end

    config.to_prepare { TaskerCore::Railtie.reload_templates }

    rake_tasks { load File.expand_path("tasks/tasker.rake", __dir__) }

    class << self
      def configure(app)
        config = TaskerCore.config
        config.environment = ENV["TASKER_ENV"] || ::Rails.env.to_s
        config.logger = ::Rails.logger if ::Rails.logger
        config.template_paths = app.config.tasker.template_paths.map { |p| app.root.join(p).to_s }
        from_file = load_file(app)
        if from_file.key?("database_url") || ENV["TASKER_DATABASE_URL"]
          config.active_record_database_url = begin
            active_record_database_url
          rescue Errors::ConfigurationError
            nil # the app's database is not PostgreSQL: nothing to join
          end
        else
          url = active_record_database_url
          config.database_url = url if url
          config.active_record_database_url = url
        end
        config.join_transactions = join_transactions(app)
        config.wrap_handlers { |&block| app.reloader.wrap(&block) }
        config
      end

      # config.tasker.join_transactions: :auto (the default), true or false.
      def join_transactions(app)
        value = app.config.tasker.join_transactions
        value = value.to_sym if value.is_a?(String) && value == "auto"
        return value if [:auto, true, false].include?(value)

        raise Errors::ConfigurationError,
              "config.tasker.join_transactions must be :auto, true or false (got #{value.inspect})"
      end

      def load_file(app)
        path = app.root.join(app.config.tasker.config_file).to_s
        return {} unless File.file?(path)

        settings = ConfigFile.read(path, environment: ::Rails.env.to_s)
        ConfigFile.apply(TaskerCore.config, settings, root: app.root.to_s)
        settings
      end

      # The app's database as a libpq URL, from ActiveRecord's configuration of this environment;
      # nil without ActiveRecord. Raises ConfigurationError for a database that is not PostgreSQL.
      def active_record_database_url
        return nil unless defined?(::ActiveRecord::Base)

        configs = ::ActiveRecord::Base.configurations
        db = configs.configs_for(env_name: ::Rails.env.to_s, name: "primary") ||
             configs.configs_for(env_name: ::Rails.env.to_s).first
        return nil unless db

        hash = db.configuration_hash.dup
        hash[:url] = db.url if db.respond_to?(:url) && db.url
        DatabaseUrl.from_config(hash)
      end

      # In development the reloader runs this after a template or handler changed: a process that
      # uses the engine (a worker, or a server that created tasks) registers the templates again,
      # so the next task follows the edited template. Never at boot, which must not need the
      # database (assets:precompile, db:create).
      def reload_templates
        return unless Worker.running? || FFI.running?

        Templates.load(TaskerCore.config.template_paths)
      rescue Errors::Error => e
        TaskerCore.config.logger.error("tasker_core: templates not reloaded: #{e.message}")
      end

      # Starts the worker inside this server process (Puma's worker after fork, or a single-mode
      # server), with tasker.yml's worker settings; false when worker.in_process is false.
      def start_in_process_worker(**overrides)
        options = TaskerCore.config.worker_options.merge(overrides)
        return false if options.delete(:in_process) == false
        return true if Worker.running?

        register_subscribers
        Worker.start(**options)
        TaskerCore.config.logger.info("tasker_core: in-process worker serving #{Worker.current.namespaces.join(', ')} " \
                                      "in pid #{Process.pid}")
        true
      end

      # The app's lifecycle event subscribers: every BaseSubscriber subclass defined under
      # config.tasker.subscriber_paths (app/subscribers/, where tasker:subscriber writes) that
      # subscribes to something. A process registers them when it starts a worker (tasker:worker,
      # `tasker worker` in the app, plugin :tasker), so each process running a worker delivers the
      # events on its dispatcher thread; other processes (a server that only creates tasks, a console,
      # rake tasks) deliver none. They go into TaskerCore.config.event_subscribers, which
      # TaskerCore.boot! registers, and are registered at once when the engine already runs.
      def register_subscribers(app = ::Rails.application)
        subscribers = TaskerCore.config.event_subscribers
        subscribers.concat(subscriber_classes(app) - subscribers)
        TaskerCore.boot_event_subscribers if FFI.running?
        subscribers
      end

      def subscriber_classes(app)
        dirs = app.config.tasker.subscriber_paths.map { |p| app.root.join(p).to_s }.select { |d| File.directory?(d) }
        return [] if dirs.empty?

        dirs.each { |dir| ::Rails.autoloaders.main.eager_load_dir(dir) }
        ObjectSpace.each_object(Class).select do |klass|
          next false unless klass < Events::Subscribers::BaseSubscriber && klass.name && klass.subscribed_events.any?

          file = Object.const_source_location(klass.name)&.first
          file && dirs.any? { |dir| file.start_with?("#{dir}/") } && Object.const_get(klass.name).equal?(klass)
        end.sort_by(&:name)
      end

      def stop_in_process_worker(timeout: 30)
        Worker.stop(timeout: timeout) if Worker.running?
      end
    end
  end
end
