# frozen_string_literal: true

require "spec_helper"
require "json"
require "logger"
require "stringio"
require "tmpdir"

RSpec.describe TaskerCore::EngineLog do
  let(:io) { StringIO.new }

  around do |example|
    previous = TaskerCore.config.logger
    TaskerCore.config.logger = Logger.new(io, level: Logger::DEBUG)
    example.run
  ensure
    TaskerCore::EngineLog.level = TaskerCore.config.log_level
    TaskerCore::EngineLog.flush
    TaskerCore.config.logger = previous
  end

  def engine_lines
    TaskerCore::EngineLog.flush
    io.string.lines.select { |l| l.include?("-- tasker_core: {") }
  end

  def register_versions(count)
    template = TaskerCore::Templates.read(File.expand_path("../fixtures/templates/linear.yml", __dir__))
    count.times { |i| TaskerCore::FFI.template_register(template.merge("version" => "9.#{i}.0")) }
  end

  it "delivers the engine's lines to the configured Ruby Logger, JSON fields kept, in order" do
    TaskerCore::EngineLog.level = "info"
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 1)
    TaskerCore::Worker.stop
    lines = engine_lines
    events = lines.map { |l| described_class.parse(l)["event"] }
    expect(events).to include("worker_started", "worker_stopped")
    expect(events.index("worker_started")).to be < events.index("worker_stopped")

    started = lines.find { |l| l.include?('"event":"worker_started"') }
    expect(started).to start_with("I, [") # Logger::INFO, progname tasker_core
    fields = described_class.parse(started)
    expect(fields).to include("level" => "info", "pid" => Process.pid, "message" => a_string_including("serving {math}"))
    expect(fields["ts"]).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/)
  end

  it "keeps the order of a burst of lines and sends none to stderr" do
    TaskerCore::EngineLog.level = "debug"
    before = TaskerCore::EngineLog.stats
    register_versions(40)
    versions = engine_lines.map { |l| described_class.parse(l) }
                           .select { |f| f["event"] == "template_registered" }
                           .map { |f| f["message"][/@(\S+)\z/, 1] }
    expect(versions).to eq(Array.new(40) { |i| "9.#{i}.0" })
    expect(TaskerCore::EngineLog.stats[:to_stderr]).to eq(before[:to_stderr])
  end

  it "filters by the engine's level" do
    TaskerCore::EngineLog.level = "info"
    register_versions(1) # template_registered is a debug line
    expect(engine_lines).to be_empty
  end

  it "loses no line when the log thread is killed: flush delivers it, boot! starts a new thread" do
    TaskerCore::EngineLog.level = "debug"
    TaskerCore::EngineLog.instance_variable_get(:@thread).kill.join(5)
    expect(TaskerCore::EngineLog.running?).to be(false)
    register_versions(3)
    expect(engine_lines.count { |l| l.include?("template_registered") }).to eq(3)
    TaskerCore.boot!
    expect(TaskerCore::EngineLog.running?).to be(true)
    register_versions(1)
    expect(engine_lines.count { |l| l.include?("template_registered") }).to eq(4)
  end

  it "gives a forked child its own buffer and log thread, delivering to the child's logger" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "child.log")
      pid = fork do
        TaskerCore.config.logger = Logger.new(path)
        TaskerCore.boot!
        TaskerCore::EngineLog.level = "debug"
        register_versions(2)
        TaskerCore::EngineLog.flush
        exit!(TaskerCore::EngineLog.running? ? 0 : 1)
      end
      Process.wait(pid)
      expect($?.exitstatus).to eq(0)
      child = File.readlines(path).select { |l| l.include?("template_registered") }
      expect(child.map { |l| described_class.parse(l)["pid"] }).to eq([pid, pid])
    end
    expect(engine_lines.grep(/template_registered/)).to be_empty # nothing of the child's came here
  end
end
