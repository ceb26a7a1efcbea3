# frozen_string_literal: true

# Loaded by spec_helper when the run has an example tagged :db (every spec under spec/integration
# and spec/rails_app): a real PostgreSQL, TASKER_TEST_DATABASE_URL when set, otherwise a throwaway
# cluster started for this run (removed at exit; its server log is tmp/spec-logs/postgresql.log).
require_relative "../../lib/tasker_core/embedded_postgres"

ENV["TASKER_DATABASE_URL"] = ENV["TASKER_TEST_DATABASE_URL"] if ENV["TASKER_TEST_DATABASE_URL"]
DATABASE_URL = TaskerCore::EmbeddedPostgres.database_url!(fsync: false, log_path: SpecSupport::LogCapture.server_log_path)

require_relative "database"
require_relative "handlers"
require_relative "task_lock"
require_relative "waiting"

TaskerCore.configure do |c|
  c.database_url = DATABASE_URL
  c.log_level = ENV.fetch("TASKER_LOG_LEVEL", "error")
end
# The migrations' log (and any server notice) is captured like an example's.
SpecSupport::LogCapture.capture("migrations") { TaskerCore.migrate! }

RSpec.configure do |config|
  config.include SpecSupport::Database, :db
  config.include SpecSupport::Waiting, :db

  # prepend: this file is loaded while the first :db group is being defined, after that group's own
  # hooks; appended there, the clean-up would run after them (and wipe what they set up).
  config.prepend_before(:each, :db) do
    SpecSupport::Database.clean!
    SpecSupport::Ledger.reset!
    TaskerCore::InputSchema.clear_cache!
  end

  config.after(:each, :db) do
    TaskerCore::Worker.stop(timeout: 5) if TaskerCore::Worker.running?
  end
end
