# frozen_string_literal: true

require_relative "domain_events/event"
require_relative "domain_events/base_publisher"
require_relative "domain_events/base_subscriber"
require_relative "domain_events/builder"
require_relative "domain_events/bus"

module TaskerCore
  # Domain events (SPEC 8.2): business events that steps declare in their templates,
  #
  #   steps:
  #     - name: charge_card
  #       handler: { callable: Payments::ChargeCard }
  #       publishes_events:
  #         - name: payment.processed
  #           condition: success             # failure, retryable_failure, permanent_failure, always
  #           delivery_mode: durable         # fast (in-process only), broadcast (both)
  #           schema: { type: object, required: [payment_id], properties: { payment_id: { type: string } } }
  #
  # or publish by hand (StepContext#publish_domain_event inside a handler, committed with its result;
  # DomainEvents.publish anywhere else). Durable events are written to the outbox in the
  # transaction that stores the step's result and read by consumers with a lease and an
  # acknowledgement (read / ack: at least once, never again after the ack); fast ones go to this
  # process's subscribers (BaseSubscriber) once the result is stored.
  module DomainEvents
    MODES = %w[durable fast broadcast].freeze
    CONDITIONS = %w[success failure retryable_failure permanent_failure always].freeze
    NAME = /\A[a-z0-9_]+(\.[a-z0-9_]+)+\z/

    class << self
      # Class registry for `publisher:` names that are not constants.
      def publishers = (@publishers ||= {})

      def register_publisher(name, publisher)
        publishers[name.to_s] = publisher
      end

      def bus
        @bus ||= Bus.new(TaskerCore.config.domain_events_options)
      end

      def subscribe(subscriber) = bus.subscribe(subscriber)
      def unsubscribe(subscriber) = bus.unsubscribe(subscriber)

      # Publishes one event outside a step result; returns its event_id. Durable and broadcast
      # events are stored at once; fast and broadcast ones go to this process's subscribers.
      def publish(name, payload = {}, delivery_mode: "durable", metadata: {}, version: "1.0")
        validate_name!(name)
        validate_mode!(delivery_mode)
        raise Errors::ValidationError.new("payload must be a Hash", field: "payload") unless payload.is_a?(Hash)
        raise Errors::ValidationError.new("metadata must be a Hash", field: "metadata") unless metadata.is_a?(Hash)

        meta = PlainData.call(metadata).transform_keys(&:to_s)
        event = { "event_id" => FFI.uuid_v7, "event_name" => name.to_s, "event_version" => version.to_s,
                  "payload" => { "task_sequence_step" => nil, "execution_result" => nil,
                                 "payload" => PlainData.call(payload) },
                  "metadata" => { "fired_at" => Time.now.utc.iso8601(6), "fired_by" => "manual" }.merge(meta),
                  "delivery_mode" => delivery_mode.to_s }
        FFI.publish_domain_event(event) unless delivery_mode.to_s == "fast"
        bus.push(Event.from_h(event)) unless delivery_mode.to_s == "durable"
        event["event_id"]
      end

      # Leases up to limit unacknowledged events for consumer (durable and broadcast by default);
      # an event not acknowledged within visibility_timeout seconds is read again.
      def read(consumer: "default", limit: 100, visibility_timeout: 30, modes: nil)
        FFI.domain_events_read(consumer.to_s, limit, visibility_timeout, modes&.map(&:to_s))
           .map { |h| Event.from_h(h) }
      end

      # Acknowledges events (Event objects or event ids) for consumer; returns how many were new.
      def ack(events, consumer: "default")
        ids = Array(events).map { |e| e.respond_to?(:event_id) ? e.event_id : e.to_s }
        return 0 if ids.empty?

        FFI.domain_events_ack(consumer.to_s, ids)["acknowledged"]
      end

      # Deletes stored events older than older_than seconds; returns how many.
      def purge(older_than:)
        FFI.domain_events_purge(Integer(older_than))["purged"]
      end

      # This process's routing and delivery counters (also in Observability.event_stats).
      def stats
        counters = FFI.running? ? FFI.domain_events_counters.transform_keys(&:to_sym) : {}
        counters.merge(queued: @bus ? @bus.queued : 0, dispatcher_running: @bus ? @bus.running? : false)
      end

      # After a step's result was applied, hands its fast and broadcast events whose condition
      # matches the outcome to the in-process bus. answer: complete_step's answer.
      def dispatch_fast(envelope, answer)
        candidates = envelope["domain_events"]
        return unless candidates && answer && answer["applied"]

        written = answer["domain_events_written"].to_i
        FFI.domain_events_count("durable_routed" => written) if written.positive?

        candidates.each do |c|
          next if c["delivery_mode"] == "durable"
          next unless condition_met?(c["condition"], answer["step_status"], envelope["success"])

          bus.push(Event.from_h(c.reject { |k, _| k == "condition" }))
        end
      rescue StandardError => e
        routing_error("dispatching fast events", e)
      end

      # Whether an event of condition can follow a result that succeeded or not (the engine decides
      # retryable against permanent when it applies the result).
      def condition_possible?(condition, success)
        condition = condition || "success"
        condition == "always" || (success ? condition == "success" : condition != "success")
      end

      def condition_met?(condition, step_status, success)
        succeeded = step_status == "complete" && success == true
        case condition || "success"
        when "always" then true
        when "success" then succeeded
        when "failure" then !succeeded
        when "retryable_failure" then step_status == "waiting_for_retry"
        when "permanent_failure" then !succeeded && step_status != "waiting_for_retry"
        else false
        end
      end

      def start = bus.start

      # Stops delivery and forgets every subscriber (TaskerCore.shutdown! and specs).
      def reset!
        @bus&.stop
        @bus = nil
      end

      def matcher(pattern)
        pattern = pattern.to_s
        unless pattern == "*" || pattern.match?(/\A[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?\z/)
          raise Errors::ValidationError.new(
            "domain event subscription #{pattern.inspect} must be an event name ('payment.processed') or a " \
            "wildcard ('payment.*', '*')", field: "subscribes_to"
          )
        end
        Regexp.new("\\A#{Regexp.escape(pattern).gsub('\\*', '.*')}\\z")
      end

      def validate_name!(name)
        return if name.to_s.match?(NAME) && name.to_s.size <= 128

        raise Errors::ValidationError.new(
          "event_name #{name.inspect} must be a dotted lowercase name such as payment.processed", field: "event_name"
        )
      end

      def validate_mode!(mode)
        return if MODES.include?(mode.to_s)

        raise Errors::ValidationError.new("delivery_mode must be one of #{MODES.join(', ')}", field: "delivery_mode")
      end

      def validate_condition!(condition)
        return if CONDITIONS.include?(condition.to_s)

        raise Errors::ValidationError.new("condition must be one of #{CONDITIONS.join(', ')}", field: "condition")
      end

      # Logs and counts an event that could not be routed; never raises.
      def routing_error(what, error = nil)
        detail = error ? "#{error.class}: #{error.message}" : ""
        TaskerCore.config.logger&.error("tasker domain events: #{what} #{detail}".strip)
        FFI.domain_events_count("routing_errors" => 1) if FFI.running?
      rescue StandardError
        nil
      end
    end
  end
end
