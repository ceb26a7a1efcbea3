# frozen_string_literal: true

require "json_schemer"

module TaskerCore
  module DomainEvents
    # Turns a step's publishes_events declarations (and the events its handler published by hand
    # through StepContext#publish_domain_event) into candidate DomainEvents carried in the result
    # envelope's "domain_events". The engine stores the durable and broadcast ones whose condition
    # matches the outcome in the transaction that stores the result; the worker hands the fast and
    # broadcast ones to the in-process bus once the result is applied (Worker#submit).
    #
    # Nothing here fails a step: a payload that does not match its schema, an unknown publisher or
    # a publisher that raises is logged and counted as a routing error, and that event is skipped.
    module Builder
      SCHEMAS = {}
      SCHEMAS_LOCK = Mutex.new

      module_function

      # Adds "domain_events" to envelope (a result or a checkpoint) when the step has any.
      def attach(envelope, event, context)
        candidates = declared(envelope, event, context) + published(context)
        envelope["domain_events"] = candidates unless candidates.empty?
        envelope
      rescue StandardError => e
        DomainEvents.routing_error("building the events of step #{event['step_uuid']}", e)
        envelope
      end

      def declared(envelope, event, context)
        return [] if envelope.key?(StepExecutor::CHECKPOINT_KEY)

        declarations = event.dig("task_sequence_step", "step_definition", "publishes_events")
        return [] unless declarations.is_a?(Array) && !declarations.empty? && context

        declarations.filter_map { |declaration| from_declaration(envelope, declaration, event, context) }
      end

      def from_declaration(envelope, declaration, event, context)
        name = declaration["name"]
        return nil unless DomainEvents.condition_possible?(declaration["condition"], envelope["success"] == true)

        publisher = publisher_for(declaration["publisher"])
        return nil unless publisher.should_publish?(envelope, declaration, context)

        payload = publisher.transform_payload(envelope, declaration, context)
        return nil unless valid_payload?(name, payload, declaration["schema"])

        metadata = publisher.additional_metadata(envelope, declaration, context) || {}
        build(name, payload, context, event: event, envelope: envelope, fired_by: publisher.name,
                                      condition: declaration["condition"] || "success",
                                      delivery_mode: declaration["delivery_mode"] || "durable",
                                      version: declaration["version"], extra_metadata: metadata)
      rescue StandardError => e
        DomainEvents.routing_error("event #{name} of step #{event['step_uuid']}", e)
        nil
      end

      def published(context)
        return [] unless context.respond_to?(:published_domain_events)

        context.published_domain_events.filter_map do |p|
          next unless valid_payload?(p[:name], p[:payload], p[:schema])

          build(p[:name], p[:payload], context, event: context.event, envelope: nil, fired_by: context.handler_name,
                                                condition: p[:condition], delivery_mode: p[:delivery_mode],
                                                version: nil, extra_metadata: p[:metadata])
        end
      end

      def build(name, payload, context, event:, envelope:, fired_by:, condition:, delivery_mode:, version:,
                extra_metadata:)
        execution_result = envelope && envelope.reject { |k, _| k == "domain_events" }
        { "event_id" => FFI.uuid_v7, "event_name" => name, "event_version" => (version || "1.0").to_s,
          "payload" => { "task_sequence_step" => task_sequence_step(event, context),
                         "execution_result" => execution_result, "payload" => PlainData.call(payload) },
          "metadata" => PlainData.call(extra_metadata || {}).merge(
            "task_uuid" => context.task_uuid, "step_uuid" => context.step_uuid, "step_name" => context.step_name,
            "namespace" => context.namespace_name, "correlation_id" => context.correlation_id,
            "fired_at" => Time.now.utc.iso8601(6), "fired_by" => fired_by.to_s
          ),
          "condition" => condition, "delivery_mode" => delivery_mode }
      end

      def task_sequence_step(event, context)
        { "task" => { "task_uuid" => context.task_uuid, "name" => context.task_name,
                      "namespace" => context.namespace_name, "version" => context.task_version,
                      "correlation_id" => context.correlation_id },
          "workflow_step" => { "step_uuid" => context.step_uuid, "name" => context.step_name,
                               "attempt" => context.retry_count + 1, "handler" => event["handler_callable"] } }
      end

      # A declaration's publisher: one registered under that name (DomainEvents.register_publisher),
      # or a subclass of BasePublisher by its class name. Nothing else is instantiated (File,
      # Tempfile, ...): anything else is a TemplateError naming it.
      def publisher_for(name)
        return DEFAULT_PUBLISHER if name.nil? || name.to_s.empty?

        registered = DomainEvents.publishers[name.to_s]
        return registered.is_a?(Class) ? registered.new : registered if registered

        klass = name.to_s.match?(/\A(::)?[A-Z]\w*(::[A-Z]\w*)*\z/) ? Object.const_get(name.to_s) : nil
        return klass.new if klass.is_a?(Class) && klass < BasePublisher

        raise Errors::TemplateError, "publishes_events publisher '#{name}' is not a publisher: name a subclass of " \
                                     "TaskerCore::DomainEvents::BasePublisher or one registered with " \
                                     "TaskerCore::DomainEvents.register_publisher"
      rescue NameError
        raise Errors::TemplateError, "publishes_events publisher '#{name}' is not a publisher: it is not registered " \
                                     "and names no loaded class"
      end

      def valid_payload?(name, payload, schema)
        return true if schema.nil?

        errors = schemer(schema).validate(PlainData.call(payload)).map { |e| e["error"] }
        return true if errors.empty?

        DomainEvents.routing_error("payload of #{name} does not match its schema: #{errors.first(3).join('; ')}")
        false
      end

      def schemer(schema)
        SCHEMAS_LOCK.synchronize { SCHEMAS[schema] ||= JSONSchemer.schema(schema) }
      end

      DEFAULT_PUBLISHER = BasePublisher.new
    end
  end
end
