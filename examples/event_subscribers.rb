# frozen_string_literal: true

# Two lifecycle event subscribers written for docs/events.md: one feeds a metrics client
# (StatsD-style), one reports failures to an error tracker (Sentry-style). Neither library is a
# dependency: each subscriber takes its client as an argument, and anything answering the few
# methods used here will do (spec/integration/events_docs_spec.rb passes plain recorders).

# Counts finished tasks and steps and times tasks, tagged by namespace and task name.
#   statsd = Datadog::Statsd.new("localhost", 8125)   # or any object with increment / histogram
#   MetricsSubscriber.new(statsd).then { |s| TaskerCore::Events.subscribe(s) }
class MetricsSubscriber < TaskerCore::Events::Subscribers::BaseSubscriber
  subscribe_to "task.completed", "task.failed", "step.completed", "step.failed", "step.retry_requested"

  def initialize(client)
    super()
    @client = client
  end

  def handle_task_completed(event) = finished_task("completed", event)
  def handle_task_failed(event) = finished_task("failed", event)

  def handle_step_completed(event) = @client.increment("tasker.step.completed", tags: tags(event))
  def handle_step_failed(event) = @client.increment("tasker.step.failed", tags: tags(event))

  def handle_step_retry_requested(event)
    # Emitted twice per retry (-> waiting_for_retry, then -> pending); count the wait only.
    return unless safe_get(event, :to_state) == "waiting_for_retry"

    @client.increment("tasker.step.retried", tags: tags(event))
  end

  private

  def finished_task(outcome, event)
    @client.increment("tasker.task.#{outcome}", tags: tags(event))
    @client.histogram("tasker.task.duration_ms", (safe_get(event, :execution_duration, 0) * 1000).round,
                      tags: tags(event))
  end

  def tags(event)
    ["namespace:#{safe_get(event, :namespace, 'unknown')}", "task:#{safe_get(event, :task_name, 'unknown')}"]
  end
end

# Reports every failed step and task, with the ids needed to find them again.
#   ErrorReportingSubscriber.new(->(message, **context) { Sentry.capture_message(message, extra: context) })
class ErrorReportingSubscriber < TaskerCore::Events::Subscribers::BaseSubscriber
  subscribe_to "step.failed", "task.failed"

  def initialize(reporter)
    super()
    @reporter = reporter
  end

  def handle_step_failed(event)
    @reporter.call("#{safe_get(event, :step_name)} failed: #{safe_get(event, :error_message, 'no message')}",
                   level: :error, exception_class: safe_get(event, :exception_class, "UnknownError"),
                   task_id: safe_get(event, :task_id), step_id: safe_get(event, :step_id),
                   attempt: safe_get(event, :attempt), correlation_id: safe_get(event, :correlation_id))
  end

  def handle_task_failed(event)
    @reporter.call("task #{safe_get(event, :namespace)}/#{safe_get(event, :task_name)} failed",
                   level: :error, task_id: safe_get(event, :task_id),
                   correlation_id: safe_get(event, :correlation_id),
                   execution_duration: safe_get(event, :execution_duration))
  end
end
