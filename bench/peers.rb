# frozen_string_literal: true

require "rbconfig"
require_relative "peers/probe"
require_relative "peers/delayed_job"
require_relative "peers/que"
require_relative "peers/sidekiq"

module Bench
  # Other job systems measured in the same run as the engine, with the same three figures: the
  # drain of 10,000 no-op jobs by 2 worker processes, pickup (enqueue returned -> job start, one at
  # a time, after a random pause) and a 4-step chain (each job enqueues the next; enqueue of the
  # first -> end of the last).
  #
  # The PostgreSQL peers each get a throwaway database on the benchmark's server (same settings);
  # Sidekiq gets a throwaway redis-server. A peer whose gem cannot be loaded (the Gemfile's optional
  # bench_peers group) or whose server is missing is skipped with its reason.
  module Peers
    ALL = [DelayedJob, Que, Sidekiq].freeze
    WORKERS = 2
    BOOT_TIMEOUT = 60
    DRAIN_TIMEOUT = 600
    JOB_TIMEOUT = 30
    STOP_TIMEOUT = 60
    # Before each pickup and chain sample, a random pause of up to this many seconds: a sample that
    # followed the previous job at once would find a polling worker (Delayed::Job) still awake from
    # it, and measure its re-poll after a job instead of its pickup.
    IDLE_PAUSE = 0.1

    # Measures every peer; returns { name => figures or { "skipped" => reason } or { "error" => message } }.
    class Runner
      def initialize(url:, samples:, drain_jobs:, log_dir:, peers: ALL.map(&:new))
        @url = url
        @samples = samples
        @warmup = [samples / 10, 10].max
        @drain_jobs = drain_jobs
        @log_dir = log_dir
        @peers = peers
      end

      def call
        puts "peers: #{WORKERS} worker processes each, #{@drain_jobs} no-op jobs drained, #{@samples} pickups " \
             "and #{@samples} 4-step chains one at a time"
        @peers.to_h do |peer|
          reason = peer.missing
          result =
            if reason
              { "label" => peer.title, "skipped" => reason }
            else
              measure(peer)
            end
          puts "  #{line(peer, result)}"
          [peer.name, result]
        end.tap { puts }
      end

      private

      def line(peer, result)
        return "#{peer.title}: skipped, #{result['skipped']}" if result["skipped"]
        return "#{peer.title}: failed, #{result['error']}" if result["error"]

        format("%-60s drain %7.0f jobs/s  pickup P50 %7.2f ms  chain P50 %7.2f ms", result["label"],
               result["drain"]["jobs_per_s"], result["pickup_ms"]["p50"], result["chain_ms"]["p50"])
      end

      def measure(peer)
        database = "bench_peer_#{peer.name}" if peer.database?
        peer_url = database ? url_for(database) : @url
        events = nil
        workers = []
        begin
          create_database(database) if database
          peer.prepare(peer_url)
          events = Events.new
          result = { "label" => peer.label }
          result["drain"] = drain(peer, peer_url, events, workers)
          workers.concat(start_workers(peer, peer_url, events))
          events.wait_ready(WORKERS, BOOT_TIMEOUT)
          pickup = pickups(peer, events)
          result["pickup_ms"] = Stats.summary(pickup.map(&:first))
          result["enqueue_call_to_start_ms"] = Stats.summary(pickup.map(&:last))
          result["chain_ms"] = Stats.summary(chains(peer, events))
          result
        ensure
          workers.each { |pid| stop(pid) }
          events&.close
          peer.close
          drop_database(database) if database
        end
      rescue StandardError => e
        { "label" => peer.title, "error" => "#{e.class}: #{e.message}" }
      end

      # The jobs become visible once both workers have booted; the clock runs from the first job's
      # start to the last job's end, both read inside the workers.
      def drain(peer, peer_url, events, workers)
        peer.enqueue_drain(@drain_jobs) do
          workers.concat(start_workers(peer, peer_url, events))
          events.wait_ready(WORKERS, BOOT_TIMEOUT)
        end
        deadline = Probe.now + DRAIN_TIMEOUT
        until peer.remaining.zero?
          raise "#{peer.remaining} of #{@drain_jobs} jobs left after #{DRAIN_TIMEOUT} s" if Probe.now > deadline

          sleep 0.25
        end
        workers.each { |pid| stop(pid) }
        workers.clear
        totals = events.drain_totals(WORKERS, STOP_TIMEOUT)
        count = totals.sum { |t| t[:count] }
        raise "the workers ran #{count} of #{@drain_jobs} jobs" unless count == @drain_jobs

        ran = totals.select { |t| t[:count].positive? }
        seconds = ran.map { |t| t[:last] }.max - ran.map { |t| t[:first] }.min
        { "jobs" => count, "seconds" => seconds, "jobs_per_s" => count / seconds,
          "per_worker" => totals.map { |t| t[:count] } }
      end

      # Pickup from the enqueue call's return, as the engine's pickup is from create_task's return (a
      # job can start before its enqueue call has returned: then the figure is negative); the time
      # from the call's start is kept beside it.
      def pickups(peer, events)
        (-@warmup...@samples).filter_map do |i|
          id = "p#{i}"
          sleep(rand * IDLE_PAUSE)
          called = Probe.now
          peer.enqueue("pickup", id, 0)
          enqueued = Probe.now
          started = events.wait_for("start", id, JOB_TIMEOUT)
          [(started - enqueued) * 1000, (started - called) * 1000] unless i.negative?
        end
      end

      def chains(peer, events)
        (-@warmup...@samples).filter_map do |i|
          id = "c#{i}"
          sleep(rand * IDLE_PAUSE)
          t0 = Probe.now
          peer.enqueue("chain", id, 1)
          done = events.wait_for("done", id, JOB_TIMEOUT)
          (done - t0) * 1000 unless i.negative?
        end
      end

      def start_workers(peer, peer_url, events)
        env, *argv = peer.worker_command(peer_url)
        log = File.join(@log_dir, "#{peer.name}.log")
        Array.new(WORKERS) do
          Process.spawn(env.merge("BENCH_PEER_EVENTS_FD" => events.writer.fileno.to_s), *argv,
                        events.writer => events.writer, out: [log, "a"], err: [log, "a"], chdir: ROOT)
        end
      end

      def stop(pid)
        Process.kill("TERM", pid)
        deadline = Probe.now + STOP_TIMEOUT
        until Process.wait(pid, Process::WNOHANG)
          if Probe.now > deadline
            Process.kill("KILL", pid)
            Process.wait(pid)
            break
          end
          sleep 0.05
        end
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end

      def create_database(name)
        drop_database(name)
        Sql.rows(@url, "CREATE DATABASE #{name}")
      end

      def drop_database(name) = Sql.rows(@url, "DROP DATABASE IF EXISTS #{name} WITH (FORCE)")

      # The benchmark's URL with another database name.
      def url_for(database)
        @url.sub(%r{\A([a-z]+://[^/?]*)(/[^?]*)?}) { "#{Regexp.last_match(1)}/#{database}" }
      end
    end

    # The lines the workers write (see Probe), read by a thread of the run.
    class Events
      attr_reader :writer

      def initialize
        @reader, @writer = IO.pipe
        @lock = Mutex.new
        @changed = ConditionVariable.new
        @lines = []
        @thread = Thread.new do
          @reader.each_line do |l|
            @lock.synchronize do
              @lines << l.split
              @changed.broadcast
            end
          end
        end
      end

      def wait_ready(count, timeout)
        take(timeout, "#{count} workers booted") do
          ready = @lines.select { |l| l[0] == "ready" }
          next if ready.size < count

          @lines -= ready
        end
      end

      # The time of the event (kind, id).
      def wait_for(kind, id, timeout)
        take(timeout, "#{kind} of job #{id}") do
          line = @lines.find { |l| l[0] == kind && l[1] == id }
          next unless line

          @lines.delete(line)
          Float(line[2])
        end
      end

      def drain_totals(count, timeout)
        take(timeout, "drain totals of #{count} workers") do
          totals = @lines.select { |l| l[0] == "drain" }
          next if totals.size < count

          @lines -= totals
          totals.map { |l| { count: Integer(l[2]), first: Float(l[3]), last: Float(l[4]) } }
        end
      end

      def close
        @writer.close unless @writer.closed?
        @thread.join(5)
        @reader.close unless @reader.closed?
      end

      private

      def take(timeout, what)
        deadline = Probe.now + timeout
        @lock.synchronize do
          loop do
            found = yield
            return found unless found.nil?

            left = deadline - Probe.now
            raise "no #{what} within #{timeout} s (see the peer's log under tmp/bench/peers/)" if left <= 0

            @changed.wait(@lock, left)
          end
        end
      end
    end

    # The peers' table, printed after the main one: each peer beside the engine's figures of the
    # same run, with the ratio ours / theirs (above 1 for the drain, below 1 for the latencies is
    # better for us).
    def self.table(peers, ours)
      rows = [["tasker_core (this run)", fmt(ours[:drain], "%.0f"), fmt(ours[:pickup], "%.2f"),
               fmt(ours[:chain], "%.2f")]]
      peers.each_value do |p|
        next rows << [p["label"], "skipped: #{p['skipped']}", "", ""] if p["skipped"]
        next rows << [p["label"], "failed: #{p['error']}", "", ""] if p["error"]

        rows << [p["label"], beside(p["drain"]["jobs_per_s"], ours[:drain], "%.0f"),
                 beside(p["pickup_ms"]["p50"], ours[:pickup], "%.2f"), beside(p["chain_ms"]["p50"], ours[:chain], "%.2f")]
      end
      [["peers, same run (ours / theirs)", "drain no-op jobs/s", "pickup P50 ms", "4-step chain P50 ms"], *rows]
    end

    def self.fmt(value, pattern) = value ? format(pattern, value) : "-"

    def self.beside(theirs, ours, pattern)
      return format("#{pattern} (starts before enqueue returns)", theirs) unless theirs.positive?

      ours ? format("#{pattern} (%.2fx)", theirs, ours / theirs) : format(pattern, theirs)
    end
  end
end
