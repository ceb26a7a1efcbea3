# frozen_string_literal: true

module SpecSupport
  # An append-only record of every handler execution ("step_uuid pid"), shared by processes.
  module Ledger
    module_function

    def path
      ENV["TASKER_SPEC_LEDGER"] ||= File.join(Dir.tmpdir, "tasker-ledger-#{Process.pid}.log")
    end

    def record(step_uuid)
      File.open(path, "a") { |f| f.write("#{step_uuid} #{Process.pid}\n") }
    end

    def entries
      File.exist?(path) ? File.readlines(path, chomp: true).map(&:split) : []
    end

    def reset!
      File.delete(path) if File.exist?(path)
    end
  end
end

module SpecHandlers
  # Squares the task's even_number (the first step of the math workflows).
  class SquareInput < TaskerCore::StepHandler::Base
    def call(context)
      SpecSupport::Ledger.record(context.step_uuid)
      n = context.get_input("even_number")
      return failure("even_number must be an even Integer", error_type: "ValidationError") unless n.is_a?(Integer) && n.even?

      success({ "result" => n * n }, metadata: { "operation" => "square" })
    end
  end

  # Multiplies the results of the parents named in handler.initialization.parents, then squares
  # the product when initialization.square is true.
  class Combine < TaskerCore::StepHandler::Base
    def call(context)
      SpecSupport::Ledger.record(context.step_uuid)
      parents = context.get_config("parents")
      product = parents.map { |p| context.get_dependency_field(p, "result") }.reduce(:*)
      value = context.get_config("square") ? product * product : product
      success({ "result" => value, "seen" => context.dependency_results.keys.sort })
    end
  end

  # Always fails permanently.
  class Explode < TaskerCore::StepHandler::Base
    def call(context)
      SpecSupport::Ledger.record(context.step_uuid)
      failure("the flux capacitor is empty", error_type: "PermanentError", retryable: false,
                                              error_code: "FLUX_EMPTY")
    end
  end

  # Raises an unexpected exception.
  class Crash < TaskerCore::StepHandler::Base
    def call(_context)
      raise ArgumentError, "bad argument inside the handler"
    end
  end

  # Returns a number JSON cannot carry as a 64-bit integer.
  class Huge < TaskerCore::StepHandler::Base
    def call(_context) = success({ "n" => 2**70 })
  end

  # Fails with a retryable error until the attempt named by initialization.succeed_on_attempt
  # (1-based), recording each attempt's start time in the ledger.
  class Flaky < TaskerCore::StepHandler::Base
    def call(context)
      SpecSupport::Ledger.record("#{context.step_uuid} #{context.retry_count} #{Process.clock_gettime(Process::CLOCK_REALTIME)}")
      attempt = context.retry_count + 1
      return success({ "attempt" => attempt, "was_retry" => context.is_retry? }) if attempt >= context.get_config("succeed_on_attempt")

      if context.get_config("retry_after")
        raise TaskerCore::Errors::RetryableError.new("busy, come back later", retry_after: context.get_config("retry_after"))
      end

      failure("transient failure #{attempt}", error_type: "RetryableError", retryable: true)
    end
  end

  # Records "step_uuid pid started finished" (wall-clock seconds) once it has run, after sleeping
  # initialization.seconds (default 5 ms): the failover spec checks that no step ran twice at once.
  class Timed < TaskerCore::StepHandler::Base
    def call(context)
      started = Time.now.to_f
      sleep(context.get_config("seconds") || 0.005)
      File.open(SpecSupport::Ledger.path, "a") do |f|
        f.write("#{context.step_uuid} #{Process.pid} #{started} #{Time.now.to_f}\n")
      end
      success({ "pid" => Process.pid })
    end
  end

  # Sleeps initialization.seconds on its first attempt only (a hang, or a long job), then succeeds.
  class Sleepy < TaskerCore::StepHandler::Base
    def call(context)
      SpecSupport::Ledger.record("#{context.step_uuid} #{context.retry_count}")
      sleep context.get_config("seconds") if context.retry_count.zero?
      success({ "attempt" => context.retry_count + 1, "pid" => Process.pid })
    end
  end

  # A side effect with a duration: records "step_uuid pid started finished" once the work is done.
  class Chaos < TaskerCore::StepHandler::Base
    def call(context)
      started = Process.clock_gettime(Process::CLOCK_REALTIME)
      sleep(rand * 0.02)
      SpecSupport::Ledger.record("#{context.step_uuid} #{started} #{Process.clock_gettime(Process::CLOCK_REALTIME)}")
      success({ "step" => context.step_name })
    end
  end

  # Tracks how many handlers run at once in this process.
  class Concurrent < TaskerCore::StepHandler::Base
    LOCK = Mutex.new
    @running = 0
    @peak = 0
    class << self
      attr_accessor :running, :peak
    end

    def call(_context)
      LOCK.synchronize do
        self.class.running += 1
        self.class.peak = [self.class.peak, self.class.running].max
      end
      sleep 0.03
      success({ "ok" => true })
    ensure
      LOCK.synchronize { self.class.running -= 1 }
    end
  end

  # Sums items 1..N in chunks, checkpointing after each chunk; records each item it processes.
  # With context hang_after_first_checkpoint, a first attempt hangs after its first checkpoint.
  class Chunked < TaskerCore::StepHandler::Base
    def call(context)
      cursor = context.has_checkpoint? ? context.checkpoint_cursor : 0
      total = (context.accumulated_results || {}).fetch("sum", 0)
      if context.get_input("hang_after_first_checkpoint") && cursor.positive? && context.retry_count.zero?
        sleep 60
      end
      items = context.get_config("items")
      last = [cursor + context.get_config("chunk"), items].min
      (cursor...last).each do |i|
        SpecSupport::Ledger.record("#{context.step_uuid} item#{i} #{Process.pid}")
        total += i + 1
      end
      return success({ "sum" => total, "resumed_from" => cursor }) if last >= items

      checkpoint_yield(cursor: last, items_processed: last, accumulated_results: { "sum" => total })
    end
  end
end

module SpecHandlers
  # Charges a card for the payments workflow (domain events): the first context.fail_times attempts
  # fail retryably, context.decline fails permanently, context.publish_manual publishes an audit
  # event by hand first.
  class ChargeCard < TaskerCore::StepHandler::Base
    def call(context)
      amount = context.get_input("amount")
      if context.get_input("publish_manual")
        context.publish_domain_event("payment.audit_logged", { "amount" => amount }, condition: "always")
      end
      raise TaskerCore::Errors::PermanentError, "card declined" if context.get_input("decline")
      raise TaskerCore::Errors::RetryableError, "gateway timeout" if context.retry_count < context.get_input_or("fail_times", 0)

      success({ "payment_id" => "pay_#{context.task_uuid[-8..]}", "amount" => amount })
    end
  end
end
