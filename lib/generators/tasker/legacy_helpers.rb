# frozen_string_literal: true

require_relative "generator_helpers"

module TaskerCore
  module Generators
    # What the seed-002 generators (task_handler, step_handler, api_step_handler, which write
    # Tasker:: classes and templates in the original engine's YAML format) add to Helpers.
    module LegacyHelpers
      include Helpers

      private

      # The template's step_templates (names), or nil when the template file is missing.
      def legacy_template_steps
        path = File.join(destination_root, template_path)
        return nil unless File.file?(path)

        (YAML.safe_load(File.read(path)) || {}).fetch("step_templates", []).map { |s| s["name"] }
      end

      # Appends a step to step_templates when the template ends with it (as task_handler writes
      # it); otherwise prints the step to add by hand.
      def add_legacy_step(yaml_step)
        steps = legacy_template_steps
        return say_status(:skip, "#{template_path} does not exist; add this step to your template:\n#{yaml_step}", :yellow) if steps.nil?
        return say_status(:identical, "#{template_path} already has step #{step_name}", :blue) if steps.include?(step_name)

        path = File.join(destination_root, template_path)
        before = File.read(path)
        append_to_file template_path, (before.end_with?("\n") ? "" : "\n") + yaml_step
        return if legacy_template_steps.include?(step_name)

        File.write(path, before)
        say_status(:skip, "#{template_path} does not end with its step_templates; add this step by hand:\n#{yaml_step}", :yellow)
      end

      def previous_legacy_step
        steps = legacy_template_steps || []
        index = steps.index(step_name)
        index ? (steps[index - 1] if index.positive?) : steps.last
      end

      # body inside `class OrderProcess` / `module StepHandler` (the task handler is a class, and
      # Ruby refuses `module OrderProcess` for it), Billing::Invoice as `module Billing` /
      # `class Invoice`: the step handler's class as Zeitwerk finds it.
      def in_step_handler_namespace(body)
        parts = task_class_name.split("::")
        opening = parts.each_with_index.map { |p, i| "#{'  ' * i}#{i == parts.size - 1 ? 'class' : 'module'} #{p}" }
        opening << "#{'  ' * parts.size}module StepHandler"
        closing = (0..parts.size).to_a.reverse.map { |i| "#{'  ' * i}end" }
        [*opening, indent(body, parts.size + 1).chomp, *closing].join("\n") + "\n"
      end

      def indent(text, levels) = text.gsub(/^(?=.)/, "  " * levels)
    end
  end
end
