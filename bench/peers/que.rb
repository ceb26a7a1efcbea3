# frozen_string_literal: true

# Que 2 as a peer of the benchmark.
#
# The run (bench/peers.rb) loads this file to migrate Que's schema and enqueue; a worker process is
# Que's own executable with its default 6 worker threads, requiring this file:
#
#   que --log-level error bench/peers/que.rb
#
# with BENCH_PEER_WORKER=que, BENCH_PEER_DATABASE_URL and BENCH_PEER_EVENTS_FD set. Que locks jobs
# with advisory locks and learns of new ones through LISTEN/NOTIFY.
require_relative "probe"

module Bench
  module Peers
    class Que
      def self.load
        require "pg"
        require "connection_pool"
        require "que"
        job_class
        nil
      rescue LoadError => e
        "gem not loadable (#{e.message}); enable the bench_peers group of the Gemfile"
      end

      # The job, defined once Que is loaded (Que::Job is its superclass).
      def self.job_class
        return Bench::Peers::QueJob if defined?(Bench::Peers::QueJob)

        job = Class.new(::Que::Job) do
          def run(mode, id, step)
            Probe.perform(mode, id, step) { |following| self.class.enqueue(mode, id, following) }
          end
        end
        Bench::Peers.const_set(:QueJob, job)
      end

      def name = "que"
      def title = "Que"
      def label = "#{title} #{Gem.loaded_specs['que']&.version} (6 worker threads per process)"
      def database? = true
      def missing = self.class.load

      def prepare(url)
        @pool = ConnectionPool.new(size: 1) { PG.connect(url) }
        ::Que.connection = @pool
        ::Que.logger = Logger.new(File::NULL)
        ::Que.migrate!(version: ::Que::Migrations::CURRENT_VERSION)
      end

      def worker_command(url)
        [{ "BENCH_PEER_WORKER" => "que", "BENCH_PEER_DATABASE_URL" => url }, RbConfig.ruby,
         Gem.bin_path("que", "que"), "--log-level", "error", __FILE__]
      end

      def enqueue(mode, id, step) = self.class.job_class.enqueue(mode, id, step)

      # Enqueues n drain jobs with Que.bulk_enqueue in one transaction that commits after the
      # block returns; with a NOTIFY per job, as Que.enqueue does, so that both workers wake.
      def enqueue_drain(count)
        ::Que.transaction do
          ::Que.bulk_enqueue(notify: true) { count.times { |i| enqueue("drain", i, 0) } }
          yield
        end
      end

      def remaining = Integer(::Que.execute("SELECT count(*) AS n FROM que_jobs").first[:n])

      def close
        ::Que.connection = nil
        @pool&.shutdown(&:close)
      end
    end
  end
end

# Required by the que executable in a worker process.
if ENV["BENCH_PEER_WORKER"] == "que"
  reason = Bench::Peers::Que.load
  abort reason if reason

  url = ENV.fetch("BENCH_PEER_DATABASE_URL")
  Que.connection = ConnectionPool.new(size: 10) { PG.connect(url) }
  Bench::Peers::Probe.report_at_exit
  Bench::Peers::Probe.ready
end
