# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require "rbconfig"
require "socket"
require "time"

# Unreachable databases and other schemas are tried in child processes, each with its own runtime,
# so the suite's runtime and database are never disturbed.
RSpec.describe "TaskerCore::Client.health_check and an unreachable database" do
  let(:lib) { File.expand_path("../../lib/tasker_core", __dir__) }

  # Runs body (Ruby, with `url` and `report(key, value)`) in a child against url; returns the reports.
  def in_child(url, body, connect_timeout: 2)
    script = <<~RUBY
      require "json"
      require #{lib.inspect}
      url = ENV.fetch("URL")
      TaskerCore.configure { |c| c.database_url = url; c.connect_timeout_seconds = #{connect_timeout}; c.log_level = "off" }
      REPORTS = {}
      def report(key, value) = REPORTS[key] = value
      def timed
        t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        value = begin
          yield
        rescue StandardError => e
          { "raised" => e.class.name, "message" => e.message }
        end
        [value, Process.clock_gettime(Process::CLOCK_MONOTONIC) - t]
      end
      #{body}
      puts JSON.generate(REPORTS)
    RUBY
    out, err, status = Open3.capture3({ "URL" => url }, RbConfig.ruby, "-e", script)
    raise "child failed (#{status.exitstatus}): #{err}" unless status.success?

    JSON.parse(out.lines.last)
  end

  it "reports a healthy database with its schema version, as a HealthResponse" do
    health = TaskerCore::Client.health_check
    expect(health).to be_a(TaskerCore::Types::ClientTypes::HealthResponse)
    expect(health).to have_attributes(healthy: true, status: "healthy", database_connected: true,
                                      schema_version: TaskerCore::FFI.schema_version,
                                      expected_schema_version: TaskerCore::FFI.schema_version, error: nil)
    expect(health.timestamp).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\z/)
    expect((Time.parse("#{health.timestamp}Z") - Time.now).abs).to be < 5
    expect(health.response_time_ms).to be_a(Float).and be < 1000
  end

  it "is unhealthy before migration, healthy after, and unhealthy with functions out of date, a migration missing or a newer schema" do
    psql("DROP DATABASE IF EXISTS tasker_health_check")
    psql("CREATE DATABASE tasker_health_check")
    url = DATABASE_URL.sub(%r{\A(postgres(?:ql)?://[^/?]*/)[^?]*}, '\1tasker_health_check')
    reports = in_child(url, <<~RUBY)
      sql = ->(q) { system({ "LD_PRELOAD" => nil }, "psql", url, "-X", "-q", "-c", q, exception: true) }
      TaskerCore.boot!
      report("fresh", TaskerCore::FFI.client_health_check)
      TaskerCore.migrate!
      report("migrated", TaskerCore::Client.health_check.to_h)
      sql.call("UPDATE tasker.schema_functions SET checksum = 'earlier' WHERE name = 'claim'")
      report("stale_functions", TaskerCore::FFI.client_health_check)
      sql.call("DELETE FROM tasker.schema_migrations WHERE version = 1")
      report("missing", TaskerCore::FFI.client_health_check)
      sql.call("INSERT INTO tasker.schema_migrations (version, name) VALUES (1, 'schema'), (9999, 'future')")
      report("newer", TaskerCore::FFI.client_health_check)
    RUBY
    expected = TaskerCore::FFI.schema_version
    expect(reports["fresh"]).to include("healthy" => false, "status" => "unhealthy", "database_connected" => true,
                                        "schema_version" => 0, "expected_schema_version" => expected)
    expect(reports["fresh"]["error"]).to eq("the tasker schema is not migrated (this library expects version #{expected})")
    expect(reports["migrated"]).to include("healthy" => true, "schema_version" => expected)
    expect(reports["stale_functions"]).to include("healthy" => false, "schema_version" => expected)
    expect(reports["stale_functions"]["error"]).to eq(
      "the tasker functions of functions/claim.sql are not this library's: migrations are pending"
    )
    expect(reports["missing"]).to include("healthy" => false)
    expect(reports["missing"]["error"]).to match(/with #{expected - 1} of this library's #{expected} migrations applied: migrations are pending/)
    expect(reports["newer"]["error"]).to eq("the tasker schema is at version 9999, newer than this library's #{expected}")
  ensure
    psql("DROP DATABASE IF EXISTS tasker_health_check WITH (FORCE)")
  end

  it "answers healthy: false for a closed port, and every other call raises DatabaseError at once" do
    reports = in_child("postgresql://127.0.0.1:1/tasker", <<~RUBY)
      report("health", timed { TaskerCore::Client.health_check.to_h })
      report("get_task", timed { TaskerCore::Client.get_task(TaskerCore::FFI.uuid_v7) })
      report("list_tasks", timed { TaskerCore::Client.list_tasks })
      report("create_task", timed { TaskerCore::Client.create_task(name: "x", context: {}) })
    RUBY
    health, seconds = reports["health"]
    expect(health).to include("healthy" => false, "status" => "unhealthy", "database_connected" => false)
    expect(health["error"]).to match(/database check failed: database connection failed: .*127\.0\.0\.1.*1/m)
    expect(seconds).to be < 1
    %w[get_task list_tasks create_task].each do |call|
      outcome, took = reports[call]
      expect(outcome).to include("raised" => "TaskerCore::Errors::DatabaseError"), "#{call}: #{outcome}"
      expect(outcome["message"]).to match(/database connection failed/)
      expect(took).to be < 1
    end
  end

  it "gives up on a server that accepts the connection but never answers after connect_timeout_seconds" do
    server = TCPServer.new("127.0.0.1", 0)
    held = []
    acceptor = Thread.new { loop { held << server.accept } }
    url = "postgresql://127.0.0.1:#{server.addr[1]}/tasker"
    reports = in_child(url, <<~RUBY, connect_timeout: 2)
      report("health", timed { TaskerCore::Client.health_check.to_h })
      report("get_task", timed { TaskerCore::Client.get_task(TaskerCore::FFI.uuid_v7) })
    RUBY
    health, seconds = reports["health"]
    expect(health).to include("healthy" => false, "database_connected" => false)
    expect(health["error"]).to match(/timeout|timed out/i)
    expect(seconds).to be_between(1.5, 5)
    outcome, took = reports["get_task"]
    expect(outcome).to include("raised" => "TaskerCore::Errors::DatabaseError")
    expect(took).to be_between(1.5, 5)
  ensure
    acceptor&.kill
    held&.each(&:close)
    server&.close
  end
end
