# frozen_string_literal: true

require "cgi"
require "json"
require "openssl"
require "securerandom"

module TaskerCore
  class Web
    # The operators' dashboard: server-rendered pages over the engine's client reads, and actions
    # (cancel a task, reset/resolve/complete a step, resolve a DLQ entry) that call the same
    # TaskerCore::Client and TaskerCore::DLQ operations as Ruby code does, with the operator's name
    # as performed_by. Every action is a POST from a confirmation page, carrying a CSRF token that
    # must equal the token of the tasker_csrf cookie (a double-submit token; the cookie is
    # SameSite=Strict). One stylesheet and one script (assets/), no framework, no CDN.
    class Dashboard
      ASSETS = File.expand_path("assets", __dir__)
      ASSET_TYPES = { "tasker.css" => "text/css; charset=utf-8", "tasker.js" => "text/javascript; charset=utf-8" }.freeze
      PREFIXES = %w[/tasks /dlq /catalog /assets/].freeze
      CSRF_COOKIE = "tasker_csrf"
      CSRF_FIELD = "authenticity_token"
      PER_PAGE = 50
      T = Types::ClientTypes
      # The names of secrets, as the redaction of /config reads them (tc_redact.c): a value under a
      # key containing one of these is not shown.
      SECRET_WORDS = %w[password passwd pwd secret token key credential auth bearer cookie signature private dsn
                        webhook url conninfo connection_string salt].freeze
      REDACTED = "***REDACTED***"
      UUID = "(\\h{8}-\\h{4}-\\h{4}-\\h{4}-\\h{12})"
      ROUTES = [
        ["GET", %r{\A/\z}, :overview],
        ["GET", %r{\A/tasks\z}, :tasks],
        ["GET", %r{\A/tasks/#{UUID}\z}, :task],
        ["GET", %r{\A/tasks/#{UUID}/cancel\z}, :confirm_cancel],
        ["POST", %r{\A/tasks/#{UUID}/cancel\z}, :cancel],
        ["GET", %r{\A/tasks/#{UUID}/steps/#{UUID}\z}, :step],
        ["GET", %r{\A/tasks/#{UUID}/steps/#{UUID}/(reset_for_retry|resolve_manually|complete_manually)\z}, :confirm_step],
        ["POST", %r{\A/tasks/#{UUID}/steps/#{UUID}/(reset_for_retry|resolve_manually|complete_manually)\z}, :step_action],
        ["GET", %r{\A/dlq\z}, :dlq],
        ["GET", %r{\A/dlq/#{UUID}/resolve\z}, :confirm_dlq],
        ["POST", %r{\A/dlq/#{UUID}/resolve\z}, :dlq_resolve],
        ["GET", %r{\A/catalog\z}, :catalog],
        ["GET", %r{\A/catalog/([^/]+)/([^/]+)/([^/]+)\z}, :template],
        ["GET", %r{\A/assets/(tasker\.css|tasker\.js)\z}, :asset]
      ].freeze
      ACTION_LABELS = { "reset_for_retry" => "Retry step", "resolve_manually" => "Resolve manually",
                        "complete_manually" => "Complete manually" }.freeze

      def self.route?(path) = path == "/" || PREFIXES.any? { |p| path == p.chomp("/") || path.start_with?(p.end_with?("/") ? p : "#{p}/") }

      # A value with what is under secret-named keys replaced (nested Hashes and Arrays walked).
      def self.redact(value, secret = false)
        case value
        when Hash then value.to_h { |k, v| [k, redact(v, secret || SECRET_WORDS.any? { |w| k.to_s.downcase.include?(w) })] }
        when Array then value.map { |v| redact(v, secret) }
        else secret && !value.nil? ? REDACTED : value
        end
      end

      def initialize(web)
        @web = web
      end

      def call(env, path)
        @env = env
        @prefix = env["SCRIPT_NAME"].to_s.chomp("/")
        @csrf = read_cookie(CSRF_COOKIE)
        @csrf = nil unless @csrf&.match?(/\A[A-Za-z0-9_-]{32,64}\z/)
        @new_csrf = @csrf.nil?
        @csrf ||= SecureRandom.urlsafe_base64(32)
        candidates = ROUTES.select { |r| r[1].match?(path) }
        raise Problem.new(404, "not_found", "no page at #{path}") if candidates.empty?

        method = env["REQUEST_METHOD"] == "HEAD" ? "GET" : env["REQUEST_METHOD"]
        route = candidates.find { |r| r[0] == method }
        unless route
          raise Problem.new(405, "method_not_allowed", "#{env['REQUEST_METHOD']} is not allowed on #{path}",
                            headers: { "allow" => candidates.map(&:first).join(", ") })
        end
        if method == "POST"
          raise Problem.new(403, "read_only", "this dashboard is read-only") if @web.read_only?

          verify_csrf!
        end
        send(route[2], *route[1].match(path).captures)
      end

      def error_page(env, status, error, message, field, headers = {})
        @env = env
        @prefix = env["SCRIPT_NAME"].to_s.chomp("/")
        body = +"<h1>#{h(status)} #{h(error.tr('_', ' '))}</h1><p role=\"alert\">#{h(message)}</p>"
        body << "<p>Field: <code>#{h(field)}</code></p>" if field
        page("Error #{status}", body, status: status, headers: headers)
      end

      private

      # -- pages -------------------------------------------------------------------------------

      def overview
        TaskerCore.boot!
        task_counts = Client.task_counts
        counts = T::TASK_STATES.to_h { |s| [s, task_counts["states"].fetch(s, 0)] }
        listed = task_counts["namespaces"].to_h { |c| [c["namespace"], c] }
        by_ns = (Client.namespaces + listed.keys).uniq.sort.to_h do |ns|
          c = listed.fetch(ns, {})
          [ns, { "unfinished" => c.fetch("unfinished", 0), "error" => c.fetch("error", 0), "all" => c.fetch("total", 0) }]
        end
        pending_dlq = DLQ.list(resolution_status: "pending", limit: 1000).size
        activity = Client.activity(minutes: 60, bucket_minutes: 5)
        queue = Client.queue_depth
        workers = Client.workers(limit: 50)
        health = Web.plain(Client.health_check)
        body = +"<h1>Overview</h1>"
        body << "<section aria-labelledby=\"h-states\"><h2 id=\"h-states\">Tasks by state</h2><ul class=\"cards\">"
        counts.each do |state, n|
          body << "<li><a href=\"#{url('/tasks', status: state)}\"><span class=\"badge state-#{h(state)}\">#{h(state)}</span>" \
                  " <strong>#{n}</strong></a></li>"
        end
        body << "</ul></section>"
        body << "<section aria-labelledby=\"h-ns\"><h2 id=\"h-ns\">Namespaces</h2>"
        body << table(%w[Namespace Unfinished Error All], by_ns.map do |ns, c|
          [link(ns, url("/tasks", namespace: ns)), c["unfinished"], c["error"], c["all"]]
        end, raw: true)
        body << "</section>"
        body << activity_section(activity) << queue_section(queue) << workers_section(workers)
        body << "<section aria-labelledby=\"h-health\"><h2 id=\"h-health\">Health</h2><dl>"
        body << dl_row("Database", health["healthy"] ? "healthy" : "unhealthy: #{health['error']}")
        body << dl_row("Schema version", health["schema_version"])
        body << dl_row("Dead-letter entries pending", pending_dlq)
        body << dl_row("Worker in this process", Worker.running? ? "running" : "none")
        body << "</dl></section>"
        page("Overview", body)
      end

      def tasks
        q = Web.query(@env)
        status = q["status"].to_s.empty? ? nil : q["status"]
        namespace = q["namespace"].to_s.empty? ? nil : q["namespace"]
        if status && !T::TASK_STATES.include?(status)
          raise Problem.new(400, "bad_request", "status must be one of #{T::TASK_STATES.join(', ')}", field: "status")
        end
        texts = %w[initiator source_system].to_h do |f|
          value = q[f].to_s.strip
          raise Problem.new(400, "bad_request", "#{f} must be at most 128 characters", field: f) if value.size > 128

          [f.to_sym, value.empty? ? nil : value]
        end
        after = q["after"].to_s.empty? ? nil : q["after"]
        list = Web.plain(Client.list_tasks_after(cursor: after, limit: PER_PAGE, namespace: namespace, status: status, **texts))
        namespaces = Client.namespaces
        body = +"<h1>Tasks</h1><form method=\"get\" action=\"#{url('/tasks')}\" class=\"filters\">"
        body << select("namespace", "Namespace", namespaces, namespace)
        body << select("status", "Status", T::TASK_STATES, status)
        body << text_input("initiator", "Initiator", texts[:initiator])
        body << text_input("source_system", "Source system", texts[:source_system])
        body << "<button type=\"submit\">Filter</button></form>"
        rows = list["tasks"].map do |t|
          [link(t["task_uuid"], url("/tasks/#{t['task_uuid']}"), mono: true), h("#{t['namespace']}/#{t['name']}@#{t['version']}"),
           badge(t["status"]), "#{t['completed_steps']}/#{t['total_steps']}", h(t["created_at"].to_s.sub("T", " ")[0, 19])]
        end
        body << (rows.empty? ? "<p>No tasks.</p>" : table(%w[Task Template Status Steps Created], rows, raw: true))
        nav = []
        filters = { namespace: namespace, status: status }.merge(texts)
        nav << link("Newest tasks", url("/tasks", filters)) if after
        nav << link("Next page", url("/tasks", filters.merge(after: list["next_cursor"]))) if list["next_cursor"]
        body << "<nav class=\"pager\" aria-label=\"Pages\">#{nav.join(' ')}</nav>" unless nav.empty?
        page("Tasks", body)
      end

      def task(uuid)
        task = Web.plain(Client.get_task(uuid))
        steps = Web.plain(Client.list_task_steps(uuid))
        body = +"<h1>#{h(task['namespace'])}/#{h(task['name'])}@#{h(task['version'])}</h1>"
        body << notice
        body << "<dl class=\"summary\">"
        body << dl_row("Task", "<code>#{h(uuid)}</code>", raw: true)
        body << dl_row("Status", "<span id=\"task-status\">#{badge(task['status'])}</span>", raw: true)
        body << dl_row("Steps complete", "<span id=\"task-progress\">#{task['completed_steps']}/#{task['total_steps']}</span>", raw: true)
        body << dl_row("Created", task["created_at"])
        body << dl_row("Completed", task["completed_at"]) if task["completed_at"]
        body << dl_row("Correlation id", task["correlation_id"])
        body << dl_row("Initiator", task["initiator"])
        body << "</dl>"
        unless T::TERMINAL_TASK_STATES.include?(task["status"]) || @web.read_only?
          body << "<p><a class=\"button danger\" href=\"#{url("/tasks/#{uuid}/cancel")}\">Cancel task</a></p>"
        end
        body << "<section aria-labelledby=\"h-dag\"><h2 id=\"h-dag\">Workflow</h2>#{dag_svg(steps, uuid)}</section>"
        body << "<section aria-labelledby=\"h-steps\"><h2 id=\"h-steps\">Steps</h2>"
        body << table(%w[Step State Attempts Error], steps.map do |s|
          [link(s["name"], url("/tasks/#{uuid}/steps/#{s['step_uuid']}")),
           "<span data-step-state=\"#{h(s['step_uuid'])}\">#{badge(s['current_state'])}</span>",
           "#{s['attempts']}/#{s['max_attempts']}", h(error_of(s)&.fetch("message", nil).to_s[0, 200])]
        end, raw: true)
        body << "</section><section aria-labelledby=\"h-context\"><h2 id=\"h-context\">Context</h2>#{pre(task['context'])}</section>"
        live = T::TERMINAL_TASK_STATES.include?(task["status"]) ? "" : " data-poll=\"#{url("/v1/tasks/#{uuid}")}\""
        page("Task #{uuid}", "<div id=\"task\"#{live}>#{body}</div>")
      end

      def step(task_uuid, step_uuid)
        step = Web.plain(Client.get_step(task_uuid, step_uuid))
        audit = Web.plain(Client.get_step_audit_history(task_uuid, step_uuid))
        body = +"<p>#{link('Back to the task', url("/tasks/#{task_uuid}"))}</p><h1>Step #{h(step['name'])}</h1>"
        body << notice
        body << "<dl class=\"summary\">"
        body << dl_row("Step", "<code>#{h(step_uuid)}</code>", raw: true)
        body << dl_row("State", badge(step["current_state"]), raw: true)
        body << dl_row("Attempts", "#{step['attempts']}/#{step['max_attempts']}")
        body << dl_row("Handler", step["handler_callable"]) if step["handler_callable"]
        body << dl_row("Parents", (step["parents"] || []).join(", ")) unless (step["parents"] || []).empty?
        body << dl_row("Last attempted", step["last_attempted_at"]) if step["last_attempted_at"]
        body << dl_row("Next retry", step["next_retry_at"]) if step["next_retry_at"]
        body << dl_row("Completed", step["completed_at"]) if step["completed_at"]
        ms = step.dig("results", "metadata", "execution_time_ms")
        body << dl_row("Execution time", "#{ms} ms") if ms
        body << "</dl>"
        body << step_actions(task_uuid, step) unless @web.read_only?
        if (error = error_of(step))
          body << "<section aria-labelledby=\"h-error\"><h2 id=\"h-error\">Error</h2><p class=\"error-text\">#{h(error['error_class'])}: " \
                  "#{h(error['message'])}</p>"
          backtrace = error["backtrace"]
          body << "<pre class=\"backtrace\">#{h(Array(backtrace).join("\n"))}</pre>" if backtrace && !Array(backtrace).empty?
          body << "</section>"
        end
        body << "<section aria-labelledby=\"h-result\"><h2 id=\"h-result\">Result</h2>#{pre(step['results'])}</section>"
        body << "<section aria-labelledby=\"h-audit\"><h2 id=\"h-audit\">History</h2>"
        body << table(["Recorded", "Event", "From", "To", "Success", "Time (ms)", "By / reason"], audit.map do |a|
          meta = a["metadata"] || {}
          [a["recorded_at"], a["event"], a["from_state"], a["to_state"], a["success"] ? "yes" : "no", a["execution_time_ms"],
           [meta["performed_by"], meta["reason"]].compact.join(": ")]
        end)
        body << "</section>"
        page("Step #{step['name']}", body)
      end

      def step_actions(task_uuid, step)
        actions = case step["current_state"]
                  when "error" then %w[reset_for_retry resolve_manually complete_manually]
                  when "pending", "waiting_for_retry" then %w[resolve_manually complete_manually]
                  else []
                  end
        return "" if actions.empty?

        links = actions.map do |a|
          "<a class=\"button#{a == 'reset_for_retry' ? ' primary' : ''}\" href=\"#{url("/tasks/#{task_uuid}/steps/#{step['step_uuid']}/#{a}")}\">" \
            "#{h(ACTION_LABELS[a])}</a>"
        end
        "<p class=\"actions\">#{links.join(' ')}</p>"
      end

      def confirm_cancel(uuid)
        task = Web.plain(Client.get_task(uuid))
        body = "<h1>Cancel task?</h1><p>Task <code>#{h(uuid)}</code> (#{h(task['namespace'])}/#{h(task['name'])}) is " \
               "#{badge(task['status'])}. Cancelling stops its pending steps; steps already running finish but do not " \
               "resume the task.</p>" + form(url("/tasks/#{uuid}/cancel"), "Cancel the task", danger: true, back: url("/tasks/#{uuid}"))
        page("Cancel task", body)
      end

      def cancel(uuid)
        Client.cancel_task(uuid)
        redirect("/tasks/#{uuid}", "Task cancelled by #{@web.operator(@env)}.")
      end

      def confirm_step(task_uuid, step_uuid, action)
        step = Web.plain(Client.get_step(task_uuid, step_uuid))
        explain = { "reset_for_retry" => "The step runs again from its first attempt and the task re-evaluates.",
                    "resolve_manually" => "The step is marked done without a result; its dependents may run.",
                    "complete_manually" => "The step completes with the result below, which its dependents receive." }[action]
        extra = +""
        if action == "complete_manually"
          extra << "<p><label for=\"result\">Result (JSON)</label><textarea id=\"result\" name=\"result\" rows=\"6\" required>" \
                   "{}</textarea></p>"
        end
        body = "<h1>#{h(ACTION_LABELS[action])}?</h1><p>Step <strong>#{h(step['name'])}</strong> is #{badge(step['current_state'])}. " \
               "#{h(explain)}</p>" + form(url("/tasks/#{task_uuid}/steps/#{step_uuid}/#{action}"), ACTION_LABELS[action],
                                          extra: extra, back: url("/tasks/#{task_uuid}/steps/#{step_uuid}"))
        page(ACTION_LABELS[action], body)
      end

      def step_action(task_uuid, step_uuid, action)
        params = form_params
        result = nil
        if action == "complete_manually"
          result = begin
            JSON.parse(params["result"].to_s)
          rescue JSON::ParserError => e
            raise Problem.new(400, "bad_request", "result is not valid JSON: #{e.message[0, 200]}", field: "result")
          end
        end
        Client.update_step(task_uuid, step_uuid, action_type: action, reason: reason(params),
                                                 performed_by: @web.operator(@env), result: result)
        redirect("/tasks/#{task_uuid}", "#{ACTION_LABELS[action]}: done by #{@web.operator(@env)}.")
      end

      def dlq
        q = Web.query(@env)
        status = q["resolution_status"].to_s.empty? ? nil : q["resolution_status"]
        if status && !DLQ::RESOLUTION_STATUSES.include?(status)
          raise Problem.new(400, "bad_request", "resolution_status must be one of #{DLQ::RESOLUTION_STATUSES.join(', ')}",
                            field: "resolution_status")
        end
        entries = DLQ.list(resolution_status: status, limit: 200)
        body = +"<h1>Dead-letter queue</h1>#{notice}<form method=\"get\" action=\"#{url('/dlq')}\" class=\"filters\">"
        body << select("resolution_status", "Resolution", DLQ::RESOLUTION_STATUSES, status)
        body << "<button type=\"submit\">Filter</button></form>"
        rows = entries.map do |e|
          action = e["resolution_status"] == "pending" && !@web.read_only? ? link("Resolve", url("/dlq/#{e['dlq_entry_uuid']}/resolve")) : ""
          [link(e["task_uuid"], url("/tasks/#{e['task_uuid']}"), mono: true), h(e["dlq_reason"]), h(e["resolution_status"]),
           h(e["created_at"].to_s.sub("T", " ")[0, 19]), h(e["resolved_by"]), h(e["resolution_notes"]), action]
        end
        body << (rows.empty? ? "<p>No entries.</p>" : table(%w[Task Reason Resolution Added By Notes Action], rows, raw: true))
        page("Dead-letter queue", body)
      end

      def confirm_dlq(entry_uuid)
        statuses = DLQ::RESOLUTION_STATUSES - ["pending"]
        extra = select("resolution_status", "Resolution", statuses, "manually_resolved", blank: false)
        body = "<h1>Resolve dead-letter entry?</h1><p>Entry <code>#{h(entry_uuid)}</code>. This records the outcome of the " \
               "investigation; fix the task's steps from the task page.</p>" +
               form(url("/dlq/#{entry_uuid}/resolve"), "Record the resolution", extra: extra, notes: true, back: url("/dlq"))
        page("Resolve dead-letter entry", body)
      end

      def dlq_resolve(entry_uuid)
        params = form_params
        status = params["resolution_status"].to_s
        unless (DLQ::RESOLUTION_STATUSES - ["pending"]).include?(status)
          raise Problem.new(400, "bad_request", "resolution_status must be one of manually_resolved, permanently_failed, cancelled",
                            field: "resolution_status")
        end
        DLQ.update(entry_uuid, resolution_status: status, resolution_notes: reason(params), resolved_by: @web.operator(@env))
        redirect("/dlq", "Entry #{entry_uuid} recorded as #{status} by #{@web.operator(@env)}.")
      end

      def catalog
        TaskerCore.boot!
        rows = FFI.template_list(nil).map do |t|
          [link("#{t['namespace_name']}/#{t['name']}", url("/catalog/#{t['namespace_name']}/#{t['name']}/#{t['version']}")),
           h(t["version"]), h(t["step_count"]), h(t["active_tasks"]), h(t["registered_at"].to_s.sub("T", " ")[0, 19])]
        end
        body = "<h1>Templates</h1>" + (rows.empty? ? "<p>No templates registered.</p>" : table(%w[Template Version Steps Active Registered], rows, raw: true))
        page("Templates", body)
      end

      def template(namespace, name, version)
        TaskerCore.boot!
        data = FFI.template_fetch(namespace, name, version)
        data = data["configuration"] if data.is_a?(Hash) && data["configuration"].is_a?(Hash)
        steps = Array(data["steps"]).map do |s|
          { "name" => s["name"], "current_state" => "template", "parents" => Array(s["dependencies"] || s["depends_on_steps"]),
            "attempts" => 0, "max_attempts" => s.dig("retry", "max_attempts") || 0 }
        end
        body = "<h1>#{h(namespace)}/#{h(name)}@#{h(version)}</h1>" \
               "<p>#{h(data['description'])}</p><section aria-labelledby=\"h-dag\"><h2 id=\"h-dag\">Workflow</h2>#{dag_svg(steps, nil)}</section>" \
               "<section aria-labelledby=\"h-def\"><h2 id=\"h-def\">Definition</h2>#{pre(data)}</section>"
        page("Template #{name}", body)
      end

      def asset(name)
        [200, { "content-type" => ASSET_TYPES.fetch(name), "cache-control" => "public, max-age=3600" },
         [File.read(File.join(ASSETS, name))]]
      end

      # -- the overview's live figures ------------------------------------------------------------

      CHART_W = 600
      CHART_H = 120

      # The last hour: totals and error rates, a bar per bucket (tasks completed and errored, stacked;
      # each bar's title gives its figures), and the same figures as a table.
      def activity_section(activity)
        totals = activity["totals"]
        rate = ->(r) { r.nil? ? "none finished" : format("%.1f %%", r.to_f * 100) }
        out = +"<section aria-labelledby=\"h-activity\"><h2 id=\"h-activity\">Last #{h(activity['minutes'])} minutes</h2>"
        out << "<dl class=\"figures\">"
        { "tasks-completed" => ["Tasks completed", totals["tasks_completed"]], "tasks-errored" => ["Tasks errored", totals["tasks_errored"]],
          "tasks-cancelled" => ["Tasks cancelled", totals["tasks_cancelled"]],
          "task-error-rate" => ["Task error rate", rate.call(activity["task_error_rate"])],
          "steps-succeeded" => ["Step attempts succeeded", totals["steps_succeeded"]],
          "steps-failed" => ["Step attempts failed", totals["steps_failed"]],
          "step-error-rate" => ["Step error rate", rate.call(activity["step_error_rate"])] }.each do |id, (term, value)|
          out << "<dt>#{h(term)}</dt><dd id=\"#{id}\">#{h(value)}</dd>"
        end
        out << "</dl>" << activity_chart(activity)
        rows = activity["buckets"].map do |b|
          [b["start"].to_s.sub("T", " ")[11, 5], b["tasks_completed"], b["tasks_errored"], b["steps_succeeded"], b["steps_failed"]]
        end
        out << "<details><summary>Per #{h(activity['bucket_minutes'])} minutes</summary>"
        out << table(["From (UTC)", "Tasks completed", "Tasks errored", "Attempts succeeded", "Attempts failed"], rows)
        out << "</details></section>"
      end

      def activity_chart(activity)
        buckets = activity["buckets"]
        peak = buckets.map { |b| b["tasks_completed"] + b["tasks_errored"] }.max.to_i
        peak = 1 if peak.zero?
        slot = CHART_W.to_f / buckets.size
        svg = +"<svg class=\"chart\" role=\"img\" aria-labelledby=\"chart-title\" viewBox=\"0 0 #{CHART_W} #{CHART_H + 20}\" " \
               "width=\"#{CHART_W}\" height=\"#{CHART_H + 20}\" xmlns=\"http://www.w3.org/2000/svg\">" \
               "<title id=\"chart-title\">Tasks completed (green) and errored (red) per #{h(activity['bucket_minutes'])} minutes, " \
               "peak #{peak}</title><line class=\"axis\" x1=\"0\" y1=\"#{CHART_H}\" x2=\"#{CHART_W}\" y2=\"#{CHART_H}\"/>"
        buckets.each_with_index do |b, i|
          x = (i * slot) + 2
          done_h = (b["tasks_completed"] * CHART_H.to_f / peak).round(1)
          err_h = (b["tasks_errored"] * CHART_H.to_f / peak).round(1)
          label = "#{b['start'].to_s.sub('T', ' ')[11, 5]}: #{b['tasks_completed']} completed, #{b['tasks_errored']} errored, " \
                  "#{b['steps_failed']} failed attempts"
          svg << "<g class=\"bar\"><title>#{h(label)}</title>"
          svg << "<rect class=\"done\" x=\"#{x.round(1)}\" y=\"#{(CHART_H - done_h).round(1)}\" width=\"#{(slot - 4).round(1)}\" height=\"#{done_h}\"/>"
          svg << "<rect class=\"errored\" x=\"#{x.round(1)}\" y=\"#{(CHART_H - done_h - err_h).round(1)}\" width=\"#{(slot - 4).round(1)}\" " \
                 "height=\"#{err_h}\"/></g>"
        end
        svg << "<text x=\"0\" y=\"#{CHART_H + 15}\">#{h(buckets.first['start'].to_s[11, 5])}</text>" \
               "<text x=\"#{CHART_W}\" y=\"#{CHART_H + 15}\" text-anchor=\"end\">now</text></svg>"
      end

      def queue_section(queue)
        rows = queue.map do |q|
          wait = q["oldest_enqueued_seconds"] ? "#{q['oldest_enqueued_seconds']} s" : ""
          [link(q["namespace"], url("/tasks", namespace: q["namespace"])), h(q["enqueued"]), h(wait), h(q["in_progress"]),
           h(q["waiting_for_retry"]), h(q["retry_due"])]
        end
        "<section aria-labelledby=\"h-queue\"><h2 id=\"h-queue\">Queue</h2>" +
          (rows.empty? ? "<p>No namespaces.</p>" : table(["Namespace", "Enqueued", "Oldest waiting", "In progress", "Waiting for retry", "Retry due"],
                                                         rows, raw: true, id: "queue")) + "</section>"
      end

      def workers_section(workers)
        alive = workers.count { |w| w["alive"] }
        rows = workers.map do |w|
          state = if w["stopped_at"] then "stopped"
                  elsif w["alive"] then "alive"
                  else "silent"
                  end
          ["<code title=\"#{h(w['worker_uuid'])}\">#{h(w['worker_uuid'].to_s[-12, 12])}</code>", h(w["hostname"]), h(w["pid"]),
           h(Array(w["namespaces"]).join(", ")), "#{h(w['busy'])}/#{h(w['concurrency'])}",
           "#{h(w['last_heartbeat_at'].to_s.sub('T', ' ')[0, 19])} (#{h(w['heartbeat_age_seconds'])} s ago)",
           "<span class=\"worker-#{state}\">#{state}</span>"]
        end
        "<section aria-labelledby=\"h-workers\"><h2 id=\"h-workers\">Workers</h2><p><strong id=\"workers-alive\">#{alive}</strong> alive</p>" +
          (rows.empty? ? "<p>No worker has reported.</p>" : table(["Worker", "Host", "PID", "Namespaces", "Busy", "Last heartbeat (UTC)", "State"],
                                                                   rows, raw: true, id: "workers")) + "</section>"
      end

      # -- the DAG ------------------------------------------------------------------------------

      NODE_W = 180
      NODE_H = 44
      GAP_X = 60
      GAP_Y = 20

      # The steps as an SVG: columns by level (the longest path from a root), edges parent -> child,
      # each node coloured by its state (and labelled with it: colour is not the only cue), a link
      # to the step's page and a tooltip with its attempts.
      def dag_svg(steps, task_uuid)
        return "<p>No steps.</p>" if steps.empty?

        by_name = steps.to_h { |s| [s["name"], s] }
        depth = {}
        level = lambda do |name, seen = []|
          return 0 if seen.include?(name)

          depth[name] ||= begin
            parents = Array(by_name[name]&.fetch("parents", nil)).select { |p| by_name.key?(p) }
            parents.empty? ? 0 : parents.map { |p| level.call(p, seen + [name]) }.max + 1
          end
        end
        steps.each { |s| level.call(s["name"]) }
        columns = steps.group_by { |s| depth[s["name"]] }.sort.map(&:last)
        pos = {}
        columns.each_with_index do |col, x|
          col.each_with_index { |s, y| pos[s["name"]] = [20 + (x * (NODE_W + GAP_X)), 20 + (y * (NODE_H + GAP_Y))] }
        end
        width = 40 + (columns.size * (NODE_W + GAP_X)) - GAP_X
        height = 40 + (columns.map(&:size).max * (NODE_H + GAP_Y)) - GAP_Y
        svg = +"<svg class=\"dag\" role=\"img\" aria-labelledby=\"dag-title\" viewBox=\"0 0 #{width} #{height}\" " \
               "width=\"#{width}\" height=\"#{height}\" xmlns=\"http://www.w3.org/2000/svg\">" \
               "<title id=\"dag-title\">The workflow's steps by level, coloured by state</title>" \
               "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" " \
               "orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" class=\"arrowhead\"/></marker></defs>"
        steps.each do |s|
          Array(s["parents"]).each do |p|
            next unless pos[p]

            x1, y1 = pos[p]
            x2, y2 = pos[s["name"]]
            svg << "<line class=\"edge\" x1=\"#{x1 + NODE_W}\" y1=\"#{y1 + (NODE_H / 2)}\" x2=\"#{x2}\" y2=\"#{y2 + (NODE_H / 2)}\" " \
                   "marker-end=\"url(#arrow)\"/>"
          end
        end
        steps.each do |s|
          x, y = pos[s["name"]]
          state = s["current_state"]
          tip = "#{s['name']}: #{state}, attempts #{s['attempts']}/#{s['max_attempts']}"
          node = "<g class=\"node state-#{h(state)}\" data-step=\"#{h(s['step_uuid'])}\"><title>#{h(tip)}</title>" \
                 "<rect x=\"#{x}\" y=\"#{y}\" width=\"#{NODE_W}\" height=\"#{NODE_H}\" rx=\"6\"/>" \
                 "<text x=\"#{x + 10}\" y=\"#{y + 18}\" class=\"name\">#{h(s['name'].to_s[0, 24])}</text>" \
                 "<text x=\"#{x + 10}\" y=\"#{y + 35}\" class=\"state\">#{h(state)}</text></g>"
          svg << (task_uuid && s["step_uuid"] ? "<a href=\"#{url("/tasks/#{task_uuid}/steps/#{s['step_uuid']}")}\">#{node}</a>" : node)
        end
        svg << "</svg>"
        "<div class=\"dag-wrap\">#{svg}</div>"
      end

      # -- helpers -----------------------------------------------------------------------------

      def error_of(step)
        results = step["results"]
        return nil unless results.is_a?(Hash) && results["success"] == false

        err = results["error"].is_a?(Hash) ? results["error"] : {}
        meta = results["metadata"].is_a?(Hash) ? results["metadata"] : {}
        { "message" => err["message"] || results["message"], "error_class" => err["error_type"] || meta["error_class"] || "error",
          "backtrace" => err["backtrace"] || meta["backtrace"] }
      end

      def reason(params)
        text = params["reason"].to_s.strip
        raise Problem.new(400, "bad_request", "reason is longer than 1000 characters", field: "reason") if text.size > 1000

        text.empty? ? nil : text
      end

      def form_params
        type = @env["CONTENT_TYPE"].to_s.split(";").first.to_s.strip
        unless type.empty? || type.casecmp?("application/x-www-form-urlencoded")
          raise Problem.new(415, "unsupported_media_type", "the form must be application/x-www-form-urlencoded")
        end

        @form_params ||= URI.decode_www_form(Web.read_body(@env, @web.max_body_bytes)).to_h
      rescue ArgumentError
        raise Problem.new(400, "bad_request", "the form is not well formed", field: "body")
      end

      def verify_csrf!
        origin = @env["HTTP_ORIGIN"].to_s
        unless origin.empty? || origin == "null" || same_origin?(origin)
          raise Problem.new(403, "forbidden", "the request came from another origin (#{origin[0, 100]})")
        end
        given = form_params[CSRF_FIELD].to_s
        return if !@new_csrf && !given.empty? && OpenSSL.secure_compare(given, @csrf)

        raise Problem.new(403, "forbidden", "the form's CSRF token is missing or does not match: reload the page and try again",
                          field: CSRF_FIELD)
      end

      def same_origin?(origin)
        host = @env["HTTP_HOST"] || "#{@env['SERVER_NAME']}:#{@env['SERVER_PORT']}"
        URI.parse(origin).then { |u| [u.host, u.port].join(":") == host || u.host == host }
      rescue URI::InvalidURIError
        false
      end

      def read_cookie(name)
        @env["HTTP_COOKIE"].to_s.split(/;\s*/).each do |pair|
          k, v = pair.split("=", 2)
          return v if k == name
        end
        nil
      end

      def csrf_cookie
        secure = @env["rack.url_scheme"] == "https" || @env["HTTPS"] == "on" ? "; Secure" : ""
        "#{CSRF_COOKIE}=#{@csrf}; Path=#{@prefix.empty? ? '/' : @prefix}; HttpOnly; SameSite=Strict#{secure}"
      end

      def redirect(path, message)
        [303, { "location" => url(path, notice: message), "cache-control" => "no-store" }, []]
      end

      def notice
        text = Web.query(@env)["notice"].to_s
        text.empty? ? "" : "<p class=\"notice\" role=\"status\">#{h(text[0, 300])}</p>"
      end

      def url(path, params = {})
        params = params.compact
        "#{@prefix}#{path}#{params.empty? ? '' : "?#{URI.encode_www_form(params)}"}"
      end

      def h(value) = CGI.escapeHTML(value.to_s)

      def link(text, href, mono: false)
        "<a href=\"#{h(href)}\"#{mono ? ' class="mono"' : ''}>#{h(text)}</a>"
      end

      def badge(state) = "<span class=\"badge state-#{h(state)}\">#{h(state)}</span>"

      def pre(value) = "<pre>#{h(JSON.pretty_generate(Dashboard.redact(value)))}</pre>"

      def dl_row(term, value, raw: false) = "<dt>#{h(term)}</dt><dd>#{raw ? value : h(value)}</dd>"

      def table(headers, rows, raw: false, id: nil)
        head = headers.map { |c| "<th scope=\"col\">#{h(c)}</th>" }.join
        body = rows.map { |r| "<tr>#{r.map { |c| "<td>#{raw ? c : h(c)}</td>" }.join}</tr>" }.join
        "<table#{id ? " id=\"#{h(id)}\"" : ''}><thead><tr>#{head}</tr></thead><tbody>#{body}</tbody></table>"
      end

      def text_input(name, label, value)
        "<label for=\"f-#{h(name)}\">#{h(label)}</label> <input id=\"f-#{h(name)}\" name=\"#{h(name)}\" type=\"text\" " \
          "maxlength=\"128\" size=\"16\" value=\"#{h(value)}\"> "
      end

      def select(name, label, options, selected, blank: true)
        opts = blank ? +"<option value=\"\">any</option>" : +""
        options.each { |o| opts << "<option value=\"#{h(o)}\"#{' selected' if o == selected}>#{h(o)}</option>" }
        "<label for=\"f-#{h(name)}\">#{h(label)}</label> <select id=\"f-#{h(name)}\" name=\"#{h(name)}\">#{opts}</select> "
      end

      def form(action, label, extra: "", danger: false, back: nil, notes: false)
        field = notes ? "Notes" : "Reason (recorded in the audit)"
        "<form method=\"post\" action=\"#{h(action)}\" class=\"confirm\">" \
          "<input type=\"hidden\" name=\"#{CSRF_FIELD}\" value=\"#{h(@csrf)}\">#{extra}" \
          "<p><label for=\"reason\">#{field}</label><input id=\"reason\" name=\"reason\" type=\"text\" maxlength=\"1000\"></p>" \
          "<p>Recorded as done by <strong>#{h(@web.operator(@env))}</strong>.</p>" \
          "<p><button type=\"submit\" class=\"button #{danger ? 'danger' : 'primary'}\">#{h(label)}</button> " \
          "#{back ? link('Go back', back) : ''}</p></form>"
      end

      def page(title, body, status: 200, headers: {})
        nav = [["Overview", "/"], ["Tasks", "/tasks"], ["Dead-letter queue", "/dlq"], ["Templates", "/catalog"]]
        links = nav.map { |text, path| "<li><a href=\"#{url(path)}\">#{h(text)}</a></li>" }.join
        html = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">" \
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">" \
               "<title>#{h(title)} · tasker</title><link rel=\"stylesheet\" href=\"#{url('/assets/tasker.css')}\">" \
               "<script src=\"#{url('/assets/tasker.js')}\" defer></script></head><body>" \
               "<a class=\"skip\" href=\"#main\">Skip to content</a>" \
               "<header><nav aria-label=\"Main\"><span class=\"brand\">tasker</span><ul>#{links}</ul></nav></header>" \
               "<main id=\"main\">#{body}</main></body></html>"
        out = { "content-type" => HTML_TYPE, "cache-control" => "no-store", "x-frame-options" => "DENY",
                "content-security-policy" => "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
                "x-content-type-options" => "nosniff" }.merge(headers)
        out["set-cookie"] = csrf_cookie if @new_csrf && @csrf
        [status, out, [html]]
      end
    end
  end
end
