# frozen_string_literal: true

require_relative "../tasker"
require_relative "../tasker_core/testing"

module Tasker
  # Seed 002's spec helpers: `require "tasker/testing"` (done by `require "tasker"` when RSpec is
  # loaded) includes them in every example group.
  #
  #   let(:task) { create(:task, context: { order_id: 123 }) }   # the app's FactoryBot factory, or
  #   let(:task) { build_task(name: "order_process", context: { order_id: 123 }) }
  #   let(:sequence) { build_sequence_for(task) }
  #   let(:step) { sequence.find_step_by_name("process_payment") }
  #
  # The app's factory is `factory :task, class: "Tasker::Task" do name { "order_process" } end`:
  # FactoryBot's create sets name and context and calls save!, which creates the task through the
  # engine (a real task, its steps pending); build leaves it unsaved (its steps are then the
  # template's).
  module Testing
    module Helpers
      # A Tasker::Task of the template name with context, not created (save! creates it).
      def build_task(name:, context: {}, namespace: nil, version: nil)
        Tasker::Task.new(name: name, context: context, namespace: namespace, version: version)
      end

      # The StepSequence of all the task's steps (the engine's when the task was created, with the
      # results of those that ran; the template's, all pending, otherwise).
      def build_sequence_for(task)
        unless task.respond_to?(:workflow_steps)
          raise TaskerCore::Errors::ValidationError.new(
            "build_sequence_for takes a Tasker::Task (got #{task.class})", field: "task"
          )
        end
        Tasker::StepSequence.new(task.workflow_steps.to_a)
      end
    end
  end
end

RSpec.configure { |config| config.include Tasker::Testing::Helpers } if defined?(RSpec)
