# frozen_string_literal: true

require "logger"

module TaskerCore
  # Creating and inspecting tasks from application code (controllers, jobs, scripts): seed 000's
  # client API. Works in a process with no worker running, and from many threads at once (each
  # call takes its own pooled connection and releases the GVL while the database works).
  #
  # Responses are the Dry::Struct types of TaskerCore::Types::ClientTypes. Should a response not
  # match its type (an engine newer than this file), the plain Hash is returned instead and the
  # mismatch is logged once per type. TaskerCore::FFI.client_* return the plain Hashes always.
  module Client
    DEFAULTS = { namespace: "default", version: "1.0.0", initiator: "tasker-core-ruby",
                 source_system: "tasker-core", reason: "Task requested" }.freeze
    # create_task's **options.
    OPTIONS = %i[tags priority correlation_id parent_correlation_id idempotency_key requested_at].freeze
    T = Types::ClientTypes

    @logger = nil
    @mismatches = {}
    @mismatch_lock = Mutex.new

    class << self
      attr_writer :logger

      # Where schema mismatches are reported (default: TaskerCore.config.logger).
      def logger
        @logger || TaskerCore.config.logger
      end

      # Builds type from data, or returns data after logging the first mismatch of this type.
      # Types::ClientTypes::FastLoad builds the structs it knows; new builds the rest and anything
      # it refuses.
      def typed(type, data)
        (loader = T::FastLoad.for(type)) && loader.call(data) || type.new(data)
      rescue Dry::Struct::Error, Dry::Types::CoercionError, Dry::Types::ConstraintError => e
        first = @mismatch_lock.synchronize { @mismatches[type] ? false : (@mismatches[type] = true) }
        if first
          logger.warn("TaskerCore::Client: a response did not match #{type.name} (returning the plain Hash; " \
                      "further mismatches of this type are not logged): #{e.message}")
        end
        data
      end

      # The request Hash FFI.client_create_task takes, after the checks done in Ruby: unknown
      # options, plain data, the template's input_schema.
      def task_request(name:, namespace: DEFAULTS[:namespace], context: {}, version: DEFAULTS[:version],
                       initiator: DEFAULTS[:initiator], source_system: DEFAULTS[:source_system],
                       reason: DEFAULTS[:reason], **options)
        unknown = options.keys - OPTIONS
        unless unknown.empty?
          raise Errors::ValidationError.new("unknown create_task option#{'s' if unknown.size > 1} " \
                                            "#{unknown.join(', ')} (known: #{OPTIONS.join(', ')})",
                                            field: unknown.first.to_s)
        end

        TaskerCore.boot!
        request = { "name" => name, "namespace" => namespace, "version" => version,
                    "context" => PlainData.call(context), "initiator" => initiator,
                    "source_system" => source_system, "reason" => reason }
        options.each { |key, value| request[key.to_s] = PlainData.call(value) unless value.nil? }
        if request["context"].is_a?(Hash)
          InputSchema.validate!(namespace: namespace, name: name, version: version, context: request["context"])
        end
        request
      end

      # task_request for requests[index] of create_tasks: a refusal names the index.
      # A batch of create_tasks: an Array of at most FFI::CREATE_TASKS_MAX requests.
      def request_list!(requests)
        unless requests.is_a?(Array)
          raise Errors::ValidationError.new("requests must be an Array of task request Hashes, got #{requests.class}",
                                            field: "requests")
        end
        return requests if requests.size <= FFI::CREATE_TASKS_MAX

        raise Errors::ValidationError.new("requests has #{requests.size} task requests; the limit is " \
                                          "#{FFI::CREATE_TASKS_MAX} per call", field: "requests")
      end

      # The request at index of a batch, as a Hash with Symbol keys.
      def request_at!(request, index)
        return request.transform_keys(&:to_sym) if request.is_a?(Hash)

        raise Errors::ValidationError.new("requests[#{index}]: the task request must be a Hash, got #{request.class}",
                                          field: "requests[#{index}]")
      end

      def indexed_task_request(request, index)
        args = request_at!(request, index)
        unless args.key?(:name)
          raise Errors::ValidationError.new("requests[#{index}]: name is required (the template name)",
                                            field: "requests[#{index}].name")
        end
        task_request(**args)
      rescue Errors::ValidationError => e
        raise e if e.message.start_with?("requests[#{index}]")

        raise Errors::ValidationError.new("requests[#{index}]: #{e.message}",
                                          field: e.field && "requests[#{index}].#{e.field}",
                                          error_code: e.error_code, context: e.context)
      end

      # count_tasks's status: nil, one state (String or Symbol) or a non-empty Array of them, as
      # the Array of Strings FFI.client_count_tasks takes; a refusal names the field.
      def status_filter(status)
        return nil if status.nil?

        list = status.is_a?(Array) ? status : [status]
        field = ->(i) { status.is_a?(Array) ? "status[#{i}]" : "status" }
        if list.empty?
          raise Errors::ValidationError.new("status must name at least one task state (got an empty Array)",
                                            field: "status")
        end
        list.each_with_index.map do |state, i|
          unless (state.is_a?(String) || state.is_a?(Symbol)) && T::TASK_STATES.include?(state.to_s)
            raise Errors::ValidationError.new("#{field.call(i)} must be one of #{T::TASK_STATES.join(', ')} " \
                                              "(got #{state.inspect})", field: field.call(i))
          end
          state.to_s
        end
      end

      # Creates on connection (a CallerConnection), inside whatever transaction it has open: the
      # block returns the validated request (many: the Array of them); the core turns it into the
      # statement, the connection runs it, the core reads the answer. Everything that can refuse the
      # request (Ruby's checks, the core's, a template that is not registered) does so before the
      # statement is sent: once sent, a failure aborts the caller's transaction, so nothing is
      # tried again (a missing template is registered, as registering_when_missing does, first).
      def create_on(connection, many: false)
        count = 0
        statement = Templates.registering_when_missing do
          request = yield
          built = many ? FFI.client_create_tasks_statement(request) : FFI.client_create_task_statement(request)
          Templates.require_registered!(many ? request : [request], index: many)
          count = request.size if many
          built
        end
        text = begin
          connection.select_text(statement["sql"], statement["params"])
        rescue Errors::NotFoundError => e
          raise e unless e.message.match?(Templates::MISSING)

          raise Templates.not_found_with_help(e)
        end
        return typed_list(T::TaskResponse, FFI.client_create_tasks_answer(text, count)) if many

        typed(T::TaskResponse, FFI.client_create_task_answer(text))
      end

      # An Array of type, or the plain Array when any element does not match.
      def typed_list(type, list)
        items = list.map { |item| typed(type, item) }
        items.all?(type) ? items : list
      end
    end

    module_function

    # Creates a task from a registered template and returns it as a TaskResponse (with its steps and
    # "created": false when a task with the same identity already existed: under the default
    # identity_strategy, strict, the same template and context return the same task). options: tags,
    # priority, correlation_id, parent_correlation_id, idempotency_key, requested_at. When the
    # template is not registered, the configured template_paths are registered (once per process)
    # and the create is tried again (Templates.registering_when_missing).
    #
    # connection: the application's connection to create the task on, inside the transaction it has
    # open (the task commits or rolls back with the app's own writes; workers see it after the
    # commit): an ActiveRecord connection (PostgreSQL) or a PG::Connection. nil (the default) is the
    # engine's own pool, or, under TaskerCore.config.join_transactions (the Railtie's default when
    # the app's database is the engine's), this thread's open ActiveRecord transaction; false is
    # the engine's own pool always.
    def create_task(name:, namespace: DEFAULTS[:namespace], context: {}, version: DEFAULTS[:version],
                    initiator: DEFAULTS[:initiator], source_system: DEFAULTS[:source_system],
                    reason: DEFAULTS[:reason], connection: nil, **options)
      args = { name: name, namespace: namespace, context: context, version: version, initiator: initiator,
               source_system: source_system, reason: reason, **options }
      on = CallerConnection.resolve(connection)
      return Client.create_on(on) { Client.task_request(**args) } if on

      Templates.registering_when_missing do
        Client.typed(T::TaskResponse, FFI.client_create_task(Client.task_request(**args)))
      end
    end

    # Creates many tasks in one transaction (one round trip): requests is an Array of Hashes with
    # create_task's keywords (name:, namespace:, context:, ..., idempotency_key:). Each follows
    # create_task's validation and identity rules, also against the other requests of the batch.
    # A refused request raises Errors::ValidationError naming its index ("requests[3]: ...") and
    # nothing is created. At most FFI::CREATE_TASKS_MAX (10,000) requests per call. Returns an
    # Array of TaskResponse in request order. A missing template registers the configured
    # template_paths and retries, as in create_task. connection: as create_task's: the whole batch
    # is created in the caller's transaction.
    def create_tasks(requests, connection: nil)
      on = CallerConnection.resolve(connection)
      return [] if Client.request_list!(requests).empty?

      batch = -> { requests.each_with_index.map { |request, i| Client.indexed_task_request(request, i) } }
      return Client.create_on(on, many: true, &batch) if on

      Templates.registering_when_missing do
        Client.typed_list(T::TaskResponse, FFI.client_create_tasks(batch.call))
      end
    end

    # The task with its execution summary and its steps' readiness.
    def get_task(task_uuid)
      TaskerCore.boot!
      Client.typed(T::TaskResponse, FFI.client_get_task(task_uuid))
    end

    # A page of tasks, newest first, optionally of one namespace, status, initiator and/or
    # source_system (exact matches). with_total: false skips counting every matching task:
    # pagination's total_count and total_pages are nil, and has_next comes from reading one task
    # beyond the page. pagination's next_cursor continues with list_tasks_after.
    def list_tasks(limit: 50, offset: 0, namespace: nil, status: nil, initiator: nil, source_system: nil,
                   with_total: true)
      unless [true, false].include?(with_total)
        raise Errors::ValidationError.new("with_total must be true or false (got #{with_total.inspect})",
                                          field: "with_total")
      end

      initiator, source_system = Client.text_filters(initiator, source_system)
      TaskerCore.boot!
      Client.typed(T::TaskListResponse,
                   FFI.client_list_tasks(limit, offset, namespace&.to_s, status&.to_s, with_total, initiator,
                                         source_system))
    end

    # A page of tasks, newest first, after cursor (nil: from the newest), by keyset: pass the page's
    # next_cursor to read the next one (nil on the last page). Nothing is counted, and a page deep in
    # a million tasks is read from the index as fast as the first. The filters are list_tasks's.
    # Returns a TaskPage.
    def list_tasks_after(cursor: nil, limit: 50, namespace: nil, status: nil, initiator: nil, source_system: nil)
      unless cursor.nil? || cursor.is_a?(String)
        raise Errors::ValidationError.new("cursor must be a String (a page's next_cursor) or nil", field: "cursor")
      end

      initiator, source_system = Client.text_filters(initiator, source_system)
      TaskerCore.boot!
      Client.typed(T::TaskPage, FFI.client_list_tasks_after(limit, cursor, namespace&.to_s, status&.to_s, initiator,
                                                            source_system))
    end

    # The initiator and source_system filters as Strings (nil: any); anything else is refused
    # naming the field.
    def self.text_filters(initiator, source_system)
      { "initiator" => initiator, "source_system" => source_system }.map do |field, value|
        next nil if value.nil?
        next value.to_s if value.is_a?(String) || value.is_a?(Symbol)

        raise Errors::ValidationError.new("#{field} must be a String (got #{value.class})", field: field)
      end
    end

    # What finished over the last minutes (SQL tasker.activity): {"since", "until", "minutes",
    # "bucket_minutes", "buckets" => [{"start", "tasks_completed", "tasks_errored",
    # "tasks_cancelled", "steps_succeeded", "steps_failed"}] oldest first, "totals",
    # "task_error_rate", "step_error_rate"} (rates nil when nothing finished). Step figures count
    # attempts: a failure that is retried is one failed attempt.
    def activity(minutes: 60, bucket_minutes: 5)
      TaskerCore.boot!
      FFI.report("activity", Client.report_int(minutes, "minutes"), Client.report_int(bucket_minutes, "bucket_minutes"))
    end

    # The tasks by state and by namespace, for an overview: {"states" => {state => n} (the states
    # that have tasks), "namespaces" => [{"namespace", "total", "unfinished", "error"}]}. Three
    # index reads, however many states and namespaces.
    def task_counts
      TaskerCore.boot!
      FFI.report("task_counts", 0, 0)
    end

    # The registered namespaces' names, sorted.
    def namespaces
      TaskerCore.boot!
      FFI.report("namespaces", 0, 0)
    end

    # The steps waiting now, per namespace (every registered one): [{"namespace", "enqueued",
    # "in_progress", "waiting_for_retry", "retry_due", "oldest_enqueued_at",
    # "oldest_enqueued_seconds"}].
    def queue_depth
      TaskerCore.boot!
      FFI.report("queue_depth", 0, 0)
    end

    # The workers that reported to this database (their claimer threads beat every
    # visibility_timeout_seconds / 3), alive first: [{"worker_uuid", "hostname", "pid",
    # "namespaces", "concurrency", "busy", "heartbeat_interval_ms", "started_at",
    # "last_heartbeat_at", "stopped_at", "heartbeat_age_seconds", "alive"}]. alive: not stopped and
    # a heartbeat within three intervals. Workers silent for a day are forgotten.
    def workers(limit: 100)
      TaskerCore.boot!
      FFI.report("workers", Client.report_int(limit, "limit"), 0)
    end

    def self.report_int(value, field)
      return value if value.is_a?(Integer)

      raise Errors::ValidationError.new("#{field} must be an Integer (got #{value.inspect})", field: field)
    end

    # The states of a task that has not finished, for count_tasks(status: Client::UNFINISHED_STATUSES).
    UNFINISHED_STATUSES = T::UNFINISHED_TASK_STATES
    TERMINAL_STATUSES = T::TERMINAL_TASK_STATES

    # The number of tasks of a namespace (nil: any) whose status is status (nil: any), or any of
    # the states of an Array: one count served by an index, without reading a page.
    #   Client.count_tasks(status: Client::UNFINISHED_STATUSES).zero?   # is anything unfinished?
    def count_tasks(namespace: nil, status: nil)
      unless namespace.nil? || ((namespace.is_a?(String) || namespace.is_a?(Symbol)) && !namespace.empty?)
        raise Errors::ValidationError.new("namespace must be a non-empty String (got #{namespace.inspect})",
                                          field: "namespace")
      end

      TaskerCore.boot!
      FFI.client_count_tasks(namespace&.to_s, Client.status_filter(status))
    end

    # Cancels a task that has not finished; raises Errors::StateError for a finished one. Returns
    # {"cancelled" => true, "task_uuid", "status", "previous_status", "cancelled_steps",
    # "running_steps" (left to finish; their results never resume the task), "cancelled_at"}.
    def cancel_task(task_uuid)
      TaskerCore.boot!
      FFI.client_cancel_task(task_uuid)
    end

    def list_task_steps(task_uuid)
      TaskerCore.boot!
      Client.typed_list(T::StepResponse, FFI.client_list_task_steps(task_uuid))
    end

    def get_step(task_uuid, step_uuid)
      TaskerCore.boot!
      Client.typed(T::StepResponse, FFI.client_get_step(task_uuid, step_uuid))
    end

    # Every transition of the step, newest first, with the worker results they recorded.
    def get_step_audit_history(task_uuid, step_uuid)
      TaskerCore.boot!
      Client.typed_list(T::StepAuditResponse, FFI.client_get_step_audit_history(task_uuid, step_uuid))
    end

    # Whether the database answers and its schema is current. An unreachable database is an answer
    # (healthy: false, with the reason in error), not an exception; a missing configuration raises.
    def health_check
      TaskerCore.boot!
      Client.typed(T::HealthResponse, FFI.client_health_check)
    end
  end
end
