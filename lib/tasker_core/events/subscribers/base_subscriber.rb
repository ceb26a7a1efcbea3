# frozen_string_literal: true

module TaskerCore
  module Events
    module Subscribers
      # The seed's subscriber pattern:
      #
      #   class MetricsSubscriber < TaskerCore::Events::Subscribers::BaseSubscriber
      #     subscribe_to "task.completed", "step.*"
      #     def handle_task_completed(event) = ...        # routed from "task.completed"
      #     def handle_event(name, event) = ...           # anything without its own handle_x_y
      #   end
      #   MetricsSubscriber.subscribe                     # at run time, or list it in
      #                                                   # TaskerCore.config.event_subscribers (boot)
      class BaseSubscriber
        class << self
          # Declares the events (catalog names or wildcards "task.*", "*") this class receives.
          def subscribe_to(*names)
            names = names.flatten.map(&:to_s)
            names.each { |n| Bus.matcher(n) }
            @subscribed_events = (subscribed_events + names).uniq.freeze
          end

          def subscribed_events
            @subscribed_events || (superclass.respond_to?(:subscribed_events) ? superclass.subscribed_events : [])
          end

          # Registers a new instance with the event bus and returns it.
          def subscribe(*args, **kwargs) = TaskerCore::Events.subscribe(new(*args, **kwargs))
        end

        def subscribed_events = self.class.subscribed_events

        def subscribed_to?(name)
          @matchers ||= subscribed_events.map { |p| Bus.matcher(p) }
          @matchers.any? { |m| m.match?(name) }
        end

        # Routes "x.y" to handle_x_y(event), else handle_event(name, event).
        def call(event)
          name = event[:event_name] || event["event_name"]
          method = "handle_#{name.to_s.tr('.', '_')}"
          respond_to?(method) ? public_send(method, event) : handle_event(name, event)
        end

        # Receives subscribed events without a handle_x_y method of their own.
        def handle_event(_name, _event) = nil

        # Reads a payload key by symbol or string; default when absent or nil.
        def safe_get(event, key, default = nil)
          return default unless event.respond_to?(:[])

          value = event[key.to_sym] if event.respond_to?(:key?) && event.key?(key.to_sym)
          value = event[key.to_s] if value.nil? && event.respond_to?(:key?) && event.key?(key.to_s)
          value.nil? ? default : value
        rescue StandardError
          default
        end
      end
    end
  end
end
