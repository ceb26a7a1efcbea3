# frozen_string_literal: true

require_relative "../generator_helpers"

module TaskerCore
  module Generators
    # rails generate tasker:step_handler OrderProcess::ProcessData
    #
    # Creates OrderProcess::StepHandler::ProcessDataHandler in
    # app/tasks/order_process/step_handler/process_data_handler.rb with its spec, and adds the step
    # process_data (after the template's last step) to config/tasker/tasks/order_process.yaml.
    class StepHandlerGenerator < ::Rails::Generators::Base
      include Helpers

      namespace "tasker:step_handler"
      source_root File.expand_path("templates", __dir__)
      desc "Creates a step handler and its spec, and adds the step to its task's template"
      argument :step, type: :string, banner: "TaskName::StepName"
      class_option :skip_template, type: :boolean, default: false, desc: "do not add the step to the template"

      def setup_names
        parse_step_name!(step)
        steps = template_steps || []
        index = steps.index(step_name)
        @previous_step = index ? (steps[index - 1] if index.positive?) : steps.last
      end

      def create_handler
        template "step_handler.rb.tt", step_file_path
      end

      def create_spec
        tasker_helper
        template "step_handler_spec.rb.tt", step_spec_path
      end

      def add_to_template
        return if options[:skip_template]

        lines = ["  - name: #{step_name}"]
        lines << "    dependencies: [#{previous_step}]" if previous_step
        lines += ["    handler:", "      callable: #{step_class_name}", "    retry:", "      retryable: true",
                  "      max_attempts: 3"]
        add_step_to_template("#{lines.join("\n")}\n")
      end

      private

      attr_reader :previous_step
    end
  end
end
