# frozen_string_literal: true

require "io/wait"
require "json"
require "logger"

module TaskerCore
  # Delivers the C engine's log lines to TaskerCore.config.logger (Rails.logger under Rails).
  #
  # The engine's threads never call Ruby: they append their JSON lines to a bounded buffer in the
  # core (tc_log.c), and this module's thread ("tasker-log") takes them (FFI.log_next), hands each
  # line to the logger, then acknowledges it (FFI.log_ack). A line is removed from the buffer only
  # once acknowledged, so a killed log thread loses nothing: the next one (or a flush) delivers it.
  # Lines arrive in the order the engine wrote them.
  #
  # Between lines the thread waits on a pipe the core writes to (IO#wait_readable, without the
  # GVL), not in a C wait: Ruby delivers a signal to the main thread through a thread sleeping in
  # one of its own waits, so a main thread blocked in the engine (FFI.next_step) still gets Ctrl-C.
  #
  # Each line is given to the logger as logger.add(severity, json_line, "tasker_core"): the message
  # is the engine's JSON object unchanged ({"ts","level","event","message","pid", ...}). A String is
  # what every Logger formatter (Ruby's, Rails' tagged and broadcast loggers) prints as is, so the
  # fields stay machine-readable in a log file or a log shipper; a Hash would be printed with
  # #inspect by those formatters. Use EngineLog.parse(line) to read the fields back.
  #
  # When the buffer is full (the logger is much slower than the engine for a while) an engine
  # thread waits up to 200 ms, then writes its line to stderr and counts it (stats[:to_stderr]).
  module EngineLog
    PROGNAME = "tasker_core"
    # Core levels trace, debug, info, warn, error -> Logger severities.
    SEVERITIES = [Logger::DEBUG, Logger::DEBUG, Logger::INFO, Logger::WARN, Logger::ERROR].freeze
    WAIT_SECONDS = 1.0

    @thread = nil
    @pid = nil
    @consumer = Mutex.new
    @start_mutex = Mutex.new
    @failures = 0
    @at_exit = false

    class << self
      # Sends the running runtime's log to the buffer and starts the log thread (idempotent; starts a
      # new thread in a forked child, whose parent's thread does not exist).
      def start
        FFI.log_attach
        @start_mutex.synchronize do
          unless @pid == Process.pid
            @consumer = Mutex.new
            @thread = nil
            @wake = IO.for_fd(FFI.log_wake_fd, autoclose: false)
            @pid = Process.pid
          end
          unless @thread&.alive?
            @thread = Thread.new { run }
            @thread.name = "tasker-log"
          end
        end
        register_at_exit
        true
      end

      def running?
        @pid == Process.pid && !!@thread&.alive?
      end

      # Waits until every line the engine wrote before this call has reached the logger; delivers
      # them on the calling thread when no log thread runs. False when timeout passed first.
      def flush(timeout: 5)
        target = FFI.log_stats["appended"]
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        while FFI.log_stats["acked"] < target
          return false if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

          running? ? sleep(0.001) : drain
        end
        true
      end

      # Changes the engine's log level while it runs ("trace".."off").
      def level=(name)
        FFI.log_level = name.to_s
      end

      # Counters: lines appended, acked (delivered), buffered, to_stderr (buffer full), capacity,
      # max_buffered; logger_failures counts lines the logger raised on (written to stderr).
      def stats
        FFI.log_stats.transform_keys(&:to_sym).merge(logger_failures: @failures, thread_alive: running?)
      end

      # The fields of one engine line, as a Hash with String keys.
      def parse(line)
        JSON.parse(line.to_s[/\{.*\}/m] || "{}")
      rescue JSON::ParserError
        {}
      end

      private

      def run
        @consumer.synchronize do
          loop do
            while (batch = FFI.log_next(0))
              # A kill or raise waits until the batch is delivered and acknowledged.
              Thread.handle_interrupt(Object => :never) { deliver(batch) }
            end
            # The core writes a byte when a line arrives in the empty buffer.
            @wake.wait_readable(WAIT_SECONDS)
            nil while @wake.read_nonblock(256, exception: false).is_a?(String)
          end
        end
      end

      # Delivers what is buffered on the calling thread (no log thread runs).
      def drain
        @consumer.synchronize do
          while (batch = FFI.log_next(0))
            deliver(batch)
          end
        end
      end

      def deliver(batch)
        logger = TaskerCore.config.logger
        batch.each do |level, line|
          begin
            logger.add(SEVERITIES.fetch(level, Logger::INFO), line, PROGNAME)
          rescue StandardError
            @failures += 1
            warn(line)
          end
        end
        FFI.log_ack(batch.size)
      end

      def register_at_exit
        return if @at_exit

        @at_exit = true
        at_exit { flush(timeout: 2) if @pid == Process.pid }
      end
    end
  end
end
