# frozen_string_literal: true

module TaskerCore
  module DomainEvents
    # Receives domain events in this process:
    #
    #   class PaymentNotifier < TaskerCore::DomainEvents::BaseSubscriber
    #     subscribes_to "payment.*"
    #     def before_handle(event) = event.business_payload["amount"].to_i > 0   # false skips
    #     def handle(event) = Notifier.paid(event.business_payload)
    #     def on_handle_error(event, error) = Sentry.capture_exception(error)
    #   end
    #   PaymentNotifier.start!      # or list it in TaskerCore.config.domain_event_subscribers
    #
    # fast and broadcast events arrive from the steps of this process's worker; durable ones from
    # the outbox, shared by every process's subscribers (each event reaches one process, at least
    # once). All run on the domain events dispatcher thread: a raising or slow subscriber never
    # delays or fails a step.
    class BaseSubscriber
      class << self
        # Patterns: "payment.processed", "payment.*" or "*" (the default).
        def subscribes_to(*patterns)
          patterns = patterns.flatten.map(&:to_s)
          patterns.each { |p| DomainEvents.matcher(p) }
          @patterns = patterns.freeze
        end

        def patterns
          @patterns || (superclass.respond_to?(:patterns) ? superclass.patterns : ["*"])
        end

        # Registers a new instance and starts delivery; returns the instance.
        def start!(*args, **kwargs) = DomainEvents.subscribe(new(*args, **kwargs))

        # Unregisters every instance of this class.
        def stop! = DomainEvents.unsubscribe(self)
      end

      def patterns = self.class.patterns

      def subscribed_to?(name)
        @matchers ||= patterns.map { |p| DomainEvents.matcher(p) }
        @matchers.any? { |m| m.match?(name) }
      end

      # Runs the hooks around handle; errors go to on_handle_error and are counted by the caller.
      def call(event)
        return false if before_handle(event) == false

        handle(event)
        after_handle(event)
        true
      rescue StandardError, ScriptError => e
        on_handle_error(event, e)
        raise
      end

      def handle(_event) = nil
      def before_handle(_event) = true
      def after_handle(_event) = nil
      def on_handle_error(_event, _error) = nil
    end
  end
end
