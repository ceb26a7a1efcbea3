# frozen_string_literal: true

require "json"

module TaskerCore
  # The worker's health, metrics, templates and configuration from Ruby (SPEC 6.4): the same
  # services the worker's web server answers, without HTTP. Needs a worker started in this process
  # (TaskerCore::Worker.start); otherwise the FFI raises WorkerStoppedError "Worker system not
  # running", and ready? / alive? answer false.
  #
  #   TaskerCore::Observability.ready?            # => true
  #   TaskerCore::Observability.health_detailed.checks[:database].status # => "healthy"
  module Observability
    READY_STATUSES = %w[ready healthy].freeze

    class << self
      def health_basic = Types::BasicHealth.new(parse(FFI.health_basic))
      def health_live = Types::BasicHealth.new(parse(FFI.health_live))
      def health_ready = Types::DetailedHealth.new(parse(FFI.health_ready))
      def health_detailed = Types::DetailedHealth.new(parse(FFI.health_detailed))

      # Whether the worker can take work: database reachable, claimer running, queues not flooded.
      # False on any error (no worker, engine not booted).
      def ready?
        READY_STATUSES.include?(health_ready.status)
      rescue StandardError
        false
      end

      def alive?
        health_live.status == "alive"
      rescue StandardError
        false
      end

      # JSON string (MetricsResponse).
      def metrics_worker = FFI.metrics_worker
      def metrics = Types::MetricsResponse.new(parse(FFI.metrics_worker))
      def event_stats = Types::DomainEventStats.new(parse(FFI.metrics_events))
      # Prometheus text exposition format (what GET /metrics serves).
      def prometheus_metrics = FFI.metrics_prometheus

      # JSON string (TemplateListResponse).
      def templates_list(include_cache_stats: false) = FFI.templates_list(include_cache_stats)

      # JSON string (TemplateResponse); NotFoundError for an unknown template.
      def template_get(namespace:, name:, version:) = FFI.template_get(namespace.to_s, name.to_s, version.to_s)

      # The core's checks (the template normalizes: DAG, step types, handler names) plus whether
      # every step handler resolves to a class in this process.
      def template_validate(namespace:, name:, version:)
        data = parse(FFI.template_validate(namespace.to_s, name.to_s, version.to_s))
        unresolved = data["step_handlers"].filter_map do |callable|
          HandlerRegistry.resolve(callable)
          nil
        rescue Errors::ConfigurationError => e
          e.message
        end
        unless unresolved.empty?
          data["errors"] += unresolved
          data["issues"] += unresolved
          data["valid"] = false
        end
        Types::TemplateValidation.new(data)
      end

      def cache_stats = Types::CacheStats.new(parse(FFI.templates_cache_stats))
      def cache_clear = Types::CacheOperationResult.new(parse(FFI.templates_cache_clear))

      # Never raises for a template that cannot be read: success false with the reason.
      def template_refresh(namespace:, name:, version:)
        Types::CacheOperationResult.new(parse(FFI.template_refresh(namespace.to_s, name.to_s, version.to_s)))
      end

      # The effective configuration with every secret redacted (RuntimeConfig).
      def config = Types::RuntimeConfig.new(parse(FFI.config_runtime))
      def environment = FFI.config_environment

      private

      def parse(json) = JSON.parse(json)
    end
  end
end
