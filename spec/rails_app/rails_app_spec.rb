# frozen_string_literal: true

require "spec_helper"
require "bundler"
require "open3"
require "rbconfig"

# Generates a Rails app, follows docs/rails.md in it and checks every step (spec/rails_app/run.rb).
# The first run installs the app's gems into tmp/rails_app_cache (a few minutes); later runs take
# about a minute. Exclude it with `rspec --tag ~rails_app`.
RSpec.describe "a Rails app following docs/rails.md", :rails_app, timeout: 900 do
  it "installs the gem, generates a workflow and a subscriber whose specs pass, creates a task over HTTP, runs it, " \
     "delivers its events to the subscriber and reports health" do
    script = File.expand_path("run.rb", __dir__)
    out, status = Bundler.with_unbundled_env do
      Open3.capture2e({ "TASKER_TEST_DATABASE_URL" => DATABASE_URL }, RbConfig.ruby, script)
    end
    expect(status.exitstatus).to eq(0), "the Rails app test failed:\n#{out.lines.last(60).join}"
    expect(out).to match(/rails app test: passed \(\d+ commands of docs\/rails\.md/)
    expect(out).to include("ok: each Puma worker runs tasker handler threads")
    expect(out).to include("ok: NotificationSubscriber#handle_task_completed saw task")
  end
end
