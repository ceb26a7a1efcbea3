# frozen_string_literal: true

require "spec_helper"
require "json"
require "rbconfig"

# A process that runs no worker (a web process, a script) and never called Templates.load: its
# first create_task of an unregistered template registers the configured template_paths.
RSpec.describe "Registering the configured templates on the first create" do
  let(:fixtures) { File.expand_path("../fixtures/templates", __dir__) }
  let(:lib) { File.expand_path("../../lib/tasker_core", __dir__) }

  # Runs script in a fresh Ruby process configured with template_paths (none when nil); returns
  # the JSON it prints last.
  def in_child(script, template_paths:)
    program = <<~RUBY
      require #{lib.inspect}
      require "json"
      TaskerCore.configure do |c|
        c.database_url = #{DATABASE_URL.inspect}
        c.log_level = "error"
        c.template_paths = #{template_paths.inspect} if #{!template_paths.nil?}
      end
      def create(**args)
        TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2 }, **args)
      end
      out = begin
        #{script}
      rescue TaskerCore::Errors::Error => e
        { "error" => e.class.name, "message" => e.message, "context" => e.context, "code" => e.code }
      end
      puts JSON.generate(out)
      TaskerCore.shutdown!
    RUBY
    out = IO.popen({ "TASKER_TEMPLATE_PATH" => nil, "TASKER_DATABASE_URL" => DATABASE_URL },
                   [RbConfig.ruby, "-e", program], err: child_log_path("template-registration"), &:read)
    expect($?.exitstatus).to eq(0), out
    JSON.parse(out.lines.last)
  end

  it "registers template_paths and creates the task, from several threads at once" do
    expect(psql_value("SELECT count(*) FROM tasker.named_tasks")).to eq("0")
    result = in_child(<<~RUBY, template_paths: [fixtures])
      tasks = Array.new(4) { |i| Thread.new { create(context: { even_number: 2 * (i + 1) }) } }.map(&:value)
      again = create(context: { even_number: 2 })
      forked = fork { exit!(TaskerCore::Templates.configured_registered? ? 1 : 0) }
      Process.wait(forked)
      { "created" => tasks.map { |t| t["created"] }, "uuids" => tasks.map { |t| t["task_uuid"] },
        "again" => { "task_uuid" => again["task_uuid"], "created" => again["created"] }, "child_rechecks" => $?.exitstatus.zero?,
        "registered" => TaskerCore::Templates.configured_registered? }
    RUBY
    expect(result["created"]).to eq([true, true, true, true])
    expect(result["again"]).to eq("task_uuid" => result["uuids"][0], "created" => false)
    expect(result["registered"]).to be(true)
    expect(result["child_rechecks"]).to be(true)
    expect(psql_value("SELECT count(*) FROM tasker.tasks")).to eq("4")
    expect(psql("SELECT name FROM tasker.named_tasks ORDER BY name").flatten).to include("linear_workflow", "diamond_workflow")
  end

  it "creates a batch with create_tasks the same way" do
    result = in_child(<<~RUBY, template_paths: [fixtures])
      TaskerCore::Client.create_tasks([{ name: "linear_workflow", namespace: "math", context: { even_number: 2 } },
                                       { name: "diamond_workflow", namespace: "math", context: { even_number: 4 } }])
        .map { |t| t["created"] }
    RUBY
    expect(result).to eq([true, true])
  end

  it "registers the valid templates when one configured template is invalid, and names it when one is missing" do
    cycle = File.expand_path("../fixtures/invalid_templates/cycle.yml", __dir__)
    result = in_child(<<~RUBY, template_paths: [fixtures, cycle])
      missing = begin
        create(version: "9.9.9")
      rescue TaskerCore::Errors::NotFoundError => e
        e.message
      end
      { "missing" => missing, "created" => create["created"] }
    RUBY
    expect(result["created"]).to be(true)
    expect(result["missing"]).to include("version=9.9.9", "Not registered: #{cycle}: ", "dependency cycle among steps")
  end

  it "writes nothing when a template is registered again unchanged" do
    TaskerCore::Templates.load([fixtures])
    before = psql("SELECT name, xmin::text, updated_at FROM tasker.named_tasks ORDER BY name")
    TaskerCore::Templates.load([fixtures])
    expect(psql("SELECT name, xmin::text, updated_at FROM tasker.named_tasks ORDER BY name")).to eq(before)
  end

  it "raises NotFoundError naming the template, that no paths are configured, and how to register" do
    result = in_child("create", template_paths: nil)
    expect(result["error"]).to eq("TaskerCore::Errors::NotFoundError")
    expect(result["message"]).to start_with("task template not found: namespace=math, name=linear_workflow, version=1.0.0")
    expect(result["message"]).to include("No template_paths are configured")
    expect(result["message"]).to include("TaskerCore::Templates.load(paths)", "template_paths", "bin/tasker templates register PATHS")
    expect(result["code"]).to eq("TC_ENOTFOUND")
    expect(psql_value("SELECT count(*) FROM tasker.named_tasks")).to eq("0")
  end

  it "raises NotFoundError naming the paths searched when the template is not among them" do
    result = in_child('create(version: "9.9.9")', template_paths: [fixtures])
    expect(result["error"]).to eq("TaskerCore::Errors::NotFoundError")
    expect(result["message"]).to include("version=9.9.9", "configured template_paths (#{fixtures})",
                                         "TaskerCore::Templates.load(paths)")
    expect(result["context"]).to include("name" => "linear_workflow", "version" => "9.9.9", "template_paths" => [fixtures])
    # The other templates were registered on the way.
    expect(psql_value("SELECT count(*) FROM tasker.named_tasks WHERE name = 'linear_workflow'")).to eq("1")
  end
end
