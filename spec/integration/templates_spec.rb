# frozen_string_literal: true

require "spec_helper"
require "tmpdir"

RSpec.describe TaskerCore::Templates do
  let(:invalid) { File.expand_path("../fixtures/invalid_templates", __dir__) }
  let(:valid) { File.expand_path("../fixtures/templates", __dir__) }

  def error_for(file)
    described_class.load([File.join(invalid, file)])
    nil
  rescue TaskerCore::Errors::TemplateError => e
    e
  end

  it "rejects an unknown dependency, naming the template and the step" do
    error = error_for("unknown_dependency.yml")
    expect(error.message).to include("broken/broken_unknown_dep@1.0.0", "step 'second'",
                                     "dependency 'frist' is not a step of this template")
  end

  it "rejects a dependency cycle, naming the steps in it" do
    error = error_for("cycle.yml")
    expect(error.message).to include("broken/broken_cycle@1.0.0", "dependency cycle among steps: a, b, c")
  end

  it "rejects a duplicate step name" do
    expect(error_for("duplicate_step.yml").message).to include("step 'same'", "used more than once")
  end

  it "rejects a step without handler.callable" do
    expect(error_for("missing_callable.yml").message).to include("step 'nothing_to_call'", "handler.callable is required")
  end

  it "rejects YAML that does not parse, naming the file" do
    expect(error_for("not_yaml.yml").message).to include("not_yaml.yml", "invalid YAML")
  end

  it "rejects bad top-level fields" do
    base = { "name" => "t", "namespace_name" => "ns", "version" => "1.0.0",
             "steps" => [{ "name" => "a", "handler" => { "callable" => "X" } }] }
    expect { TaskerCore::FFI.template_normalize(base.merge("namespace_name" => "has-dash")) }
      .to raise_error(TaskerCore::Errors::TemplateError, /namespace_name/)
    expect { TaskerCore::FFI.template_normalize(base.merge("version" => 1.0)) }
      .to raise_error(TaskerCore::Errors::TemplateError, /version is required/)
    expect { TaskerCore::FFI.template_normalize(base.merge("steps" => [])) }
      .to raise_error(TaskerCore::Errors::TemplateError, /steps is required/)
    bad_retry = base.merge("steps" => [{ "name" => "a", "handler" => { "callable" => "X" }, "retry" => { "max_attempts" => 0 } }])
    expect { TaskerCore::FFI.template_normalize(bad_retry) }
      .to raise_error(TaskerCore::Errors::TemplateError, /step 'a': max_attempts must be between 1 and 100/)
    bad_type = base.merge("steps" => [{ "name" => "a", "handler" => { "callable" => "X" }, "type" => "deferred" }])
    expect { TaskerCore::FFI.template_normalize(bad_type) }
      .to raise_error(TaskerCore::Errors::TemplateError, /type must be one of/)
  end

  it "applies defaults and marks the steps created with the task" do
    tpl = described_class.validate(File.join(valid, "linear.yml"))
    step = tpl["steps"].first
    expect(step["retry"]).to eq("retryable" => true, "max_attempts" => 3, "backoff" => "exponential",
                                "backoff_base_ms" => 1000, "max_backoff_ms" => 30_000)
    expect(step["handler"]["method"]).to eq("call")
    expect(tpl["steps"].map { |s| s["initial"] }.uniq).to eq([true])
  end

  it "registers templates in the database, idempotently" do
    first = described_class.load([valid])
    second = described_class.load([valid])
    expect(first.map { |t| t["name"] }).to include("linear_workflow", "diamond_workflow", "tree_workflow")
    expect(second.map { |t| t["named_task_uuid"] }).to eq(first.map { |t| t["named_task_uuid"] })
    expect(psql_value("SELECT count(*) FROM tasker.named_tasks")).to eq(first.size.to_s)
    config = psql_value("SELECT configuration->'steps'->1->>'name' FROM tasker.named_tasks WHERE name = 'linear_workflow'")
    expect(config).to eq("linear_step_2")
  end

  it "reports handlers that cannot run, before any task does" do
    path = File.join(Dir.mktmpdir("tasker-tpl"), "ghost.yml")
    File.write(path, <<~YAML)
      name: ghost
      namespace_name: ghosts
      version: "1.0.0"
      steps:
        - {name: real, handler: {callable: SpecHandlers::SquareInput}}
        - {name: wrong_method, dependencies: [real], handler: {callable: SpecHandlers::SquareInput, method: nope}}
        - {name: missing, dependencies: [real], handler: {callable: Ghosts::Nothing}}
    YAML
    expect(described_class.validate(path)["name"]).to eq("ghost") # structure alone is fine
    expect { described_class.validate(path, check_handlers: true) }.to raise_error(TaskerCore::Errors::TemplateError) { |e|
      expect(e.message).to include("step 'wrong_method': handler.method 'nope' of callable 'SpecHandlers::SquareInput' is not a public method")
      expect(e.message).to include("step 'missing': no handler for callable 'Ghosts::Nothing'")
      expect(e.message).not_to include("step 'real'")
    }
  end

  it "dispatches to handler.method" do
    klass = Class.new(TaskerCore::StepHandler::Base) { def custom(context) = success({ "via" => "custom", "n" => context.get_input("n") }) }
    stub_const("SpecHandlers::Custom", klass)
    TaskerCore::FFI.template_register({ "name" => "custom_method", "namespace_name" => "math", "version" => "1.0.0",
                                        "steps" => [{ "name" => "c", "handler" => { "callable" => "SpecHandlers::Custom", "method" => "custom" } }] })
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 1)
    uuid = TaskerCore::Client.create_task(name: "custom_method", namespace: "math", context: { n: 3 })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    expect(steps_by_name(uuid)["c"].dig("results", "result")).to eq("via" => "custom", "n" => 3)
  end
end
