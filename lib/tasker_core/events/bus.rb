# frozen_string_literal: true

module TaskerCore
  module Events
    # Delivers the core's lifecycle events to Ruby subscribers on one dispatcher thread.
    #
    # The core's feeder (tc_events.c) reads persisted transitions into a bounded C buffer; this
    # thread waits on it without the GVL (FFI.events_next) and calls each matching subscriber in
    # turn, in transition order per task. Handler threads never run subscriber code, so a raising
    # or sleeping subscriber delays only later events, never a step; its error is logged and
    # counted and the other subscribers still get the event. When subscribers fall behind, the C
    # buffer (events_buffer_size) fills and the core drops and counts new events.
    class Bus
      # A subscriber given as a block: `Events.subscribe("task.*") { |event| ... }`.
      class BlockSubscriber
        def initialize(patterns, block)
          @matchers = patterns.map { |p| Bus.matcher(p) }
          @block = block
        end

        def subscribed_to?(name) = @matchers.any? { |m| m.match?(name) }
        def call(event) = @block.call(event)
      end

      def self.matcher(pattern)
        pattern = pattern.to_s
        unless pattern.match?(/\A(\*|[a-z_]+\.(\*|[a-z_]+))\z/)
          raise TaskerCore::Errors::ValidationError,
                "event subscription #{pattern.inspect} must be a catalog name ('task.completed') or a wildcard " \
                "('task.*', '*')"
        end
        if !pattern.include?("*") && !Catalog::DEFINITIONS.key?(pattern)
          raise TaskerCore::Errors::ValidationError, "event subscription #{pattern.inspect} is not in the catalog"
        end
        Regexp.new("\\A#{Regexp.escape(pattern).gsub('\\*', '.*')}\\z")
      end

      def initialize
        @mutex = Mutex.new
        @subscribers = [].freeze
        @thread = nil
        @counts = Hash.new(0)
        @errors_by_subscriber = Hash.new(0)
      end

      def subscribers = @subscribers

      def subscribe(subscriber = nil, *patterns, &block)
        if block
          patterns = [subscriber, *patterns].compact
          patterns = ["*"] if patterns.empty?
          subscriber = BlockSubscriber.new(patterns, block)
        end
        subscriber = subscriber.new if subscriber.is_a?(Class)
        unless subscriber.respond_to?(:call) && subscriber.respond_to?(:subscribed_to?)
          raise TaskerCore::Errors::ValidationError,
                "subscriber must respond to call and subscribed_to? (subclass Events::Subscribers::BaseSubscriber)"
        end
        @mutex.synchronize { @subscribers = (@subscribers + [subscriber]).freeze }
        start if FFI.running?
        subscriber
      end

      def unsubscribe(subscriber)
        @mutex.synchronize do
          @subscribers = @subscribers.reject { |s| s.equal?(subscriber) || s.instance_of?(Class) && s == subscriber }
                                     .freeze
        end
        subscriber
      end

      # Starts the core's feeder and the dispatcher thread (idempotent; after a fork too).
      def start
        return false if @subscribers.empty?

        @mutex.synchronize do
          return false if @thread&.alive?

          FFI.events_start(TaskerCore.config.events_options)
          @thread = Thread.new { run }
          @thread.name = "tasker-events" if @thread.respond_to?(:name=)
        end
        true
      end

      def running? = !!@thread&.alive?

      # Stops the feeder; the dispatcher delivers what is buffered, then ends.
      def stop(timeout: 5)
        thread = @thread
        return false unless thread

        FFI.events_stop if FFI.running?
        thread.join(timeout) || thread.kill
        @thread = nil
        true
      end

      def shutdown
        stop
        @mutex.synchronize { @subscribers = [].freeze }
      end

      def stats
        core = FFI.running? ? FFI.events_stats.transform_keys(&:to_sym) : {}
        @mutex.synchronize do
          core.merge(subscribers: @subscribers.size, dispatched: @counts[:dispatched],
                     subscriber_calls: @counts[:subscriber_calls], subscriber_errors: @counts[:subscriber_errors],
                     errors_by_subscriber: @errors_by_subscriber.dup)
        end
      end

      private

      def run
        loop do
          raw = FFI.events_next(0.5)
          break if raw == false
          next if raw.nil?

          dispatch(raw)
        end
      rescue TaskerCore::Errors::FFIError
        nil # The runtime shut down under us.
      end

      def dispatch(raw)
        event = raw.transform_keys(&:to_sym).freeze
        name = event[:event_name]
        calls = 0
        # Like a handler, inside config.around_handler (under Rails the app's reloader: database
        # connections are given back after each event, autoloaded constants are safe).
        TaskerCore.config.around_handler do
          @subscribers.each do |subscriber|
            next unless subscriber.subscribed_to?(name)

            calls += 1
            begin
              subscriber.call(event)
            rescue StandardError, ScriptError, SystemStackError, NoMemoryError => e # the dispatcher lives on
              count_error(subscriber, name, e)
            end
          end
        end
        @mutex.synchronize do
          @counts[:dispatched] += 1
          @counts[:subscriber_calls] += calls
        end
      rescue StandardError => e # the wrapper itself failed: the dispatcher keeps serving
        TaskerCore.config.logger&.error("tasker events: dispatching #{name} failed: #{e.class}: #{e.message}")
      end

      def count_error(subscriber, name, error)
        label = subscriber.is_a?(BlockSubscriber) ? "block" : subscriber.class.name.to_s
        @mutex.synchronize do
          @counts[:subscriber_errors] += 1
          @errors_by_subscriber[label] += 1
        end
        TaskerCore.config.logger&.error("tasker event subscriber #{label} failed on #{name}: " \
                                        "#{error.class}: #{error.message}")
      rescue StandardError
        nil
      end
    end
  end
end
