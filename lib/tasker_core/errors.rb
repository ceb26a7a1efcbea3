# frozen_string_literal: true

module TaskerCore
  # Every error the gem raises, and the errors step handlers raise to steer retries.
  #
  # Two families: the step verdicts (PermanentError and RetryableError, with their subclasses),
  # which tell the engine what to do with a step, and EngineError (DatabaseError, StateError,
  # FFIError), which says that the engine itself could not do something and is no verdict on a
  # step: raised inside a handler (its database went away) it fails the step retryably, like any
  # unexpected exception.
  #
  # Errors raised by the C engine carry #code (e.g. "TC_ENOTFOUND") and, when PostgreSQL raised,
  # #sqlstate.
  module Errors
    class Error < StandardError
      attr_reader :error_code, :context

      def initialize(message = nil, error_code: nil, context: {})
        super(message)
        @error_code = error_code
        @context = context || {}
      end

      # The engine's error code name, or nil for errors raised in Ruby.
      def code = @code
      # The PostgreSQL SQLSTATE when the database raised, else nil.
      def sqlstate = @sqlstate
    end

    # A failure that retrying cannot fix: the step goes to error at once.
    class PermanentError < Error; end

    # A failure that may pass: the step is retried, after retry_after seconds when given.
    class RetryableError < Error
      attr_reader :retry_after

      def initialize(message = nil, retry_after: nil, context: {}, error_code: nil)
        super(message, error_code: error_code, context: context)
        @retry_after = retry_after
      end
    end

    # Bad input: the message names the field.
    class ValidationError < PermanentError
      attr_reader :field

      def initialize(message = nil, field: nil, error_code: nil, context: {})
        super(message, error_code: error_code, context: context)
        @field = field
      end
    end

    class NotFoundError < PermanentError
      attr_reader :resource_type

      def initialize(message = nil, resource_type: nil, error_code: nil, context: {})
        super(message, error_code: error_code, context: context)
        @resource_type = resource_type
      end
    end

    class ConfigurationError < PermanentError; end
    # A task template failed validation; the message names the template and the step.
    class TemplateError < ConfigurationError; end
    # The engine could not do what was asked: not a verdict on the step that was running.
    class EngineError < Error; end
    # The database is unreachable or a statement failed.
    class DatabaseError < EngineError; end
    # A failure inside the native extension that has no more specific class.
    class FFIError < EngineError; end
    # The operation is not allowed in the object's current state (e.g. cancelling a finished task).
    class StateError < EngineError; end
    # The worker is stopping or was never started.
    class WorkerStoppedError < FFIError; end

    class TimeoutError < RetryableError
      attr_reader :timeout_duration

      def initialize(message = nil, timeout_duration: nil, retry_after: nil, context: {}, error_code: nil)
        super(message, retry_after: retry_after, context: context, error_code: error_code)
        @timeout_duration = timeout_duration
      end
    end

    class NetworkError < RetryableError
      attr_reader :status_code

      def initialize(message = nil, status_code: nil, retry_after: nil, context: {}, error_code: nil)
        super(message, retry_after: retry_after, context: context, error_code: error_code)
        @status_code = status_code
      end
    end
  end
end
