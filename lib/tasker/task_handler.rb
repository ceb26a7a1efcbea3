# frozen_string_literal: true

require "json_schemer"

module Tasker
  module TaskHandler
    # Seed 002's task handler: the class a legacy template names with task_handler_class (or whose
    # name, underscored, is the template's name), found under TaskerCore.config.template_paths.
    #
    #   class OrderProcess < Tasker::TaskHandler::Base
    #     def initialize_task_context(task_request) = super.merge(processed_at: Time.now.utc.iso8601)
    #     def validate_task_request(task_request)
    #       super
    #       raise ArgumentError, "Order must exist" unless Order.exists?(task_request.context["order_id"])
    #     end
    #   end
    #
    #   task = OrderProcess.new.initialize_task!(Tasker::Types::TaskRequest.new(name: "order_process",
    #                                                                          context: { order_id: 1 }))
    #   task.workflow_steps.pluck(:name)
    #
    # initialize_task! creates the task through TaskerCore::Client (the engine validates the
    # context against the template's schema again, and applies its identity strategy).
    class Base
      class << self
        # The converted template of this class (see Tasker::TemplateLookup).
        def template
          TemplateLookup.for_handler_class(self) or
            raise TaskerCore::Errors::NotFoundError.new(
              "no template names #{name} as its task_handler_class under the template_paths " \
              "(#{Array(TaskerCore.config.template_paths).join(', ')})", resource_type: "template"
            )
        end

        def task_name = template["name"]
        def namespace = template["namespace_name"]
        def version = template["version"]

        # OrderProcess.create_task(context: {...}): initialize_task! with a TaskRequest of this template.
        def create_task(context: {}, **attributes)
          new.initialize_task!(Tasker::Types::TaskRequest.new(name: task_name, context: context, **attributes))
        end
      end

      # template: the template to serve (HandlerFactory passes it for templates without a class).
      def initialize(template: nil)
        @template = template
      end

      def template = @template || self.class.template

      # The context the task is created with (override, call super and merge).
      def initialize_task_context(task_request) = task_request.context.dup

      # Refuses a request (override, call super, then raise): the base checks the context against
      # the template's schema and raises TaskerCore::Errors::ValidationError naming the field.
      def validate_task_request(task_request)
        schema = template["input_schema"]
        return if schema.nil?

        errors = JSONSchemer.schema(schema).validate(task_request.context).map do |e|
          pointer = e["data_pointer"].to_s.empty? ? "(root)" : e["data_pointer"]
          "#{pointer}: #{e['error']}"
        end
        return if errors.empty?

        raise TaskerCore::Errors::ValidationError.new(
          "context does not match the schema of #{template['name']}: #{errors.join('; ')}",
          field: "context", error_code: "INPUT_SCHEMA_VIOLATION", context: { "violations" => errors }
        )
      end

      # Creates the task: initialize_task_context, validate_task_request, then the engine's
      # create_task. Returns a Tasker::Task (task_id, context, workflow_steps, ...). options are
      # TaskerCore::Client.create_task's (connection:, priority:, ...).
      def initialize_task!(task_request, **options)
        request = coerce(task_request)
        context = initialize_task_context(request)
        unless context.is_a?(Hash) || context.respond_to?(:to_unsafe_h)
          raise TaskerCore::Errors::ValidationError.new(
            "#{self.class.name}#initialize_task_context must return a Hash (got #{context.class})", field: "context"
          )
        end
        request = request.with(context: context)
        validate_task_request(request)
        options[:idempotency_key] ||= request.idempotency_key if request.idempotency_key
        response = TaskerCore::Client.create_task(
          name: template["name"], namespace: request.namespace || template["namespace_name"],
          version: request.version || template["version"], context: request.context, initiator: request.initiator,
          source_system: request.source_system, reason: request.reason, tags: request.tags, **options
        )
        Tasker::Task.from_response(response)
      end

      private

      def coerce(task_request)
        return task_request if task_request.is_a?(Tasker::Types::TaskRequest)
        return Tasker::Types::TaskRequest.new(task_request.to_h) if task_request.is_a?(Hash)

        raise TaskerCore::Errors::ValidationError.new(
          "initialize_task! takes a Tasker::Types::TaskRequest (got #{task_request.class})", field: "task_request"
        )
      end
    end
  end

  # Finds the task handler of a template (seed 002's HandlerFactory): the class its
  # task_handler_class names, a class registered for it, or a plain Base serving the template.
  class HandlerFactory
    def self.instance = (@instance ||= new)

    def initialize
      @registered = {}
      @lock = Mutex.new
    end

    def register(name, klass, namespace_name: nil, version: nil)
      @lock.synchronize { @registered[[name.to_s, namespace_name&.to_s, version&.to_s]] = klass }
      klass
    end

    def get(name, namespace_name: nil, version: nil)
      key = [name.to_s, namespace_name&.to_s, version&.to_s]
      klass = @lock.synchronize { @registered[key] || @registered[[name.to_s, nil, nil]] }
      return klass.new if klass

      template = TemplateLookup.for_task(name, namespace: namespace_name, version: version)
      unless template
        raise TaskerCore::Errors::NotFoundError.new(
          "no task handler for #{name.inspect}: no template of that name under the template_paths " \
          "(#{Array(TaskerCore.config.template_paths).join(', ')})", resource_type: "task_handler"
        )
      end
      class_name = template.dig("metadata", "legacy", "task_handler_class") || template.dig("task_handler", "callable")
      return TaskHandler::Base.new(template: template) if class_name.nil?

      klass = constant(class_name)
      klass.is_a?(Class) && klass < TaskHandler::Base ? klass.new(template: template) : TaskHandler::Base.new(template: template)
    end

    private

    def constant(class_name)
      Object.const_get(class_name)
    rescue NameError => e
      raise TaskerCore::Errors::ConfigurationError,
            "task_handler_class #{class_name} cannot be loaded: #{e.message}"
    end
  end
end
