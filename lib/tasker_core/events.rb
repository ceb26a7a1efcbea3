# frozen_string_literal: true

require_relative "events/catalog"
require_relative "events/bus"
require_relative "events/subscribers/base_subscriber"

module TaskerCore
  # Lifecycle events (SPEC 8.1): the catalogue, and subscribers fed by the C core.
  #
  #   class Alerts < TaskerCore::Events::Subscribers::BaseSubscriber
  #     subscribe_to "task.failed", "step.failed"
  #     def handle_task_failed(event) = notify(safe_get(event, :task_name))
  #   end
  #   Alerts.subscribe            # or TaskerCore.config.event_subscribers << Alerts before boot
  #
  # Events reach subscribers on the process's own dispatcher thread, never on a handler thread: a
  # subscriber that raises or is slow never delays or fails a step (see Bus).
  module Events
    class << self
      def catalog = Catalog.catalog
      def event_info(name) = Catalog.event_info(name)
      def task_events = Catalog.names_in("task")
      def step_events = Catalog.names_in("step")
      def workflow_events = Catalog.names_in("workflow")

      def bus
        @bus ||= Bus.new
      end

      # Registers a subscriber (an instance, or a class that is instantiated) and starts delivery.
      def subscribe(subscriber, &block) = bus.subscribe(subscriber, &block)
      def unsubscribe(subscriber) = bus.unsubscribe(subscriber)

      # Counters of the core's feeder and of the Ruby dispatcher.
      def stats = bus.stats

      # Stops delivery and forgets every subscriber (used by TaskerCore.shutdown! and specs).
      def reset!
        @bus&.shutdown
        @bus = nil
      end
    end
  end
end
