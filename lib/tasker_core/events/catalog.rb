# frozen_string_literal: true

module TaskerCore
  module Events
    # SPEC 8.1's system event catalogue, with each event's payload keys.
    module Catalog
      COMMON = %i[event_name category task_uuid task_id task_name task_version namespace named_task_uuid
                  correlation_id parent_correlation_id from_state to_state transition_event transitioned_at
                  timestamp attempt metadata transition_uuid].freeze
      TASK_KEYS = COMMON
      TASK_TERMINAL_KEYS = (COMMON + %i[execution_duration]).freeze
      STEP_KEYS = (COMMON + %i[step_uuid step_id step_name]).freeze
      STEP_FAILURE_KEYS = (STEP_KEYS + %i[error_message exception_class]).freeze

      DEFINITIONS = {
        "task.initialize_requested" => ["pending -> initializing: the engine took the task up", TASK_KEYS],
        "task.start_requested" => ["a start was requested (reserved; the engine initializes at creation)", TASK_KEYS],
        "task.steps_discovery_completed" => ["initializing -> enqueuing_steps: the ready steps are known", TASK_KEYS],
        "task.steps_enqueued" => ["enqueuing_steps -> steps_in_process: ready steps were enqueued", TASK_KEYS],
        "task.step_results_received" => ["steps_in_process -> evaluating_results", TASK_KEYS],
        "task.awaiting_dependencies" => ["-> waiting_for_dependencies", TASK_KEYS],
        "task.dependencies_satisfied" => ["waiting_for_dependencies -> evaluating or enqueuing", TASK_KEYS],
        "task.retry_backoff_started" => ["-> waiting_for_retry: a step waits for its retry", TASK_KEYS],
        "task.blocked_by_failures" => ["-> blocked_by_failures", TASK_KEYS],
        "task.completed" => ["-> complete", TASK_TERMINAL_KEYS],
        "task.failed" => ["-> error", TASK_TERMINAL_KEYS],
        "task.cancelled" => ["-> cancelled", TASK_TERMINAL_KEYS],
        "task.resolved_manually" => ["-> resolved_manually", TASK_TERMINAL_KEYS],
        "task.retry_requested" => ["error / waiting_for_retry -> pending", TASK_KEYS],
        "task.before_transition" => ["reserved: transitions are reported after they persist", TASK_KEYS],
        "task.started" => ["legacy name (reserved); see workflow.task_started", TASK_KEYS],
        "step.initialize_requested" => ["a step was created (-> pending)", STEP_KEYS],
        "step.enqueue_requested" => ["pending -> enqueued: the step is ready", STEP_KEYS],
        "step.execution_requested" => ["enqueued -> in_progress: a worker claimed the step", STEP_KEYS],
        "step.handle" => ["other state -> in_progress", STEP_KEYS],
        "step.before_handle" => ["reserved: handlers run in the worker, not the bus", STEP_KEYS],
        "step.enqueued_for_orchestration" => ["in_progress -> enqueued_for_orchestration (success)", STEP_KEYS],
        "step.enqueued_as_error_for_orchestration" => ["in_progress -> enqueued_as_error_for_orchestration",
                                                        STEP_KEYS],
        "step.retry_requested" => ["-> waiting_for_retry, or error / waiting_for_retry -> pending", STEP_FAILURE_KEYS],
        "step.completed" => ["-> complete", STEP_KEYS],
        "step.failed" => ["-> error", STEP_FAILURE_KEYS],
        "step.cancelled" => ["-> cancelled", STEP_KEYS],
        "step.resolved_manually" => ["-> resolved_manually", STEP_KEYS],
        "step.before_transition" => ["reserved: transitions are reported after they persist", STEP_KEYS],
        "step.result_submitted" => ["a worker submitted the step's result", STEP_KEYS],
        "step.discovery_triggered" => ["reserved", STEP_KEYS],
        "workflow.task_started" => ["the task started (with task.initialize_requested)", TASK_KEYS],
        "workflow.task_completed" => ["the task completed (with task.completed)", TASK_TERMINAL_KEYS],
        "workflow.task_failed" => ["the task failed (with task.failed)", TASK_TERMINAL_KEYS],
        "workflow.step_completed" => ["a step completed (with step.completed)", STEP_KEYS],
        "workflow.step_failed" => ["a step failed (with step.failed)", STEP_FAILURE_KEYS],
        "workflow.viable_steps_discovered" => ["a step became ready (with step.enqueue_requested)", STEP_KEYS],
        "workflow.no_viable_steps" => ["no step is ready (with task.awaiting_dependencies)", TASK_KEYS],
        "workflow.orchestration_requested" => ["reserved", TASK_KEYS]
      }.freeze

      class << self
        def catalog
          @catalog ||= DEFINITIONS.to_h { |name, _| [name, event_info(name)] }.freeze
        end

        def event_info(name)
          name = name.to_s
          description, keys = DEFINITIONS.fetch(name) do
            raise TaskerCore::Errors::ValidationError, "event name is not in the catalog: #{name.inspect}"
          end
          {name: name, category: name.split(".").first, description: description, payload_keys: keys}.freeze
        end

        def names_in(category) = DEFINITIONS.keys.select { |n| n.start_with?("#{category}.") }.freeze
      end
    end
  end
end
