# frozen_string_literal: true

module TaskerCore
  # Operator actions on steps, after which the task re-evaluates (a task in error reopens).
  module Client
    STEP_ACTIONS = %w[reset_for_retry resolve_manually complete_manually].freeze

    module_function

    # Blocks (without holding the GVL, and without polling) until the task reaches a terminal state,
    # then returns the task as get_task does (a TaskResponse), or nil after timeout seconds.
    def wait_for_task(task_uuid, timeout: 30)
      wait_for_task_status(task_uuid, timeout: timeout) && get_task(task_uuid)
    end

    # wait_for_task without the final read: returns the terminal state ("complete", "error",
    # "cancelled", "resolved_manually") as a String, or nil after timeout seconds.
    def wait_for_task_status(task_uuid, timeout: 30)
      TaskerCore.boot!
      FFI.wait_for_task(task_uuid, timeout)
    end

    # The generic form (the reference's PATCH .../workflow_steps/{step_uuid}).
    def update_step(task_uuid, step_uuid, action_type:, reason: nil, performed_by: nil, result: nil, metadata: nil)
      unless STEP_ACTIONS.include?(action_type.to_s)
        raise Errors::ValidationError.new("action_type must be one of #{STEP_ACTIONS.join(', ')} (got #{action_type.inspect})",
                                          field: "action_type")
      end

      TaskerCore.boot!
      details = { "reason" => reason, "performed_by" => performed_by, "metadata" => PlainData.call(metadata) }.compact
      details["result"] = PlainData.call(result) if action_type.to_s == "complete_manually"
      FFI.client_update_step(task_uuid, step_uuid, action_type.to_s, details)
    end

    # A step in error runs again from its first attempt.
    def reset_step_for_retry(task_uuid, step_uuid, reason: nil, reset_by: nil)
      update_step(task_uuid, step_uuid, action_type: "reset_for_retry", reason: reason, performed_by: reset_by)
    end

    # Marks a step done without a result; its dependents may run.
    def resolve_step_manually(task_uuid, step_uuid, reason: nil, resolved_by: nil)
      update_step(task_uuid, step_uuid, action_type: "resolve_manually", reason: reason, performed_by: resolved_by)
    end

    # Completes a step with an operator-supplied result, which its dependents receive.
    def complete_step_manually(task_uuid, step_uuid, result:, metadata: {}, reason: nil, completed_by: nil)
      update_step(task_uuid, step_uuid, action_type: "complete_manually", result: result, metadata: metadata,
                                        reason: reason, performed_by: completed_by)
    end
  end

  # The dead-letter queue: an investigation log of tasks the staleness detector gave up on.
  module DLQ
    RESOLUTION_STATUSES = %w[pending manually_resolved permanently_failed cancelled].freeze

    module_function

    def list(task_uuid: nil, resolution_status: nil, limit: 50, offset: 0)
      if resolution_status && !RESOLUTION_STATUSES.include?(resolution_status.to_s)
        raise Errors::ValidationError.new("resolution_status must be one of #{RESOLUTION_STATUSES.join(', ')}",
                                          field: "resolution_status")
      end

      TaskerCore.boot!
      FFI.dlq_list(task_uuid, resolution_status&.to_s, limit, offset)
    end

    def update(dlq_entry_uuid, resolution_status: nil, resolution_notes: nil, resolved_by: nil, metadata: nil)
      TaskerCore.boot!
      changes = { "resolution_status" => resolution_status&.to_s, "resolution_notes" => resolution_notes,
                  "resolved_by" => resolved_by, "metadata" => PlainData.call(metadata) }.compact
      FFI.dlq_update(dlq_entry_uuid, changes)
    end

    # Per dlq_reason: [{"dlq_reason", "total_entries", "pending", "manually_resolved",
    # "permanent_failures", "cancelled", "oldest_entry", "newest_entry",
    # "avg_resolution_time_minutes"}] (SPEC 9.2).
    def stats
      TaskerCore.boot!
      FFI.report("dlq_stats", 0, 0)
    end

    # The pending entries, most urgent first: [{"dlq_entry_uuid", "task_uuid", "original_state",
    # "dlq_reason", "dlq_timestamp", "minutes_in_dlq", "namespace_name", "task_name",
    # "current_state", "time_in_state_minutes", "priority_score"}]; priority_score is a base per
    # reason (dependency_cycle_detected 1000, max_retries_exceeded 500, staleness_timeout 100,
    # worker_unavailable 50, else 10) plus the minutes in the DLQ.
    def investigation_queue(limit: 100)
      TaskerCore.boot!
      FFI.report("dlq_investigation_queue", Client.report_int(limit, "limit"), 0)
    end

    # The tasks in an active state, closest to their staleness threshold first: [{"task_uuid",
    # "namespace_name", "task_name", "current_state", "time_in_state_minutes", "task_age_minutes",
    # "staleness_threshold_minutes", "health_status" (healthy < 80 % of the threshold, warning,
    # stale >= 100 %), "priority"}]. threshold_minutes: steps_in_process's threshold where the
    # template sets no lifecycle.max_steps_in_process_minutes (the detector's default, 30).
    def staleness(limit: 100, threshold_minutes: 30)
      TaskerCore.boot!
      FFI.report("dlq_staleness", Client.report_int(limit, "limit"), Client.report_int(threshold_minutes, "threshold_minutes"))
    end

    # Runs the staleness detector once (workers also run it every staleness_check_interval_seconds).
    def detect_stale_tasks(threshold_minutes: 30, max_lifetime_hours: 24, batch_size: 100, dry_run: false)
      TaskerCore.boot!
      FFI.detect_stale_tasks("threshold_minutes" => threshold_minutes, "max_lifetime_hours" => max_lifetime_hours,
                             "batch_size" => batch_size, "dry_run" => dry_run)
    end
  end
end
