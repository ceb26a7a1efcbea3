# frozen_string_literal: true

# The API of the original Rails engine (seed 002's developer guide) on top of TaskerCore, for apps
# that move over without rewriting their handlers: `require "tasker"`.
#
#   class OrderProcess < Tasker::TaskHandler::Base; end            # the template names it
#   class ProcessPaymentHandler < Tasker::StepHandler::Base
#     def process(task, sequence, step) = { payment_id: charge(task.context["order_id"]) }
#   end
#
# Nothing here is a second engine: a Tasker step handler is a TaskerCore step handler whose #call
# builds the seed's (task, sequence, step) from the StepContext the worker hands it, a task handler
# creates its tasks through TaskerCore::Client, and a subscriber is a TaskerCore event subscriber.
# docs/migrating-from-tasker-engine.md lists every seed-002 API and where it lives now.
require_relative "tasker_core"
require_relative "tasker/types"
require_relative "tasker/models"
require_relative "tasker/task_handler"
require_relative "tasker/step_handler"
require_relative "tasker/events"

module Tasker
  # The engine's step verdicts under the names the engine's later versions used: raise
  # Tasker::PermanentError for a failure retrying cannot fix, Tasker::RetryableError (retry_after:)
  # for one that may pass.
  Error = TaskerCore::Errors::Error
  PermanentError = TaskerCore::Errors::PermanentError
  RetryableError = TaskerCore::Errors::RetryableError
  ValidationError = TaskerCore::Errors::ValidationError
end

require_relative "tasker/testing" if defined?(RSpec)
