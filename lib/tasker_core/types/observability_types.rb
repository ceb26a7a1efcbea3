# frozen_string_literal: true

module TaskerCore
  module Observability
    # The responses of the worker's observability services (SPEC 6.2) as Dry::Struct classes,
    # built from the JSON the core emits with strict types (as TaskerCore::Types::ClientTypes).
    # Keys marked attribute? may be absent; .optional values may be null.
    module Types
      T = TaskerCore::Types
      BaseStruct = TaskerCore::Types::ClientTypes::BaseStruct
      CHECK_STATUSES = %w[healthy degraded unhealthy].freeze

      Str = T::Strict::String
      Int = T::Strict::Integer
      Num = T::Strict::Float | T::Strict::Integer
      Bool = T::Strict::Bool
      Count = Int.constrained(gteq: 0)

      class BasicHealth < BaseStruct
        attribute :status, Str.enum("healthy", "alive")
        attribute :worker_id, Str
        attribute :timestamp, Str
      end

      class HealthCheck < BaseStruct
        attribute :status, Str.enum(*CHECK_STATUSES)
        attribute? :message, Str.optional
        attribute :duration_ms, Num
        attribute :last_checked, Str
      end

      class PoolUtilization < BaseStruct
        attribute :max_connections, Count
        attribute :open_connections, Count
        attribute :idle_connections, Count
        attribute :in_use, Int
        attribute :utilization_percent, Num
      end

      class WorkerSystemInfo < BaseStruct
        attribute :version, Str
        attribute :environment, Str
        attribute :uptime_seconds, Count
        attribute :worker_type, Str
        attribute :database_pool_size, Count
        attribute :command_processor_active, Bool
        attribute :supported_namespaces, T::Strict::Array.of(Str)
        attribute? :pool_utilization, PoolUtilization.optional
      end

      class DetailedHealth < BaseStruct
        attribute :status, Str.enum("ready", "not_ready", "healthy", "degraded")
        attribute :timestamp, Str
        attribute :worker_id, Str
        attribute :checks, T::Strict::Hash.map(T::Coercible::Symbol, HealthCheck)
        attribute :system_info, WorkerSystemInfo
      end

      class Metric < BaseStruct
        attribute :value, Num
        attribute :metric_type, Str.enum("counter", "gauge", "histogram")
        attribute :labels, T::Strict::Hash.map(T::Coercible::Symbol, Str)
        attribute :help, Str
      end

      class MetricsResponse < BaseStruct
        attribute :metrics, T::Strict::Hash.map(T::Coercible::Symbol, Metric)
        attribute :timestamp, Str
        attribute :worker_id, Str
      end

      class RouterStats < BaseStruct
        %i[total_routed durable_routed fast_routed broadcast_routed fast_delivery_errors routing_errors].each do |k|
          attribute k, Count
        end
      end

      class InProcessBusStats < BaseStruct
        %i[total_events_dispatched rust_handler_dispatches ffi_channel_dispatches rust_handler_errors
           ffi_channel_drops rust_subscriber_patterns rust_handler_count ffi_subscriber_count].each do |k|
          attribute k, Count
        end
      end

      class OutboxStats < BaseStruct
        %i[total delivered pending lifecycle domain].each { |k| attribute k, Count }
        attribute? :durable, Count
        attribute? :broadcast, Count
      end

      class DomainEventStats < BaseStruct
        attribute :router, RouterStats
        attribute :in_process_bus, InProcessBusStats
        attribute? :outbox, OutboxStats
        # This process's domain event counters (TaskerCore::DomainEvents.stats without the bus state).
        attribute? :domain, T::Strict::Hash.map(T::Coercible::Symbol, Count)
        attribute :captured_at, Str
        attribute :worker_id, Str
      end

      class CacheStats < BaseStruct
        attribute :total_cached, Count
        attribute :cache_hits, Count
        attribute :cache_misses, Count
        attribute :cache_evictions, Count
        attribute :oldest_entry_age_seconds, Count
        attribute :average_access_count, Num
        attribute :supported_namespaces, T::Strict::Array.of(Str)
        attribute :total_entries, Count
        attribute :hits, Count
        attribute :misses, Count
        attribute :evictions, Count
        attribute :last_maintenance, Str.optional
      end

      class TemplateSummary < BaseStruct
        attribute :named_task_uuid, Str
        attribute :namespace_name, Str
        attribute :name, Str
        attribute :version, Str
        attribute? :description, Str.optional
        attribute :step_count, Count
        attribute :active_tasks, Count
        attribute :registered_at, Str
        attribute :updated_at, Str
      end

      class TemplateListResponse < BaseStruct
        attribute :supported_namespaces, T::Strict::Array.of(Str)
        attribute :template_count, Count
        attribute? :templates, T::Strict::Array.of(TemplateSummary)
        attribute? :cache_stats, CacheStats.optional
        attribute :worker_capabilities, T::Strict::Array.of(Str)
      end

      class HandlerMetadata < BaseStruct
        attribute :namespace, Str
        attribute :name, Str
        attribute :version, Str
        attribute :handler_class, Str
        attribute? :config_schema, T::Strict::Hash.optional
        attribute? :default_dependent_system, Str.optional
        attribute :registered_at, Str
      end

      class ResolvedTemplate < BaseStruct
        attribute :template, T::Strict::Hash
        attribute :environment, Str
        attribute :resolved_at, Str
      end

      class TemplateResponse < BaseStruct
        attribute :template, ResolvedTemplate
        attribute :handler_metadata, HandlerMetadata
        attribute :cached, Bool
        attribute? :cache_age_seconds, Count.optional
        attribute? :access_count, Count.optional
      end

      # The union of the reference's wire fields and its Ruby struct (SPEC 6.2).
      class TemplateValidation < BaseStruct
        attribute :valid, Bool
        attribute :namespace, Str
        attribute :name, Str
        attribute :version, Str
        attribute :handler_count, Count
        attribute :issues, T::Strict::Array.of(Str)
        attribute :errors, T::Strict::Array.of(Str)
        attribute :required_capabilities, T::Strict::Array.of(Str)
        attribute :step_handlers, T::Strict::Array.of(Str)
        attribute? :handler_metadata, HandlerMetadata.optional
      end

      class CacheOperationResult < BaseStruct
        attribute :success, Bool
        attribute :message, Str
        attribute :timestamp, Str
        attribute? :operation, Str.enum("clear", "maintain", "refresh")
        attribute? :cache_stats, CacheStats.optional
      end

      class ConfigMetadata < BaseStruct
        attribute :timestamp, Str
        attribute :source, Str
        attribute :redacted_fields, T::Strict::Array.of(Str)
      end

      class RuntimeConfig < BaseStruct
        attribute :environment, Str
        attribute :common, T::Strict::Hash
        attribute :worker, T::Strict::Hash
        attribute :metadata, ConfigMetadata
      end
    end
  end
end
