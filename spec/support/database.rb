# frozen_string_literal: true

require "open3"
require "timeout"

module SpecSupport
  # Direct SQL through psql, for setting up and inspecting state the way an operator would.
  module Database
    TABLES = %w[tasker.events_outbox tasker.tasks_dlq tasker.workers tasker.workflow_step_attempts
                tasker.workflow_step_transition_log tasker.task_transitions tasker.workflow_step_edges
                tasker.workflow_steps tasker.tasks tasker.named_tasks tasker.task_namespaces].freeze

    module_function

    # Runs SQL and returns the rows as arrays of strings (psql's unaligned output).
    def psql(sql)
      psql_on(DATABASE_URL, sql)
    end

    def psql_on(url, sql)
      # psql never runs with the sanitizer runtime preloaded for the extension (rake asan).
      out, err, status = Open3.capture3({ "LD_PRELOAD" => nil }, "psql", url, "-X", "-q", "-At", "-F", "\t",
                                        "-v", "ON_ERROR_STOP=1", "-c", sql)
      raise "psql failed: #{err}" unless status.success?

      out.lines.map { |l| l.chomp.split("\t", -1) }
    end

    def psql_value(sql)
      psql(sql).dig(0, 0)
    end

    def clean!
      psql("TRUNCATE #{TABLES.join(', ')} RESTART IDENTITY CASCADE")
    end
  end
end
