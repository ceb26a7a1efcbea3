# frozen_string_literal: true

module Bench
  module Peers
    # What a peer's job does, the same for every peer, and how it tells the benchmark run about it.
    #
    # A job gets (mode, id, step):
    #   "drain"  does nothing but note the time of its start and end in this process's memory;
    #            the totals are written once, when the worker process exits.
    #   "pickup" writes "start ID T" when it starts.
    #   "chain"  enqueues the next step (step + 1) through the peer's own API until step CHAIN_STEPS,
    #            which writes "done ID T" when it ends.
    # T is CLOCK_MONOTONIC, one clock for every process on the machine. Lines go to the file
    # descriptor named by BENCH_PEER_EVENTS_FD (a pipe to the run), each in one write.
    module Probe
      CHAIN_STEPS = 4

      @lock = Mutex.new
      @count = 0
      @first = nil
      @last = nil

      class << self
        def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

        # Runs one job; the block enqueues the next step of a chain.
        def perform(mode, id, step)
          case mode
          when "drain"
            started = now
            @lock.synchronize do
              @first = started if @first.nil? || started < @first
              @count += 1
              @last = now
            end
          when "pickup"
            emit("start #{id} #{now}")
          when "chain"
            if step < CHAIN_STEPS
              yield step + 1
            else
              emit("done #{id} #{now}")
            end
          else
            raise ArgumentError, "unknown benchmark job mode #{mode.inspect}"
          end
        end

        # Called once the worker has booted.
        def ready = emit("ready #{Process.pid}")

        # Installs the exit report of the drain counters.
        def report_at_exit
          at_exit { @lock.synchronize { emit("drain #{Process.pid} #{@count} #{@first || 0} #{@last || 0}") } }
        end

        def emit(line)
          @io ||= IO.for_fd(Integer(ENV.fetch("BENCH_PEER_EVENTS_FD")), autoclose: false)
          @io.syswrite("#{line}\n")
        end
      end
    end
  end
end
