# frozen_string_literal: true

require "etc"
require "fileutils"
require "open3"
require "pathname"
require "shellwords"
require "tmpdir"

module TaskerCore
  # A throwaway PostgreSQL cluster for demos and tests.
  #
  # The cluster lives in a fresh temporary directory, listens on a unix socket
  # only (no TCP), and is removed completely by #stop. It uses nothing but the
  # Ruby standard library and the server binaries of the local PostgreSQL
  # installation, so it can run before the native extension is compiled.
  #
  # PostgreSQL refuses to run as root. When this process is root, the cluster
  # is owned by and run as the `postgres` system user instead.
  class EmbeddedPostgres
    # Raised when the cluster cannot be created, started or reached.
    class Error < RuntimeError; end

    DATABASE = "tasker"
    SUPERUSER = "postgres"
    SYSTEM_USER = "postgres"
    PORT_RANGE = (20_000..60_000).freeze
    START_TIMEOUT = 30
    STOP_TIMEOUT = 30
    LOG_TAIL_LINES = 30
    # Unix socket paths are limited to 107 bytes on Linux; the socket file
    # name ".s.PGSQL.NNNNN" takes 15 of them.
    MAX_SOCKET_DIR_LENGTH = 90

    @shared = nil
    @shared_lock = Mutex.new

    class << self
      # Returns the URL of the database to use: TASKER_DATABASE_URL or
      # DATABASE_URL when either is set, otherwise the URL of an embedded
      # cluster that this call starts once per process and that is stopped
      # when the process exits. log_path: where that cluster writes its server log (default: a
      # file in its temporary directory).
      def database_url!(fsync: true, log_path: nil)
        configured = ENV.values_at("TASKER_DATABASE_URL", "DATABASE_URL").find { |url| url && !url.empty? }
        return configured if configured

        @shared_lock.synchronize do
          @shared ||= start_shared(fsync: fsync, log_path: log_path)
        end
        @shared.url
      end

      # The cluster database_url! started in this process, if any.
      def shared = @shared

      private

      def start_shared(fsync:, log_path:)
        server = new(fsync: fsync, log_path: log_path).start
        ENV["TASKER_DATABASE_URL"] = server.url
        stop_at_exit(server)
        exit_on_sigterm
        server
      end

      # Forked children inherit at_exit blocks, so only the process that
      # started the cluster stops it.
      def stop_at_exit(server)
        owner = Process.pid
        at_exit { server.stop if Process.pid == owner }
      end

      # Ruby already unwinds on SIGINT (Interrupt). A default SIGTERM is turned
      # into a normal exit as well so that at_exit handlers run. A handler the
      # application installed itself is left in place.
      def exit_on_sigterm
        previous = trap("TERM") { exit(128 + Signal.list.fetch("TERM")) }
        trap("TERM", previous) unless %w[DEFAULT SYSTEM_DEFAULT].include?(previous)
      end
    end

    attr_reader :data_dir, :socket_dir, :port, :log_path

    def initialize(fsync: true, log_path: nil)
      @fsync = fsync
      @requested_log_path = log_path
      @root_dir = nil
      @started = false
    end

    # Creates, configures and starts the cluster, then creates the `tasker`
    # database. Returns self.
    def start
      raise Error, "embedded PostgreSQL is already started (#{@root_dir})" if @root_dir

      boot
      self
    end

    # A libpq URL that reaches the `tasker` database over the unix socket.
    def url
      raise Error, "embedded PostgreSQL is not started" unless @started

      "postgresql:///#{DATABASE}?host=#{percent_encode(socket_dir)}&port=#{port}&user=#{SUPERUSER}"
    end

    # True while the postmaster of this cluster is alive.
    def running?
      pid = postmaster_pid
      return false unless pid

      Process.kill(0, pid)
      true
    rescue Errno::ESRCH
      false
    rescue Errno::EPERM
      true
    end

    # Stops the server but keeps its data (an outage, for resilience tests); resume starts it again.
    def pause
      raise Error, "embedded PostgreSQL is not started" unless @started

      shutdown_server if running?
      self
    end

    def resume
      raise Error, "embedded PostgreSQL is not started" unless @started

      start_server unless running?
      self
    end

    # Stops the server (fast shutdown, falling back to immediate) and removes
    # the temporary directory. Safe to call more than once.
    def stop
      return unless @root_dir

      shutdown_server if running?
      FileUtils.rm_rf(@root_dir)
      @root_dir = nil
      @started = false
      nil
    end

    private

    # Builds and starts the cluster, removing everything again on failure.
    def boot
      prepare_directories
      init_cluster
      configure_cluster
      start_server
      create_database
    rescue StandardError
      stop
      raise
    end

    # Directories and files.

    def prepare_directories
      @root_dir = Dir.mktmpdir("tasker-pg-", temp_base)
      @socket_dir = @root_dir
      @data_dir = File.join(@root_dir, "data")
      @log_path = @requested_log_path ? File.expand_path(@requested_log_path) : File.join(@root_dir, "server.log")
      @port = rand(PORT_RANGE)
      prepare_log_file
      hand_over(@root_dir) if root?
    end

    # The system temp dir, unless it would make the socket path too long or,
    # when running as root, the postgres user could not reach it.
    def temp_base
      base = Dir.tmpdir
      too_long = base.length + "/tasker-pg-YYYYMMDD-PID-XXXXXX".length > MAX_SOCKET_DIR_LENGTH
      return "/tmp" if too_long || (root? && !traversable_by_others?(base))

      base
    end

    def traversable_by_others?(path)
      Pathname.new(File.expand_path(path)).ascend.all? { |dir| dir.stat.mode.anybits?(0o001) }
    end

    def prepare_log_file
      FileUtils.mkdir_p(File.dirname(@log_path))
      FileUtils.touch(@log_path)
      hand_over(@log_path) if root?
    end

    # Gives a path to the postgres system user.
    def hand_over(path)
      ensure_system_user
      FileUtils.chown_R(SYSTEM_USER, SYSTEM_USER, path)
    end

    def ensure_system_user
      Etc.getpwnam(SYSTEM_USER)
    rescue ArgumentError
      _, status = Open3.capture2e("useradd", "--system", "--user-group", "--no-create-home",
                                  "--shell", "/usr/sbin/nologin", SYSTEM_USER)
      raise Error, "could not create the #{SYSTEM_USER} system user (useradd failed)" unless status.success?
    end

    # Cluster lifecycle.

    def init_cluster
      run!(pg_bin("initdb"), "--no-sync", "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
           "--locale=C", "-D", data_dir, step: "initdb")
    end

    # Appends the settings to postgresql.conf; later lines win.
    def configure_cluster
      File.open(File.join(data_dir, "postgresql.conf"), "a") do |file|
        file.puts("", "# Settings of TaskerCore::EmbeddedPostgres.")
        server_settings.each { |name, value| file.puts("#{name} = #{value}") }
      end
    end

    def server_settings
      settings = {
        "listen_addresses" => "''",
        "unix_socket_directories" => quote_setting(socket_dir),
        "port" => port.to_s,
        "max_connections" => "200"
      }
      settings["shared_preload_libraries"] = "'pg_stat_statements'" if pg_stat_statements?
      settings.merge!(unsafe_speed_settings) unless @fsync
      settings
    end

    def unsafe_speed_settings
      { "fsync" => "off", "synchronous_commit" => "off", "full_page_writes" => "off" }
    end

    def start_server
      run!(pg_bin("pg_ctl"), "-w", "-t", START_TIMEOUT.to_s, "-D", data_dir, "-l", log_path,
           "start", step: "pg_ctl start")
      @started = true
    end

    def create_database
      run!(pg_bin("createdb"), "-h", socket_dir, "-p", port.to_s, "-U", SUPERUSER, DATABASE,
           step: "createdb")
    end

    # Tries a fast, then an immediate shutdown, and kills the postmaster as a
    # last resort so that its directory can be removed.
    def shutdown_server
      %w[fast immediate].each do |mode|
        run(pg_bin("pg_ctl"), "-w", "-t", STOP_TIMEOUT.to_s, "-D", data_dir, "-m", mode, "stop")
        return unless running?
      end
      Process.kill("KILL", postmaster_pid)
    rescue SystemCallError, TypeError
      nil
    end

    def postmaster_pid
      return nil unless data_dir

      Integer(File.foreach(File.join(data_dir, "postmaster.pid")).first.to_s.strip, exception: false)
    rescue SystemCallError
      nil
    end

    # Running commands.

    # Runs a PostgreSQL tool and raises with its output and the server log
    # tail when it fails.
    def run!(*command, step:)
      output, success = run(*command)
      return output if success

      raise Error, failure_message(step, output)
    end

    # Runs a command as the postgres user when root. The command gets its own
    # process group so that a Ctrl-C in the terminal reaches this process but
    # not the server, which is stopped in order by #stop instead. PostgreSQL's
    # programs never inherit a preloaded library (a sanitizer runtime loaded
    # for this process makes them hang).
    # Returns the combined output and whether the command succeeded.
    def run(*command)
      output, status = Open3.capture2e({ "LD_PRELOAD" => nil }, *as_system_user(command), chdir: @root_dir,
                                                                                         pgroup: true, in: File::NULL)
      [output, status.success?]
    rescue SystemCallError => e
      [e.message, false]
    end

    def as_system_user(command)
      return command unless root?
      return ["runuser", "-u", SYSTEM_USER, "--", *command] if runuser?

      ["su", SYSTEM_USER, "-s", "/bin/sh", "-c", Shellwords.join(command)]
    end

    def failure_message(step, output)
      <<~MESSAGE
        embedded PostgreSQL: #{step} failed.
        #{output.strip}
        --- last lines of #{log_path} ---
        #{log_tail}
      MESSAGE
    end

    def log_tail
      File.readlines(log_path).last(LOG_TAIL_LINES).join
    rescue SystemCallError
      "(no server log)"
    end

    # Locating the PostgreSQL installation.

    def pg_bin(name)
      path = File.join(pg_bindir, name)
      return path if File.executable?(path)

      raise Error, "#{path} not found; install the Debian package `postgresql` (the server binaries)."
    end

    def pg_bindir
      @pg_bindir ||= pg_config("--bindir")
    end

    def pg_stat_statements?
      File.exist?(File.join(pg_config("--pkglibdir"), "pg_stat_statements.so"))
    rescue Error
      false
    end

    def pg_config(flag)
      output, status = Open3.capture2("pg_config", flag)
      return output.strip if status.success? && !output.strip.empty?

      raise Error, "pg_config #{flag} failed"
    rescue Errno::ENOENT
      raise Error, "pg_config not found; install the Debian packages `postgresql` and `libpq-dev`."
    end

    # Small helpers.

    def root?
      Process.euid.zero?
    end

    def runuser?
      ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).any? do |dir|
        File.executable?(File.join(dir, "runuser"))
      end
    end

    def quote_setting(value)
      "'#{value.gsub("'", "''")}'"
    end

    # Percent-encodes everything but RFC 3986 unreserved characters; libpq
    # decodes %XX in URI parameters but does not treat "+" as a space.
    def percent_encode(value)
      value.b.gsub(/[^A-Za-z0-9\-._~]/n) { |char| format("%%%02X", char.ord) }
    end
  end
end
