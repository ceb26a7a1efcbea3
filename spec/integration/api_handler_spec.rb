# frozen_string_literal: true

require "spec_helper"
require "json"
require_relative "../support/http_stub"

module ApiSpec
  class FetchItem < TaskerCore::StepHandler::Api
    def call(context)
      response = get("/items/#{context.get_input('id')}", params: { verbose: true })
      success(response.json)
    end
  end

  class CreateOrder < TaskerCore::StepHandler::Api
    def call(context)
      response = connection.post("/orders", body: { item: context.get_input("id"), qty: 2 })
      success({ "status" => response.status, "order" => response.json })
    end
  end
end

RSpec.describe TaskerCore::StepHandler::Api do
  let(:stub) do
    SpecSupport::HttpStub.new(
      "/items/1" => [200, {}, '{"id":1,"name":"widget"}'],
      "/items/2" => [[429, { "Retry-After" => "1" }, "{}"], [200, {}, '{"id":2}']],
      "/items/3" => [503, {}, '{"error":"down"}'],
      "/items/4" => [422, {}, '{"error":"bad id"}'],
      "/items/5" => [[503, {}, "\xE2\x82\xAC down \xFF\xFE".b * 100], [200, {}, '{"id":5}']],
      "/items/6" => [503, { "Retry-After" => "9" * 400 }, "{}"],
      "/orders" => [201, {}, '{"order_id":"o-1"}']
    )
  end

  after { stub.stop }

  def run(callable, id, base_url: stub.url, retry_block: { "max_attempts" => 2, "backoff" => "none" })
    tpl = { "name" => "api_#{callable.split('::').last.downcase}", "namespace_name" => "api", "version" => "1.0.0",
            "steps" => [{ "name" => "call_api", "retry" => retry_block,
                          "handler" => { "callable" => callable,
                                         "initialization" => { "base_url" => base_url, "headers" => { "X-Api-Key" => "k-123" },
                                                               "read_timeout" => 2 } } }] }
    TaskerCore::FFI.template_register(tpl)
    TaskerCore::Worker.start(namespaces: ["api"], concurrency: 2) unless TaskerCore::Worker.running?
    uuid = TaskerCore::Client.create_task(name: tpl["name"], namespace: "api", context: { id: id })["task_uuid"]
    [wait_for_task(uuid), steps_by_name(uuid)["call_api"]]
  end

  it "returns the parsed JSON of a 200 and sends the configured headers" do
    task, step = run("ApiSpec::FetchItem", 1)
    expect(task["status"]).to eq("complete")
    expect(step.dig("results", "result")).to eq("id" => 1, "name" => "widget")
    request = stub.recorded.last
    expect(request.path).to eq("/items/1?verbose=true")
    expect(request.headers["x-api-key"]).to eq("k-123")
  end

  it "posts JSON bodies" do
    task, step = run("ApiSpec::CreateOrder", 7)
    expect(task["status"]).to eq("complete")
    expect(step.dig("results", "result")).to eq("status" => 201, "order" => { "order_id" => "o-1" })
    expect(JSON.parse(stub.recorded.last.body)).to eq("item" => 7, "qty" => 2)
  end

  it "retries a 429 after its Retry-After and then succeeds" do
    task, step = run("ApiSpec::FetchItem", 2)
    expect(task["status"]).to eq("complete")
    expect(step["attempts"]).to eq(2)
    waits = psql("SELECT metadata->>'retry_delay_ms' FROM tasker.workflow_step_transitions " \
                 "WHERE workflow_step_uuid = '#{step['step_uuid']}' AND to_state = 'waiting_for_retry'").flatten
    expect(waits).to eq(["1000"])
  end

  it "retries a 5xx until attempts run out" do
    task, step = run("ApiSpec::FetchItem", 3)
    expect(task["status"]).to eq("error")
    expect(step["attempts"]).to eq(2)
    expect(step.dig("results", "error")).to include("error_type" => "RetryableError", "error_code" => "HTTP_503")
  end

  it "keeps a 5xx with a body that is not UTF-8 retryable, storing the body's start as valid UTF-8" do
    task, step = run("ApiSpec::FetchItem", 5)
    expect(task["status"]).to eq("complete")
    expect(step["attempts"]).to eq(2)
    body = psql_value("SELECT metadata->'error'->'context'->>'body' FROM tasker.workflow_step_transitions " \
                      "WHERE workflow_step_uuid = '#{step['step_uuid']}' AND to_state = 'waiting_for_retry'")
    expect(body).to start_with("\u20AC down \uFFFD\uFFFD\u20AC down")
    expect(body.bytesize).to be <= 500
  end

  it "clamps a Retry-After of hundreds of digits to the engine's maximum" do
    require "tasker_core/testing"
    context = TaskerCore::Testing.build_test_context({ "id" => 6 }, step_config: { "base_url" => stub.url })
    result = TaskerCore::Testing.call_handler(ApiSpec::FetchItem, context)
    expect(result).to have_attributes(retryable: true, error_code: "HTTP_503", retry_after: 3600.0)
  end

  it "fails permanently on a 4xx such as 422 or 404" do
    task, step = run("ApiSpec::FetchItem", 4)
    expect(task["status"]).to eq("error")
    expect(step["attempts"]).to eq(1)
    expect(step.dig("results", "error")).to include("error_type" => "PermanentError", "error_code" => "HTTP_422")
    _, missing = run("ApiSpec::FetchItem", 99)
    expect(missing.dig("results", "error", "message")).to include("answered 404")
    expect(missing["attempts"]).to eq(1)
  end

  it "treats a refused connection as a retryable network error" do
    closed = TCPServer.new("127.0.0.1", 0)
    port = closed.addr[1]
    closed.close
    task, step = run("ApiSpec::FetchItem", 1, base_url: "http://127.0.0.1:#{port}")
    expect(task["status"]).to eq("error")
    expect(step["attempts"]).to eq(2)
    expect(step.dig("results", "error", "message")).to include("failed")
  end
end
