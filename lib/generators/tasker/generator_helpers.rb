# frozen_string_literal: true

require "rails/generators"
require "yaml"

module TaskerCore
  module Generators
    # Names shared by the generators: "OrderProcess::ProcessData" is the step process_data of the
    # task OrderProcess, handled by OrderProcess::StepHandler::ProcessDataHandler in
    # app/tasks/order_process/step_handler/process_data_handler.rb (Zeitwerk's layout).
    module Helpers
      TEMPLATE_DIR = "config/tasker/tasks"

      private

      def task_class_name = @task_class_name
      def task_file_name = task_class_name.underscore
      def task_template_name = task_file_name.tr("/", "_")
      def template_path = File.join(TEMPLATE_DIR, "#{task_template_name}.yaml")

      def parse_step_name!(full_name)
        parts = full_name.to_s.camelize.split("::")
        if parts.size < 2
          raise Thor::Error, "name the step with its task: TaskName::StepName (got #{full_name.inspect})"
        end

        @task_class_name = parts[0..-2].join("::")
        @step_class_base = parts.last
      end

      def step_name = @step_class_base.underscore
      def step_class_name = "#{task_class_name}::StepHandler::#{@step_class_base}Handler"
      def step_file_path = "app/tasks/#{task_file_name}/step_handler/#{step_name}_handler.rb"
      def step_spec_path = "spec/tasks/#{task_file_name}/step_handler/#{step_name}_handler_spec.rb"

      def tasker_helper
        template File.expand_path("tasker_helper.rb.tt", __dir__), "spec/tasker_helper.rb", skip: true
      end

      # The template's steps (names), or nil when the template file is missing.
      def template_steps
        path = File.join(destination_root, template_path)
        return nil unless File.file?(path)

        (YAML.safe_load(File.read(path)) || {}).fetch("steps", []).map { |s| s["name"] }
      end

      # Appends a step to the task's template when the template ends with its steps list (as the
      # task_handler generator writes it); otherwise prints the step to add by hand.
      def add_step_to_template(yaml_step)
        steps = template_steps
        return say_status(:skip, "#{template_path} does not exist; add this step to your template:\n#{yaml_step}", :yellow) if steps.nil?
        return say_status(:identical, "#{template_path} already has step #{step_name}", :blue) if steps.include?(step_name)

        path = File.join(destination_root, template_path)
        before = File.read(path)
        append_to_file template_path, (before.end_with?("\n") ? "" : "\n") + yaml_step
        after = (YAML.safe_load(File.read(path)) || {}).fetch("steps", []).map { |s| s["name"] }
        return if after.include?(step_name)

        File.write(path, before)
        say_status(:skip, "#{template_path} does not end with its steps list; add this step by hand:\n#{yaml_step}", :yellow)
      end
    end
  end
end
