# frozen_string_literal: true

# Delayed::Job (delayed_job + delayed_job_active_record) as a peer of the benchmark.
#
# The run (bench/peers.rb) loads this file to create the table and enqueue; a worker process runs
#
#   ruby bench/peers/delayed_job.rb
#
# with BENCH_PEER_DATABASE_URL and BENCH_PEER_EVENTS_FD set: Delayed::Worker#start, the
# documented in-process worker (the gem's own script needs a Rails application), one job at a
# time, polling every SLEEP_DELAY seconds when it finds nothing (its default is 5 s).
require_relative "probe"

module Bench
  module Peers
    class DelayedJob
      SLEEP_DELAY = 0.05

      # The job: a plain object, serialized into the row as YAML by Delayed::Job.
      Job = Struct.new(:mode, :id, :step) do
        def perform
          Probe.perform(mode, id, step) { |following| Delayed::Job.enqueue(Job.new(mode, id, following)) }
        end
      end

      def self.load
        require "logger"
        require "delayed_job"
        require "delayed_job_active_record"
        nil
      rescue LoadError => e
        "gem not loadable (#{e.message}); enable the bench_peers group of the Gemfile"
      end

      def self.connect(url)
        ActiveRecord::Base.establish_connection(url)
        ActiveRecord::Base.logger = nil
        Delayed::Worker.logger = Logger.new(File::NULL)
      end

      def name = "delayed_job"
      def title = "Delayed::Job"
      def label = "#{title} #{Gem.loaded_specs['delayed_job']&.version} (1 job at a time per process)"
      def database? = true
      def missing = self.class.load

      # The table and index of the gem's generator.
      def prepare(url)
        self.class.connect(url)
        ActiveRecord::Schema.verbose = false
        ActiveRecord::Schema.define do
          create_table :delayed_jobs do |t|
            t.integer :priority, default: 0, null: false
            t.integer :attempts, default: 0, null: false
            t.text :handler, null: false
            t.text :last_error
            t.datetime :run_at
            t.datetime :locked_at
            t.datetime :failed_at
            t.string :locked_by
            t.string :queue
            t.timestamps null: true
          end
          add_index :delayed_jobs, %i[priority run_at], name: "delayed_jobs_priority"
        end
      end

      def worker_command(url)
        [{ "BENCH_PEER_DATABASE_URL" => url }, RbConfig.ruby, __FILE__]
      end

      def enqueue(mode, id, step) = Delayed::Job.enqueue(Job.new(mode, id, step))

      # Enqueues n drain jobs in one transaction that commits after the block returns.
      def enqueue_drain(count)
        ActiveRecord::Base.transaction do
          count.times { |i| enqueue("drain", i, 0) }
          yield
        end
      end

      def remaining = Delayed::Job.count

      def close = ActiveRecord::Base.connection_handler.clear_all_connections!
    end
  end
end

if $PROGRAM_NAME == __FILE__
  reason = Bench::Peers::DelayedJob.load
  abort reason if reason

  Bench::Peers::DelayedJob.connect(ENV.fetch("BENCH_PEER_DATABASE_URL"))
  Delayed::Worker.sleep_delay = Bench::Peers::DelayedJob::SLEEP_DELAY
  Bench::Peers::Probe.report_at_exit
  worker = Delayed::Worker.new(quiet: true)
  Bench::Peers::Probe.ready
  worker.start
end
