# frozen_string_literal: true

require "spec_helper"
require "tasker_core/testing/http_stub"

module ApiHeadersSpec
  class Fetch < TaskerCore::StepHandler::Api
    def call(_context) = success(get("/items", headers: { "X-Request" => "${INVENTORY_KEY}" }).json)
  end
end

# docs/api_handler.md: `headers: {X-Api-Key: "${INVENTORY_KEY}"}` in handler.initialization.
RSpec.describe "API step handler headers from the environment" do
  let(:stub) { TaskerCore::Testing::HttpStub.new("/items" => [200, {}, '{"ok":true}']) }

  after do
    stub.stop
    ENV.delete("INVENTORY_KEY")
  end

  def handler(headers)
    ApiHeadersSpec::Fetch.new(config: { "base_url" => stub.url, "headers" => headers })
  end

  it "expands ${VAR} and ${VAR:-default} in the configured headers when the request is made, never in the config" do
    config_headers = { "X-Api-Key" => "${INVENTORY_KEY}", "X-Region" => "${INVENTORY_REGION:-eu}", "X-Plain" => "a$b" }
    h = handler(config_headers)
    ENV["INVENTORY_KEY"] = "k-1"
    h.call(nil)
    ENV["INVENTORY_KEY"] = "k-2" # read at each request: a rotated key is used at once
    h.call(nil)
    first, second = stub.recorded
    expect(first.headers).to include("x-api-key" => "k-1", "x-region" => "eu", "x-plain" => "a$b")
    expect(second.headers["x-api-key"]).to eq("k-2")
    expect(h.config["headers"]["X-Api-Key"]).to eq("${INVENTORY_KEY}")
    # A header the handler builds at run time (maybe from task data) is sent as it is.
    expect(first.headers["x-request"]).to eq("${INVENTORY_KEY}")
  end

  it "fails permanently, naming the header and the variable, when the variable is not set" do
    expect { handler({ "X-Api-Key" => "${INVENTORY_KEY}" }).call(nil) }
      .to raise_error(TaskerCore::Errors::ConfigurationError,
                      /header X-Api-Key needs the environment variable INVENTORY_KEY/)
    expect(stub.recorded).to be_empty
  end
end
