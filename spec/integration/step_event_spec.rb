# frozen_string_literal: true

require "spec_helper"
require "tmpdir"

module StepEventSpec
  # Returns what it saw of its event: its step's configuration, definition and parents' results.
  class Echo < TaskerCore::StepHandler::Base
    def call(context)
      success({ "greeting" => context.step_config["greeting"], "definition" => context.step_definition["name"],
                "parents" => context.dependency_results.keys.sort, "attempts" => context.workflow_step["attempts"] })
    end
  end
end

# The worker builds each step event from the claim's row and its own cache of step definitions
# (core/tc_step_event.c): a re-registered template must reach a running worker.
RSpec.describe "step events built by the worker" do
  def write_template(dir, greeting)
    File.write(File.join(dir, "echo.yml"), <<~YAML)
      name: echo_workflow
      namespace_name: step_events
      version: "1.0.0"
      steps:
        - name: first
          handler: {callable: StepEventSpec::Echo, initialization: {greeting: #{greeting}}}
        - name: second
          dependencies: [first]
          handler: {callable: StepEventSpec::Echo, initialization: {greeting: #{greeting}}}
    YAML
  end

  def run_task(run)
    uuid = TaskerCore::Client.create_task(name: "echo_workflow", namespace: "step_events", context: { run: run })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    steps_by_name(uuid).transform_values { |s| s.dig("results", "result") }
  end

  it "gives the handler its definition, configuration and parents, and a changed definition at once" do
    Dir.mktmpdir do |dir|
      write_template(dir, "hello")
      TaskerCore::Templates.load([dir])
      TaskerCore::Worker.start(namespaces: ["step_events"], concurrency: 2)
      expect(run_task(1)).to eq(
        "first" => { "greeting" => "hello", "definition" => "first", "parents" => [], "attempts" => 0 },
        "second" => { "greeting" => "hello", "definition" => "second", "parents" => ["first"], "attempts" => 0 }
      )

      write_template(dir, "changed")
      TaskerCore::Templates.load([dir])
      expect(run_task(2).values.map { |r| r["greeting"] }).to eq(%w[changed changed])
    end
  end
end
