# frozen_string_literal: true

require "spec_helper"
require "base64"
require "cgi"
require_relative "../support/web_server"

RSpec.describe "the orchestration REST API (/v1, TaskerCore::Web served by Puma)" do
  include SpecSupport::WebServer

  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:types) { TaskerCore::Types::ClientTypes }

  before { TaskerCore::Templates.load([templates]) }

  def start_worker
    TaskerCore::Worker.start(template_paths: [templates], namespaces: %w[math], concurrency: 2)
  end

  def create(name, context = { even_number: 4 }, **extra)
    status, body, = http("POST", "/v1/tasks", { name: name, namespace: "math", context: context }.merge(extra))
    expect(status).to eq(201), body.inspect
    body
  end

  # A new context each time: the same one would be the same task (the strict identity strategy).
  def failed_task
    @failed = (@failed || 0) + 1
    uuid = create("failing_workflow", { even_number: 2 * @failed })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("error")
    uuid
  end

  def step_uuid(task_uuid, name)
    steps_by_name(task_uuid)[name]["step_uuid"]
  end

  it "creates a task (201, a TaskResponse), reads it, lists it and its steps, and each step's audit" do
    start_worker
    serve_web do
      task = create("linear_workflow", { even_number: 6 }, tags: ["rest"], correlation_id: TaskerCore::FFI.uuid_v7)
      expect(types::TaskResponse.new(task)).to be_a(types::TaskResponse)
      expect(task).to include("name" => "linear_workflow", "namespace" => "math", "tags" => ["rest"], "total_steps" => 4)
      uuid = task["task_uuid"]
      wait_for_task(uuid)

      status, body, res = http("GET", "/v1/tasks/#{uuid}")
      expect([status, res["content-type"]]).to eq([200, "application/json"])
      expect(types::TaskResponse.new(body).status).to eq("complete")
      expect(body["steps"].size).to eq(4)

      # The same identity again: the existing task, 200 and created: false.
      status, again, = http("POST", "/v1/tasks", { name: "linear_workflow", namespace: "math", context: { even_number: 6 } })
      expect([status, again["task_uuid"], again["created"]]).to eq([200, uuid, false])

      create("linear_workflow", { even_number: 8 })
      status, page, = http("GET", "/v1/tasks?namespace=math&per_page=1&page=2")
      expect(status).to eq(200)
      expect(types::TaskListResponse.new(page).pagination.to_h)
        .to eq(page: 2, per_page: 1, total_count: 2, total_pages: 2, has_next: false, has_previous: true, next_cursor: nil)
      expect(page["tasks"].map { |t| t["task_uuid"] }).to eq([uuid])
      expect(http("GET", "/v1/tasks?status=complete&per_page=10")[1]["tasks"].map { |t| t["task_uuid"] }).to include(uuid)
      expect(http("GET", "/v1/tasks?namespace=other")[1]["tasks"]).to eq([])

      status, steps, = http("GET", "/v1/tasks/#{uuid}/workflow_steps")
      expect(status).to eq(200)
      expect(steps.map { |s| types::StepResponse.new(s).current_state }).to all(eq("complete"))
      first = steps.find { |s| s["name"] == "linear_step_1" }
      status, step, = http("GET", "/v1/tasks/#{uuid}/workflow_steps/#{first['step_uuid']}")
      expect([status, step["name"], step.dig("results", "result", "result")]).to eq([200, "linear_step_1", 36])
      status, audit, = http("GET", "/v1/tasks/#{uuid}/workflow_steps/#{first['step_uuid']}/audit")
      expect(status).to eq(200)
      expect(audit.map { |a| types::StepAuditResponse.new(a).to_state }.first).to eq("complete")
      expect(audit).to eq(TaskerCore::Web.plain(TaskerCore::Client.get_step_audit_history(uuid, first["step_uuid"])))
      expect(http("HEAD", "/v1/tasks/#{uuid}")[0]).to eq(200)
    end
  end

  it "PATCHes a failed step with each action_type, recording who did it, and refuses a wrong state with 409" do
    start_worker
    serve_web do
      uuid = failed_task
      # A complete step cannot be reset: 409 with the engine's message.
      status, err, = http("PATCH", "/v1/tasks/#{uuid}/workflow_steps/#{step_uuid(uuid, 'start')}", { action_type: "reset_for_retry" })
      expect([status, err["error"]]).to eq([409, "conflict"])
      expect(err["message"]).to match(/only a step in error can be reset/)

      explode = step_uuid(uuid, "explode")
      status, step, = http("PATCH", "/v1/tasks/#{uuid}/workflow_steps/#{explode}",
                           { action_type: "complete_manually", completion_data: { result: { "result" => 5 }, metadata: { "ticket" => "OPS-1" } },
                             reason: "fixed by hand", completed_by: "ops@example.com" })
      expect(status).to eq(200), step.inspect
      expect(types::StepResponse.new(step).current_state).to eq("complete")
      expect(wait_for_task(uuid)["status"]).to eq("complete")
      expect(steps_by_name(uuid)["after_explode"].dig("results", "result", "result")).to eq(5)
      audit = http("GET", "/v1/tasks/#{uuid}/workflow_steps/#{explode}/audit")[1]
      manual = audit.find { |a| a["event"] == "complete_manually" }
      expect(manual["metadata"]).to include("reason" => "fixed by hand", "performed_by" => "ops@example.com")

      # Nothing changes in a finished task.
      status, err, = http("PATCH", "/v1/tasks/#{uuid}/workflow_steps/#{explode}", { action_type: "reset_for_retry" })
      expect([status, err["message"]]).to match([409, /is complete: its steps can no longer change/])

      uuid = failed_task
      explode = step_uuid(uuid, "explode")
      status, step, = http("PATCH", "/v1/tasks/#{uuid}/workflow_steps/#{explode}", { action_type: "resolve_manually", resolved_by: "ann" })
      expect([status, step["current_state"]]).to eq([200, "resolved_manually"])

      uuid = failed_task
      explode = step_uuid(uuid, "explode")
      status, = http("PATCH", "/v1/tasks/#{uuid}/workflow_steps/#{explode}", { action_type: "reset_for_retry", reason: "retry" })
      expect(status).to eq(200)
      expect(wait_for_task(uuid)["status"]).to eq("error") # Explode always fails
      reset = http("GET", "/v1/tasks/#{uuid}/workflow_steps/#{explode}/audit")[1].find { |a| a["event"] == "reset_for_retry" }
      expect(reset["metadata"]).to include("reason" => "retry", "performed_by" => "api")
    end
  end

  it "filters the task list by initiator and source_system, and walks it by keyset cursor" do
    serve_web do
      ids = Array.new(5) do |i|
        create("linear_workflow", { even_number: 2 * (i + 1) }, initiator: i < 3 ? "billing-svc" : "ops",
                                                                 source_system: i.even? ? "erp" : "crm")["task_uuid"]
      end
      status, page, = http("GET", "/v1/tasks?initiator=billing-svc&per_page=2")
      expect(status).to eq(200)
      expect(page["tasks"].map { |t| t["task_uuid"] }).to eq(ids[0, 3].reverse.first(2))
      expect(page["pagination"]).to include("total_count" => 3, "has_next" => true)
      # The next page by cursor, with the same filter: the last billing task, and no cursor after it.
      status, rest, = http("GET", "/v1/tasks?initiator=billing-svc&per_page=2&cursor=#{CGI.escape(page['pagination']['next_cursor'])}")
      expect(status).to eq(200)
      expect(rest["tasks"].map { |t| t["task_uuid"] }).to eq([ids[0]])
      expect(rest["pagination"]).to include("has_next" => false, "next_cursor" => nil, "total_count" => nil)
      expect(http("GET", "/v1/tasks?source_system=crm")[1]["tasks"].map { |t| t["task_uuid"] }).to eq([ids[3], ids[1]])
      both = http("GET", "/v1/tasks?initiator=ops&source_system=erp")[1]
      expect([both["tasks"].map { |t| t["task_uuid"] }, both["pagination"]["total_count"]]).to eq([[ids[4]], 1])
      expect(http("GET", "/v1/tasks?initiator=nobody")[1]["tasks"]).to eq([])
      # A cursor walk over everything meets every task once, newest first.
      seen = []
      cursor = nil
      loop do
        body = http("GET", "/v1/tasks?per_page=2#{cursor ? "&cursor=#{CGI.escape(cursor)}" : ''}")[1]
        seen.concat(body["tasks"].map { |t| t["task_uuid"] })
        cursor = body["pagination"]["next_cursor"]
        break unless cursor
      end
      expect(seen).to eq(ids.reverse)
    end
  end

  it "reports the DLQ by reason, its investigation queue by priority and the active tasks' staleness" do
    serve_web do
      stale, warning, healthy, overdue = Array.new(4) { |i| create("linear_workflow", { even_number: 20 + (2 * i) })["task_uuid"] }
      psql("UPDATE tasker.tasks SET status = 'steps_in_process' WHERE task_uuid IN ('#{stale}', '#{warning}', '#{healthy}', '#{overdue}')")
      psql("UPDATE tasker.tasks SET updated_at = updated_at - interval '31 minutes' WHERE task_uuid = '#{stale}'")
      expect(TaskerCore::DLQ.detect_stale_tasks.map { |a| a["task_uuid"] }).to eq([stale])
      psql("UPDATE tasker.tasks SET updated_at = updated_at - interval '25 minutes' WHERE task_uuid = '#{warning}'")
      psql("UPDATE tasker.tasks SET updated_at = updated_at - interval '45 minutes' WHERE task_uuid = '#{overdue}'")
      psql("INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot) " \
           "VALUES ('#{healthy}', 'steps_in_process', 'max_retries_exceeded', '{}')")

      status, queue, = http("GET", "/v1/dlq/investigation-queue")
      expect(status).to eq(200)
      expect(queue.map { |e| [e["task_uuid"], e["dlq_reason"]] }).to eq([[healthy, "max_retries_exceeded"], [stale, "staleness_timeout"]])
      expect(queue.first).to include("namespace_name" => "math", "task_name" => "linear_workflow", "current_state" => "steps_in_process",
                                     "original_state" => "steps_in_process")
      expect(queue.first["priority_score"]).to be_between(500, 501)
      expect(queue.last["priority_score"]).to be_between(100, 101)
      expect(queue.last["current_state"]).to eq("error")
      expect(queue.first.keys).to include("dlq_entry_uuid", "dlq_timestamp", "minutes_in_dlq", "time_in_state_minutes")
      expect(http("GET", "/v1/dlq/investigation-queue?limit=1")[1].size).to eq(1)

      entry = TaskerCore::DLQ.list(task_uuid: stale).first["dlq_entry_uuid"]
      expect(http("PATCH", "/v1/dlq/entry/#{entry}", { resolution_status: "manually_resolved" })[0]).to eq(200)
      status, stats, = http("GET", "/v1/dlq/stats")
      expect(status).to eq(200)
      by_reason = stats.to_h { |r| [r["dlq_reason"], r] }
      expect(by_reason.keys).to eq(%w[max_retries_exceeded staleness_timeout])
      expect(by_reason["staleness_timeout"]).to include("total_entries" => 1, "pending" => 0, "manually_resolved" => 1,
                                                        "permanent_failures" => 0, "cancelled" => 0)
      expect(by_reason["staleness_timeout"]["avg_resolution_time_minutes"]).to be >= 0
      expect(by_reason["max_retries_exceeded"]).to include("total_entries" => 1, "pending" => 1, "avg_resolution_time_minutes" => nil)
      expect(by_reason["max_retries_exceeded"]["oldest_entry"]).to eq(by_reason["max_retries_exceeded"]["newest_entry"])
      expect(http("GET", "/v1/dlq/investigation-queue")[1].map { |e| e["task_uuid"] }).to eq([healthy])

      # The active tasks, closest to the threshold (30 minutes for steps_in_process) first; with 55
      # minutes, 45 minutes in the state is over 80 % of it.
      status, staleness, = http("GET", "/v1/dlq/staleness")
      expect(status).to eq(200)
      expect(staleness.map { |t| [t["task_uuid"], t["health_status"]] })
        .to eq([[overdue, "stale"], [warning, "warning"], [healthy, "healthy"]])
      expect(staleness.first).to include("namespace_name" => "math", "task_name" => "linear_workflow", "current_state" => "steps_in_process",
                                         "staleness_threshold_minutes" => 30, "time_in_state_minutes" => 45, "priority" => 0)
      expect(staleness.first["task_age_minutes"]).to be >= 0
      expect(http("GET", "/v1/dlq/staleness?threshold_minutes=55")[1].map { |t| t["health_status"] }).to eq(%w[warning healthy healthy])
      expect(http("GET", "/v1/dlq/staleness?limit=1")[1].size).to eq(1)
    end
  end

  it "cancels a task with DELETE, then answers 409 for the finished task" do
    serve_web do
      uuid = create("linear_workflow")["task_uuid"] # no worker: it stays unfinished
      status, body, = http("DELETE", "/v1/tasks/#{uuid}")
      expect([status, body["cancelled"], body["status"]]).to eq([200, true, "cancelled"])
      status, body, = http("DELETE", "/v1/tasks/#{uuid}")
      expect([status, body["error"]]).to eq([409, "conflict"])
    end
  end

  it "lists and updates dead-letter entries" do
    serve_web do
      uuid = create("linear_workflow")["task_uuid"]
      psql("UPDATE tasker.tasks SET updated_at = updated_at - interval '31 minutes' WHERE task_uuid = '#{uuid}'")
      psql("UPDATE tasker.tasks SET status = 'steps_in_process' WHERE task_uuid = '#{uuid}'") if TaskerCore::Client.get_task(uuid)["status"] == "pending"
      expect(TaskerCore::DLQ.detect_stale_tasks.map { |a| a["task_uuid"] }).to eq([uuid])

      status, entries, = http("GET", "/v1/dlq?resolution_status=pending")
      expect(status).to eq(200)
      expect(entries.map { |e| e["task_uuid"] }).to eq([uuid])
      expect(http("GET", "/v1/dlq/task/#{uuid}")[1].size).to eq(1)
      entry = entries.first["dlq_entry_uuid"]
      status, updated, = http("PATCH", "/v1/dlq/entry/#{entry}", { resolution_status: "manually_resolved", resolution_notes: "fixed" })
      expect(status).to eq(200)
      expect(updated).to include("resolution_status" => "manually_resolved", "resolution_notes" => "fixed", "resolved_by" => "api")
      expect(http("GET", "/v1/dlq?resolution_status=pending")[1]).to eq([])
      expect(http("PATCH", "/v1/dlq/entry/#{TaskerCore::FFI.uuid_v7}", { resolution_notes: "x" })[0]).to eq(404)
      expect(http("PATCH", "/v1/dlq/entry/#{entry}", { resolution_status: "forgotten" })[1])
        .to include("error" => "bad_request", "field" => "resolution_status")
      expect(http("GET", "/v1/dlq?limit=0")[1]).to include("field" => "limit")
    end
  end

  it "answers bad input with a JSON error naming the field, and 404, 405, 413, 415 as JSON" do
    serve_web(TaskerCore::Web.new(max_body_bytes: 4096)) do
      cases = [
        [["POST", "/v1/tasks", { namespace: "math" }], 400, "name"],
        [["POST", "/v1/tasks", { name: "linear_workflow", namespace: "math", colour: "red" }], 400, "colour"],
        [["POST", "/v1/tasks", "[1, 2]"], 400, "body"],
        [["POST", "/v1/tasks", "{nope"], 400, "body"],
        [["POST", "/v1/tasks", { name: "linear_workflow", namespace: "math", context: { even_number: 2 }, priority: "high" }], 400, "priority"],
        [["POST", "/v1/tasks", { name: "linear_workflow", namespace: "math", context: [1] }], 400, "context"],
        [["POST", "/v1/tasks", { name: "linear_workflow", namespace: "math", context: { even_number: 2 }, tags: "x" }], 400, "tags"],
        [["POST", "/v1/tasks", { name: "linear_workflow", namespace: "math", version: 5 }], 400, "version"],
        [["POST", "/v1/tasks", { name: 5 }], 400, "name"],
        [["GET", "/v1/tasks?page=0"], 400, "page"],
        [["GET", "/v1/tasks?per_page=abc"], 400, "per_page"],
        [["GET", "/v1/tasks?per_page=1001"], 400, "per_page"],
        [["GET", "/v1/tasks?status=sleeping"], 400, "status"],
        [["GET", "/v1/tasks?initiator=#{'x' * 129}"], 400, "initiator"],
        [["GET", "/v1/tasks?source_system=#{'x' * 129}"], 400, "source_system"],
        [["GET", "/v1/tasks?cursor=nope"], 400, "cursor"],
        [["GET", "/v1/tasks?cursor=x&page=2"], 400, "cursor"],
        [["GET", "/v1/dlq/investigation-queue?limit=0"], 400, "limit"],
        [["GET", "/v1/dlq/staleness?limit=1001"], 400, "limit"],
        [["GET", "/v1/dlq/staleness?threshold_minutes=0"], 400, "threshold_minutes"],
        [["GET", "/v1/tasks?page=%zz"], 400, "page"],
        [["GET", "/v1/tasks/not-a-uuid"], 400, "task_uuid"],
        [["GET", "/v1/tasks/#{TaskerCore::FFI.uuid_v7}/workflow_steps/nope"], 400, "step_uuid"],
        [["PATCH", "/v1/tasks/#{TaskerCore::FFI.uuid_v7}/workflow_steps/#{TaskerCore::FFI.uuid_v7}", { action_type: "explode" }], 400, "action_type"],
        [["PATCH", "/v1/tasks/#{TaskerCore::FFI.uuid_v7}/workflow_steps/#{TaskerCore::FFI.uuid_v7}", { action_type: "complete_manually" }],
         400, "completion_data.result"],
        [["PATCH", "/v1/tasks/#{TaskerCore::FFI.uuid_v7}/workflow_steps/#{TaskerCore::FFI.uuid_v7}", { action_type: "resolve_manually", reason: 7 }],
         400, "reason"],
        [["PATCH", "/v1/tasks/#{TaskerCore::FFI.uuid_v7}/workflow_steps/#{TaskerCore::FFI.uuid_v7}", { action_type: "reset_for_retry", completion_data: "x" }],
         400, "completion_data"]
      ]
      cases.each do |(method, path, body), code, field|
        status, err, res = http(method, path, body)
        expect([status, res["content-type"]]).to eq([code, "application/json"]), "#{method} #{path}: #{status} #{err.inspect}"
        expect(err).to include("error" => "bad_request", "field" => field), "#{method} #{path}: #{err.inspect}"
        expect(err.keys).to include("message", "timestamp", "request_id")
      end

      expect(http("GET", "/v1/tasks/#{TaskerCore::FFI.uuid_v7}")[0..1]).to match([404, include("error" => "not_found")])
      expect(http("GET", "/v1/tasks/#{TaskerCore::FFI.uuid_v7}/workflow_steps")[0]).to eq(404)
      status, err, = http("POST", "/v1/tasks", { name: "no_such_template", namespace: "math" })
      expect([status, err["error"]]).to eq([404, "not_found"])
      expect(http("GET", "/v1/nothing")[0..1]).to match([404, include("error" => "not_found")])
      status, err, res = http("PUT", "/v1/tasks", {})
      expect([status, err["error"], res["allow"]]).to eq([405, "method_not_allowed", "POST, GET"])
      status, err, = http("POST", "/v1/tasks", { name: "linear_workflow", context: { blob: "x" * 5000 } })
      expect([status, err["error"]]).to eq([413, "payload_too_large"])
      status, err, = http("POST", "/v1/tasks", "name=x", "content-type" => "application/x-www-form-urlencoded")
      expect([status, err["error"]]).to eq([415, "unsupported_media_type"])
    end
  end

  it "answers 503 when the database is down" do
    serve_web do
      rd, wr = IO.pipe
      pid = fork do
        rd.close
        TaskerCore::FFI.shutdown if TaskerCore::FFI.running?
        TaskerCore.config.database_url = "postgresql://tasker@127.0.0.1:1/none?connect_timeout=2"
        status, _, body = TaskerCore::Web.new.call("REQUEST_METHOD" => "GET", "PATH_INFO" => "/v1/tasks/#{TaskerCore::FFI.uuid_v7}",
                                                   "QUERY_STRING" => "")
        health, = TaskerCore::Web.new.call("REQUEST_METHOD" => "GET", "PATH_INFO" => "/v1/health", "QUERY_STRING" => "")
        wr.write(JSON.generate([status, JSON.parse(body.join), health]))
        wr.close
        exit!(0)
      end
      wr.close
      Process.wait(pid)
      status, body, health = JSON.parse(rd.read)
      expect([status, body["error"], health]).to eq([503, "service_unavailable", 503])
      expect(body.to_s).not_to include("backtrace")
    end
  end

  it "needs the API key (header or bearer) or basic auth when one is configured, compared in constant time" do
    app = TaskerCore::Web.new(api_key: "s3cret-key", basic_auth: %w[ops hunter2])
    serve_web(app) do
      expect(http("GET", "/v1/tasks")[0..1]).to match([401, include("error" => "unauthorized")])
      expect(http("GET", "/v1/tasks", nil, "X-API-Key" => "wrong")[0]).to eq(401)
      expect(http("GET", "/v1/tasks", nil, "X-API-Key" => "s3cret-key")[0]).to eq(200)
      expect(http("GET", "/v1/tasks", nil, "Authorization" => "Bearer s3cret-key")[0]).to eq(200)
      expect(http("GET", "/v1/tasks", nil, "Authorization" => "Bearer nope")[0]).to eq(401)
      basic = ->(u, p) { { "Authorization" => "Basic #{Base64.strict_encode64("#{u}:#{p}")}" } }
      expect(http("GET", "/v1/tasks", nil, basic.call("ops", "hunter2"))[0]).to eq(200)
      expect(http("GET", "/v1/tasks", nil, basic.call("ops", "hunter3"))[0]).to eq(401)
      expect(http("GET", "/v1/tasks", nil, basic.call("anyone", "s3cret-key"))[0]).to eq(200)
      # The worker routes and the dashboard too.
      expect(http("GET", "/metrics")[0]).to eq(401)
      status, page, res = http("GET", "/tasks")
      expect([status, res["www-authenticate"]]).to eq([401, 'Basic realm="tasker", charset="UTF-8"'])
      expect(page).to include("authentication required")
      # The operator named in the audit is the basic-auth user.
      uuid = http("POST", "/v1/tasks", { name: "linear_workflow", namespace: "math", context: { even_number: 2 } },
                  basic.call("ops", "hunter2"))[1]["task_uuid"]
      expect(http("DELETE", "/v1/tasks/#{uuid}", nil, basic.call("ops", "hunter2"))[0]).to eq(200)
    end
    expect { TaskerCore::Web.new(basic_auth: ["ops", ""]) }.to raise_error(TaskerCore::Errors::ConfigurationError)
  end

  it "serves /v1/health and an OpenAPI 3 document that lists exactly the routes served" do
    serve_web do
      status, health, = http("GET", "/v1/health")
      expect([status, health["healthy"]]).to eq([200, true])
      status, doc, = http("GET", "/v1/openapi.json")
      expect([status, doc["openapi"]]).to eq([200, "3.0.3"])
      served = TaskerCore::Web::API::ROUTES.map { |r| [r[:method].downcase, r[:path]] }.sort
      documented = doc["paths"].flat_map { |path, ops| ops.keys.map { |m| [m, path] } }.sort
      expect(documented).to eq(served)
      # Every documented route answers (a UUID that exists nowhere: 404 is an answer of the route,
      # not the 404 of an unknown path).
      doc["paths"].each do |path, ops|
        ops.each_key do |method|
          concrete = path.gsub(/\{[a-z_]+\}/) { TaskerCore::FFI.uuid_v7 }
          body = %w[post patch].include?(method) ? {} : nil
          status, err, = http(method.upcase, concrete, body)
          expect(err.is_a?(Hash) && err["message"].to_s.start_with?("no route")).to be(false), "#{method} #{path}: #{status} #{err.inspect}"
        end
      end
    end
  end
end
