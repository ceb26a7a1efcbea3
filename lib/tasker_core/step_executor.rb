# frozen_string_literal: true

require "socket"

module TaskerCore
  # Runs one claimed step's handler and builds the result envelope the engine stores (SPEC 4.4).
  # Never raises for handler failures: every outcome becomes an envelope.
  module StepExecutor
    BACKTRACE_LINES = 10
    # An envelope with this key is a checkpoint to save, not a result.
    CHECKPOINT_KEY = "__checkpoint"
    # The longest retry_after the engine honours (util.sql's retry_delay_ms caps it the same way).
    MAX_RETRY_AFTER_SECONDS = 3600

    module_function

    def call(event, worker_id: nil, registry: HandlerRegistry.instance)
      started_at = Time.now.utc
      clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      handler_class = nil
      context = nil
      outcome =
        begin
          handler_class = registry.resolve(event["handler_callable"])
          method = registry.handler_method(handler_class, event["handler_method"], event["handler_callable"])
          context = StepContext.new(event)
          handler = handler_class.new(config: context.step_config)
          StepHandlerCallResult.from(handler.public_send(method, context))
        rescue StandardError, ScriptError, SystemStackError, NoMemoryError => e
          # A handler that overflowed its stack or ran out of memory failed like any other.
          failure_for(e)
        end
      elapsed_ms = ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - clock) * 1000).round
      timing = { "execution_time_ms" => elapsed_ms, "started_at" => started_at.iso8601(6),
                 "completed_at" => Time.now.utc.iso8601(6), "worker_id" => worker_id,
                 "worker_hostname" => hostname, "handler_version" => version_of(handler_class),
                 "custom" => { "handler_class" => handler_class&.name || event["handler_callable"] } }
      DomainEvents::Builder.attach(build_envelope(event, outcome, timing), event, context)
    end

    # The envelope of outcome, or, when it cannot be built (metadata that is no Hash, a result
    # that refers to itself), a permanent failure envelope that says why.
    def build_envelope(event, outcome, timing)
      envelope(event, outcome, timing)
    rescue StandardError, SystemStackError => e
      failure = StepHandlerCallResult.error(
        message: "the step result could not be built: #{e.class}: #{e.message}", error_type: "StepCompletionError",
        retryable: false, exception_class: e.class.name, backtrace: (e.backtrace || []).first(BACKTRACE_LINES)
      )
      envelope(event, failure, timing)
    end

    # The failure an exception raised by a handler stands for: a RetryableError (TimeoutError,
    # NetworkError) is retryable after its retry_after; a PermanentError (ValidationError,
    # NotFoundError, ConfigurationError, TemplateError) is not; anything else, the engine's own
    # errors included (a DatabaseError while the database is away), is an unexpected, retryable
    # failure.
    def failure_for(error)
      case error
      when Errors::RetryableError then from_exception(error, retryable: true, retry_after: error.retry_after)
      when Errors::PermanentError then from_exception(error, retryable: false)
      else from_exception(error, retryable: true, error_type: "UnexpectedError")
      end
    rescue StandardError => e # the exception's own message, context or backtrace raised
      StepHandlerCallResult.error(message: "#{error.class.name} (reading it raised #{e.class.name})",
                                  error_type: "UnexpectedError", retryable: true, exception_class: error.class.name)
    end

    def from_exception(error, retryable:, retry_after: nil, error_type: nil)
      type = error_type || error_type_for(error)
      StepHandlerCallResult.error(
        message: error.message, error_type: type, retryable: retryable, retry_after: retry_after,
        error_code: error.respond_to?(:error_code) ? error.error_code : nil,
        context: error.respond_to?(:context) ? error.context : {},
        backtrace: (error.backtrace || []).first(BACKTRACE_LINES), exception_class: error.class.name
      )
    end

    def error_type_for(error)
      names = error.class.ancestors.map { |a| a.name.to_s.split("::").last }
      %w[ValidationError PermanentError RetryableError].find { |n| names.include?(n) } || "UnexpectedError"
    end

    def envelope(event, outcome, timing)
      if outcome.is_a?(StepHandlerCallResult::Checkpoint)
        return { CHECKPOINT_KEY => { "cursor" => PlainData.call(outcome.cursor, field: "cursor"),
                                     "items_processed" => outcome.items_processed,
                                     "accumulated_results" => PlainData.call(outcome.accumulated_results,
                                                                             field: "accumulated_results") } }
      end

      metadata = PlainData.call(outcome.metadata || {}, field: "metadata")
      raise TypeError, "metadata must be a Hash (got #{metadata.class})" unless metadata.is_a?(Hash)

      metadata = metadata.merge(timing)
      if outcome.success?
        return { "step_uuid" => event["step_uuid"], "success" => true, "status" => "completed",
                 "result" => PlainData.call(outcome.result, field: "result"), "metadata" => metadata }
      end

      failure_envelope(event, outcome, metadata)
    end

    def failure_envelope(event, outcome, metadata)
      metadata = metadata.merge("retryable" => outcome.retryable, "error_type" => outcome.error_type,
                                "error_code" => outcome.error_code)
      error = { "message" => PlainData.text(outcome.message), "error_type" => outcome.error_type,
                "retryable" => outcome.retryable, "error_code" => outcome.error_code,
                "exception_class" => outcome.exception_class,
                "backtrace" => outcome.backtrace&.map { |line| PlainData.text(line) },
                "context" => PlainData.call(outcome.context || {}, field: "error.context") }.compact
      result = { "step_uuid" => event["step_uuid"], "success" => false, "status" => "failed",
                 "result" => nil, "error" => error, "metadata" => metadata }
      delay = retry_after_seconds(outcome.retry_after)
      if delay
        result["orchestration_metadata"] = {
          "headers" => { "retry-after" => delay.ceil.to_s },
          "backoff_hint" => { "backoff_type" => "ServerRequested", "delay_seconds" => delay, "context" => nil }
        }
      end
      result
    end

    # A handler's retry_after as seconds the engine honours: at most MAX_RETRY_AFTER_SECONDS (a
    # longer one, Float::INFINITY included, waits that long); nil (the step's backoff applies)
    # for NaN, a negative number or something that is no number.
    def retry_after_seconds(value)
      return nil if value.nil?

      delay = value.is_a?(Numeric) ? value.to_f : Float(value.to_s, exception: false)
      return nil if delay.nil? || delay.nan? || delay.negative?

      [delay, MAX_RETRY_AFTER_SECONDS.to_f].min
    end

    # A result the engine refused to store (not plain data) becomes a permanent failure.
    def unstorable(event, message)
      outcome = StepHandlerCallResult.error(message: "the step result could not be stored: #{message}",
                                            error_type: "StepCompletionError", retryable: false)
      envelope(event, outcome, { "execution_time_ms" => 0 })
    end

    def hostname
      @hostname ||= Socket.gethostname
    end

    def version_of(klass)
      klass.respond_to?(:handler_version) ? klass.handler_version : nil
    rescue StandardError
      nil
    end
  end
end
