# frozen_string_literal: true

require "spec_helper"
require "json"

# Hostile input and faults: limits that agree end to end, secrets that stay secret.
RSpec.describe "limits and secrets" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:obs) { TaskerCore::Observability }

  def template(name:, namespace: "math", version: "1.0.0", steps: nil)
    { "name" => name, "namespace_name" => namespace, "version" => version,
      "steps" => steps || [{ "name" => "square", "handler" => { "callable" => "SpecHandlers::SquareInput" } }] }
  end

  def start_worker(namespaces: %w[math], **rest)
    TaskerCore::Worker.start(template_paths: [templates], namespaces: namespaces, concurrency: 2, **rest)
  end

  it "keeps templates whose names contain '/' apart in the template cache" do
    TaskerCore::FFI.template_register(template(name: "a/b", version: "1"))
    TaskerCore::FFI.template_register(template(name: "a", version: "b/1"))
    start_worker
    2.times do
      expect(JSON.parse(obs.template_get(namespace: "math", name: "a/b", version: "1"))["handler_metadata"])
        .to include("name" => "a/b", "version" => "1")
      expect(JSON.parse(obs.template_get(namespace: "math", name: "a", version: "b/1"))["handler_metadata"])
        .to include("name" => "a", "version" => "b/1")
    end
    expect(obs.cache_stats.total_entries).to eq(2)
    expect(obs.template_refresh(namespace: "math", name: "a", version: "b/1").success).to be(true)
    expect(JSON.parse(obs.template_get(namespace: "math", name: "a/b", version: "1"))).to include("cached" => true)
  end
end
