# frozen_string_literal: true

require "spec_helper"
require "rbconfig"
require "zlib"

RSpec.describe "schema migrations" do
  sql_dir = File.expand_path("../../ext/tasker_core/sql", __dir__)
  migrations = Dir["#{sql_dir}/migrations/*.sql"].map { |f| File.basename(f).to_i }.sort
  function_files = Dir["#{sql_dir}/functions/*.sql"].map { |f| File.basename(f, ".sql") }
                                                     .sort_by { |n| [n == "util" ? 0 : 1, n] }

  def scratch_database(name)
    psql("DROP DATABASE IF EXISTS #{name} WITH (FORCE)")
    psql("CREATE DATABASE #{name}")
    DATABASE_URL.sub(%r{\A(postgres(?:ql)?://[^/?]*/)[^?]*}, "\\1#{name}")
  end

  def drop_database(name)
    psql("DROP DATABASE IF EXISTS #{name} WITH (FORCE)")
  end

  # Runs TaskerCore.migrate! on url in a process of its own: its report, or the error it raised.
  def migrate_in_child(url)
    script = <<~RUBY
      require "json"
      require "#{File.expand_path('../../lib/tasker_core', __dir__)}"
      TaskerCore.configure { |c| c.database_url = ENV.fetch("URL"); c.log_level = "off" }
      begin
        puts JSON.generate(TaskerCore.migrate!)
      rescue TaskerCore::Errors::Error => e
        puts JSON.generate("raised" => e.class.name, "message" => e.message)
      end
    RUBY
    out, err, status = Open3.capture3({ "URL" => url }, RbConfig.ruby, "-e", script)
    raise "child failed (#{status.exitstatus}): #{err}" unless status.success?

    JSON.parse(out.lines.last)
  end

  # The schema as pg_dump prints it, without the per-run restriction key.
  def schema_dump(url)
    pg_dump = File.join(`pg_config --bindir`.strip, "pg_dump")
    out, err, status = Open3.capture3({ "LD_PRELOAD" => nil }, pg_dump, "--schema-only", "--schema=tasker", url)
    raise "pg_dump failed: #{err}" unless status.success?

    out.lines.grep_v(/\A\\(un)?restrict /).join
  end

  def function_definitions(url)
    SpecSupport::Database.psql_on(url, <<~SQL).to_h
      SELECT p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'tasker'
    SQL
  end

  # Applies the earlier releases' chain (migrations 1-18, which defined functions as they went) the
  # way those releases did: each file in a transaction, recorded by version and name.
  def apply_legacy_chain(url, upto: 18)
    text = Zlib::GzipReader.open(File.expand_path("../fixtures/legacy_migrations_0001_0018.sql.gz", __dir__), &:read)
    files = text.split(/^-- tasker legacy migration: (\d{4})_(\w+)\n/).drop(1).each_slice(3)
    SpecSupport::Database.psql_on(url, <<~SQL)
      CREATE SCHEMA tasker;
      CREATE TABLE tasker.schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
        applied_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))
    SQL
    files.first(upto).each do |version, name, sql|
      SpecSupport::Database.psql_on(url, "SET client_min_messages = warning; BEGIN; #{sql}; " \
                                         "INSERT INTO tasker.schema_migrations (version, name) " \
                                         "VALUES (#{version.to_i}, '#{name}'); COMMIT;")
    end
  end

  it "is a no-op when run again" do
    expect(TaskerCore.migrate!).to eq("applied" => [], "functions" => [],
                                      "current_version" => TaskerCore::FFI.schema_version)
  end

  it "applies cleanly from two processes at once into an empty database" do
    url = scratch_database("tasker_migrate_race")
    script = <<~RUBY
      require "json"
      require "#{File.expand_path('../../lib/tasker_core', __dir__)}"
      TaskerCore.configure { |c| c.database_url = ENV.fetch("URL") }
      puts JSON.generate(TaskerCore.migrate!)
    RUBY
    children = Array.new(2) do
      r, w = IO.pipe
      pid = Process.spawn({ "URL" => url }, RbConfig.ruby, "-e", script, out: w, err: child_log_path("migrator"))
      w.close
      [pid, r]
    end
    outputs = children.map { |pid, r| [Process.wait2(pid).last, r.read] }
    expect(outputs.map { |status, _| status.exitstatus }).to eq([0, 0])
    reports = outputs.map { |_, out| JSON.parse(out.lines.last) }.sort_by { |r| r["applied"].size }
    expect(migrations.max).to eq(TaskerCore::FFI.schema_version)
    expect(reports.map { |r| r["applied"] }).to eq([[], migrations])
    expect(reports.map { |r| r["functions"] }).to eq([[], function_files])
    versions = SpecSupport::Database.psql_on(url, "SELECT version FROM tasker.schema_migrations ORDER BY 1").map(&:first)
    expect(versions).to eq(migrations.map(&:to_s))
  ensure
    drop_database("tasker_migrate_race")
  end

  it "brings a database of the earlier chain (functions in migrations 1-18) to exactly a fresh database's schema" do
    legacy = scratch_database("tasker_migrate_legacy")
    fresh = scratch_database("tasker_migrate_fresh")
    apply_legacy_chain(legacy)
    expect(function_definitions(legacy).size).to be > 40

    expect(migrate_in_child(legacy)).to include("applied" => migrations - [1], "functions" => function_files)
    expect(migrate_in_child(fresh)).to include("applied" => migrations, "functions" => function_files)
    expect(function_definitions(legacy)).to eq(function_definitions(fresh))
    expect(schema_dump(legacy)).to eq(schema_dump(fresh))
    recorded = ->(url) { SpecSupport::Database.psql_on(url, "SELECT version, name, checksum FROM tasker.schema_migrations ORDER BY 1") }
    expect(recorded.call(legacy)).to eq(recorded.call(fresh))
    expect(migrate_in_child(legacy)).to include("applied" => [], "functions" => [])
  ensure
    drop_database("tasker_migrate_legacy")
    drop_database("tasker_migrate_fresh")
  end

  it "refuses a database that holds only part of the earlier chain, saying what to do" do
    url = scratch_database("tasker_migrate_partial")
    apply_legacy_chain(url, upto: 12)
    expect(migrate_in_child(url)).to eq(
      "raised" => "TaskerCore::Errors::StateError",
      "message" => "the tasker schema holds 12 of the 18 migrations of an earlier release (up to version 12): " \
                   "migrate it with that release first"
    )
  ensure
    drop_database("tasker_migrate_partial")
  end

  it "applies a function file again when its recorded text differs, and stops on a changed or unknown migration" do
    url = scratch_database("tasker_migrate_checks")
    migrate_in_child(url)
    sql = ->(q) { SpecSupport::Database.psql_on(url, q) }

    sql.call("UPDATE tasker.schema_functions SET checksum = 'earlier' WHERE name = 'claim'")
    sql.call("DROP FUNCTION tasker.claim_steps")
    expect(migrate_in_child(url)).to include("applied" => [], "functions" => ["claim"])
    expect(sql.call("SELECT count(*) FROM pg_proc WHERE proname = 'claim_steps'")).to eq([["1"]])

    sql.call("UPDATE tasker.schema_migrations SET checksum = 'edited' WHERE version = 1")
    expect(migrate_in_child(url)["message"]).to match(
      /\Amigration 0001_schema was changed after it was applied \(checksum edited recorded, \h{12} in this library\)\z/
    )

    sql.call("UPDATE tasker.schema_migrations SET checksum = '#{checksum_of(1, sql_dir)}' WHERE version = 1")
    sql.call("INSERT INTO tasker.schema_migrations (version, name, checksum) VALUES (#{migrations.max + 1}, 'future', 'x')")
    expect(migrate_in_child(url)).to eq(
      "raised" => "TaskerCore::Errors::StateError",
      "message" => format("the tasker schema has migration %04d, which this library (up to %04d) does not have: " \
                          "it was migrated by a newer release", migrations.max + 1, migrations.max)
    )
  ensure
    drop_database("tasker_migrate_checks")
  end

  def checksum_of(version, sql_dir)
    require "digest"
    Digest::SHA256.hexdigest(File.read(Dir[format("%s/migrations/%04d_*.sql", sql_dir, version)].first))
  end
end
