# frozen_string_literal: true

module Tasker
  # Seed 002's event catalogue and subscribers, on the engine's (TaskerCore::Events): the same
  # events, from the same persisted transitions, delivered on the process's dispatcher thread.
  #
  #   Tasker::Events.catalog.keys                 # every event name
  #   Tasker::Events.event_info("task.completed") # { name:, category:, description:, payload_keys: }
  #   Tasker::Events.task_events.keys             # step_events, workflow_events
  module Events
    class << self
      def catalog = TaskerCore::Events.catalog
      def event_info(name) = TaskerCore::Events.event_info(name)
      def task_events = in_category("task")
      def step_events = in_category("step")
      def workflow_events = in_category("workflow")

      private

      def in_category(category) = catalog.select { |_, info| info[:category] == category }
    end

    module Subscribers
      # Seed 002's subscriber: subscribe_to names events, event x.y arrives at handle_x_y(event),
      # safe_get(event, :key, default) reads the payload (task_id, task_name, execution_duration,
      # step_id, step_name, error_message, exception_class, ...). A task.failed event also carries
      # the error_message and exception_class of the step whose failure ended the task.
      #
      # Registered like the engine's subscribers: under Rails, every subscriber in app/subscribers
      # in each process that runs a worker; elsewhere NotificationSubscriber.subscribe (or list the
      # class in TaskerCore.config.event_subscribers before the worker starts).
      class BaseSubscriber < TaskerCore::Events::Subscribers::BaseSubscriber
        class << self
          # subscribe (seed 002 passed the publisher: it is accepted and not needed).
          def subscribe(_publisher = nil) = TaskerCore::Events.subscribe(new)
        end

        def call(event)
          super(with_task_failure(event))
        end

        private

        def with_task_failure(event)
          name = event[:event_name] || event["event_name"]
          return event unless name.to_s == "task.failed" && event[:error_message].nil? && event["error_message"].nil?

          failed = failed_step(event[:task_uuid] || event["task_uuid"])
          return event unless failed

          error = failed.dig("results", "error") || {}
          event.to_h.merge(error_message: error["message"], exception_class: error["exception_class"] || error["error_type"],
                           failed_step_name: failed["name"]).freeze
        rescue TaskerCore::Errors::Error
          event
        end

        def failed_step(task_uuid)
          return nil unless task_uuid

          TaskerCore::Client.list_task_steps(task_uuid).find { |s| s["current_state"] == "error" }
        end
      end
    end
  end
end
