# frozen_string_literal: true

# Every integration spec runs against a real PostgreSQL: TASKER_TEST_DATABASE_URL when set,
# otherwise a throwaway cluster started for this run (and removed at exit).
require_relative "../lib/tasker_core/embedded_postgres"

ENV["TASKER_DATABASE_URL"] = ENV["TASKER_TEST_DATABASE_URL"] if ENV["TASKER_TEST_DATABASE_URL"]
DATABASE_URL = TaskerCore::EmbeddedPostgres.database_url!(fsync: false)

require_relative "../lib/tasker_core"
require_relative "support/database"
require_relative "support/handlers"
require_relative "support/waiting"

TaskerCore.configure do |c|
  c.database_url = DATABASE_URL
  c.log_level = ENV.fetch("TASKER_LOG_LEVEL", "error")
end
TaskerCore.migrate!

RSpec.configure do |config|
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.order = :random
  Kernel.srand config.seed
  config.include SpecSupport::Database
  config.include SpecSupport::Waiting

  config.before do
    SpecSupport::Database.clean!
    SpecSupport::Ledger.reset!
    TaskerCore::InputSchema.clear_cache!
  end

  config.after do
    TaskerCore::Worker.stop(timeout: 5) if TaskerCore::Worker.running?
  end

  # No example may hang the suite (an example may allow itself longer with timeout: seconds).
  config.around do |example|
    Timeout.timeout(example.metadata[:timeout] || ENV.fetch("TASKER_SPEC_TIMEOUT", "120").to_i) { example.run }
  end
end
