# frozen_string_literal: true

require_relative "../../lib/tasker_core/embedded_postgres"

module SpecSupport
  # A primary and a hot standby streaming from it with synchronous replication, both throwaway
  # clusters on this machine: a commit the primary acknowledged is on the standby. The failover
  # spec kills the primary (an immediate shutdown, as a crash) and promotes the standby.
  class PostgresPair
    # An embedded cluster with the operations the pair needs.
    class Server < TaskerCore::EmbeddedPostgres
      # Starts this cluster as a hot standby of primary: a base backup (pg_basebackup -R writes
      # standby.signal and primary_conninfo), under application_name as a synchronous standby.
      def start_standby_of(primary, application_name:)
        prepare_directories
        run!(pg_bin("pg_basebackup"), "-D", data_dir, "-R", "-X", "stream", "-c", "fast",
             "-d", "host=#{primary.socket_dir} port=#{primary.port} user=#{SUPERUSER} " \
                   "application_name=#{application_name}",
             step: "pg_basebackup")
        configure_cluster
        append_settings("primary_conninfo" => quote_setting("host=#{primary.socket_dir} port=#{primary.port} " \
                                                            "user=#{SUPERUSER} application_name=#{application_name}"))
        start_server
        self
      rescue StandardError
        stop
        raise
      end

      # Appends settings to postgresql.conf and reloads them.
      def configure(settings)
        append_settings(settings.transform_values { |v| quote_setting(v) })
        run!(pg_bin("pg_ctl"), "-D", data_dir, "reload", step: "pg_ctl reload")
      end

      # A crash: no checkpoint, sessions cut at once.
      def kill!
        run!(pg_bin("pg_ctl"), "-D", data_dir, "-m", "immediate", "stop", step: "pg_ctl stop -m immediate")
      end

      def promote!
        run!(pg_bin("pg_ctl"), "-w", "-D", data_dir, "promote", step: "pg_ctl promote")
      end

      private

      def append_settings(settings)
        File.open(File.join(data_dir, "postgresql.conf"), "a") do |file|
          settings.each { |name, value| file.puts("#{name} = #{value}") }
        end
      end
    end

    attr_reader :primary, :standby

    def start
      @primary = Server.new(fsync: false).start
      @standby = Server.new(fsync: false).start_standby_of(@primary, application_name: "tasker_standby")
      # Synchronous from here on: every commit waits for the standby's acknowledgement.
      @primary.configure("synchronous_standby_names" => "tasker_standby", "synchronous_commit" => "on")
      self
    end

    # Both hosts in one libpq URL: whichever accepts writes is used.
    def url
      hosts = [primary, standby].map { |s| percent_encode(s.socket_dir) }.join(",")
      ports = [primary, standby].map(&:port).join(",")
      "postgresql:///#{TaskerCore::EmbeddedPostgres::DATABASE}?host=#{hosts}&port=#{ports}" \
        "&user=#{TaskerCore::EmbeddedPostgres::SUPERUSER}&target_session_attrs=read-write"
    end

    def stop
      [standby, primary].compact.each(&:stop)
    end

    private

    def percent_encode(value)
      value.b.gsub(/[^A-Za-z0-9\-._~]/n) { |char| format("%%%02X", char.ord) }
    end
  end
end
