# frozen_string_literal: true

require_relative "../../lib/tasker_core/embedded_postgres"
require "open3"
require "timeout"

RSpec.describe TaskerCore::EmbeddedPostgres do
  lib_dir = File.expand_path("../../lib", __dir__)

  # The socket directory named by the host parameter of a URL.
  def socket_dir_of(url)
    url[/[?&]host=([^&]+)/, 1].gsub(/%(\h\h)/) { Regexp.last_match(1).hex.chr }
  end

  def port_of(url)
    url[/[?&]port=(\d+)/, 1]
  end

  # Processes whose command line mentions the given path, as seen in /proc.
  def processes_mentioning(path)
    Dir.glob("/proc/[0-9]*/cmdline").select do |cmdline|
      File.binread(cmdline).include?(path)
    rescue SystemCallError
      false
    end
  end

  it "serves the tasker database on a unix socket only and cleans up on stop" do
    server = described_class.new(fsync: false)
    begin
      server.start
      url = server.url
      expect(url).to start_with("postgresql:///tasker?host=")
      expect(server).to be_running

      output, status = Open3.capture2e("psql", url, "-Atc", "select 1")
      expect(status).to be_success, output
      expect(output.strip).to eq("1")

      tcp_url = "postgresql://postgres@127.0.0.1:#{port_of(url)}/tasker?connect_timeout=3"
      output, status = Open3.capture2e("psql", tcp_url, "-Atc", "select 1")
      expect(status).not_to be_success, "TCP connection unexpectedly worked: #{output}"
    ensure
      server.stop
    end

    expect(server).not_to be_running
    expect(File).not_to exist(server.data_dir)
    expect(File).not_to exist(socket_dir_of(url)) if url
    expect { server.stop }.not_to raise_error
  end

  it "stops the cluster of database_url! when the process is interrupted" do
    # The child resets SIGINT to Ruby's default handler because a parent
    # started in the background may have left the signal ignored.
    child = <<~RUBY
      trap("INT", "DEFAULT")
      require "tasker_core/embedded_postgres"
      puts TaskerCore::EmbeddedPostgres.database_url!(fsync: false)
      $stdout.flush
      sleep
    RUBY
    env = { "TASKER_DATABASE_URL" => nil, "DATABASE_URL" => nil }
    reader, writer = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, "-I", lib_dir, "-e", child, out: writer, err: File::NULL)
    writer.close

    url = Timeout.timeout(30) { reader.gets }.to_s.strip
    expect(url).to start_with("postgresql:///tasker?host=")
    socket_dir = socket_dir_of(url)
    expect(File).to exist(File.join(socket_dir, "data"))

    Process.kill("INT", pid)
    _, status = Timeout.timeout(30) { Process.wait2(pid) }
    pid = nil

    expect(status).not_to be_success
    expect(File).not_to exist(File.join(socket_dir, "data"))
    expect(File).not_to exist(socket_dir)
    expect(processes_mentioning(socket_dir)).to be_empty
  ensure
    reader&.close
    # A child left running after a failure still removes its cluster on TERM.
    if pid
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
  end
end
