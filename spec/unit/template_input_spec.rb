# frozen_string_literal: true

require "spec_helper"
require "tmpdir"

# Templates are input: a file someone else wrote must not cost the engine more than its size.
RSpec.describe "template input limits" do
  def with_file(text)
    Dir.mktmpdir do |dir|
      path = File.join(dir, "t.yml")
      File.write(path, text)
      yield path
    end
  end

  it "refuses YAML aliases (a billion laughs) with a TemplateError naming the file, before expanding them" do
    levels = ["a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]"]
    ("b".."h").each_with_index { |l, i| levels << "#{l}: &#{l} [#{Array.new(9) { "*#{(i + 97).chr}" }.join(',')}]" }
    bomb = "name: bomb\nnamespace_name: hostile\nversion: \"1\"\n#{levels.join("\n")}\nsteps:\n  - name: s\n" \
           "    handler: {callable: X}\n    metadata: *h\n"
    with_file(bomb) do |path|
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      expect { TaskerCore::Templates.read(path) }
        .to raise_error(TaskerCore::Errors::TemplateError, /#{Regexp.escape(path)}: .*aliases/)
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 2
    end
    # An anchor that nothing refers to is harmless; one alias is refused like many.
    with_file("name: &n x\nnamespace_name: hostile\nversion: \"1\"\nsteps: [{name: s, handler: {callable: X}}]\n") do |path|
      expect { TaskerCore::Templates.read(path) }.not_to raise_error
    end
    with_file("name: &n x\nnamespace_name: hostile\nversion: \"1\"\ndescription: *n\nsteps: [{name: s, handler: {callable: X}}]\n") do |path|
      expect { TaskerCore::Templates.read(path) }.to raise_error(TaskerCore::Errors::TemplateError, /aliases/)
    end
  end
end

RSpec.describe "template validation cost" do
  it "validates the largest allowed template (1,000 steps, each depending on every earlier one) well under a second" do
    steps = Array.new(1000) do |i|
      { "name" => "step_#{i}", "handler" => { "callable" => "X" }, "dependencies" => Array.new(i) { |j| "step_#{j}" } }
    end
    template = { "name" => "dense", "namespace_name" => "hostile", "version" => "1", "steps" => steps }
    # CPU time of this thread (the normalization runs on it, holding the GVL): what the validation
    # costs, whatever else the machine is doing.
    started = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
    normalized = TaskerCore::FFI.template_normalize(template)
    elapsed = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID) - started
    expect(normalized["steps"].size).to eq(1000)
    expect(normalized["steps"].last["dependencies"].size).to eq(999)
    expect(elapsed).to be < 1.0
    # A cycle through the whole chain is still found and named.
    steps[0] = steps[0].merge("dependencies" => ["step_999"])
    expect { TaskerCore::FFI.template_normalize(template.merge("steps" => steps)) }
      .to raise_error(TaskerCore::Errors::TemplateError, /dependency cycle among steps: step_0, step_1/)
  end
end
