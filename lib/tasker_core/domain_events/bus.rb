# frozen_string_literal: true

module TaskerCore
  module DomainEvents
    # Delivers domain events to this process's subscribers on one dispatcher thread:
    #
    # * fast and broadcast events, handed over by the worker once their step's result is applied,
    #   wait in a bounded buffer (buffer_size; a full buffer drops and counts, it never blocks a
    #   handler thread);
    # * durable events are leased from the outbox as consumer `consumer` (every process's
    #   subscribers share it, so each event reaches one process), delivered, then acknowledged. A
    #   process that dies before the acknowledgement leaves the lease to expire
    #   (visibility_seconds), and another reader delivers the event again: at least once.
    #
    # A subscriber that raises is counted (subscriber_errors) and the others still get the event.
    class Bus
      DEFAULTS = { "buffer_size" => 10_000, "poll_interval_ms" => 200, "visibility_seconds" => 30,
                   "batch_size" => 100, "consumer" => "subscribers", "durable" => true }.freeze

      def initialize(options = {})
        @options = DEFAULTS.merge(options.transform_keys(&:to_s))
        validate_options!
        @lock = Mutex.new
        @ready = ConditionVariable.new
        @buffer = []
        @subscribers = [].freeze
        @thread = nil
        @stopping = false
      end

      attr_reader :options

      def subscribers = @subscribers

      def subscribe(subscriber)
        subscriber = subscriber.new if subscriber.is_a?(Class)
        unless subscriber.respond_to?(:call) && subscriber.respond_to?(:subscribed_to?)
          raise Errors::ValidationError.new(
            "a domain event subscriber must respond to call and subscribed_to? (subclass DomainEvents::BaseSubscriber)",
            field: "subscriber"
          )
        end
        @lock.synchronize { @subscribers = (@subscribers + [subscriber]).freeze }
        report_subscribers
        start if FFI.running?
        subscriber
      end

      def unsubscribe(subscriber)
        @lock.synchronize do
          @subscribers = @subscribers.reject { |s| s.equal?(subscriber) || (subscriber.is_a?(Class) && s.is_a?(subscriber)) }
                                     .freeze
        end
        report_subscribers
        subscriber
      end

      # Hands a fast or broadcast event to the dispatcher; false (and counted) when the buffer is full
      # or nobody in this process subscribes to it.
      def push(event)
        counter = event.delivery_mode == "broadcast" ? "broadcast_routed" : "fast_routed"
        accepted = @lock.synchronize do
          if @buffer.size >= @options["buffer_size"]
            false
          else
            @buffer << event
            @ready.signal
            true
          end
        end
        count(accepted ? { counter => 1 } : { "fast_dropped" => 1 })
        accepted
      end

      def start
        @lock.synchronize do
          return false if @thread&.alive? || @subscribers.empty?

          @stopping = false
          @thread = Thread.new { run }
          @thread.name = "tasker-domain-events" if @thread.respond_to?(:name=)
        end
        true
      end

      def running? = !!@thread&.alive?

      # Delivers what is buffered, then stops the dispatcher.
      def stop(timeout: 5)
        thread = @lock.synchronize do
          @stopping = true
          @ready.broadcast
          @thread
        end
        return false unless thread

        thread.join(timeout) || thread.kill
        @thread = nil
        true
      end

      def queued = @lock.synchronize { @buffer.size }

      private

      def validate_options!
        { "buffer_size" => 1..1_000_000, "poll_interval_ms" => 1..60_000, "visibility_seconds" => 1..86_400,
          "batch_size" => 1..1000 }.each do |key, range|
          next if @options[key].is_a?(Integer) && range.cover?(@options[key])

          raise Errors::ValidationError.new("domain events #{key} must be an integer in #{range}", field: key)
        end
        return if @options["consumer"].to_s.match?(/\A[A-Za-z0-9_.-]{1,64}\z/)

        raise Errors::ValidationError.new("domain events consumer must be 1-64 letters, digits, '_', '-' or '.'",
                                          field: "consumer")
      end

      def run
        next_poll = 0.0
        loop do
          fast = next_fast(wait_until: next_poll)
          break if fast == :stop

          dispatch(fast) if fast
          next unless durable? && monotonic >= next_poll

          read = deliver_durable
          next_poll = read >= @options["batch_size"] ? 0.0 : monotonic + (@options["poll_interval_ms"] / 1000.0)
        end
      rescue Errors::FFIError
        nil # The runtime shut down under us.
      end

      # The next buffered event, nil when the wait for one ended, :stop once stopped and drained.
      def next_fast(wait_until:)
        @lock.synchronize do
          if @buffer.empty? && !@stopping
            timeout = durable? ? wait_until - monotonic : 1.0
            @ready.wait(@lock, timeout) if timeout.positive?
          end
          return @buffer.shift unless @buffer.empty?

          @stopping ? :stop : nil
        end
      end

      def durable? = @options["durable"] && !@stopping

      # Leases a batch of durable events, delivers each, acknowledges the batch; the number read.
      def deliver_durable
        raw = FFI.domain_events_read(@options["consumer"], @options["batch_size"], @options["visibility_seconds"],
                                     ["durable"])
        return 0 if raw.empty?

        raw.each { |h| dispatch(Event.from_h(h)) }
        FFI.domain_events_ack(@options["consumer"], raw.map { |h| h["event_id"] })
        raw.size
      rescue Errors::DatabaseError, Errors::TimeoutError => e
        TaskerCore.config.logger&.warn("tasker domain events: reading the outbox failed: #{e.message}")
        0
      end

      def dispatch(event)
        errors = 0
        # Inside config.around_handler, like a handler (under Rails the app's reloader).
        TaskerCore.config.around_handler do
          @subscribers.each do |subscriber|
            next unless subscriber.subscribed_to?(event.event_name)

            begin
              subscriber.call(event)
            rescue StandardError, ScriptError, SystemStackError, NoMemoryError => e # the dispatcher lives on
              errors += 1
              label = subscriber.class.name || "anonymous subscriber"
              TaskerCore.config.logger&.error("tasker domain event subscriber #{label} failed on #{event.event_name}: " \
                                              "#{e.class}: #{e.message}")
            end
          end
        end
        counts = {}
        counts["fast_dispatched"] = 1 unless event.delivery_mode == "durable"
        counts["subscriber_errors"] = errors if errors.positive?
        count(counts) unless counts.empty?
      rescue StandardError => e # the wrapper itself failed: the dispatcher keeps serving
        TaskerCore.config.logger&.error("tasker domain events: dispatching #{event.event_name} failed: " \
                                        "#{e.class}: #{e.message}")
      end

      def count(counts)
        FFI.domain_events_count(counts) if FFI.running?
      rescue Errors::FFIError
        nil
      end

      def report_subscribers
        count("subscribers" => @subscribers.size)
      end

      def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
