# frozen_string_literal: true

module TaskerCore
  module DomainEvents
    # Shapes the events a step declares with `publisher: ClassName` in publishes_events:
    #
    #   class PaymentPublisher < TaskerCore::DomainEvents::BasePublisher
    #     def transform_payload(step_result, event_declaration, step_context)
    #       { "payment_id" => step_result.dig("result", "payment_id"), "amount" => step_context.get_input(:amount) }
    #     end
    #     def should_publish?(step_result, _declaration, _context) = step_result.dig("result", "amount").to_i > 0
    #   end
    #
    # step_result is the step's result envelope ({"success", "result", "error", "metadata"}).
    # Publishers run on the handler's thread after the handler returned; an exception in one is
    # logged and counted (routing_errors) and never fails the step.
    class BasePublisher
      def name = self.class.name

      # The business payload: by default the handler's result (a success) or its error (a failure).
      def transform_payload(step_result, _event_declaration, _step_context)
        value = step_result["success"] ? step_result["result"] : { "error" => step_result["error"] }
        value.is_a?(Hash) ? value : { "value" => value }
      end

      def should_publish?(_step_result, _event_declaration, _step_context) = true

      # Merged into the event's metadata.
      def additional_metadata(_step_result, _event_declaration, _step_context) = {}
    end
  end
end
