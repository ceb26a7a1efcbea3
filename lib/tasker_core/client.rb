# frozen_string_literal: true

module TaskerCore
  # Creating and inspecting tasks from application code (controllers, jobs, scripts). Works in a
  # process with no worker running.
  module Client
    DEFAULTS = { namespace: "default", version: "1.0.0", initiator: "tasker-core-ruby",
                 source_system: "tasker-core", reason: "Task requested" }.freeze

    module_function

    # Creates a task from a registered template. options: tags, priority, correlation_id,
    # parent_correlation_id, idempotency_key, requested_at.
    def create_task(name:, namespace: DEFAULTS[:namespace], context: {}, version: DEFAULTS[:version],
                    initiator: DEFAULTS[:initiator], source_system: DEFAULTS[:source_system],
                    reason: DEFAULTS[:reason], **options)
      TaskerCore.boot!
      request = { "name" => name, "namespace" => namespace, "version" => version,
                  "context" => PlainData.call(context), "initiator" => initiator,
                  "source_system" => source_system, "reason" => reason }
      options.each { |key, value| request[key.to_s] = PlainData.call(value) unless value.nil? }
      if request["context"].is_a?(Hash)
        InputSchema.validate!(namespace: namespace, name: name, version: version, context: request["context"])
      end
      FFI.client_create_task(request)
    end

    def get_task(task_uuid)
      TaskerCore.boot!
      FFI.client_get_task(task_uuid)
    end

    def list_task_steps(task_uuid)
      TaskerCore.boot!
      FFI.client_list_task_steps(task_uuid)
    end
  end
end
