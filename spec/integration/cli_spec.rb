# frozen_string_literal: true

require "spec_helper"
require "net/http"
require "json"
require "rbconfig"

RSpec.describe "bin/tasker" do
  let(:tasker) { File.expand_path("../../bin/tasker", __dir__) }
  let(:env) do
    { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_SPEC_LEDGER" => SpecSupport::Ledger.path,
      "TASKER_WEB_BIND_ADDRESS" => "127.0.0.1:0" }
  end

  it "migrates, reporting a current schema" do
    out = IO.popen(env, [RbConfig.ruby, tasker, "migrate"], &:read)
    expect($?.exitstatus).to eq(0)
    expect(out).to include("schema is current (version #{TaskerCore::FFI.schema_version})")
    expect(out).to match(/\Amigrating the tasker schema \.\.\. done \(\d+ ms\)$/)
  end

  it "runs a worker that finishes tasks and exits 0 on SIGTERM" do
    r, w = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, tasker, "worker", "--templates", File.expand_path("../fixtures/templates", __dir__),
                        "--require", File.expand_path("../support/handlers.rb", __dir__), "--concurrency", "2", out: w,
                        err: child_log_path("worker"))
    w.close
    progress = Timeout.timeout(30) { Array.new(4) { r.gets } }
    expect(progress[0]).to match(/\Amigrating the schema \.\.\. done \(\d+ ms\)$/)
    expect(progress[1]).to match(/\Aregistering templates and starting the worker \.\.\. done \(\d+ ms\)$/)
    expect(progress[2]).to match(/serving .*math.* with 2 handler threads/)
    # A dedicated worker serves its web server by default (here on a free port).
    port = progress[3][%r{\Aweb server on http://127\.0\.0\.1:(\d+) }, 1]
    expect(port).not_to be_nil, progress[3]
    expect(JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{port}/health")))["status"]).to eq("healthy")
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

  def tasker_out(*args, environment: env)
    out = IO.popen(environment, [RbConfig.ruby, tasker, *args], err: %i[child out], &:read)
    [out, $?.exitstatus]
  end

  it "registers template files and directories, reporting each, and exits 1 on an invalid one" do
    out, status = tasker_out("templates", "register", File.expand_path("../fixtures/templates", __dir__))
    expect(status).to eq(0), out
    expect(out).to match(%r{registered  math/diamond_workflow@1\.0\.0 \(4 steps\) from .*/diamond\.yml$})
    expect(out).to match(/^\d+ registered, 0 failed$/)
    created = TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 2 })
    expect(created["created"]).to be(true)
    out, status = tasker_out("templates", "register", File.expand_path("../fixtures/invalid_templates/cycle.yml", __dir__),
                             File.expand_path("../fixtures/templates/linear.yml", __dir__))
    expect(status).to eq(1)
    expect(out).to include("dependency cycle among steps: a, b, c", "1 registered, 1 failed")
  end

  it "lists the registered templates, all or of one namespace" do
    out, status = tasker_out("templates", "list")
    expect([out, status]).to eq(["no templates registered\n", 0])
    TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)])
    uuid = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    out, status = tasker_out("templates", "list", "--namespace", "math")
    expect(status).to eq(0)
    expect(out).to match(%r{^math/linear_workflow@1\.0\.0\s+4 steps\s+1 active\s+registered \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$})
    expect(out).to match(%r{^math/diamond_workflow@1\.0\.0\s+4 steps\s+0 active})
    expect(out).not_to include("resilience/")
    expect(out.lines.last).to match(/\A\d+ templates$/)
    expect(tasker_out("templates", "list", "-n", "nowhere")).to eq(["no templates registered in namespace nowhere\n", 0])
    expect(uuid).to be_a(String)
  end

  it "lists tasks newest first, filtered by status and namespace" do
    TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)])
    done = TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
    wait_for_task(done)
    TaskerCore::Worker.stop
    pending = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 4 })["task_uuid"]
    out, status = tasker_out("tasks", "list")
    expect(status).to eq(0)
    expect(out.lines[0]).to start_with("#{pending}  math/linear_workflow@1.0.0")
    expect(out.lines[1]).to match(%r{\A#{done}  math/diamond_workflow@1\.0\.0\s+complete\s+4/4 steps\s+\d{4}-})
    expect(out.lines.last).to eq("2 of 2 tasks\n")
    out, = tasker_out("tasks", "list", "--status", "complete")
    expect(out).to include(done)
    expect(out).not_to include(pending)
    expect(out.lines.last).to eq("1 of 1 task\n")
    expect(tasker_out("tasks", "list", "--namespace", "elsewhere")).to eq(["no tasks in namespace elsewhere\n", 0])
    out, status = tasker_out("tasks", "list", "--status", "exploded")
    expect(status).to eq(1)
    expect(out).to include("ValidationError")
  end

  it "follows a task to its end with a progress line per change, exiting 0 when it completed" do
    TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)])
    uuid = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    out, status = tasker_out("task", "wait", uuid, "--timeout", "0.3")
    expect(status).to eq(2)
    expect(out).to include("[..............................] 0/4 steps", "still ")
    r, w = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, tasker, "task", "wait", uuid, out: w, err: w)
    w.close
    expect(Timeout.timeout(15) { r.gets }).to include("0/4 steps")
    TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2)
    _, wait_status = Process.wait2(pid)
    lines = r.read.lines
    expect(wait_status.exitstatus).to eq(0)
    expect(lines.last).to eq("[##############################] 4/4 steps  complete\n")
    failing = TaskerCore::Client.create_task(name: "failing_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    wait_for_task(failing)
    out, status = tasker_out("task", "wait", failing)
    expect(status).to eq(1)
    expect(out).to end_with("steps  error\n")
  end

  it "reports health: exit 0 with the schema version, exit 1 when the database does not answer" do
    out, status = tasker_out("health")
    expect(status).to eq(0)
    expect(out).to start_with("database: healthy\n")
    expect(out).to include("schema_version: #{TaskerCore::FFI.schema_version}")
    out, status = tasker_out("health", environment: { "TASKER_DATABASE_URL" => "postgresql:///nope?host=/nonexistent&connect_timeout=1" })
    expect(status).to eq(1)
    expect(out).to start_with("database: unhealthy (")
  end

  it "explains its commands and refuses unknown ones" do
    out, status = tasker_out("help")
    expect(status).to eq(0)
    expect(out).to include("tasker templates list [--namespace NS]", "tasker tasks list [--status S]", "tasker health")
    out, status = tasker_out("tasks", "list", "--frobnicate")
    expect(status).to eq(64)
    expect(out).to include("invalid option: --frobnicate")
  end
end
