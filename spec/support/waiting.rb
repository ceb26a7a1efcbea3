# frozen_string_literal: true

module SpecSupport
  module Waiting
    TERMINAL = %w[complete error cancelled resolved_manually].freeze

    # Waits (LISTEN; a status re-read every 2 s) until the task reaches a terminal state; fails after timeout seconds.
    def wait_for_task(task_uuid, timeout: 15)
      task = TaskerCore::Client.wait_for_task(task_uuid, timeout: timeout)
      raise "task #{task_uuid} still #{TaskerCore::Client.get_task(task_uuid)['status']} after #{timeout}s" unless task

      task
    end

    def sleep_until(timeout: 10, interval: 0.01)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      until (value = yield)
        raise "condition not met within #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep interval
      end
      value
    end

    def steps_by_name(task_uuid)
      TaskerCore::Client.list_task_steps(task_uuid).to_h { |s| [s["name"], s] }
    end
  end
end
