# frozen_string_literal: true

require "puma/plugin"

# `plugin :tasker` in config/puma.rb runs a tasker_core worker inside the app server: in cluster
# mode one in each Puma worker process, started after the fork (never in the master, whose engine
# threads would not survive the fork); in single mode one in the server process once it booted.
# config/tasker.yml's worker section configures it (worker.in_process: false turns it off).
Puma::Plugin.create do
  def config(dsl)
    boot = dsl.respond_to?(:before_worker_boot) ? :before_worker_boot : :on_worker_boot
    shutdown = dsl.respond_to?(:before_worker_shutdown) ? :before_worker_shutdown : :on_worker_shutdown
    dsl.public_send(boot) do
      # Without preload_app! the worker has not loaded the app yet: load it now (Puma's own load
      # of config.ru then finds it loaded).
      require File.expand_path("config/environment", Dir.pwd) unless defined?(TaskerCore::Railtie)
      TaskerCore::Railtie.start_in_process_worker
    end
    dsl.public_send(shutdown) { TaskerCore::Railtie.stop_in_process_worker if defined?(TaskerCore::Railtie) }
  end

  def start(launcher)
    return if launcher.options[:workers].to_i.positive?

    events = launcher.events
    booted = events.respond_to?(:after_booted) ? :after_booted : :on_booted
    stopped = events.respond_to?(:after_stopped) ? :after_stopped : :on_stopped
    events.public_send(booted) { TaskerCore::Railtie.start_in_process_worker }
    events.public_send(stopped) { TaskerCore::Railtie.stop_in_process_worker }
  end
end
