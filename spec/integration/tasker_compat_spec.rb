# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

# Seed 002's example app (spec/fixtures/tasker_engine_app: the seed's task handler, step
# handlers, API step handler, subscribers and YAML) with the seed's own specs for it, unchanged,
# and specs that run its workflows through the engine's worker. The app runs in a process of its
# own: it defines OrderProcess as a class, and Rails (its stand-in), which must not leak into
# this suite. Its output is shown only when it fails.
RSpec.describe "require \"tasker\": seed 002's example app", timeout: 300 do
  APP_DIR = File.expand_path("../fixtures/tasker_engine_app", __dir__)
  LIB_DIR = File.expand_path("../../lib", __dir__)

  def run_app_specs(*files)
    log = child_log_path("app")
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "APP_LOG" => log, "RAILS_ENV" => "test", "SPEC_OPTS" => nil }
    command = [RbConfig.ruby, "-I", LIB_DIR, "-e", "require 'rspec/core'; exit RSpec::Core::Runner.run(ARGV)", "--",
               "--no-color", "--format", "progress", *(files.empty? ? ["spec"] : files)]
    output = IO.popen(env, command, chdir: APP_DIR, err: %i[child out], &:read)
    [Process.last_status, output]
  end

  it "passes the seed's specs unchanged and runs both workflows end to end against PostgreSQL" do
    status, output = run_app_specs
    expect(status).to be_success, "the example app's specs failed:\n#{output}"
    expect(output).to match(/^(\d+) examples, 0 failures/), output
    expect(output[/^(\d+) examples/, 1].to_i).to eq(8), output
  end
end
