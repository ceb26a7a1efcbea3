# frozen_string_literal: true

module TaskerCore
  module Types
    # The responses of TaskerCore::Client (seed 000, SPEC 5) as Dry::Struct classes. They are built
    # from the plain Hashes the engine returns (string keys, symbolized on the way in) with strict
    # types: a value of the wrong type is a schema mismatch, never a silent coercion. Keys marked
    # optional (attribute?) may be absent; fields typed .optional may be nil.
    module ClientTypes
      UUID_FORMAT = /\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/.freeze

      # SPEC 2.1 and 2.3.
      TASK_STATES = %w[pending initializing enqueuing_steps steps_in_process evaluating_results
                       waiting_for_dependencies waiting_for_retry blocked_by_failures
                       complete error cancelled resolved_manually].freeze
      # The states a task ends in (wait_for_task returns then), and the others.
      TERMINAL_TASK_STATES = %w[complete error cancelled resolved_manually].freeze
      UNFINISHED_TASK_STATES = (TASK_STATES - TERMINAL_TASK_STATES).freeze
      STEP_STATES = %w[pending enqueued in_progress enqueued_for_orchestration enqueued_as_error_for_orchestration
                       waiting_for_retry complete error cancelled resolved_manually].freeze
      # SPEC 2.9.
      EXECUTION_STATUSES = %w[has_ready_steps processing blocked_by_failures all_complete waiting_for_dependencies].freeze
      RECOMMENDED_ACTIONS = %w[execute_ready_steps wait_for_completion handle_failures finalize_task
                               wait_for_dependencies].freeze
      HEALTH_STATUSES = %w[healthy recovering blocked].freeze

      Uuid = Types::Strict::String.constrained(format: UUID_FORMAT)
      # Naive ISO-8601 in UTC, as PostgreSQL writes a timestamp without time zone.
      Timestamp = Types::Strict::String
      TaskStatus = Types::Strict::String.enum(*TASK_STATES)
      StepState = Types::Strict::String.enum(*STEP_STATES)
      Count = Types::Strict::Integer.constrained(gteq: 0)

      # Every response struct: keys symbolized on construction, and read access by String or Symbol
      # key as well as by method, so code written against the plain Hashes keeps working
      # (task["status"], step.dig("results", "result"), expect(task).to include("status" => ...)).
      class BaseStruct < Dry::Struct
        transform_keys(&:to_sym)

        # The attribute's value; nil for a key that is not an attribute or was absent (like a Hash).
        def [](key)
          name = key.to_sym
          self.class.has_attribute?(name) ? attributes[name] : nil
        end

        def key?(key)
          attributes.key?(key.to_sym)
        end
        alias has_key? key?

        def fetch(key, *default)
          return self[key] if key?(key)
          return yield(key) if block_given?
          return default.first unless default.empty?

          raise KeyError, "key not found: #{key.inspect}"
        end

        def dig(key, *rest)
          value = self[key]
          rest.empty? || value.nil? ? value : value.dig(*rest)
        end

        # With a Hash: whether every pair is present with an equal value; else whether the key is.
        def include?(item)
          return key?(item) unless item.is_a?(::Hash)

          item.all? { |k, v| key?(k) && self[k] == v }
        end
      end

      # SPEC 2.7: a step's readiness, as listed in a TaskResponse's steps.
      class StepReadiness < BaseStruct
        attribute :workflow_step_uuid, Uuid
        attribute :task_uuid, Uuid
        attribute? :named_step_uuid, Uuid.optional # steps are not shared across templates here: nil
        attribute :name, Types::Strict::String
        attribute :current_state, StepState
        attribute :dependencies_satisfied, Types::Strict::Bool
        attribute :retry_eligible, Types::Strict::Bool
        attribute :ready_for_execution, Types::Strict::Bool
        attribute :last_failure_at, Timestamp.optional
        attribute :next_retry_at, Timestamp.optional
        attribute :total_parents, Count
        attribute :completed_parents, Count
        attribute :attempts, Count
        attribute :max_attempts, Count
        attribute :backoff_request_seconds, Types::Strict::Integer.optional
        attribute :last_attempted_at, Timestamp.optional
      end

      # A task with its execution summary (SPEC 2.9) and, from get_task and create_task, its steps.
      class TaskResponse < BaseStruct
        attribute :task_uuid, Uuid
        attribute :name, Types::Strict::String
        attribute :namespace, Types::Strict::String
        attribute :version, Types::Strict::String
        attribute :status, TaskStatus
        attribute :created_at, Timestamp
        attribute :updated_at, Timestamp
        attribute? :completed_at, Timestamp.optional
        attribute :context, Types::Strict::Hash
        attribute :initiator, Types::Strict::String.optional
        attribute :source_system, Types::Strict::String.optional
        attribute :reason, Types::Strict::String.optional
        attribute? :priority, Types::Strict::Integer.optional
        attribute? :tags, Types::Strict::Array.of(Types::Strict::String).optional
        attribute :correlation_id, Uuid
        attribute? :parent_correlation_id, Uuid.optional
        attribute :total_steps, Count
        attribute :pending_steps, Count
        attribute :in_progress_steps, Count
        attribute :completed_steps, Count
        attribute :failed_steps, Count
        attribute :ready_steps, Count
        attribute :execution_status, Types::Strict::String.enum(*EXECUTION_STATUSES)
        attribute :recommended_action, Types::Strict::String.enum(*RECOMMENDED_ACTIONS)
        attribute :completion_percentage, Types::Strict::Float.constrained(gteq: 0, lteq: 100)
        attribute :health_status, Types::Strict::String.enum(*HEALTH_STATUSES)
        attribute :steps, Types::Strict::Array.of(StepReadiness).default([].freeze)
        # create_task only: false when a task with the same identity (idempotency key, or the
        # template's identity strategy) already existed and is returned instead of a new one.
        attribute? :created, Types::Strict::Bool
        attribute? :step_count, Count
      end

      class PaginationInfo < BaseStruct
        attribute :page, Types::Strict::Integer.constrained(gteq: 1)
        attribute :per_page, Types::Strict::Integer.constrained(gteq: 1)
        # nil when the page was listed with_total: false (nothing counted the matching tasks).
        attribute :total_count, Count.optional
        attribute :total_pages, Count.optional
        attribute :has_next, Types::Strict::Bool
        attribute :has_previous, Types::Strict::Bool
        # The cursor of the next page for Client.list_tasks_after (nil on the last page).
        attribute? :next_cursor, Types::Strict::String.optional
      end

      # A page of tasks (newest first); each task has its summary but no steps.
      class TaskListResponse < BaseStruct
        attribute :tasks, Types::Strict::Array.of(TaskResponse)
        attribute :pagination, PaginationInfo
      end

      # A page of Client.list_tasks_after (keyset pagination): next_cursor is nil on the last page.
      class TaskPage < BaseStruct
        attribute :tasks, Types::Strict::Array.of(TaskResponse)
        attribute :per_page, Types::Strict::Integer.constrained(gteq: 1)
        attribute :has_next, Types::Strict::Bool
        attribute :next_cursor, Types::Strict::String.optional
      end

      class StepResponse < BaseStruct
        attribute :step_uuid, Uuid
        attribute :task_uuid, Uuid
        attribute :name, Types::Strict::String
        attribute :created_at, Timestamp
        attribute :updated_at, Timestamp
        attribute? :completed_at, Timestamp.optional
        attribute? :results, Types::Strict::Hash.optional # the result envelope of the last execution
        attribute :current_state, StepState
        attribute :dependencies_satisfied, Types::Strict::Bool
        attribute :retry_eligible, Types::Strict::Bool
        attribute :ready_for_execution, Types::Strict::Bool
        attribute :total_parents, Count
        attribute :completed_parents, Count
        attribute :attempts, Count
        attribute :max_attempts, Count
        attribute? :last_failure_at, Timestamp.optional
        attribute? :next_retry_at, Timestamp.optional
        attribute? :last_attempted_at, Timestamp.optional
        # Beyond SPEC 5: the step's type, handler and the names of its parents (the DAG).
        attribute? :step_type, Types::Strict::String
        attribute? :handler_callable, Types::Strict::String
        attribute? :parents, Types::Strict::Array.of(Types::Strict::String)
      end

      # One entry of a step's history: a transition, with the worker result it recorded if any.
      class StepAuditResponse < BaseStruct
        attribute :audit_uuid, Uuid
        attribute :workflow_step_uuid, Uuid
        attribute :transition_uuid, Uuid.optional # nil for a result refused for a stale claim
        attribute :task_uuid, Uuid
        attribute :recorded_at, Timestamp
        attribute? :worker_uuid, Uuid.optional
        attribute? :correlation_id, Uuid.optional
        attribute :success, Types::Strict::Bool
        attribute? :execution_time_ms, Types::Strict::Integer.optional
        attribute? :result, Types::Strict::Hash.optional
        attribute :step_name, Types::Strict::String
        attribute? :from_state, StepState.optional
        attribute :to_state, StepState
        # Beyond SPEC 5: the transition's event and attempt, whether the result was applied, and
        # the transition's metadata (operator, reason, error, retry delay).
        attribute? :event, Types::Strict::String
        attribute? :attempt, Types::Strict::Integer.optional
        attribute? :applied, Types::Strict::Bool
        attribute? :metadata, Types::Strict::Hash
      end

      # SPEC 5's decision over the reference's quirk: healthy is the answer, the rest explains it.
      class HealthResponse < BaseStruct
        attribute :healthy, Types::Strict::Bool
        attribute? :status, Types::Strict::String.enum("healthy", "unhealthy")
        attribute? :timestamp, Timestamp
        attribute? :database_connected, Types::Strict::Bool
        attribute? :response_time_ms, Types::Strict::Float
        attribute? :schema_version, Types::Strict::Integer
        attribute? :expected_schema_version, Types::Strict::Integer
        attribute? :error, Types::Strict::String
      end
    end

    ClientTaskResponse = ClientTypes::TaskResponse
    ClientTaskListResponse = ClientTypes::TaskListResponse
    ClientPaginationInfo = ClientTypes::PaginationInfo
    ClientStepReadiness = ClientTypes::StepReadiness
    ClientStepResponse = ClientTypes::StepResponse
    ClientStepAuditResponse = ClientTypes::StepAuditResponse
    ClientHealthResponse = ClientTypes::HealthResponse
  end
end

require "monitor"
require_relative "fast_load"
