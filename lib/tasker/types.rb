# frozen_string_literal: true

module Tasker
  module Types
    # What a task is created from (seed 002's Tasker::Types::TaskRequest):
    #
    #   Tasker::Types::TaskRequest.new(name: "order_process", context: { order_id: 1 })
    #
    # context is kept as plain data with String keys (task_request.context["order_id"]), as a
    # handler reads it from the task. A missing or malformed attribute raises
    # TaskerCore::Errors::ValidationError naming it.
    class TaskRequest
      ATTRIBUTES = %i[name namespace version context initiator source_system reason tags bypass_steps
                      requested_at idempotency_key].freeze
      DEFAULTS = { namespace: nil, version: nil, initiator: "unknown", source_system: "unknown",
                   reason: "unknown", tags: [], bypass_steps: [] }.freeze

      attr_reader(*ATTRIBUTES)

      def initialize(attributes = {}, **keywords)
        attrs = attributes.to_h.merge(keywords).transform_keys(&:to_sym)
        unknown = attrs.keys - ATTRIBUTES
        unless unknown.empty?
          raise TaskerCore::Errors::ValidationError.new("TaskRequest has no attribute #{unknown.first}",
                                                        field: unknown.first.to_s)
        end
        DEFAULTS.merge(attrs).each { |key, value| instance_variable_set(:"@#{key}", value) }
        @name = string!(:name, @name, required: true)
        @namespace = string!(:namespace, @namespace)
        @version = string!(:version, @version)
        @context = context!(@context)
        @tags = Array(@tags).map(&:to_s)
        @bypass_steps = Array(@bypass_steps).map(&:to_s)
        @requested_at ||= Time.now.utc
      end

      def to_h = ATTRIBUTES.to_h { |a| [a, public_send(a)] }
      def [](key) = ATTRIBUTES.include?(key.to_sym) ? public_send(key.to_sym) : nil

      # A copy with other attributes (the context after initialize_task_context, say).
      def with(**changes) = self.class.new(to_h.merge(changes))

      private

      def string!(field, value, required: false)
        return nil if value.nil? && !required

        unless (value.is_a?(String) || value.is_a?(Symbol)) && !value.to_s.strip.empty?
          raise TaskerCore::Errors::ValidationError.new(
            "TaskRequest #{field} must be a non-empty String (got #{value.inspect})", field: field.to_s
          )
        end
        value.to_s
      end

      def context!(value)
        value = {} if value.nil?
        value = value.to_unsafe_h if value.respond_to?(:to_unsafe_h) # Rails params
        plain = TaskerCore::PlainData.call(value, field: "context")
        return plain if plain.is_a?(Hash)

        raise TaskerCore::Errors::ValidationError.new(
          "TaskRequest context must be a Hash (got #{value.class})", field: "context"
        )
      end
    end
  end
end
