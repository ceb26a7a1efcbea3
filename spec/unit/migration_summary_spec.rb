# frozen_string_literal: true

require "spec_helper"

RSpec.describe "TaskerCore.migration_summary" do
  it "names the migrations and function files a migrate! applied, or says the schema is current" do
    expect(TaskerCore.migration_summary("applied" => [1, 2], "functions" => %w[util claim], "current_version" => 2))
      .to eq("applied migrations 1, 2; applied function files util, claim (now at version 2)")
    expect(TaskerCore.migration_summary("applied" => [], "functions" => ["result"], "current_version" => 2))
      .to eq("applied function files result (now at version 2)")
    expect(TaskerCore.migration_summary("applied" => [], "functions" => [], "current_version" => 2))
      .to eq("schema is current (version 2)")
  end
end
