# frozen_string_literal: true

require "json"

module TaskerCore
  class Web
    # The orchestration REST API (SPEC 5 and 9.2) under /v1: the routes of the reference system,
    # answered by TaskerCore::Client, TaskerCore::DLQ and the step operations, so an HTTP request
    # and a Ruby call take the same path to the database. Bodies are JSON; every refusal is a JSON
    # error with a status code (400 naming the field, 401, 404, 405, 409, 413, 415, 422, 503).
    class API
      UUID = "(\\h{8}-\\h{4}-\\h{4}-\\h{4}-\\h{12}|[^/]+)"
      # The create_task fields a request body may carry (SPEC 5); anything else is a 400.
      TASK_FIELDS = %w[name namespace version context initiator source_system reason tags priority
                       correlation_id parent_correlation_id idempotency_key requested_at].freeze
      STEP_FIELDS = %w[action_type reason reset_by resolved_by completed_by performed_by completion_data].freeze
      DLQ_FIELDS = %w[resolution_status resolution_notes resolved_by metadata].freeze
      MAX_PER_PAGE = 1000

      # [method, path pattern, handler method, OpenAPI summary, success status].
      ROUTES = [
        ["POST", "/v1/tasks", :create_task, "Create a task from a registered template", 201],
        ["GET", "/v1/tasks", :list_tasks, "A page of tasks, newest first", 200],
        ["GET", "/v1/tasks/{task_uuid}", :get_task, "A task with its execution summary and steps", 200],
        ["DELETE", "/v1/tasks/{task_uuid}", :cancel_task, "Cancel a task that has not finished", 200],
        ["GET", "/v1/tasks/{task_uuid}/workflow_steps", :list_steps, "The steps of a task", 200],
        ["GET", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", :get_step, "One step", 200],
        ["PATCH", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", :update_step,
         "reset_for_retry, resolve_manually or complete_manually a step", 200],
        ["GET", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}/audit", :step_audit,
         "A step's transitions and results, newest first", 200],
        ["GET", "/v1/dlq", :dlq_list, "Dead-letter entries, newest first", 200],
        ["GET", "/v1/dlq/task/{task_uuid}", :dlq_task, "The dead-letter entries of a task", 200],
        ["PATCH", "/v1/dlq/entry/{dlq_entry_uuid}", :dlq_update, "Record an investigation's outcome", 200],
        ["GET", "/v1/dlq/stats", :dlq_stats, "Dead-letter entries per reason, by resolution", 200],
        ["GET", "/v1/dlq/investigation-queue", :dlq_investigation_queue,
         "Pending dead-letter entries, most urgent first (priority_score)", 200],
        ["GET", "/v1/dlq/staleness", :dlq_staleness, "Active tasks, closest to their staleness threshold first", 200],
        ["GET", "/v1/health", :health, "Whether the database answers and its schema is current", 200],
        ["GET", "/v1/openapi.json", :openapi, "This document", 200]
      ].map do |method, path, handler, summary, status|
        regex = Regexp.new("\\A#{path.gsub(/\{[a-z_]+\}/, UUID).sub('.', '\\.')}\\z")
        { method: method, path: path, regex: regex, handler: handler, summary: summary, status: status }.freeze
      end.freeze

      def initialize(web)
        @web = web
      end

      # [status, headers, body] for a request under /v1 (auth already checked by Web).
      def call(env, path)
        candidates = ROUTES.select { |r| r[:regex].match?(path) }
        raise Problem.new(404, "not_found", "no route for #{path}") if candidates.empty?

        method = env["REQUEST_METHOD"] == "HEAD" ? "GET" : env["REQUEST_METHOD"]
        route = candidates.find { |r| r[:method] == method }
        unless route
          allow = candidates.map { |r| r[:method] }.join(", ")
          raise Problem.new(405, "method_not_allowed", "#{env['REQUEST_METHOD']} is not allowed on #{path}",
                            headers: { "allow" => allow })
        end

        args = route[:regex].match(path).captures
        args.each_with_index { |value, i| check_uuid!(value, route[:path].scan(/\{([a-z_]+)\}/)[i][0]) }
        @env = env
        status, body = send(route[:handler], *args)
        Web.json(status || route[:status], body)
      end

      # The OpenAPI 3 document of ROUTES.
      def self.openapi
        paths = Hash.new { |h, k| h[k] = {} }
        ROUTES.each do |r|
          params = r[:path].scan(/\{([a-z_]+)\}/).flatten.map do |name|
            { "name" => name, "in" => "path", "required" => true, "schema" => { "type" => "string", "format" => "uuid" } }
          end
          params += QUERY_PARAMS.fetch(r[:handler], []).map do |name, type|
            { "name" => name, "in" => "query", "required" => false, "schema" => { "type" => type } }
          end
          op = { "operationId" => r[:handler].to_s, "summary" => r[:summary],
                 "responses" => { r[:status].to_s => { "description" => "success",
                                                       "content" => { "application/json" => { "schema" => { "type" => "object" } } } },
                                  "default" => { "description" => "an error",
                                                 "content" => { "application/json" => { "schema" => { "$ref" => "#/components/schemas/Error" } } } } } }
          op["parameters"] = params unless params.empty?
          if BODIES[r[:handler]]
            op["requestBody"] = { "required" => true, "content" => { "application/json" => { "schema" => BODIES[r[:handler]] } } }
          end
          op["security"] = [] if r[:handler] == :health
          paths[r[:path]][r[:method].downcase] = op
        end
        { "openapi" => "3.0.3",
          "info" => { "title" => "tasker_core orchestration API", "version" => TaskerCore::VERSION },
          "paths" => paths,
          "security" => [{ "apiKey" => [] }, { "basic" => [] }],
          "components" => {
            "securitySchemes" => { "apiKey" => { "type" => "apiKey", "in" => "header", "name" => "X-API-Key" },
                                   "basic" => { "type" => "http", "scheme" => "basic" } },
            "schemas" => { "Error" => { "type" => "object", "required" => %w[error message],
                                        "properties" => { "error" => { "type" => "string" }, "message" => { "type" => "string" },
                                                          "field" => { "type" => "string" }, "timestamp" => { "type" => "string" },
                                                          "request_id" => { "type" => "string" } } } }
          } }
      end

      QUERY_PARAMS = {
        list_tasks: { "page" => "integer", "per_page" => "integer", "namespace" => "string", "status" => "string",
                      "initiator" => "string", "source_system" => "string", "cursor" => "string" },
        dlq_list: { "resolution_status" => "string", "limit" => "integer", "offset" => "integer" },
        dlq_investigation_queue: { "limit" => "integer" },
        dlq_staleness: { "limit" => "integer", "threshold_minutes" => "integer" }
      }.freeze
      BODIES = {
        create_task: { "type" => "object", "required" => ["name"], "additionalProperties" => false,
                       "properties" => TASK_FIELDS.to_h do |f|
                         [f, { "type" => { "context" => "object", "tags" => "array", "priority" => "integer" }.fetch(f, "string") }]
                       end },
        update_step: { "type" => "object", "required" => ["action_type"], "additionalProperties" => false,
                       "properties" => STEP_FIELDS.to_h do |f|
                         [f, f == "completion_data" ? { "type" => "object", "properties" => { "result" => {}, "metadata" => { "type" => "object" } } } : { "type" => "string" }]
                       end.merge("action_type" => { "type" => "string", "enum" => Client::STEP_ACTIONS }) },
        dlq_update: { "type" => "object", "additionalProperties" => false,
                      "properties" => DLQ_FIELDS.to_h { |f| [f, { "type" => f == "metadata" ? "object" : "string" }] } }
      }.freeze

      private

      def query
        @query ||= Web.query(@env)
      end

      # The JSON object of the request body; 415 for another content type, 413 past the limit.
      def body!
        type = @env["CONTENT_TYPE"].to_s
        unless type.split(";").first.to_s.strip.casecmp?("application/json")
          raise Problem.new(415, "unsupported_media_type", "the request body must be application/json (got #{type.empty? ? 'none' : type})")
        end

        text = Web.read_body(@env, @web.max_body_bytes)
        data = begin
          JSON.parse(text)
        rescue JSON::ParserError => e
          raise Problem.new(400, "bad_request", "the body is not valid JSON: #{e.message[0, 200]}", field: "body")
        end
        raise Problem.new(400, "bad_request", "the body must be a JSON object", field: "body") unless data.is_a?(Hash)

        data
      end

      def known!(data, fields)
        unknown = data.keys - fields
        return if unknown.empty?

        raise Problem.new(400, "bad_request", "unknown field #{unknown.first} (known: #{fields.join(', ')})", field: unknown.first)
      end

      def check_uuid!(value, field)
        return if value.match?(Types::ClientTypes::UUID_FORMAT)

        raise Problem.new(400, "bad_request", "#{field} is not a UUID: #{value[0, 64].inspect}", field: field)
      end

      def integer!(name, default, min, max)
        raw = query[name]
        return default if raw.nil? || raw.empty?

        value = Integer(raw, 10)
        return value if value.between?(min, max)

        raise ArgumentError
      rescue ArgumentError
        raise Problem.new(400, "bad_request", "#{name} must be an integer between #{min} and #{max} (got #{raw[0, 32].inspect})",
                          field: name)
      end

      def create_task
        data = body!
        known!(data, TASK_FIELDS)
        unless data["name"].is_a?(String) && !data["name"].empty?
          raise Problem.new(400, "bad_request", "name is required (the template name)", field: "name")
        end

        task = Client.create_task(**data.transform_keys(&:to_sym))
        hash = Web.plain(task)
        [hash["created"] == false ? 200 : 201, hash]
      end

      # page/per_page (SPEC 5, with the total count), or cursor: the keyset page after a page's
      # pagination.next_cursor (nothing counted, as fast deep in the list as on its first page).
      def list_tasks
        per_page = integer!("per_page", 25, 1, MAX_PER_PAGE)
        status = query["status"]
        if status && !Types::ClientTypes::TASK_STATES.include?(status)
          raise Problem.new(400, "bad_request", "status must be one of #{Types::ClientTypes::TASK_STATES.join(', ')}", field: "status")
        end
        filters = { namespace: text_filter("namespace"), status: status, initiator: text_filter("initiator"),
                    source_system: text_filter("source_system") }
        if query.key?("cursor")
          raise Problem.new(400, "bad_request", "page and cursor cannot both be given", field: "cursor") if query.key?("page")

          cursor = text_filter("cursor")
          raise Problem.new(400, "bad_request", "cursor must be a page's pagination.next_cursor", field: "cursor") unless cursor

          return [200, keyset_page(Client.list_tasks_after(cursor: cursor, limit: per_page, **filters))]
        end
        page = integer!("page", 1, 1, 10_000_000)
        [200, Web.plain(Client.list_tasks(limit: per_page, offset: (page - 1) * per_page, **filters))]
      end

      # A query parameter as a filter: nil when absent or empty, 400 naming it past 128 characters.
      def text_filter(name)
        value = query[name]
        return nil if value.nil? || value.empty?
        raise Problem.new(400, "bad_request", "#{name} must be at most 128 characters", field: name) if value.size > 128

        value
      end

      # A keyset page in the shape of a TaskListResponse: no page number and nothing counted.
      def keyset_page(list)
        data = Web.plain(list)
        { "tasks" => data["tasks"],
          "pagination" => { "page" => nil, "per_page" => data["per_page"], "total_count" => nil, "total_pages" => nil,
                            "has_next" => data["has_next"], "has_previous" => true, "next_cursor" => data["next_cursor"] } }
      end

      def get_task(task_uuid) = [200, Web.plain(Client.get_task(task_uuid))]

      def cancel_task(task_uuid)
        [200, Client.cancel_task(task_uuid)]
      end

      def list_steps(task_uuid) = [200, Web.plain(Client.list_task_steps(task_uuid))]
      def get_step(task_uuid, step_uuid) = [200, Web.plain(Client.get_step(task_uuid, step_uuid))]
      def step_audit(task_uuid, step_uuid) = [200, Web.plain(Client.get_step_audit_history(task_uuid, step_uuid))]

      # The reference's PATCH: action_type, reason, the *_by of the action, completion_data
      # {result, metadata} for complete_manually. Answers the step as it is after the action.
      def update_step(task_uuid, step_uuid)
        data = body!
        known!(data, STEP_FIELDS)
        action = data["action_type"]
        unless Client::STEP_ACTIONS.include?(action)
          raise Problem.new(400, "bad_request", "action_type must be one of #{Client::STEP_ACTIONS.join(', ')} (got #{action.inspect})",
                            field: "action_type")
        end
        %w[reason reset_by resolved_by completed_by performed_by].each do |f|
          next if data[f].nil? || data[f].is_a?(String)

          raise Problem.new(400, "bad_request", "#{f} must be a string", field: f)
        end
        completion = data["completion_data"]
        unless completion.nil? || completion.is_a?(Hash)
          raise Problem.new(400, "bad_request", "completion_data must be an object", field: "completion_data")
        end
        if action == "complete_manually"
          unless completion.is_a?(Hash) && completion.key?("result")
            raise Problem.new(400, "bad_request", "complete_manually needs completion_data with a result",
                              field: "completion_data.result")
          end
          unless completion["metadata"].nil? || completion["metadata"].is_a?(Hash)
            raise Problem.new(400, "bad_request", "completion_data.metadata must be an object", field: "completion_data.metadata")
          end
        end
        by = data["performed_by"] || data["reset_by"] || data["resolved_by"] || data["completed_by"] || @web.operator(@env)
        Client.update_step(task_uuid, step_uuid, action_type: action, reason: data["reason"], performed_by: by,
                                                 result: completion&.fetch("result", nil), metadata: completion&.fetch("metadata", nil))
        [200, Web.plain(Client.get_step(task_uuid, step_uuid))]
      end

      def dlq_list
        status = query["resolution_status"]
        list = DLQ.list(resolution_status: status.to_s.empty? ? nil : status,
                        limit: integer!("limit", 50, 1, MAX_PER_PAGE), offset: integer!("offset", 0, 0, 2**31 - 1))
        [200, list]
      end

      def dlq_task(task_uuid) = [200, DLQ.list(task_uuid: task_uuid, limit: MAX_PER_PAGE)]

      def dlq_update(entry_uuid)
        data = body!
        known!(data, DLQ_FIELDS)
        %w[resolution_status resolution_notes resolved_by].each do |f|
          next if data[f].nil? || data[f].is_a?(String)

          raise Problem.new(400, "bad_request", "#{f} must be a string", field: f)
        end
        unless data["metadata"].nil? || data["metadata"].is_a?(Hash)
          raise Problem.new(400, "bad_request", "metadata must be an object", field: "metadata")
        end
        if data["resolution_status"] && !DLQ::RESOLUTION_STATUSES.include?(data["resolution_status"])
          raise Problem.new(400, "bad_request", "resolution_status must be one of #{DLQ::RESOLUTION_STATUSES.join(', ')}",
                            field: "resolution_status")
        end
        [200, DLQ.update(entry_uuid, resolution_status: data["resolution_status"], resolution_notes: data["resolution_notes"],
                                     resolved_by: data["resolved_by"] || @web.operator(@env), metadata: data["metadata"])]
      end

      def dlq_stats = [200, DLQ.stats]
      def dlq_investigation_queue = [200, DLQ.investigation_queue(limit: integer!("limit", 100, 1, MAX_PER_PAGE))]

      def dlq_staleness
        [200, DLQ.staleness(limit: integer!("limit", 100, 1, MAX_PER_PAGE),
                            threshold_minutes: integer!("threshold_minutes", 30, 1, 525_600))]
      end

      def health
        result = Web.plain(Client.health_check)
        [result["healthy"] ? 200 : 503, result]
      end

      def openapi = [200, API.openapi]
    end
  end
end
