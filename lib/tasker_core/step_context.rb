# frozen_string_literal: true

module TaskerCore
  # What a step handler sees: the task's context, the step's configuration, the results of the
  # steps it depends on (transitively), and its retry position. Built from the engine's step event.
  class StepContext
    # The results of ancestor steps, keyed by step name.
    class DependencyResults
      include Enumerable

      def initialize(results)
        @results = results || {}
      end

      # The full result envelope ({"success", "result", "metadata", ...}) of a step.
      def get_result(name) = @results[name.to_s]

      # The value the step's handler returned.
      def get_results(name)
        envelope = get_result(name)
        envelope.is_a?(Hash) && envelope.key?("result") ? envelope["result"] : envelope
      end
      alias [] get_results

      def keys = @results.keys
      def key?(name) = @results.key?(name.to_s)
      def each(&) = @results.each(&)
      def to_h = @results.dup
    end

    attr_reader :event, :task_uuid, :step_uuid, :correlation_id

    def initialize(event)
      @event = event
      @task_uuid = event["task_uuid"]
      @step_uuid = event["step_uuid"]
      @correlation_id = event["correlation_id"]
      tss = event["task_sequence_step"] || {}
      @task_wrapper = tss["task"] || {}
      @workflow_step = tss["workflow_step"] || {}
      @step_definition = tss["step_definition"] || {}
      @dependency_results = DependencyResults.new(tss["dependency_results"])
    end

    def task = @task_wrapper["task"] || {}
    def workflow_step = @workflow_step
    def step_definition = @step_definition
    def dependency_results = @dependency_results

    def step_name = @workflow_step["name"]
    def namespace_name = @task_wrapper["namespace_name"]
    def task_name = @task_wrapper["task_name"]
    def task_version = @task_wrapper["task_version"]
    def handler_name = @event["handler_callable"]

    # The task's context (the input the task was created with).
    def context = task["context"] || {}

    # A value of the task's context; key may be a String or a Symbol.
    def get_input(key)
      ctx = context
      ctx.key?(key.to_s) ? ctx[key.to_s] : ctx[key]
    end
    alias get_task_field get_input

    def get_input_or(key, default)
      value = get_input(key)
      value.nil? ? default : value
    end

    # The step's handler.initialization from the template.
    def step_config = (@step_definition["handler"] || {})["initialization"] || {}
    def get_config(key) = step_config[key.to_s]

    def input_data = @workflow_step["inputs"] || {}
    alias step_inputs input_data

    def get_dependency_result(step_name) = @dependency_results.get_results(step_name)

    # Digs into a dependency's result: get_dependency_field("validate_cart", "totals", "net").
    def get_dependency_field(step_name, *path)
      path.reduce(get_dependency_result(step_name)) do |value, key|
        case value
        when Hash then value.key?(key.to_s) ? value[key.to_s] : value[key]
        when Array then key.is_a?(Integer) ? value[key] : nil
        end
      end
    end

    def retry_count = @workflow_step["attempts"] || 0
    def max_retries = @workflow_step["max_attempts"] || 3
    def is_retry? = retry_count.positive? # rubocop:disable Naming/PredicateName
    def is_last_retry? = retry_count >= max_retries - 1 # rubocop:disable Naming/PredicateName
    def retryable? = @workflow_step.fetch("retryable", true)

    # Publishes a domain event with this step's result: it is stored (durable, broadcast) in the
    # transaction that stores the result and reaches fast subscribers once it is stored, whatever
    # the outcome unless condition says otherwise. A stale result (the claim was lost) publishes
    # nothing. schema, when given, validates payload (a mismatch is logged and counted, never raised).
    def publish_domain_event(name, payload = {}, delivery_mode: "durable", condition: "always", schema: nil,
                             metadata: {})
      DomainEvents.validate_name!(name)
      DomainEvents.validate_mode!(delivery_mode)
      DomainEvents.validate_condition!(condition)
      raise Errors::ValidationError.new("payload must be a Hash", field: "payload") unless payload.is_a?(Hash)

      published_domain_events << { name: name.to_s, payload: payload, delivery_mode: delivery_mode.to_s,
                                   condition: condition.to_s, schema: schema, metadata: metadata }
      nil
    end

    def published_domain_events = (@published_domain_events ||= [])

    def checkpoint = @workflow_step["checkpoint"]
    def checkpoint_cursor = checkpoint && checkpoint["cursor"]
    def checkpoint_items_processed = (checkpoint && checkpoint["items_processed"]) || 0
    def accumulated_results = checkpoint && checkpoint["accumulated_results"]
    def has_checkpoint? = !checkpoint_cursor.nil? # rubocop:disable Naming/PredicateName
  end
end
