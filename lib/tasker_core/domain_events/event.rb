# frozen_string_literal: true

module TaskerCore
  module DomainEvents
    # One domain event as subscribers and consumers see it (SPEC 8.2's DomainEvent):
    #
    #   event.event_name        # "payment.processed"
    #   event.business_payload  # what the publisher produced (by default the step's result)
    #   event.payload           # {"task_sequence_step", "execution_result", "payload"}
    #   event.metadata          # {"task_uuid", "step_uuid", "step_name", "namespace",
    #                           #  "correlation_id", "fired_at", "fired_by"}
    #   event.delivery_mode     # "durable", "fast" or "broadcast"
    #   event.delivery          # durable reads only: {"consumer", "read_count", "stored_at"}
    Event = Struct.new(:event_id, :event_name, :event_version, :payload, :metadata, :delivery_mode, :delivery,
                       keyword_init: true) do
      def self.from_h(hash)
        new(event_id: hash["event_id"], event_name: hash["event_name"], event_version: hash["event_version"],
            payload: hash["payload"] || {}, metadata: hash["metadata"] || {},
            delivery_mode: hash["delivery_mode"], delivery: hash["delivery"])
      end

      def business_payload = payload.is_a?(Hash) ? payload["payload"] : nil
      def task_uuid = metadata["task_uuid"]
      def step_uuid = metadata["step_uuid"]
      def namespace = metadata["namespace"]
      def correlation_id = metadata["correlation_id"]

      # The event as stored and sent: the DomainEvent hash with string keys.
      def to_h
        { "event_id" => event_id, "event_name" => event_name, "event_version" => event_version,
          "payload" => payload, "metadata" => metadata, "delivery_mode" => delivery_mode }
      end
    end
  end
end
