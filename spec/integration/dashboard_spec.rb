# frozen_string_literal: true

require "spec_helper"
require "base64"
require "rack"
require "rack/mock"
require "open3"
require "socket"
require "time"
require_relative "../support/web_server"

RSpec.describe "the dashboard (TaskerCore::Web's pages and actions)" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:app) { TaskerCore::Web.new }
  let(:browser) { Rack::MockRequest.new(app) }

  before { TaskerCore::Templates.load([templates]) }

  # A GET of a page; the CSRF cookie it sets is kept for the next requests, as a browser does.
  def get(path, headers = {})
    res = browser.get(path, { "HTTP_COOKIE" => @cookie }.compact.merge(headers))
    @cookie = res["set-cookie"].split(";").first if res["set-cookie"]
    res
  end

  def post(path, params, headers = {})
    browser.post(path, { params: params, "HTTP_COOKIE" => @cookie }.compact.merge(headers))
  end

  def token(page) = page.body[/name="authenticity_token" value="([^"]+)"/, 1]

  def failed_task(n = 2)
    uuid = TaskerCore::Client.create_task(name: "failing_workflow", namespace: "math", context: { even_number: n })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("error")
    uuid
  end

  it "shows the overview, the task list with its filters and pages, and the templates with their DAG" do
    TaskerCore::Client.create_tasks(Array.new(51) { |i| { name: "linear_workflow", namespace: "math", context: { even_number: 2 * (i + 1) } } })
    page = get("/")
    expect(page.status).to eq(200)
    expect(page["content-type"]).to eq("text/html; charset=utf-8")
    expect(page.body).to include('<html lang="en">', "Tasks by state", 'href="/tasks?status=steps_in_process"', "<strong>51</strong>",
                                 'href="/tasks?namespace=math"', "Schema version", 'href="/assets/tasker.css"')
    expect(page.body).not_to match(%r{(src|href)="https?://}) # nothing from elsewhere: it works offline

    list = get("/tasks?namespace=math&status=steps_in_process")
    expect(list.status).to eq(200)
    expect(list.body.scan(%r{href="/tasks/\h{8}-}).size).to eq(50)
    expect(list.body).to include('<label for="f-status">Status</label>', '<option value="steps_in_process" selected>')
    next_href = CGI.unescapeHTML(list.body[/<a href="([^"]+)">Next page</, 1])
    expect(next_href).to start_with("/tasks?namespace=math&status=steps_in_process&after=")
    second = get(next_href)
    expect(second.body.scan(%r{href="/tasks/\h{8}-}).size).to eq(1)
    expect(second.body).to include("Newest tasks")
    expect(second.body).not_to include("Next page")
    # The keyset pages of Client.list_tasks_after cover every task once, newest first.
    pages = [TaskerCore::Client.list_tasks_after(limit: 20, namespace: "math")]
    pages << TaskerCore::Client.list_tasks_after(limit: 20, namespace: "math", cursor: pages.last.next_cursor) while pages.last.has_next
    expect(pages.map { |p| p.tasks.size }).to eq([20, 20, 11])
    expect(pages.last.next_cursor).to be_nil
    uuids = pages.flat_map { |p| p.tasks.map(&:task_uuid) }
    expect(uuids).to eq(TaskerCore::Client.list_tasks(limit: 100, namespace: "math").tasks.map(&:task_uuid))
    expect { TaskerCore::Client.list_tasks_after(cursor: "2026-01-01T00:00:00_nope") }
      .to raise_error(TaskerCore::Errors::ValidationError, /cursor is not a cursor of the task list/)
    expect(get("/tasks?after=nope").status).to eq(400)
    expect(get("/tasks?status=complete").body).to include("No tasks.")
    bad = get("/tasks?status=sleeping")
    expect([bad.status, bad.body]).to match([400, include("status must be one of", "<code>status</code>")])

    catalog = get("/catalog")
    expect(catalog.body).to include('href="/catalog/math/linear_workflow/1.0.0"')
    dag = get("/catalog/math/failing_workflow/1.0.0")
    expect(dag.status).to eq(200)
    expect(dag.body.scan('<g class="node state-template"').size).to eq(4)
    expect(dag.body.scan('<line class="edge"').size).to eq(3)

    expect(get("/assets/tasker.css")["content-type"]).to eq("text/css; charset=utf-8")
    expect(get("/assets/tasker.js").body).to include("data-poll")
    expect(get("/tasks/nope").status).to eq(404)
  end

  it "shows the last hour's throughput and error rate, the queue by namespace and the workers alive, from real tasks" do
    TaskerCore::Worker.start(template_paths: [templates], namespaces: %w[math], concurrency: 2)
    worker = TaskerCore::FFI.worker_status["worker_uuid"]
    done = Array.new(3) { |i| TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2 * (i + 1) })["task_uuid"] }
    failed = [failed_task(2), failed_task(4)]
    expect(done.map { |u| wait_for_task(u)["status"] }).to all(eq("complete"))
    attempts = psql("SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success) FROM tasker.workflow_step_attempts " \
                    "WHERE kind = 'result'").first.map(&:to_i)
    expect(attempts[1]).to be >= failed.size # each failed task's explode failed at least once

    activity = TaskerCore::Client.activity(minutes: 60, bucket_minutes: 5)
    expect(activity["buckets"].size).to eq(12)
    expect(activity["totals"]).to include("tasks_completed" => 3, "tasks_errored" => 2, "steps_succeeded" => attempts[0], "steps_failed" => attempts[1])
    expect(activity["buckets"].sum { |b| b["tasks_completed"] }).to eq(3)
    expect(activity["task_error_rate"]).to eq(0.4)
    page = get("/")
    expect(page.status).to eq(200)
    expect(page.body).to include('<dd id="tasks-completed">3</dd>', '<dd id="tasks-errored">2</dd>', '<dd id="task-error-rate">40.0 %</dd>',
                                 %(<dd id="steps-succeeded">#{attempts[0]}</dd>), %(<dd id="steps-failed">#{attempts[1]}</dd>),
                                 '<svg class="chart"', "3 completed")
    # The worker of this process reported itself on connecting: alive, with its host, pid and last beat.
    expect(page.body).to include('<strong id="workers-alive">1</strong>', %(title="#{worker}"), "<td>#{Process.pid}</td>",
                                 "<td>#{CGI.escapeHTML(Socket.gethostname)}</td>", '<span class="worker-alive">alive</span>')
    row = TaskerCore::Client.workers.find { |w| w["worker_uuid"] == worker }
    expect(row).to include("alive" => true, "stopped_at" => nil, "namespaces" => ["math"], "concurrency" => 2, "pid" => Process.pid)
    # A worker that stopped beating (killed) is listed as silent; one that stopped says so.
    psql("INSERT INTO tasker.workers (worker_uuid, hostname, pid, namespaces, concurrency, heartbeat_interval_ms, started_at, last_heartbeat_at) " \
         "VALUES ('#{TaskerCore::FFI.uuid_v7}', 'gone-host', 4242, '{math}', 4, 10000, now() AT TIME ZONE 'utc' - interval '1 hour', " \
         "now() AT TIME ZONE 'utc' - interval '31 seconds')")
    TaskerCore::Worker.stop(timeout: 5)
    row = TaskerCore::Client.workers.find { |w| w["worker_uuid"] == worker }
    expect(row["alive"]).to be(false)
    expect(row["stopped_at"]).not_to be_nil
    page = get("/")
    expect(page.body).to include('<strong id="workers-alive">0</strong>', '<span class="worker-stopped">stopped</span>',
                                 "<td>gone-host</td>", '<span class="worker-silent">silent</span>')

    # The queue, with no worker claiming: the first step of each new task is enqueued; one step
    # waiting for a retry that is due.
    queued = Array.new(4) { |i| TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 100 + (2 * i) })["task_uuid"] }
    psql("UPDATE tasker.workflow_steps SET status = 'waiting_for_retry', next_retry_at = now() AT TIME ZONE 'utc' - interval '1 second' " \
         "WHERE task_uuid = '#{queued.first}' AND name = 'linear_step_1'")
    depth = TaskerCore::Client.queue_depth.find { |q| q["namespace"] == "math" }
    expect(depth).to include("enqueued" => 3, "in_progress" => 0, "waiting_for_retry" => 1, "retry_due" => 1)
    expect(depth["oldest_enqueued_seconds"]).to be >= 0
    queue = get("/").body[%r{<table id="queue">.*?</table>}m]
    expect(queue).to include('<td><a href="/tasks?namespace=math">math</a></td><td>3</td>')
    expect(queue).to match(%r{<td>0</td><td>1</td><td>1</td></tr>})
    expect { TaskerCore::Client.activity(minutes: 60, bucket_minutes: 61) }
      .to raise_error(TaskerCore::Errors::ValidationError, /bucket_minutes must be between 1 and 60/)
  end

  it "keeps each worker's row fresh on its heartbeat timer, with the steps it holds" do
    # A heartbeat every second (a third of the visibility timeout); the handler runs for 4 seconds.
    TaskerCore::Worker.start(template_paths: [templates], namespaces: %w[resilience], concurrency: 2, visibility_timeout_seconds: 3)
    worker = TaskerCore::FFI.worker_status["worker_uuid"]
    row = -> { TaskerCore::Client.workers.find { |w| w["worker_uuid"] == worker } }
    uuid = TaskerCore::Client.create_task(name: "sleepy_workflow", namespace: "resilience", context: { n: 1 })["task_uuid"]
    at = ->(r, key) { Time.parse("#{r[key]}Z") }
    busy = sleep_until(timeout: 10, interval: 0.1) { (r = row.call) && r["busy"] == 1 && at.call(r, "last_heartbeat_at") > at.call(r, "started_at") && r }
    expect(busy).to include("alive" => true, "heartbeat_interval_ms" => 1000, "concurrency" => 2)
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    idle = sleep_until(timeout: 10, interval: 0.1) do
      (r = row.call) && r["busy"].zero? && at.call(r, "last_heartbeat_at") > at.call(busy, "last_heartbeat_at") && r
    end
    expect(idle["alive"]).to be(true)
  end

  it "filters the task list by initiator and source system, keeping the filters across pages" do
    requests = Array.new(53) do |i|
      { name: "linear_workflow", namespace: "math", context: { even_number: 2 * (i + 1) },
        initiator: i < 51 ? "billing-svc" : "ops", source_system: i.even? ? "erp" : "crm" }
    end
    TaskerCore::Client.create_tasks(requests)
    list = get("/tasks?initiator=billing-svc")
    expect(list.body).to include('<label for="f-initiator">Initiator</label>', 'value="billing-svc"')
    expect(list.body.scan(%r{href="/tasks/\h{8}-}).size).to eq(50)
    next_href = CGI.unescapeHTML(list.body[/<a href="([^"]+)">Next page</, 1])
    expect(next_href).to include("initiator=billing-svc")
    expect(get(next_href).body.scan(%r{href="/tasks/\h{8}-}).size).to eq(1)
    ops = get("/tasks?initiator=ops&source_system=crm")
    expect(ops.body.scan(%r{href="/tasks/\h{8}-}).size).to eq(1) # task 52 of 53: ops and odd
    expect(TaskerCore::Client.list_tasks(source_system: "erp").pagination.total_count).to eq(27)
    expect(TaskerCore::Client.list_tasks(initiator: "ops", source_system: "erp").tasks.map(&:initiator)).to eq(["ops"])
    expect(get("/tasks?initiator=#{'x' * 129}").status).to eq(400)
    # 128 characters of several bytes each are a filter like any other.
    expect(TaskerCore::Client.list_tasks(initiator: "é" * 128).tasks).to eq([])
    expect { TaskerCore::Client.list_tasks(initiator: "é" * 129) }
      .to raise_error(TaskerCore::Errors::ValidationError, /initiator must be 1 to 128 characters \(got 129\)/)
    expect { TaskerCore::Client.list_tasks(initiator: 5) }.to raise_error(TaskerCore::Errors::ValidationError, /initiator must be a String/)
  end

  it "draws a failed task's DAG with the failed step in red, shows its error and history, and retries it with a confirmed, CSRF-checked action" do
    TaskerCore::Worker.start(template_paths: [templates], namespaces: %w[math], concurrency: 2)
    uuid = failed_task
    steps = steps_by_name(uuid)
    explode = steps["explode"]["step_uuid"]
    page = get("/tasks/#{uuid}")
    expect(page.status).to eq(200)
    expect(page.body).to include(%(<g class="node state-error" data-step="#{explode}">), %(<g class="node state-complete" data-step="#{steps['start']['step_uuid']}">))
    expect(page.body.scan('<line class="edge"').size).to eq(3)
    expect(page.body).to include(%(href="/tasks/#{uuid}/steps/#{explode}"), "the flux capacitor is empty", "<title id=\"dag-title\">")
    expect(page.body).not_to include("data-poll") # finished: nothing to follow

    step = get("/tasks/#{uuid}/steps/#{explode}")
    expect(step.body).to include("Step explode", "History", "Retry step", %(href="/tasks/#{uuid}/steps/#{explode}/reset_for_retry"))
    expect(step.body).to include("the flux capacitor is empty", "FLUX_EMPTY") # the handler's error

    confirm = get("/tasks/#{uuid}/steps/#{explode}/reset_for_retry")
    expect(confirm.body).to include("Retry step?", '<label for="reason">')
    csrf = token(confirm)
    expect(csrf).not_to be_nil

    # Refused: no token, a wrong token, a token without its cookie, another origin.
    expect(post("/tasks/#{uuid}/steps/#{explode}/reset_for_retry", { reason: "x" }).status).to eq(403)
    expect(post("/tasks/#{uuid}/steps/#{explode}/reset_for_retry", { reason: "x", authenticity_token: "A" * 43 }).status).to eq(403)
    no_cookie = browser.post("/tasks/#{uuid}/steps/#{explode}/reset_for_retry", params: { authenticity_token: csrf })
    expect(no_cookie.status).to eq(403)
    other = post("/tasks/#{uuid}/steps/#{explode}/reset_for_retry", { authenticity_token: csrf }, "HTTP_ORIGIN" => "https://evil.example")
    expect(other.status).to eq(403)
    expect(TaskerCore::Client.get_step(uuid, explode)["current_state"]).to eq("error")

    done = post("/tasks/#{uuid}/steps/#{explode}/reset_for_retry", { reason: "flux refilled", authenticity_token: csrf })
    expect(done.status).to eq(303)
    expect(done["location"]).to start_with("/tasks/#{uuid}?notice=")
    expect(wait_for_task(uuid)["status"]).to eq("error") # Explode always fails again
    reset = TaskerCore::Client.get_step_audit_history(uuid, explode).find { |a| a["event"] == "reset_for_retry" }
    expect(reset["metadata"]).to include("reason" => "flux refilled", "performed_by" => "api")

    # Complete it by hand with a result; a result that is no JSON is refused naming the field.
    bad = post("/tasks/#{uuid}/steps/#{explode}/complete_manually", { result: "{nope", authenticity_token: csrf })
    expect([bad.status, bad.body]).to match([400, include("<code>result</code>")])
    ok = post("/tasks/#{uuid}/steps/#{explode}/complete_manually", { result: '{"result": 5}', authenticity_token: csrf })
    expect(ok.status).to eq(303)
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    expect(get("/tasks/#{uuid}").body).to include(%(<g class="node state-complete" data-step="#{explode}">))
  end

  it "cancels a task from its page, follows a running task, and hides secrets in the context" do
    uuid = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math",
                                          context: { even_number: 2, api_token: "tok-123", db: { password: "pw-456" } })["task_uuid"]
    page = get("/tasks/#{uuid}")
    expect(page.body).to include(%(data-poll="/v1/tasks/#{uuid}"), "Cancel task", "***REDACTED***")
    expect(page.body).not_to include("tok-123", "pw-456")
    confirm = get("/tasks/#{uuid}/cancel")
    expect(confirm.body).to include("Cancel task?")
    res = post("/tasks/#{uuid}/cancel", { authenticity_token: token(confirm) })
    expect(res.status).to eq(303)
    expect(TaskerCore::Client.get_task(uuid)["status"]).to eq("cancelled")
    again = post("/tasks/#{uuid}/cancel", { authenticity_token: token(confirm) })
    expect(again.status).to eq(409)
  end

  it "lists the DLQ and records a resolution with who did it" do
    uuid = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 2 })["task_uuid"]
    psql("UPDATE tasker.tasks SET status = 'steps_in_process', updated_at = updated_at - interval '31 minutes' WHERE task_uuid = '#{uuid}'")
    expect(TaskerCore::DLQ.detect_stale_tasks.size).to eq(1)
    authed = TaskerCore::Web.new(basic_auth: %w[ops hunter2])
    @browser = Rack::MockRequest.new(authed)
    auth = { "HTTP_AUTHORIZATION" => "Basic #{Base64.strict_encode64('ops:hunter2')}" }
    expect(@browser.get("/dlq").status).to eq(401)
    res = @browser.get("/dlq", auth)
    expect(res.body).to include("staleness_timeout", "Resolve")
    cookie = res["set-cookie"].split(";").first
    entry = TaskerCore::DLQ.list(task_uuid: uuid).first["dlq_entry_uuid"]
    confirm = @browser.get("/dlq/#{entry}/resolve", auth.merge("HTTP_COOKIE" => cookie))
    expect(confirm.body).to include('<label for="f-resolution_status">', "Recorded as done by <strong>ops</strong>")
    done = @browser.post("/dlq/#{entry}/resolve", auth.merge("HTTP_COOKIE" => cookie,
                                                              params: { resolution_status: "permanently_failed", reason: "gone",
                                                                        authenticity_token: token(confirm) }))
    expect(done.status).to eq(303)
    expect(TaskerCore::DLQ.list(task_uuid: uuid).first).to include("resolution_status" => "permanently_failed",
                                                                   "resolved_by" => "ops", "resolution_notes" => "gone")
    expect(TaskerCore::Web.new(read_only: true).call(Rack::MockRequest.env_for("/dlq/#{entry}/resolve", method: "POST"))[0]).to eq(403)
  end

  it "is served by `tasker web` on loopback, and refuses another address without authentication" do
    env = { "TASKER_DATABASE_URL" => DATABASE_URL, "TASKER_NO_RAILS" => "1" }
    _, err, status = Open3.capture3(env, "bin/tasker", "web", "--bind", "0.0.0.0", chdir: File.expand_path("../..", __dir__))
    expect(status.exitstatus).to eq(64)
    expect(err).to include("needs authentication")

    out_r, out_w = IO.pipe
    pid = Process.spawn(env.merge("TASKER_WEB_API_KEY" => "k"), "bin/tasker", "web", "--port", "0",
                        out: out_w, err: child_log_path("tasker-web"), chdir: File.expand_path("../..", __dir__))
    out_w.close
    begin
      port = nil
      sleep_until(timeout: 30) do
        line = out_r.gets
        raise "tasker web exited" if line.nil?

        port = line[%r{Listening on http://127\.0\.0\.1:(\d+)}, 1]
      end
      extend SpecSupport::WebServer
      @web_port = port.to_i
      expect(http("GET", "/v1/health")[0]).to eq(401)
      expect(http("GET", "/v1/health", nil, "X-API-Key" => "k")[0..1]).to match([200, include("healthy" => true)])
    ensure
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
  end
end
