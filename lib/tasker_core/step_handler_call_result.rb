# frozen_string_literal: true

module TaskerCore
  # What a handler returns: a success with its result, or a failure that says whether a retry
  # can help. to_h gives the envelope the engine stores (SPEC 4.4).
  module StepHandlerCallResult
    ERROR_TYPES = %w[PermanentError RetryableError ValidationError UnexpectedError StepCompletionError].freeze

    Success = Struct.new(:result, :metadata, keyword_init: true) do
      def success? = true
    end

    Error = Struct.new(:message, :error_type, :error_code, :retryable, :retry_after, :metadata,
                       :context, :backtrace, :exception_class, keyword_init: true) do
      def success? = false
    end

    # Progress saved by a long handler: the engine stores it and runs the handler again at once.
    Checkpoint = Struct.new(:cursor, :items_processed, :accumulated_results, keyword_init: true) do
      def success? = false
      def checkpoint? = true
    end

    module_function

    def checkpoint(cursor:, items_processed:, accumulated_results: nil)
      Checkpoint.new(cursor: cursor, items_processed: items_processed, accumulated_results: accumulated_results)
    end

    def success(result: nil, metadata: {})
      Success.new(result: result, metadata: metadata || {})
    end

    def error(message:, error_type: "UnexpectedError", error_code: nil, retryable: false, metadata: {},
              retry_after: nil, context: {}, backtrace: nil, exception_class: nil)
      Error.new(message: message.to_s, error_type: error_type.to_s, error_code: error_code,
                retryable: retryable ? true : false, retry_after: retry_after, metadata: metadata || {},
                context: context || {}, backtrace: backtrace, exception_class: exception_class)
    end

    # Interprets any handler return value: our result objects, a Hash with "success", or any
    # other value, which is wrapped as a successful result.
    def from(value)
      case value
      when Success, Error, Checkpoint then value
      when Hash
        flag = value.key?(:success) ? value[:success] : value["success"]
        return wrap(value) if flag.nil?

        hash_result(value, flag)
      else wrap(value)
      end
    end

    def hash_result(value, flag)
      get = ->(k) { value.key?(k) ? value[k] : value[k.to_s] }
      if flag
        success(result: get.call(:result), metadata: get.call(:metadata) || {})
      else
        error(message: get.call(:message) || get.call(:error_message) || "step failed",
              error_type: get.call(:error_type) || "UnexpectedError", error_code: get.call(:error_code),
              retryable: get.call(:retryable) || false, metadata: get.call(:metadata) || {})
      end
    end

    def wrap(value)
      success(result: value, metadata: { "wrapped" => true, "original_type" => value.class.name })
    end
  end
end
