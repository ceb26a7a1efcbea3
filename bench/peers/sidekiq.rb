# frozen_string_literal: true

# Sidekiq as a peer of the benchmark, on a throwaway redis-server of its own (a unix socket,
# persistence off: in memory, not durable).
#
# The run (bench/peers.rb) loads this file to start Redis and enqueue; a worker process is
# Sidekiq's own executable with its default 5 threads, requiring this file:
#
#   sidekiq -r bench/peers/sidekiq.rb
#
# with BENCH_PEER_WORKER=sidekiq, REDIS_URL and BENCH_PEER_EVENTS_FD set.
require "fileutils"
require "tmpdir"
require_relative "probe"

module Bench
  module Peers
    class Sidekiq
      START_TIMEOUT = 10

      def self.load
        return "redis-server not on PATH" unless server_binary

        require "sidekiq"
        require "sidekiq/api"
        job_class
        nil
      rescue LoadError => e
        "gem not loadable (#{e.message}); enable the bench_peers group of the Gemfile"
      end

      def self.server_binary
        ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |dir| File.join(dir, "redis-server") }
           .find { |path| File.executable?(path) }
      end

      # The job, defined once Sidekiq is loaded.
      def self.job_class
        return Bench::Peers::SidekiqJob if defined?(Bench::Peers::SidekiqJob)

        job = Class.new do
          include ::Sidekiq::Job

          def perform(mode, id, step)
            Probe.perform(mode, id, step) { |following| self.class.perform_async(mode, id, following) }
          end
        end
        Bench::Peers.const_set(:SidekiqJob, job)
      end

      def name = "sidekiq"
      def title = "Sidekiq"
      def label = "#{title} #{Gem.loaded_specs['sidekiq']&.version} (5 threads per process; Redis, not durable)"
      def database? = false
      def missing = self.class.load

      def prepare(_url)
        @dir = Dir.mktmpdir("bench-redis")
        socket = File.join(@dir, "redis.sock")
        @server = Process.spawn(self.class.server_binary, "--port", "0", "--unixsocket", socket, "--save", "",
                                "--appendonly", "no", "--dir", @dir, out: File::NULL, err: File::NULL)
        deadline = Probe.now + START_TIMEOUT
        until File.socket?(socket)
          raise "redis-server did not open #{socket}" if Probe.now > deadline

          sleep 0.02
        end
        @redis_url = "unix://#{socket}"
        ::Sidekiq.configure_client do |config|
          config.logger.level = Logger::ERROR
          config.redis = { url: @redis_url }
        end
        ::Sidekiq.redis { |r| r.call("PING") }
      end

      def worker_command(_url)
        [{ "BENCH_PEER_WORKER" => "sidekiq", "REDIS_URL" => @redis_url }, RbConfig.ruby,
         Gem.bin_path("sidekiq", "sidekiq"), "-r", __FILE__]
      end

      def enqueue(mode, id, step) = self.class.job_class.perform_async(mode, id, step)

      # Pushes n drain jobs (push_bulk) once the block has returned: Redis has no transaction to
      # hold them back while the workers boot.
      def enqueue_drain(count)
        yield
        self.class.job_class.perform_bulk(Array.new(count) { |i| ["drain", i, 0] }, batch_size: 10_000)
      end

      # Jobs not yet fetched (a fetched job finishes before its worker process exits on TERM).
      def remaining = ::Sidekiq::Queue.new.size

      def close
        if @server
          Process.kill("TERM", @server)
          Process.wait(@server)
        end
        FileUtils.remove_entry(@dir) if @dir
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end
    end
  end
end

# Required by the sidekiq executable in a worker process.
if ENV["BENCH_PEER_WORKER"] == "sidekiq"
  reason = Bench::Peers::Sidekiq.load
  abort reason if reason

  Bench::Peers::Probe.report_at_exit
  Sidekiq.configure_server do |config|
    config.logger.level = Logger::ERROR
    config.on(:startup) { Bench::Peers::Probe.ready }
  end
end
