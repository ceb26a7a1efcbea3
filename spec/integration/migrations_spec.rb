# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

RSpec.describe "schema migrations" do
  it "is a no-op when run again" do
    expect(TaskerCore.migrate!).to eq("applied" => [], "current_version" => TaskerCore::FFI.schema_version)
  end

  it "applies cleanly from two processes at once into an empty database" do
    psql("DROP DATABASE IF EXISTS tasker_migrate_race")
    psql("CREATE DATABASE tasker_migrate_race")
    url = DATABASE_URL.sub(%r{\A(postgres(?:ql)?://[^/?]*/)[^?]*}, '\1tasker_migrate_race')
    script = <<~RUBY
      require "#{File.expand_path('../../lib/tasker_core', __dir__)}"
      TaskerCore.configure { |c| c.database_url = ENV.fetch("URL") }
      puts TaskerCore.migrate!["applied"].inspect
    RUBY
    children = Array.new(2) do
      r, w = IO.pipe
      pid = Process.spawn({ "URL" => url }, RbConfig.ruby, "-e", script, out: w, err: child_log_path("migrator"))
      w.close
      [pid, r]
    end
    outputs = children.map { |pid, r| [Process.wait2(pid).last, r.read] }
    expect(outputs.map { |status, _| status.exitstatus }).to eq([0, 0])
    applied = outputs.map { |_, out| eval(out) } # rubocop:disable Security/Eval
    all = Dir[File.expand_path("../../ext/tasker_core/sql/*.sql", __dir__)].map { |f| File.basename(f).to_i }.sort
    expect(all.max).to eq(TaskerCore::FFI.schema_version)
    expect(applied.sort_by(&:size)).to eq([[], all])
    versions = SpecSupport::Database.psql_on(url, "SELECT version FROM tasker.schema_migrations ORDER BY 1").map(&:first)
    expect(versions).to eq(all.map(&:to_s))
  ensure
    psql("DROP DATABASE IF EXISTS tasker_migrate_race WITH (FORCE)")
  end
end
