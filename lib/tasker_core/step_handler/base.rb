# frozen_string_literal: true

module TaskerCore
  module StepHandler
    # Base class of step handlers. Subclasses define #call(context) and return success(...) or
    # failure(...), or raise TaskerCore::Errors::PermanentError / RetryableError.
    class Base
      class << self
        attr_writer :handler_name, :handler_version

        def handler_name = @handler_name || name
        def handler_version = @handler_version || "1.0.0"
      end

      attr_reader :config

      def initialize(config: {})
        @config = config || {}
      end

      def call(_context)
        raise Errors::ConfigurationError, "#{self.class.name} must define #call(context)"
      end

      # success(result, metadata: {}) (seed 001's form) or success(result: ..., metadata: ...).
      def success(result = nil, metadata: {}, **rest)
        result = rest.fetch(:result) if result.nil? && rest.key?(:result)
        StepHandlerCallResult.success(result: result, metadata: metadata)
      end

      # Saves progress and asks to be called again with it (context.checkpoint_cursor,
      # checkpoint_items_processed, accumulated_results), without consuming a retry attempt.
      def checkpoint_yield(cursor:, items_processed:, accumulated_results: nil)
        StepHandlerCallResult.checkpoint(cursor: cursor, items_processed: items_processed,
                                         accumulated_results: accumulated_results)
      end

      # failure(message, error_type:, retryable:, error_code:, metadata:, retry_after:).
      def failure(message = nil, error_type: "UnexpectedError", error_code: nil, retryable: false,
                  metadata: {}, retry_after: nil, context: {}, **rest)
        message = rest.fetch(:message, "step failed") if message.nil?
        StepHandlerCallResult.error(message: message, error_type: error_type, error_code: error_code,
                                    retryable: retryable, metadata: metadata, retry_after: retry_after,
                                    context: context)
      end
    end
  end
end
