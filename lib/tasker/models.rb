# frozen_string_literal: true

module Tasker
  # Finds the (legacy or current format) template of a task handler class or a task name among
  # TaskerCore.config.template_paths, without a database: the converted template (seed 001's
  # format), or nil.
  module TemplateLookup
    @cache = {}
    @lock = Mutex.new

    module_function

    def for_handler_class(klass)
      name = klass.name.to_s
      templates.find { |t| t.dig("metadata", "legacy", "task_handler_class") == name } ||
        templates.find { |t| t.dig("task_handler", "callable") == name } ||
        for_task(TaskerCore::TaskHandler::Base.underscore(name.split("::").last))
    end

    def for_task(name, namespace: nil, version: nil)
      templates.find do |t|
        t["name"] == name.to_s && (namespace.nil? || t["namespace_name"] == namespace.to_s) &&
          (version.nil? || t["version"] == version.to_s)
      end
    end

    # Every template under the configured template_paths (re-read when a file changed).
    def templates
      paths = TaskerCore.config.template_paths || []
      files = paths.select { |p| File.exist?(p) }.then { |existing| TaskerCore::Templates.files(existing) }
      files.filter_map do |file|
        stamp = [File.mtime(file), File.size(file), TaskerCore.config.environment]
        @lock.synchronize do
          cached = @cache[file]
          next cached[1] if cached && cached[0] == stamp

          template = TaskerCore::Templates.read(file)
          @cache[file] = [stamp, template]
          template
        end
      rescue TaskerCore::Errors::Error
        nil # an invalid file is reported by registration, with its path
      end
    end

    def clear! = @lock.synchronize { @cache.clear }
  end

  # A step of a task (seed 002's WorkflowStep): name, results (what its handler returned; nil until
  # it ran), status, attempts and its retry settings.
  class WorkflowStep
    attr_reader :workflow_step_id, :task_id, :name, :status, :attempts, :retry_limit, :retryable, :inputs,
                :dependencies
    attr_accessor :results

    def initialize(name:, workflow_step_id: nil, task_id: nil, results: nil, status: "pending", attempts: 0,
                   retry_limit: 3, retryable: true, inputs: {}, dependencies: [])
      @name = name.to_s
      @workflow_step_id = workflow_step_id
      @task_id = task_id
      @results = results
      @status = status
      @attempts = attempts
      @retry_limit = retry_limit
      @retryable = retryable
      @inputs = inputs || {}
      @dependencies = dependencies || []
    end

    alias id workflow_step_id
    alias step_uuid workflow_step_id
    alias retry_count attempts
    def processed? = status == "complete"
    def complete? = processed?
    def [](key) = public_send(key.to_sym)
    def inspect = "#<Tasker::WorkflowStep #{name} #{status}>"

    # The step as the worker hands it to a handler (from the engine's step event).
    def self.from_step_context(context)
      ws = context.workflow_step
      new(name: context.step_name, workflow_step_id: context.step_uuid, task_id: context.task_uuid, results: nil,
          status: "in_progress", attempts: ws["attempts"] || 0, retry_limit: context.max_retries,
          retryable: context.retryable?, inputs: context.input_data)
    end

    # A step of a task read through TaskerCore::Client (a StepResponse).
    def self.from_response(step)
      envelope = step["results"] || {}
      new(name: step["name"], workflow_step_id: step["step_uuid"], task_id: step["task_uuid"],
          results: envelope.key?("result") ? envelope["result"] : nil, status: step["current_state"],
          attempts: step["attempts"], retry_limit: step["max_attempts"], retryable: true,
          dependencies: step["parents"] || [])
    end

    # A step of a template (no task yet).
    def self.from_template(step)
      retry_block = step["retry"] || {}
      new(name: step["name"], retry_limit: retry_block.fetch("max_attempts", 3),
          retryable: retry_block.fetch("retryable", true), dependencies: step["dependencies"] || [])
    end
  end

  # A task's steps, answering what seed 002's specs ask of task.workflow_steps (an ActiveRecord
  # relation there): count, size, pluck(:name), find_by(name:), each and the rest of Enumerable.
  class WorkflowStepList
    include Enumerable

    def initialize(steps) = @steps = steps.freeze

    def each(&) = @steps.each(&)
    def count(*args, &) = args.empty? && !block_given? ? @steps.size : super
    def size = @steps.size
    alias length size
    def empty? = @steps.empty?
    def to_a = @steps.dup
    def [](index) = @steps[index]
    def last = @steps.last

    def pluck(*attributes)
      return @steps.map { |s| s.public_send(attributes.first) } if attributes.size == 1

      @steps.map { |s| attributes.map { |a| s.public_send(a) } }
    end

    def find_by(name:) = @steps.find { |s| s.name == name.to_s }
    def where(name:) = self.class.new(@steps.select { |s| Array(name).map(&:to_s).include?(s.name) })
    def inspect = "#<Tasker::WorkflowStepList #{@steps.map(&:name).join(', ')}>"
  end

  # The steps a step handler sees (seed 002's StepSequence): the steps it depends on (directly or
  # not, with their results) and the step itself, in the template's order.
  class StepSequence
    include Enumerable

    attr_reader :steps

    def initialize(steps) = @steps = steps

    def each(&) = @steps.each(&)
    def find_step_by_name(name) = @steps.find { |s| s.name == name.to_s }
    def inspect = "#<Tasker::StepSequence #{@steps.map(&:name).join(', ')}>"

    # The sequence of the step being run by the worker: its ancestors (complete, with their
    # results, from the engine's step event) and the step itself.
    def self.from_step_context(context, current)
      ancestors = context.dependency_results.keys.map do |name|
        Tasker::WorkflowStep.new(name: name, task_id: context.task_uuid, status: "complete",
                                 results: context.dependency_results.get_results(name))
      end
      order = context.dependency_results.keys
      new(ancestors.sort_by { |s| order.index(s.name) } + [current])
    end
  end

  # A task (seed 002's Tasker::Task): its name, context and steps. Built by the engine for a step
  # handler (from the step event), by TaskHandler::Base#initialize_task! (a created task), or in a
  # spec (Task.new(name:, context:), then save! to create it through the engine: what FactoryBot's
  # create(:task, context: {...}) does with a factory of this class).
  class Task
    attr_reader :task_id, :status
    attr_accessor :name, :namespace, :version, :initiator, :source_system, :reason, :tags
    attr_writer :workflow_steps

    def initialize(name: nil, context: {}, namespace: nil, version: nil, task_id: nil, status: nil,
                   initiator: nil, source_system: nil, reason: nil, tags: [], workflow_steps: nil)
      @name = name&.to_s
      self.context = context
      @namespace = namespace
      @version = version
      @task_id = task_id
      @status = status
      @initiator = initiator
      @source_system = source_system
      @reason = reason
      @tags = tags
      @workflow_steps = workflow_steps
    end

    alias id task_id
    alias task_uuid task_id
    alias namespace_name namespace

    def context = @context

    def context=(value)
      @context = Tasker::Types::TaskRequest.new(name: @name || "task", context: value).context
    end

    def persisted? = !task_id.nil?
    def complete? = status == "complete"
    def inspect = "#<Tasker::Task #{namespace}/#{name} #{task_id || 'new'} #{status}>"

    # The task's steps: the engine's, once created; the template's (all pending) before.
    def workflow_steps
      return @workflow_steps if @workflow_steps
      return WorkflowStepList.new(TaskerCore::Client.list_task_steps(task_id).map { |s| WorkflowStep.from_response(s) }) if persisted?

      template = TemplateLookup.for_task(name, namespace: namespace, version: version)
      unless template
        raise TaskerCore::Errors::NotFoundError.new(
          "no template named #{name.inspect} under the template_paths (#{Array(TaskerCore.config.template_paths).join(', ')})",
          resource_type: "template"
        )
      end
      WorkflowStepList.new(template["steps"].map { |s| WorkflowStep.from_template(s) })
    end

    # Creates the task through its task handler (the template's task_handler_class) or the
    # engine's client; raises the engine's typed errors (ValidationError naming the field).
    def save!
      return self if persisted?

      request = Tasker::Types::TaskRequest.new(name: name, namespace: namespace, version: version, context: context,
                                               initiator: initiator || "unknown", source_system: source_system || "unknown",
                                               reason: reason || "unknown", tags: tags)
      created = Tasker::HandlerFactory.instance.get(name, namespace_name: namespace, version: version)
                                      .initialize_task!(request)
      @task_id = created.task_id
      @namespace = created.namespace
      @version = created.version
      @status = created.status
      @context = created.context
      @workflow_steps = nil
      self
    end
    alias save save!

    # Reads the task's status and steps again from the engine.
    def reload
      return self unless persisted?

      apply_response(TaskerCore::Client.get_task(task_id))
      @workflow_steps = nil
      self
    end

    def self.find(task_id) = new.tap { |t| t.send(:apply_response, TaskerCore::Client.get_task(task_id)) }

    # The task of the step being run by the worker (from the engine's step event).
    def self.from_step_context(context)
      new(name: context.task_name, namespace: context.namespace_name, version: context.task_version,
          task_id: context.task_uuid, status: "steps_in_process", context: context.context)
    end

    def self.from_response(response)
      new.tap { |t| t.send(:apply_response, response) }
    end

    private

    def apply_response(response)
      @task_id = response["task_uuid"]
      @name = response["name"]
      @namespace = response["namespace"]
      @version = response["version"]
      @status = response["status"]
      @context = response["context"] || {}
      @tags = response["tags"] || []
      @initiator = response["initiator"]
      @source_system = response["source_system"]
      @reason = response["reason"]
    end
  end
end
