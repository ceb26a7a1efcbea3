# frozen_string_literal: true

require "spec_helper"
require "json"
require "net/http"
require "open3"
require "socket"

RSpec.describe "the worker web server (C, libmicrohttpd) and TaskerCore::Web (Rack)" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  # Returns once the worker's LISTEN connection is up, so two reads a moment apart agree on it.
  def start_worker(web: {}, **rest)
    worker = TaskerCore::Worker.start(template_paths: [templates], namespaces: %w[math], concurrency: 2,
                                      web: { enabled: true, bind_address: "127.0.0.1:0" }.merge(web), **rest)
    sleep_until(timeout: 10) { worker.status["listen_connected"] }
    worker
  end

  def http(method, path, headers = {})
    Net::HTTP.start("127.0.0.1", @port) do |h|
      req = Net::HTTPGenericRequest.new(method, false, true, path, headers)
      h.request(req)
    end
  end

  GET_ROUTES = {
    "/health" => :health_basic, "/health/ready" => :health_ready, "/health/live" => :health_live,
    "/health/detailed" => :health_detailed, "/metrics" => :metrics_prometheus, "/metrics/worker" => :metrics_worker,
    "/metrics/events" => :metrics_events, "/templates" => :templates_list,
    "/templates/cache/stats" => :templates_cache_stats, "/config" => :config_runtime,
    "/templates/math/linear_workflow/1.0.0" => :template_get,
    "/templates/math/linear_workflow/1.0.0/validate" => :template_validate
  }.freeze

  # Fields that legitimately differ between two calls a moment apart.
  def stable(text)
    return text.lines.grep_v(/uptime|duration|_count|_sum|_bucket|pool_connections/).join unless text.start_with?("{")

    JSON.parse(text).then { |j| scrub(j) }
  end

  def scrub(value)
    case value
    when Hash then value.to_h { |k, v| [k, %w[timestamp last_checked duration_ms uptime_seconds captured_at resolved_at message value
                                               cache_hits hits cache_age_seconds access_count average_access_count
                                               total_calls success_count in_use idle_connections open_connections
                                               utilization_percent total_cached total_entries cached cache_misses misses].include?(k) ? :x : scrub(v)] }
    when Array then value.map { |v| scrub(v) }
    else value
    end
  end

  it "serves every route with the FFI's bodies, 503 when not ready, 405 and 404 as JSON" do
    worker = start_worker
    @port = worker.web_port
    expect(@port).to be > 0
    expect(worker.status["web"]).to include("enabled" => true, "bind_address" => "127.0.0.1:#{@port}")
    GET_ROUTES.each do |path, fn|
      res = http("GET", path)
      expect(res.code).to eq("200"), "#{path}: #{res.code} #{res.body}"
      ffi = %i[template_get template_validate].include?(fn) ? TaskerCore::FFI.public_send(fn, "math", "linear_workflow", "1.0.0") : TaskerCore::FFI.public_send(fn)
      expect(stable(res.body)).to eq(stable(ffi)), path
      expect(res["content-type"]).to eq(path == "/metrics" ? "text/plain; version=0.0.4; charset=utf-8" : "application/json")
    end
    expect(JSON.parse(http("GET", "/templates?include_cache_stats=true&namespace=math").body)).to include("cache_stats")

    missing = http("GET", "/templates/math/nope/1.0.0")
    expect(missing.code).to eq("404")
    expect(JSON.parse(missing.body)).to include("error" => "not_found", "message" => /nope/)
    unknown = http("GET", "/nothing/here")
    expect(unknown.code).to eq("404")
    expect(JSON.parse(unknown.body).keys).to contain_exactly("error", "message", "timestamp", "request_id")
    post = http("POST", "/health")
    expect([post.code, post["allow"]]).to eq(["405", "GET, HEAD"])
    expect(JSON.parse(post.body)["error"]).to eq("method_not_allowed")
    # Without an API key the cache mutations are not served over HTTP at all.
    expect(http("DELETE", "/templates/cache").code).to eq("404")
    expect(http("POST", "/templates/math/linear_workflow/1.0.0/refresh").code).to eq("404")

    server = TaskerCore::EmbeddedPostgres.shared
    next unless server

    begin
      server.pause
      res = http("GET", "/health/ready")
      expect(res.code).to eq("503")
      expect(JSON.parse(res.body)["status"]).to eq("not_ready")
      expect(http("GET", "/health/live").code).to eq("200")
    ensure
      server.resume
    end
    sleep_until(timeout: 30, interval: 0.2) { http("GET", "/health/ready").code == "200" }
  end

  it "requires the API key when one is set, and then serves the cache mutations" do
    @port = start_worker(web: { auth: { api_key: "k3y-#{rand(10**6)}" } }).web_port
    key = TaskerCore::Worker.current.instance_variable_get(:@web)["api_key"]
    expect(http("GET", "/health").code).to eq("401")
    expect(http("GET", "/health", "X-API-Key" => "wrong").code).to eq("401")
    expect(http("GET", "/health", "X-API-Key" => key).code).to eq("200")
    cleared = http("DELETE", "/templates/cache", "X-API-Key" => key)
    expect(JSON.parse(cleared.body)).to include("operation" => "clear", "success" => true)
    refreshed = http("POST", "/templates/math/linear_workflow/1.0.0/refresh", "X-API-Key" => key)
    expect(JSON.parse(refreshed.body)).to include("operation" => "refresh", "success" => true)
    expect(http("GET", "/templates/cache", "X-API-Key" => key).code).to eq("405")
    expect(TaskerCore::FFI.config_runtime).not_to include(key)
  end

  it "answers /health from its own threads while Ruby holds the GVL in a busy loop" do
    @port = start_worker.web_port
    out_path = File.join(Dir.tmpdir, "tasker-web-#{Process.pid}.out")
    # curl never runs with the sanitizer runtime preloaded for the extension (rake asan).
    pid = Process.spawn({ "LD_PRELOAD" => nil, "ASAN_OPTIONS" => nil }, "curl", "-s", "-m", "20", "-o", out_path, "-w", "%{http_code}",
                        "http://127.0.0.1:#{@port}/health", out: "#{out_path}.code")
    # A tight loop that never releases the GVL; it ends once curl has exited (WNOHANG never blocks).
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
    finished = nil
    spins = 0
    until finished || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      spins += 1
      finished = Process.waitpid(pid, Process::WNOHANG) if (spins % 100_000).zero?
    end
    unless finished
      Process.kill("KILL", pid)
      Process.wait(pid)
    end
    expect(finished).to eq(pid)
    expect(File.read("#{out_path}.code")).to eq("200")
    expect(JSON.parse(File.read(out_path))["status"]).to eq("healthy")
  ensure
    [out_path, "#{out_path}.code"].each { |f| File.delete(f) if f && File.exist?(f) }
  end

  it "refuses a bind address it cannot use, naming it" do
    expect { start_worker(web: { bind_address: "nowhere:99999" }) }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /bind_address port must be 0\.\.65535/)
    expect { start_worker(web: { bind_address: "203.0.113.1:0" }) }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /could not listen on 203\.0\.113\.1:0/)
    expect(TaskerCore::Worker.start(template_paths: [templates], namespaces: %w[math]).status["web"]).to eq("enabled" => false)
  end

  describe TaskerCore::Web do
    def rack(method, path, query = "")
      TaskerCore::Web.new.call("REQUEST_METHOD" => method, "PATH_INFO" => path, "QUERY_STRING" => query,
                               "SCRIPT_NAME" => "/tasker", "rack.input" => StringIO.new)
    end

    it "serves the same GET routes from the FFI, with 405, 404 and 503" do
      start_worker(web: { enabled: false })
      GET_ROUTES.each do |path, fn|
        status, headers, body = rack("GET", path)
        expect(status).to eq(200), "#{path}: #{body.join}"
        ffi = %i[template_get template_validate].include?(fn) ? TaskerCore::FFI.public_send(fn, "math", "linear_workflow", "1.0.0") : TaskerCore::FFI.public_send(fn)
        expect(stable(body.join)).to eq(stable(ffi)), path
        expect(headers["content-type"]).to eq(path == "/metrics" ? TaskerCore::Web::PROMETHEUS_TYPE : "application/json")
      end
      expect(JSON.parse(rack("GET", "/templates", "include_cache_stats=1").last.join)).to include("cache_stats")
      expect(rack("GET", "/templates/math/nope/1.0.0").first).to eq(404)
      status, headers, = rack("POST", "/health")
      expect([status, headers["allow"]]).to eq([405, "GET, HEAD"])
      status, _, body = rack("GET", "/nothing")
      expect(status).to eq(404)
      expect(JSON.parse(body.join).keys).to contain_exactly("error", "message", "timestamp", "request_id")
      TaskerCore::FFI.worker_stop
      expect(rack("GET", "/health/ready").first).to eq(503) # the claimer thread stopped
    end

    it "answers 503 when no worker runs in the process" do
      TaskerCore::Worker.stop if TaskerCore::Worker.running?
      pid = fork do
        TaskerCore.boot!
        status, _, body = TaskerCore::Web.call("REQUEST_METHOD" => "GET", "PATH_INFO" => "/health")
        exit!(status == 503 && body.join.include?("Worker system not running") ? 0 : 1)
      end
      Process.wait(pid)
      expect($?.exitstatus).to eq(0)
    end
  end

  # A socket the server has closed reads EOF (or is reset).
  def closed_by_server?(sock)
    sock.read_nonblock(1, exception: false).nil?
  rescue Errno::ECONNRESET, Errno::EPIPE, IOError
    true
  end

  it "answers probes while one client holds 64 idle connections, and closes that client's extra and idle ones" do
    worker = start_worker(web: { connection_timeout_seconds: 2 })
    @port = worker.web_port
    # 64 connections from one client (127.0.0.2): half idle, half stuck inside a request (slowloris).
    flood = Array.new(64) do |i|
      sock = Socket.tcp("127.0.0.1", @port, "127.0.0.2", 0, connect_timeout: 5)
      sock.write("GET /health HTTP/1.1\r\nHost: x\r\n") if i.odd?
      sock
    rescue SystemCallError
      nil
    end.compact
    begin
      # Another client is answered at once, probes included, while the flood holds its connections.
      %w[/health/ready /health/live /metrics].each do |path|
        res = Net::HTTP.start("127.0.0.1", @port, open_timeout: 5, read_timeout: 5) { |h| h.get(path) }
        expect(res.code).to eq("200"), "#{path}: #{res.code}"
      end
      # The flooding client keeps at most its share; the idle ones are closed after the timeout.
      sleep_until(timeout: 5) { flood.count { |sock| closed_by_server?(sock) } >= 64 - 16 }
      sleep_until(timeout: 15) { flood.all? { |sock| closed_by_server?(sock) } }
      expect(http("GET", "/health").code).to eq("200")
    ensure
      flood.each(&:close)
    end
  end

  it "refuses web connection settings out of range, naming them" do
    expect { TaskerCore::Worker.start(namespaces: %w[math], web: { enabled: true, bind_address: "127.0.0.1:0", threads: 0 }) }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /web option threads must be an integer between 1 and 64/)
  end
end
