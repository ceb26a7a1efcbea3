# frozen_string_literal: true

require_relative "../tasker/legacy_helpers"

module TaskerCore
  module Generators
    # rails generate task_handler OrderProcess [--steps fetch_order process_payment]
    #
    # Seed 002's generator: a Tasker::TaskHandler::Base class (app/tasks/order_process.rb), its
    # template in the original engine's YAML format (config/tasker/tasks/order_process.yaml:
    # step_templates in a chain, handler_class, depends_on_step), a Tasker::StepHandler::Base
    # handler and spec per step, and the seed's task handler spec (spec/tasks/order_process_spec.rb).
    # `rails generate tasker:task_handler` writes the same workflow in tasker_core's own style.
    class LegacyTaskHandlerGenerator < ::Rails::Generators::NamedBase
      include LegacyHelpers

      namespace "task_handler"
      source_root File.expand_path("templates", __dir__)
      desc "Creates a Tasker::TaskHandler::Base class, its YAML (seed 002's format), its step handlers and specs"
      class_option :steps, type: :array, default: ["process_data"], desc: "the workflow's steps, in order"

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
        require_relative "../step_handler/step_handler_generator"
        @steps.each do |step|
          LegacyStepHandlerGenerator.new(["#{task_class_name}::#{step.camelize}"], { skip_template: true },
                                         destination_root: destination_root, behavior: behavior, shell: shell).invoke_all
        end
      end

      def create_spec
        tasker_helper
        template "task_handler_spec.rb.tt", "spec/tasks/#{task_file_name}_spec.rb"
      end

      private

      def steps = @steps
      def module_namespace = task_class_name
      def step_handler_class(step) = "#{task_class_name}::StepHandler::#{step.camelize}Handler"
    end
  end
end
