# frozen_string_literal: true

# Handlers of the benchmark templates (bench/templates): trivial math, as in the reference
# benchmarks. Each records when it started and ended, so that the run can split a task's latency
# into pickup, handler time and the gaps between steps.
module Bench
  MODULUS = 1_000_000_007

  # Handler start/end times (CLOCK_MONOTONIC, seconds) by task uuid, in the worker's process.
  module Probe
    @lock = Mutex.new
    @spans = Hash.new { |h, k| h[k] = [] }

    class << self
      def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

      def record(task_uuid, step_name, started, ended)
        @lock.synchronize { @spans[task_uuid] << [step_name, started, ended] }
      end

      # The spans of a task, in the order the handlers started; forgets them.
      def take(task_uuid)
        @lock.synchronize { (@spans.delete(task_uuid) || []).sort_by { |span| span[1] } }
      end

      def clear = @lock.synchronize { @spans.clear }
    end
  end

  # Squares its input (the task context's `initialization.input` key) or the product of its
  # parents' results.
  class Square < TaskerCore::StepHandler::Base
    def call(context)
      started = Probe.now
      value = Bench.inputs(context).reduce(1) { |acc, v| (acc * v) % MODULUS }
      result = success({ "result" => (value * value) % MODULUS })
      Probe.record(context.task_uuid, context.step_name, started, Probe.now)
      result
    end
  end

  # Adds its parents' results.
  class Sum < TaskerCore::StepHandler::Base
    def call(context)
      started = Probe.now
      result = success({ "result" => Bench.inputs(context).sum % MODULUS })
      Probe.record(context.task_uuid, context.step_name, started, Probe.now)
      result
    end
  end

  # Does nothing: the throughput and memory runs measure the engine alone.
  class Noop < TaskerCore::StepHandler::Base
    def call(_context) = success({})
  end

  def self.inputs(context)
    input = context.get_config("input")
    return [Integer(context.get_input(input))] if input

    context.get_config("parents").map { |name| Integer(context.get_dependency_field(name, "result")) }
  end
end
