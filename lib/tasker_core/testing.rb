# frozen_string_literal: true

require "securerandom"
require_relative "../tasker_core"
require_relative "testing/http_stub"

module TaskerCore
  # Helpers for handler authors' specs: `require "tasker_core/testing"`.
  #
  #   context = TaskerCore::Testing.build_test_context({ "order_id" => 7 },
  #                                                    dependency_results: { "fetch_order" => { "total" => 12 } })
  #   expect(MyHandler.new.call(context)).to be_success
  #
  #   run = TaskerCore::Testing.run_task(OrderProcess, context: { order_id: 7 })
  #   expect(run).to be_complete
  #   run.result("process_payment")  # => what that step's handler returned
  #
  # With RSpec loaded, the matchers (be_success, be_permanent_failure, be_retryable_failure) and the
  # helpers (build_test_context, call_handler, run_task) are included in every example group.
  module Testing
    # A finished (or timed out) task run by run_task: the task, its steps and their results.
    class TaskRun
      attr_reader :task, :steps

      def initialize(task, steps)
        @task = task
        @steps = steps
      end

      def task_uuid = task["task_uuid"]
      def status = task["status"]
      def complete? = status == "complete"
      def failed? = %w[error blocked_by_failures].include?(status)

      # The step (a StepResponse) named name.
      def step(name)
        steps.find { |s| s["name"] == name.to_s } or
          raise Errors::NotFoundError.new("task #{task_uuid} has no step #{name} (steps: #{steps.map { |s| s['name'] }.join(', ')})",
                                          resource_type: "step")
      end

      # What the step's handler returned (its result envelope's "result").
      def result(name) = (step(name)["results"] || {})["result"]

      # {step name => result}
      def results = steps.to_h { |s| [s["name"], (s["results"] || {})["result"]] }

      # {step name => error Hash} of the steps whose last attempt failed.
      def errors
        steps.each_with_object({}) do |s, out|
          error = (s["results"] || {})["error"]
          out[s["name"]] = error if error && s["results"]["success"] == false
        end
      end

      def inspect = "#<TaskRun #{task['namespace']}/#{task['name']} #{status} #{steps.map { |s| "#{s['name']}=#{s['current_state']}" }.join(' ')}>"
      alias to_s inspect
    end

    module_function

    # A StepContext as a handler receives it, built without a database (seed 001's
    # build_test_context). dependency_results maps step names to what those steps returned (a full
    # envelope with "success" and "result" is taken as is).
    def build_test_context(task_context = {}, dependency_results: {}, step_config: {}, step_inputs: {},
                           step_name: "test_step", task_name: "test_task", namespace: "default", version: "1.0.0",
                           retry_count: 0, max_retries: 3, retryable: true, checkpoint: nil, handler: nil)
      task_uuid = SecureRandom.uuid
      step_uuid = SecureRandom.uuid
      deps = PlainData.call(dependency_results || {}).to_h do |name, value|
        envelope = value.is_a?(Hash) && value.key?("success") && value.key?("result") ? value : { "success" => true, "result" => value, "metadata" => {} }
        [name.to_s, envelope]
      end
      StepContext.new(
        "event_id" => SecureRandom.uuid, "task_uuid" => task_uuid, "step_uuid" => step_uuid,
        "correlation_id" => SecureRandom.uuid, "handler_callable" => handler&.to_s,
        "task_sequence_step" => {
          "task" => { "task" => { "task_uuid" => task_uuid, "context" => PlainData.call(task_context || {}) },
                      "task_name" => task_name, "task_version" => version, "namespace_name" => namespace },
          "workflow_step" => { "workflow_step_uuid" => step_uuid, "task_uuid" => task_uuid, "name" => step_name.to_s,
                               "attempts" => retry_count, "max_attempts" => max_retries, "retryable" => retryable,
                               "inputs" => PlainData.call(step_inputs || {}), "checkpoint" => PlainData.call(checkpoint) },
          "dependency_results" => deps,
          "step_definition" => { "name" => step_name.to_s,
                                 "handler" => { "callable" => handler&.to_s, "initialization" => PlainData.call(step_config || {}) } }
        }
      )
    end

    # Runs a handler (a class or an instance) on a context the way the worker does: raised
    # TaskerCore errors and exceptions become failure results (retryable or not), so matchers can
    # judge them. Returns a StepHandlerCallResult.
    def call_handler(handler, context)
      instance = handler.is_a?(Class) ? handler.new(config: context.step_config) : handler
      StepHandlerCallResult.from(instance.call(context))
    rescue StandardError => e
      StepExecutor.failure_for(e)
    end

    # Runs a whole workflow against the real engine and database, inline: registers the templates
    # (template_paths, default TaskerCore.config.template_paths), starts a worker for the
    # namespace in this process (or uses the running one), creates the task, waits until it
    # finishes and returns a TaskRun. task_or_name is a TaskHandler::Base subclass or a template
    # name (then give namespace: and version:). Each call creates a new task (a fresh
    # idempotency_key unless one is given). Raises Errors::TimeoutError after timeout seconds.
    def run_task(task_or_name, context: {}, namespace: nil, version: nil, template_paths: nil, timeout: 30,
                 concurrency: 2, **options)
      name, namespace, version, context = resolve_task(task_or_name, namespace, version, context)
      prepare_database!
      paths = template_paths || TaskerCore.config.template_paths
      Templates.load(paths) unless paths.nil? || paths.empty?
      started = ensure_worker(namespace, concurrency)
      options[:idempotency_key] ||= SecureRandom.uuid
      begin
        task = Client.create_task(name: name, namespace: namespace, version: version, context: context, **options)
        uuid = task["task_uuid"]
        finished = Client.wait_for_task(uuid, timeout: timeout)
        unless finished
          current = Client.get_task(uuid)
          raise Errors::TimeoutError.new("task #{namespace}/#{name} #{uuid} still #{current['status']} after #{timeout}s",
                                         timeout_duration: timeout)
        end
        TaskRun.new(finished, Client.list_task_steps(uuid))
      ensure
        Worker.stop(timeout: 10) if started
      end
    end

    def resolve_task(task_or_name, namespace, version, context)
      if task_or_name.is_a?(Class) && task_or_name <= TaskHandler::Base
        handler = task_or_name.new
        context = handler.initialize_task_context(PlainData.call(context || {}))
        handler.validate_task_request(context)
        return [task_or_name.task_name, namespace || task_or_name.namespace, version || task_or_name.version, context]
      end
      [task_or_name.to_s, namespace || "default", version || "1.0.0", context]
    end

    # Migrates the schema once per process.
    def prepare_database!
      return if @migrated == Process.pid

      TaskerCore.migrate!
      @migrated = Process.pid
    end

    # Starts a worker for namespace unless one serving it is running; true when it started one.
    def ensure_worker(namespace, concurrency)
      current = Worker.current
      if current&.running?
        return false if current.namespaces.include?(namespace)

        raise Errors::StateError, "a worker serving #{current.namespaces.join(', ')} is running in this process; " \
                                  "run_task needs one serving #{namespace}"
      end
      Worker.start(namespaces: [namespace], concurrency: concurrency, template_paths: [])
      true
    end

    # Methods for example groups (included by the RSpec integration below).
    module Helpers
      def build_test_context(...) = Testing.build_test_context(...)
      def call_handler(...) = Testing.call_handler(...)
      def run_task(...) = Testing.run_task(...)
    end
  end
end

if defined?(RSpec)
  require_relative "testing/matchers"
  RSpec.configure do |config|
    config.include TaskerCore::Testing::Helpers
    config.include TaskerCore::Testing::Matchers
  end
end
