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

    # Parses one YAML file into plain data; raises TemplateError naming the file. Aliases (*name)
    # are refused before anything is expanded: a few hundred bytes of nested aliases expand into
    # gigabytes ("billion laughs"), and no template needs them.
    def read(path)
      data = YAML.safe_load(File.read(path), permitted_classes: [Date, Time, Symbol], aliases: false)
      raise Errors::TemplateError, "#{path}: a template must be a YAML mapping" unless data.is_a?(Hash)

      prepare(PlainData.call(data))
    rescue Psych::BadAlias => e
      raise Errors::TemplateError, "#{path}: YAML aliases (*name) are not allowed in templates (#{e.message})"
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
    # check_handlers, every step's handler.callable must resolve to a step handler class (or a
    # registered key) whose own public methods include its handler.method (HandlerRegistry).
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
        registry.handler_method(klass, handler["method"], handler["callable"])
        next if klass.method_defined?(handler["method"])

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

    # --- Registration on first need -------------------------------------------------------------
    #
    # A process that runs no worker (a web process, a script, a console) registers the configured
    # template_paths itself the first time a create_task / create_tasks finds no template: once per
    # process (again in a forked child), then the create is tried once more. Registering a template
    # the database already holds unchanged writes nothing (tasker.register_template skips the update).

    MISSING = /task template not found: namespace=(?<namespace>.*?), name=(?<name>.*?), version=(?<version>\S+)/.freeze
    HOW_TO_REGISTER = "Register templates before creating tasks: TaskerCore::Templates.load(paths), or set " \
                      "template_paths (TaskerCore.configure { |c| c.template_paths = [...] }, template_paths in " \
                      "config/tasker.yml, config.tasker.template_paths under Rails) so that a process registers them " \
                      "the first time it needs them, or run `bin/tasker templates register PATHS`."
    REGISTER_LOCK = Mutex.new
    @registered_pid = nil
    @register_problems = []

    # Runs the block (a create); when it raises the template-not-found NotFoundError and this process
    # has not registered TaskerCore.config.template_paths yet, registers them and runs the block once
    # more. A NotFoundError that remains names the template, the paths searched and how to register.
    def registering_when_missing
      registered_before = configured_registered?
      begin
        yield
      rescue Errors::NotFoundError => e
        raise unless e.message.match?(MISSING)
        raise not_found_with_help(e) if registered_before || !register_configured

        begin
          yield
        rescue Errors::NotFoundError => again
          raise unless again.message.match?(MISSING)

          raise not_found_with_help(again)
        end
      end
    end

    # Before a create on the caller's connection, where a failing statement would abort the caller's
    # transaction (so that nothing can be tried again there): raises the template-not-found
    # NotFoundError that registering_when_missing answers by registering and trying again, for the
    # first request (Client.task_request's Hashes) whose template is not registered. index: name
    # the request ("requests[i]: ") as create_tasks does.
    def require_registered!(requests, index: false)
      requests.each_with_index do |request, i|
        namespace, name, version = request.values_at("namespace", "name", "version")
        next if InputSchema.registered?(namespace, name, version)

        error = Errors::NotFoundError.new("#{"requests[#{i}]: " if index}task template not found: " \
                                          "namespace=#{namespace}, name=#{name}, version=#{version}",
                                          resource_type: "task_template")
        error.instance_variable_set(:@code, "TC_ENOTFOUND")
        raise error
      end
    end

    # Whether this process (not a parent it was forked from) registered the configured paths.
    def configured_registered?
      @registered_pid == Process.pid
    end

    # Registers TaskerCore.config.template_paths once per process (thread-safe; a forked child
    # registers again). False when no paths are configured. A path or template that cannot be
    # registered is logged and named by a later not-found error; the others are registered. A
    # database error propagates and leaves the registration to the next call.
    def register_configured
      paths = Array(TaskerCore.config.template_paths)
      return false if paths.empty?

      REGISTER_LOCK.synchronize do
        return true if configured_registered?

        TaskerCore.boot!
        problems = []
        found = paths.flat_map do |path|
          files(path)
        rescue Errors::ConfigurationError => e
          problems << e.message
          []
        end
        found.uniq.each do |file|
          with_path(file) { FFI.template_register(read(file)) }
        rescue Errors::TemplateError => e
          problems << e.message
        end
        problems.each { |m| TaskerCore.config.logger.error("tasker_core: template not registered: #{m}") }
        @register_problems = problems
        @registered_pid = Process.pid
      end
      true
    end

    # error (a template-not-found NotFoundError) with the paths searched and how to register added.
    def not_found_with_help(error)
      paths = Array(TaskerCore.config.template_paths)
      searched = if paths.empty?
                   "No template_paths are configured, so this process registered none."
                 else
                   "It is not in the configured template_paths (#{paths.join(', ')}), which this process registered." +
                     (@register_problems.empty? ? "" : " Not registered: #{@register_problems.join('; ')}.")
                 end
      missing = error.message.match(MISSING)
      help = Errors::NotFoundError.new("#{error.message}. #{searched} #{HOW_TO_REGISTER}",
                                       resource_type: error.resource_type || "task_template",
                                       error_code: error.error_code,
                                       context: error.context.merge("namespace" => missing[:namespace],
                                                                    "name" => missing[:name],
                                                                    "version" => missing[:version],
                                                                    "template_paths" => paths))
      help.instance_variable_set(:@code, error.code)
      help.instance_variable_set(:@sqlstate, error.sqlstate)
      help.set_backtrace(error.backtrace) if error.backtrace
      help
    end
  end
end
