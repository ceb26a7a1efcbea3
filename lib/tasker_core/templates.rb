# frozen_string_literal: true

require "yaml"

module TaskerCore
  # Loads YAML task templates from files and directories, validates them in the engine and
  # registers them in the database.
  module Templates
    module_function

    # Paths may name files or directories (searched for **/*.yml and **/*.yaml).
    def files(paths)
      Array(paths).flat_map do |path|
        if File.directory?(path)
          Dir.glob(File.join(path, "**", "*.{yml,yaml}")).sort
        elsif File.file?(path)
          [path]
        else
          raise Errors::ConfigurationError, "template path #{path} does not exist"
        end
      end.uniq
    end

    # Parses one YAML file into plain data; raises TemplateError naming the file.
    def read(path)
      data = YAML.safe_load(File.read(path), permitted_classes: [Date, Time, Symbol], aliases: true)
      raise Errors::TemplateError, "#{path}: a template must be a YAML mapping" unless data.is_a?(Hash)

      prepare(PlainData.call(data))
    rescue Psych::Exception => e
      raise Errors::TemplateError, "#{path}: invalid YAML: #{e.message}"
    end

    # The engine's format: legacy (seed 002) templates converted, the current environment's
    # overrides (TASKER_ENV) applied.
    def prepare(data, environment: TaskerCore.config.environment)
      data = TemplateFormat.convert_legacy(data) if TemplateFormat.legacy?(data)
      TemplateFormat.apply_environment(data, environment)
    end

    # Validates a template without touching the database; returns its normalized form. With
    # check_handlers, every step's handler.callable must resolve to a loaded class (or registered
    # key) that responds to its handler.method.
    def validate(path, check_handlers: false, registry: HandlerRegistry.instance)
      with_path(path) do
        template = FFI.template_normalize(read(path))
        unresolvable_handlers(template, registry).then { |problems| raise_handler_problems(template, problems) } if check_handlers
        template
      end
    end

    # ["step 'x': no handler for callable 'Y' ...", ...] for the steps whose handler cannot run here.
    def unresolvable_handlers(template, registry = HandlerRegistry.instance)
      template["steps"].filter_map do |step|
        handler = step["handler"]
        klass = registry.resolve(handler["callable"])
        next if klass.method_defined?(handler["method"]) || klass.private_method_defined?(handler["method"])

        "step '#{step['name']}': #{klass.name} has no method #{handler['method']}"
      rescue Errors::ConfigurationError => e
        "step '#{step['name']}': #{e.message}"
      end
    end

    def raise_handler_problems(template, problems)
      return if problems.empty?

      label = "#{template['namespace_name']}/#{template['name']}@#{template['version']}"
      raise Errors::TemplateError, "template #{label}: #{problems.join('; ')}"
    end

    # Registers every template under paths; returns their summaries
    # ({"namespace_name", "name", "version", "named_task_uuid", "step_count"}).
    def load(paths)
      TaskerCore.boot!
      files(paths).map do |path|
        with_path(path) { FFI.template_register(read(path)) }
      end
    end

    def with_path(path)
      yield
    rescue Errors::TemplateError => e
      raise e if e.message.start_with?(path)

      raise Errors::TemplateError, "#{path}: #{e.message}"
    end
  end
end
