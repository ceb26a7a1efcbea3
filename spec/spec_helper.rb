# frozen_string_literal: true

# Specs under spec/unit need no database. Specs under spec/integration (and spec/rails_app) are
# tagged :db; the first of them loaded starts or connects to PostgreSQL (support/integration.rb).
require "timeout"
require_relative "../lib/tasker_core"
require_relative "support/log_capture"

RSpec.configure do |config|
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.order = :random
  Kernel.srand config.seed

  config.define_derived_metadata(file_path: %r{/spec/(integration|rails_app)/}) { |meta| meta[:db] = true }
  config.when_first_matching_example_defined(:db) { require_relative "support/integration" }

  config.include SpecSupport::LogCapture

  # Each example logs into its own StringIO (shown only when it fails, after the progress).
  config.around do |example|
    capture = SpecSupport::LogCapture::Capture.new(example)
    SpecSupport::LogCapture.current = capture
    previous = TaskerCore.config.logger
    TaskerCore.config.logger = capture.logger
    begin
      example.run
    ensure
      TaskerCore::EngineLog.flush(timeout: 2) if TaskerCore::FFI.running?
      TaskerCore.config.logger = previous
      SpecSupport::LogCapture.current = nil
      SpecSupport::LogCapture.reports << capture.report if example.exception
    end
  end

  # No example may hang the suite (an example may allow itself longer with timeout: seconds).
  config.around do |example|
    Timeout.timeout(example.metadata[:timeout] || ENV.fetch("TASKER_SPEC_TIMEOUT", "120").to_i) { example.run }
  end

  config.after(:suite) { SpecSupport::LogCapture.print_reports }
end
