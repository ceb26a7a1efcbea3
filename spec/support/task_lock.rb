# frozen_string_literal: true

module SpecSupport
  # Holds row locks on the given tasks in an open transaction of its own until released: a flush
  # that applies a result of one of them waits, and the results submitted meanwhile wait in memory.
  class TaskLock
    def initialize(url, task_uuids)
      @io = IO.popen({ "LD_PRELOAD" => nil }, ["psql", url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"], "r+")
      @io.puts "BEGIN;"
      @io.puts "SELECT 1 FROM tasker.tasks WHERE task_uuid IN (#{task_uuids.map { |u| "'#{u}'" }.join(',')}) FOR UPDATE;"
      @io.puts "SELECT 'locked';"
      @io.flush
      loop do
        line = @io.gets or raise "psql ended before it held the locks"
        break if line.chomp == "locked"
      end
    end

    def release
      return unless @io

      @io.puts "COMMIT;"
      @io.close_write
      @io.read
      @io.close
      @io = nil
    end
  end
end
