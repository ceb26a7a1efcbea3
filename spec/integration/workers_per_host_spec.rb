# frozen_string_literal: true

require "spec_helper"
require "net/http"
require "json"
require "rbconfig"
require "socket"

RSpec.describe "several workers on one host" do
  let(:tasker) { File.expand_path("../../bin/tasker", __dir__) }
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:handlers) { File.expand_path("../support/handlers.rb", __dir__) }
  let(:default_address) { TaskerCore::Worker::DEFAULT_WEB_BIND_ADDRESS }
  let(:default_port) { Integer(default_address.split(":").last, 10) }
  let(:warning) { /default address #{Regexp.escape(default_address)} is taken .* serves without HTTP/ }

  def port_free?(port)
    TCPServer.new("127.0.0.1", port).close
    true
  rescue Errno::EADDRINUSE
    false
  end

  # A `bin/tasker worker` with default web settings (no TASKER_WEB_BIND_ADDRESS); its stdout and
  # stderr go to files.
  def spawn_worker(index)
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path,
            "TASKER_WEB_BIND_ADDRESS" => nil, "TASKER_WEB_ENABLED" => nil, "TASKER_LOG_LEVEL" => "warn" }
    out = child_log_path("worker#{index}-out")
    err = child_log_path("worker#{index}-err")
    pid = Process.spawn(env, RbConfig.ruby, tasker, "worker", "--templates", templates, "--require", handlers,
                        "--concurrency", "1", out: out, err: err)
    { pid: pid, out: out, err: err }
  end

  it "starts four workers with default settings: one serves HTTP on the default address, all run steps" do
    skip "#{default_address} is taken by another program on this machine" unless port_free?(default_port)

    workers = Array.new(4) { |i| spawn_worker(i) }
    begin
      # Each one starts; the ones that could not take the default port run without HTTP.
      sleep_until(timeout: 60, interval: 0.05) do
        workers.each { |w| raise "worker #{w[:pid]} exited:\n#{File.read(w[:err])}" if Process.wait(w[:pid], Process::WNOHANG) }
        workers.all? { |w| File.read(w[:out]).include?(" serving ") }
      end
      web_lines = workers.map { |w| File.read(w[:out])[%r{^web server on http://\S+}] }
      expect(web_lines.compact).to eq(["web server on http://#{default_address}"])
      with_web = workers.find { |w| File.read(w[:out]).include?("web server on") }
      without = workers - [with_web]
      expect(without.map { |w| File.read(w[:err]).scan(warning).size }).to eq([1, 1, 1])
      expect(File.read(with_web[:err])).not_to match(warning)

      # Exactly one process answers on the default address: the one that printed it.
      health = JSON.parse(Net::HTTP.get(URI("http://#{default_address}/health")))
      uuid = File.read(with_web[:out])[/^tasker worker (\S+) serving/, 1]
      expect(health).to include("status" => "healthy", "worker_id" => "worker_#{uuid}")

      # Each worker has one handler thread and each step sleeps, so the four tasks' steps run on
      # four different processes at once.
      created = Array.new(4) do |i|
        TaskerCore::Client.create_task(name: "sleepy_workflow", namespace: "resilience",
                                       context: { n: i })
      end
      tasks = created.map { |c| wait_for_task(c["task_uuid"], timeout: 60) }
      expect(tasks.map { |t| t["status"] }).to eq(["complete"] * 4)
      expect(SpecSupport::Ledger.entries.map(&:last).map(&:to_i).sort).to eq(workers.map { |w| w[:pid] }.sort)
    ensure
      workers.each { |w| Process.kill("TERM", w[:pid]) rescue nil } # rubocop:disable Style/RescueModifier
      statuses = workers.map { |w| Process.wait2(w[:pid]).last rescue nil } # rubocop:disable Style/RescueModifier
    end
    expect(statuses.map { |s| s&.exitstatus }).to eq([0, 0, 0, 0])
  end

  it "refuses to start when an explicitly given address is taken" do
    server = TCPServer.new("127.0.0.1", 0)
    taken = "127.0.0.1:#{server.addr[1]}"
    expect do
      TaskerCore::Worker.start(template_paths: [templates], concurrency: 1, web: { enabled: true, bind_address: taken })
    end.to raise_error(TaskerCore::Errors::ConfigurationError, /could not listen on #{Regexp.escape(taken)}/)

    # The same address from TASKER_WEB_BIND_ADDRESS is explicit too: the CLI fails loudly.
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_WEB_BIND_ADDRESS" => taken }
    err = child_log_path("explicit-err")
    pid = Process.spawn(env, RbConfig.ruby, tasker, "worker", "--templates", templates, "--require", handlers,
                        out: File::NULL, err: err)
    _, status = Process.wait2(pid)
    expect(status.exitstatus).to eq(1)
    expect(File.read(err)).to include("ConfigurationError: the web server could not listen on #{taken}")
    expect(File.read(err)).not_to match(/serves without HTTP/)
  ensure
    server&.close
  end
end
