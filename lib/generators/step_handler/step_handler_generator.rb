# frozen_string_literal: true

require_relative "../tasker/legacy_helpers"

module TaskerCore
  module Generators
    # rails generate step_handler OrderProcess::ProcessData
    #
    # Seed 002's generator: OrderProcess::StepHandler::ProcessDataHandler, a
    # Tasker::StepHandler::Base (process(task, sequence, step)), in
    # app/tasks/order_process/step_handler/process_data_handler.rb with the seed's spec, and the
    # step process_data appended to config/tasker/tasks/order_process.yaml's step_templates.
    class LegacyStepHandlerGenerator < ::Rails::Generators::Base
      include LegacyHelpers

      namespace "step_handler"
      source_root File.expand_path("templates", __dir__)
      desc "Creates a Tasker::StepHandler::Base handler and its spec, and adds the step to its task's YAML"
      argument :step, type: :string, banner: "TaskName::StepName"
      class_option :skip_template, type: :boolean, default: false, desc: "do not add the step to the template"

      def setup_names
        parse_step_name!(step)
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

        previous = previous_legacy_step
        lines = ["  - name: #{step_name}", "    description: #{step_name.humanize}"]
        lines << "    depends_on_step: #{previous}" if previous
        lines += ["    handler_class: #{step_class_name}", "    default_retryable: true", "    default_retry_limit: 3"]
        add_legacy_step("#{lines.join("\n")}\n")
      end

      private

      def handler_body
        <<~RUBY
          class #{@step_class_base}Handler < Tasker::StepHandler::Base
            # task.context: the task's input; sequence.find_step_by_name(name).results and
            # get_previous_step_data(sequence, name, key): what earlier steps returned.
            # The return value becomes this step's results. Raise Tasker::PermanentError for a
            # failure retrying cannot fix; any other exception is retried (default_retry_limit).
            def process(task, sequence, step)
              { processed: true, step: step.name }
            end
          end
        RUBY
      end
    end
  end
end
