# frozen_string_literal: true

module TaskerCore
  # Turns what users write into the engine's template format (seed 001's): the older Rails format of
  # seed 002 is converted, and the `environments` overrides of the current environment are applied.
  module TemplateFormat
    LEGACY_KEYS = %w[step_templates module_namespace task_handler_class concurrent schema].freeze

    module_function

    def legacy?(data) = data.key?("step_templates")

    # The seed 002 (Rails) format: step_templates, depends_on_step(s), handler_class, handler_config,
    # default_retryable, default_retry_limit, schema, module_namespace, task_handler_class, concurrent.
    def convert_legacy(data)
      out = data.reject { |k, _| LEGACY_KEYS.include?(k) || k == "environments" }
      out["namespace_name"] ||= namespace_from(data["module_namespace"])
      out["version"] ||= "1.0.0"
      out["input_schema"] = data["schema"] if data["schema"]
      legacy_meta = data.slice("module_namespace", "task_handler_class", "concurrent")
      out["metadata"] = (out["metadata"] || {}).merge("legacy" => legacy_meta) unless legacy_meta.empty?
      out["task_handler"] ||= { "callable" => data["task_handler_class"].to_s } if data["task_handler_class"]
      out["steps"] = Array(data["step_templates"]).map { |s| convert_legacy_step(s) }
      if data["environments"].is_a?(Hash)
        out["environments"] = data["environments"].transform_values do |env|
          { "steps" => Array(env["step_templates"] || env["steps"]).map { |s| convert_legacy_step(s) } }
        end
      end
      out
    end

    def convert_legacy_step(step)
      out = step.reject { |k, _| %w[depends_on_step depends_on_steps handler_class handler_config default_retryable default_retry_limit].include?(k) }
      deps = Array(step["depends_on_steps"]) + Array(step["depends_on_step"])
      out["dependencies"] = deps unless deps.empty?
      handler = {}
      handler["callable"] = step["handler_class"] if step["handler_class"]
      handler["initialization"] = step["handler_config"] if step["handler_config"]
      out["handler"] = handler unless handler.empty?
      retry_block = {}
      retry_block["retryable"] = step["default_retryable"] unless step["default_retryable"].nil?
      retry_block["max_attempts"] = step["default_retry_limit"] if step["default_retry_limit"]
      out["retry"] = retry_block unless retry_block.empty?
      out
    end

    def namespace_from(module_namespace)
      return "default" unless module_namespace

      module_namespace.to_s.gsub("::", "_").gsub(/([a-z\d])([A-Z])/, '\1_\2').downcase
    end

    # Applies environments[env].steps (SPEC 3.4): each override names a step or ALL;
    # handler.initialization is merged key by key, timeout_seconds replaced, retry replaced whole.
    def apply_environment(data, env)
      overrides = data.dig("environments", env.to_s, "steps")
      return data if overrides.nil? || overrides.empty?

      steps = data["steps"].map do |step|
        overrides.select { |o| [step["name"], "ALL"].include?(o["name"]) }.reduce(step) { |s, o| override_step(s, o) }
      end
      data.merge("steps" => steps)
    end

    def override_step(step, override)
      out = step.dup
      if (init = override.dig("handler", "initialization"))
        handler = (out["handler"] || {}).dup
        handler["initialization"] = (handler["initialization"] || {}).merge(init)
        out["handler"] = handler
      end
      out["timeout_seconds"] = override["timeout_seconds"] if override.key?("timeout_seconds")
      out["retry"] = override["retry"] if override.key?("retry")
      out
    end
  end
end
