# frozen_string_literal: true

module Tasker
  module StepHandler
    # What Tasker::StepHandler::Base and Api share: the worker calls #call(context) (a
    # TaskerCore::StepContext), which builds seed 002's (task, sequence, step) from it and runs
    #
    #   process(task, sequence, step)                       # your logic; its return value ...
    #   process_results(step, process_output, initial_results)  # ... becomes step.results here
    #
    # step.results is the step's result (symbol keys are fine: it is stored as JSON). An exception
    # raised from process follows the engine's retry rules: Tasker::PermanentError (and the engine's
    # other permanent errors) fails the step at once, anything else is retried while the template's
    # default_retryable allows and default_retry_limit attempts remain, with the engine's backoff
    # (Tasker::RetryableError's retry_after when given).
    module Processing
      # The StepContext of the step being run (nil when process is called directly, as in a spec).
      attr_reader :step_context

      def call(context)
        @step_context = context
        task = Tasker::Task.from_step_context(context)
        step = Tasker::WorkflowStep.from_step_context(context)
        sequence = Tasker::StepSequence.from_step_context(context, step)
        handle(task, sequence, step)
        metadata = published_events.empty? ? {} : { "tasker_events" => published_events }
        success(TaskerCore::PlainData.call(step.results, field: "result"), metadata: metadata)
      end

      # Runs process and process_results as the original engine did; returns step.results.
      def handle(task, sequence, step)
        initial_results = step.results
        output = process(task, sequence, step)
        process_results(step, output, initial_results)
        step.results
      end

      def process(_task, _sequence, _step)
        raise TaskerCore::Errors::ConfigurationError, "#{self.class.name} must define process(task, sequence, step)"
      end

      # Stores process's return value as the step's results, unless process set step.results
      # itself. Override to shape the results (set step.results).
      def process_results(step, process_output, initial_results)
        return unless step.results.equal?(initial_results)

        step.results = process_output
      end

      # get_previous_step_data(sequence, "fetch_products", "product_ids"): a value of an earlier
      # step's results (String or Symbol key); nil when the step or the key is absent.
      def get_previous_step_data(sequence, step_name, key)
        results = sequence.find_step_by_name(step_name)&.results
        return nil unless results.is_a?(Hash)

        results.key?(key.to_s) ? results[key.to_s] : results[key.to_sym]
      end

      # Seed 002's publish_step_completed(step, custom_data: "value"): the engine publishes
      # step.completed itself once the step's result is stored (one event, to every subscriber);
      # the custom data goes with the result, in its metadata under tasker_events.
      def publish_step_completed(step, **custom)
        published_events << { "event" => "step.completed", "step_name" => step.name,
                              "payload" => TaskerCore::PlainData.call(custom, field: "custom") }
        nil
      end

      # A custom event (a dotted lowercase name such as order.fulfilled): published as a domain
      # event with the step's result (durable, to domain event subscribers), when run by the worker.
      def publish_custom_event(name, payload = {})
        if step_context
          step_context.publish_domain_event(name, payload)
        else
          TaskerCore::DomainEvents.validate_name!(name)
        end
        nil
      end

      def published_events = (@published_events ||= [])
    end

    # Seed 002's step handler: define process(task, sequence, step) and return the results.
    #
    #   class ProcessPaymentHandler < Tasker::StepHandler::Base
    #     def process(task, sequence, step)
    #       { payment_id: PaymentService.charge(order_id: task.context["order_id"]).id }
    #     end
    #   end
    class Base < TaskerCore::StepHandler::Base
      include Processing

      # handler_config (the YAML's, after the environment's overrides) as config.
      def handler_config = config
    end

    # Seed 002's API step handler: process returns connection.get(...) (or post, put, patch,
    # delete), and process_results receives that response (status, headers, body).
    #
    # The connection is Faraday-style (get(path, params, headers), post(path, body, headers), a
    # block that sets req.params / req.headers / req.body) on the engine's own HTTP client
    # (TaskerCore::StepHandler::Api, Net::HTTP): its base URL is handler_config's url (or
    # base_url), its headers handler_config's headers with ${VAR} read from the environment at each
    # request, its timeout handler_config's timeout. 429 and 5xx raise TaskerCore::Errors::RetryableError
    # honouring Retry-After, and the engine retries the step (default_retry_limit); 400, 401, 403,
    # 404, 422 and other 4xx fail it permanently; connection failures and timeouts are retried.
    # Without process_results, a JSON body becomes the step's results (else the body as text).
    class Api < TaskerCore::StepHandler::Api
      include Processing

      # The Faraday-style connection of a handler.
      class Connection
        Request = Struct.new(:params, :headers, :body, keyword_init: true)

        def initialize(handler) = @handler = handler

        def url_prefix = @handler.base_url
        def get(path, params = nil, headers = nil, &) = query(:get, path, params, headers, &)
        def delete(path, params = nil, headers = nil, &) = query(:delete, path, params, headers, &)
        def post(path, body = nil, headers = nil, &) = send_body(:post, path, body, headers, &)
        def put(path, body = nil, headers = nil, &) = send_body(:put, path, body, headers, &)
        def patch(path, body = nil, headers = nil, &) = send_body(:patch, path, body, headers, &)

        private

        def query(verb, path, params, headers)
          req = Request.new(params: (params || {}).to_h.dup, headers: (headers || {}).to_h.dup, body: nil)
          yield req if block_given?

          @handler.public_send(verb, path, params: req.params, headers: req.headers)
        end

        def send_body(verb, path, body, headers)
          req = Request.new(params: {}, headers: (headers || {}).to_h.dup, body: body)
          yield req if block_given?
          path = "#{path}?#{URI.encode_www_form(TaskerCore::PlainData.call(req.params))}" unless req.params.empty?
          @handler.public_send(verb, path, body: req.body, headers: req.headers)
        end
      end

      def handler_config = config
      def connection = (@connection ||= Connection.new(self))

      def process_results(step, process_output, initial_results)
        return unless step.results.equal?(initial_results)

        step.results = process_output.is_a?(TaskerCore::StepHandler::Api::Response) ? body_of(process_output) : process_output
      end

      private

      def body_of(response)
        response.json
      rescue TaskerCore::Errors::PermanentError
        response.body
      end
    end
  end
end
