# frozen_string_literal: true

require "fileutils"
require "logger"
require "stringio"

module SpecSupport
  # What an example logs stays out of the progress output and is shown only when it fails:
  # - TaskerCore.config.logger is a Logger on a StringIO for each example; the Ruby side logs there
  #   and the engine's JSON lines arrive there through TaskerCore::EngineLog;
  # - child processes (worker processes, CLI runs) write their output to files under tmp/spec-logs
  #   (child_log_path), and the embedded PostgreSQL server writes its log to
  #   tmp/spec-logs/postgresql.log, of which the part written during the example is shown.
  # The report of each failed example is printed after the progress, before RSpec's summary.
  module LogCapture
    DIR = File.expand_path("../../tmp/spec-logs", __dir__)

    @reports = []
    @current = nil

    class << self
      attr_reader :reports
      attr_accessor :current

      def server_log_path
        FileUtils.mkdir_p(DIR)
        File.join(DIR, "postgresql.log")
      end

      def size_of(path)
        File.size?(path) || 0
      end

      # Runs block with a fresh capturing logger; the captured text is printed when block raises.
      def capture(label)
        io = StringIO.new
        previous = TaskerCore.config.logger
        TaskerCore.config.logger = Logger.new(io, level: Logger::DEBUG)
        begin
          yield
        rescue Exception # rubocop:disable Lint/RescueException
          TaskerCore::EngineLog.flush(timeout: 2) if TaskerCore::FFI.running?
          warn "--- log of #{label} ---\n#{io.string}"
          raise
        ensure
          TaskerCore::EngineLog.flush(timeout: 2) if TaskerCore::FFI.running?
          TaskerCore.config.logger = previous
        end
      end

      def print_reports
        return if @reports.compact.empty?

        $stdout.puts
        @reports.compact.each { |r| $stdout.puts(r) }
      end
    end

    # One example's capture.
    class Capture
      attr_reader :io, :children

      def initialize(example)
        @example = example
        @io = StringIO.new
        @children = []
        @server_log_start = LogCapture.size_of(LogCapture.server_log_path)
      end

      def logger
        @logger ||= Logger.new(@io, level: Logger::DEBUG)
      end

      def child_log_path(name)
        slug = @example.id.gsub(/[^A-Za-z0-9]+/, "_").gsub(/\A_+|_+\z/, "")
        path = File.join(DIR, "#{slug}-#{name}-#{@children.size + 1}.log")
        FileUtils.mkdir_p(DIR)
        File.write(path, "")
        @children << path
        path
      end

      def report
        parts = ["=== logs of #{@example.full_description} (#{@example.location})"]
        parts << "--- logger ---\n#{@io.string}" unless @io.string.empty?
        @children.each do |path|
          text = File.exist?(path) ? File.read(path) : ""
          parts << "--- #{path} ---\n#{text}" unless text.empty?
        end
        server = LogCapture.server_log_path
        if File.size?(server).to_i > @server_log_start
          tail = File.open(server) do |f|
            f.seek(@server_log_start)
            f.read
          end
          parts << "--- #{server} (written during the example) ---\n#{tail}"
        end
        parts.size > 1 ? parts.join("\n") : nil
      end
    end

    # The text logged so far in this example (the engine's pending lines delivered first).
    def captured_log
      TaskerCore::EngineLog.flush if TaskerCore::FFI.running?
      LogCapture.current.io.string
    end

    # The engine's lines logged so far in this example, as Hashes (the JSON fields).
    def captured_engine_lines
      captured_log.each_line.select { |l| l.include?("-- #{TaskerCore::EngineLog::PROGNAME}: {") }
                  .map { |l| TaskerCore::EngineLog.parse(l) }
    end

    # A file for a child process's output (stdout or stderr): shown when the example fails.
    def child_log_path(name = "child")
      LogCapture.current.child_log_path(name)
    end
  end
end
