# frozen_string_literal: true

require "json_schemer"

module TaskerCore
  # Validates a task's context against its template's input_schema (JSON Schema) before the task is
  # created. Schemas are read from the database and cached per template for TTL seconds, so a
  # re-registered template is picked up within that time.
  module InputSchema
    TTL = 30
    CACHE = {}
    LOCK = Mutex.new

    module_function

    def validate!(namespace:, name:, version:, context:)
      schemer = schemer_for(namespace, name, version)
      return if schemer.nil?

      errors = schemer.validate(context).map { |e| describe(e) }
      return if errors.empty?

      raise Errors::ValidationError.new(
        "context does not match the input_schema of #{namespace}/#{name}@#{version}: #{errors.join('; ')}",
        field: "context", error_code: "INPUT_SCHEMA_VIOLATION", context: { "violations" => errors }
      )
    end

    def schemer_for(namespace, name, version)
      key = [namespace, name, version]
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      cached = LOCK.synchronize { CACHE[key] }
      return cached[:schemer] if cached && now - cached[:at] < TTL

      # An unknown template is reported by create_task itself, with its own message.
      template = begin
        FFI.template_fetch(namespace, name, version)
      rescue Errors::NotFoundError
        return nil
      end
      schema = template.dig("configuration", "input_schema")
      schemer = schema ? JSONSchemer.schema(schema) : nil
      LOCK.synchronize { CACHE[key] = { schemer: schemer, at: now } }
      schemer
    end

    # Whether the template is registered: validate! caches the templates it found (a template
    # found once stays known; one deleted since is reported by the create itself).
    def registered?(namespace, name, version)
      key = [namespace, name, version]
      return true if LOCK.synchronize { CACHE.key?(key) }

      schemer_for(namespace, name, version)
      LOCK.synchronize { CACHE.key?(key) }
    end

    def describe(error)
      pointer = error["data_pointer"].to_s.empty? ? "(root)" : error["data_pointer"]
      "#{pointer}: #{error['error']}"
    end

    def clear_cache!
      LOCK.synchronize { CACHE.clear }
    end
  end
end
