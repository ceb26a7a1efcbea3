# frozen_string_literal: true

require_relative "../generator_helpers"

module TaskerCore
  module Generators
    # rails generate tasker:task_handler OrderProcess [--steps validate_input process_data]
    #
    # Creates the task handler class (app/tasks/order_process.rb), its template
    # (config/tasker/tasks/order_process.yaml, the steps in a chain), a handler and a spec for each
    # step, and a spec that runs the whole workflow with the real engine.
    class TaskHandlerGenerator < ::Rails::Generators::NamedBase
      include Helpers

      namespace "tasker:task_handler"
      source_root File.expand_path("templates", __dir__)
      desc "Creates a task handler, its YAML template, its step handlers and their specs"
      class_option :steps, type: :array, default: ["validate_input"], desc: "the workflow's steps, in order"
      class_option :namespace, type: :string, desc: "the template's namespace_name (default: the task's name)"
      class_option :version, type: :string, default: "1.0.0", desc: "the template's version"

      def setup_names
        @task_class_name = class_name
        @steps = options[:steps].map { |s| s.to_s.underscore }
        invalid = @steps.reject { |s| s.match?(/\A[a-z][a-z0-9_]*\z/) }
        raise Thor::Error, "step names must be snake_case words (got #{invalid.join(', ')})" unless invalid.empty?
      end

      def create_task_handler
        template "task_handler.rb.tt", "app/tasks/#{task_file_name}.rb"
      end

      def create_template
        template "task_template.yaml.tt", template_path
      end

      def create_step_handlers
        # A fresh generator per step: Thor's invoke runs a generator class only once per command.
        require_relative "../step_handler/step_handler_generator"
        @steps.each do |step|
          StepHandlerGenerator.new(["#{task_class_name}::#{step.camelize}"], { skip_template: true },
                                   destination_root: destination_root, behavior: behavior, shell: shell).invoke_all
        end
      end

      def create_spec
        tasker_helper
        template "task_handler_spec.rb.tt", "spec/tasks/#{task_file_name}_spec.rb"
      end

      private

      def template_namespace = options[:namespace] || task_template_name
      def template_version = options[:version]
      def steps = @steps
      def step_handler_class(step) = "#{task_class_name}::StepHandler::#{step.camelize}Handler"
    end
  end
end
