# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

RSpec.describe "bin/tasker" do
  let(:tasker) { File.expand_path("../../bin/tasker", __dir__) }
  let(:env) { { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path } }

  it "migrates, reporting a current schema" do
    out = IO.popen(env, [RbConfig.ruby, tasker, "migrate"], &:read)
    expect($?.exitstatus).to eq(0)
    expect(out).to include("schema is current (version #{TaskerCore::FFI.schema_version})")
  end

  it "runs a worker that finishes tasks and exits 0 on SIGTERM" do
    r, w = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, tasker, "worker", "--templates", File.expand_path("../fixtures/templates", __dir__),
                        "--require", File.expand_path("../support/handlers.rb", __dir__), "--concurrency", "2", out: w)
    w.close
    expect(Timeout.timeout(30) { r.gets }).to match(/serving .*math.* with 2 handler threads/)
    created = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 6 })
    expect(wait_for_task(created["task_uuid"])["status"]).to eq("complete")
    Process.kill("TERM", pid)
    _, status = Process.wait2(pid)
    pid = nil
    expect(status.exitstatus).to eq(0)
    expect(r.read).to include("stopped")
  ensure
    if pid
      Process.kill("KILL", pid)
      Process.wait(pid)
    end
  end

  it "validates template files without a database and exits 1 on an invalid one" do
    out = IO.popen({ "TASKER_DATABASE_URL" => nil }, [RbConfig.ruby, tasker, "templates", "validate",
                                                       File.expand_path("../fixtures/invalid_templates/cycle.yml", __dir__)], &:read)
    expect($?.exitstatus).to eq(1)
    expect(out).to include("dependency cycle among steps: a, b, c")
  end

  it "shows a task with its steps and draws its DAG" do
    TaskerCore::Worker.start(template_paths: [File.expand_path("../fixtures/templates", __dir__)], concurrency: 2)
    uuid = TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    wait_for_task(uuid)
    out = IO.popen(env, [RbConfig.ruby, tasker, "task", "show", uuid], &:read)
    expect($?.exitstatus).to eq(0)
    expect(out).to include("math/diamond_workflow@1.0.0  #{uuid}  complete  4/4 steps complete")
    expect(out).to include("  0: [x] diamond_start")
    expect(out).to include("  1: [x] diamond_branch_b <- diamond_start   [x] diamond_branch_c <- diamond_start")
    expect(out).to include("  2: [x] diamond_end <- diamond_branch_b, diamond_branch_c")
  end
end
