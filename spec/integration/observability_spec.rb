# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require "rbconfig"

RSpec.describe "worker observability (TaskerCore::Observability and the FFI services)" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:obs) { TaskerCore::Observability }
  let(:planted) { "pl4nted-s3cret-#{rand(1_000_000)}" }

  def start_worker(**observability)
    TaskerCore::Worker.start(template_paths: [templates], namespaces: %w[math resilience], concurrency: 2,
                             observability: observability)
  end

  def run_tasks
    ok = TaskerCore::Client.create_task(name: "linear_workflow", namespace: "math", context: { even_number: 6 })
    bad = TaskerCore::Client.create_task(name: "failing_workflow", namespace: "math", context: { even_number: 2 })
    tasks = [wait_for_task(ok["task_uuid"]), wait_for_task(bad["task_uuid"])]
    # The worker counts a result after its round trip returns, a moment after the task finished.
    sleep_until(timeout: 10) do
      m = JSON.parse(TaskerCore::FFI.metrics_worker)["metrics"]
      m["tasks_completed_total_math"]["value"] + m["tasks_failed_total_math"]["value"] == 2
    end
    tasks
  end

  it "answers all 15 FFI functions with the JSON shapes of SPEC 6.2, built strictly by every Ruby method" do
    start_worker(config: { "common" => { "telemetry" => { "api_token" => planted, "enabled" => true } } })
    done, failed = run_tasks
    expect(done["status"]).to eq("complete")
    expect(failed["status"]).to eq("error")

    answers = {
      health_basic: TaskerCore::FFI.health_basic, health_live: TaskerCore::FFI.health_live,
      health_ready: TaskerCore::FFI.health_ready, health_detailed: TaskerCore::FFI.health_detailed,
      metrics_worker: TaskerCore::FFI.metrics_worker, metrics_prometheus: TaskerCore::FFI.metrics_prometheus,
      metrics_events: TaskerCore::FFI.metrics_events, templates_list: TaskerCore::FFI.templates_list(true),
      template_get: TaskerCore::FFI.template_get("math", "linear_workflow", "1.0.0"),
      template_validate: TaskerCore::FFI.template_validate("math", "linear_workflow", "1.0.0"),
      templates_cache_stats: TaskerCore::FFI.templates_cache_stats,
      template_refresh: TaskerCore::FFI.template_refresh("math", "linear_workflow", "1.0.0"),
      templates_cache_clear: TaskerCore::FFI.templates_cache_clear,
      config_runtime: TaskerCore::FFI.config_runtime, config_environment: TaskerCore::FFI.config_environment
    }
    expect(answers.size).to eq(15)
    answers.each { |name, text| expect(text).to be_a(String), name.to_s }
    (answers.keys - %i[metrics_prometheus config_environment]).each { |name| expect { JSON.parse(answers[name]) }.not_to raise_error }
    expect(answers[:config_environment]).to eq(TaskerCore.config.environment)
    answers.each { |name, text| expect(text).not_to include(planted), "#{name} leaked the planted secret" }
    expect(answers.values.join).not_to include(URI.parse(DATABASE_URL).password || planted)

    worker_id = "worker_#{TaskerCore::Worker.current.status['worker_uuid']}"
    basic = obs.health_basic
    expect([basic.status, basic.worker_id]).to eq(["healthy", worker_id])
    expect(obs.health_live.status).to eq("alive")

    ready = obs.health_ready
    expect(ready.status).to eq("ready")
    expect(ready.checks.keys).to contain_exactly(:database, :command_processor, :queue_processing)
    expect(ready.checks[:database].status).to eq("healthy")
    expect(ready.checks[:command_processor].message).to include("claimer thread running")
    expect(ready.system_info.supported_namespaces).to eq(%w[math resilience])
    expect(ready.system_info.worker_type).to eq("command_processor")

    detailed = obs.health_detailed
    expect(detailed.checks.keys).to contain_exactly(:database, :command_processor, :queue_processing, :event_system,
                                                    :step_processing, :circuit_breakers)
    expect(detailed.checks[:event_system].status).to eq("healthy") # LISTEN connected by now (tasks ran)
    expect(detailed.checks[:circuit_breakers].message).to start_with("database: closed (")
    # One permanent failure among the results of the last minutes: well above 15 %? 1 of 3 results.
    expect(detailed.checks[:step_processing].message).to match(/error rate \d+\.\d% \(1 failed of \d+ results/)
    expect(detailed.status).to eq(detailed.checks.values.all? { |c| c.status == "healthy" } ? "healthy" : "degraded")

    metrics = obs.metrics.metrics
    expect(metrics[:steps_claimed_total_math].value).to be >= 6
    expect(metrics[:steps_completed_total_math].value).to be >= 5
    expect(metrics[:steps_failed_total_math].value).to eq(1)
    expect(metrics[:tasks_completed_total_math].value).to eq(1)
    expect(metrics[:tasks_failed_total_math].value).to eq(1)
    expect(metrics[:queue_depth_math].labels).to eq(namespace: "math")
    expect(metrics[:uptime_seconds].metric_type).to eq("counter")
    expect(JSON.parse(obs.metrics_worker)).to include("worker_id" => worker_id)

    events = obs.event_stats
    outbox = psql_value("SELECT count(*) FROM tasker.events_outbox").to_i
    expect(events.outbox.total).to eq(outbox)
    # The router counts what this process routed since it started (docs/observability.md).
    expect(events.router.durable_routed).to eq(events.domain[:durable_routed])
    expect(events.router.total_routed)
      .to eq(events.router.durable_routed + events.router.fast_routed + events.router.broadcast_routed)

    cfg = obs.config
    expect(cfg.common.dig("database", "url")).to eq("***REDACTED***")
    expect(cfg.common.dig("telemetry", "api_token")).to eq("***REDACTED***")
    expect(cfg.common.dig("telemetry", "enabled")).to be(true)
    expect(cfg.metadata.redacted_fields).to include("common.database.url", "common.telemetry.api_token")
    expect(cfg.metadata.source).to eq("runtime")
    expect(cfg.worker["namespaces"]).to eq(%w[math resilience])
    expect(obs.environment).to eq(TaskerCore.config.environment)
    expect(obs.ready?).to be(true)
    expect(obs.alive?).to be(true)
  end

  it "serves templates through a cache: list, get, validate, stats, refresh and clear" do
    start_worker
    list = JSON.parse(obs.templates_list)
    expect(list["supported_namespaces"]).to eq(%w[math resilience])
    expect(list["templates"].map { |t| t["namespace_name"] }.uniq.sort).to eq(%w[math resilience])
    expect(list["template_count"]).to eq(list["templates"].size)
    expect(list).not_to have_key("cache_stats")
    typed = TaskerCore::Observability::Types::TemplateListResponse.new(JSON.parse(obs.templates_list(include_cache_stats: true)))
    expect(typed.cache_stats.total_entries).to eq(0)

    first = TaskerCore::Observability::Types::TemplateResponse.new(
      JSON.parse(obs.template_get(namespace: "math", name: "linear_workflow", version: "1.0.0"))
    )
    expect(first.cached).to be(false)
    expect(first.template.template["steps"].size).to eq(4)
    expect(first.handler_metadata.to_h).to include(namespace: "math", name: "linear_workflow", version: "1.0.0")
    second = JSON.parse(obs.template_get(namespace: "math", name: "linear_workflow", version: "1.0.0"))
    expect(second).to include("cached" => true, "access_count" => 2)
    stats = obs.cache_stats
    expect([stats.total_entries, stats.hits, stats.misses]).to eq([1, 1, 1])

    valid = obs.template_validate(namespace: "math", name: "linear_workflow", version: "1.0.0")
    expect(valid.valid).to be(true)
    expect(valid.issues).to eq([])
    expect(valid.handler_count).to eq(2) # SquareInput and Combine
    expect(valid.step_handlers).to contain_exactly("SpecHandlers::SquareInput", "SpecHandlers::Combine")

    TaskerCore::FFI.template_register("name" => "unresolvable", "namespace_name" => "math", "version" => "1.0.0",
                                     "steps" => [{ "name" => "a", "handler" => { "callable" => "Nowhere::ToBeFound" } }])
    invalid = obs.template_validate(namespace: "math", name: "unresolvable", version: "1.0.0")
    expect(invalid.valid).to be(false)
    expect(invalid.issues.join).to include("Nowhere::ToBeFound")
    other = TaskerCore::FFI.template_validate("math", "unresolvable", "1.0.0")
    expect(JSON.parse(other)["valid"]).to be(true) # the core checks names; only Ruby can resolve classes

    refreshed = obs.template_refresh(namespace: "math", name: "linear_workflow", version: "1.0.0")
    expect(refreshed.success).to be(true)
    expect(refreshed.operation).to eq("refresh")
    missing = obs.template_refresh(namespace: "math", name: "nope", version: "9.9.9")
    expect(missing.success).to be(false)
    expect(missing.message).to include("nope")
    cleared = obs.cache_clear
    expect([cleared.success, cleared.cache_stats.total_entries]).to eq([true, 0])
    expect(cleared.cache_stats.last_maintenance).to be_a(String)

    expect { obs.template_get(namespace: "math", name: "nope", version: "1.0.0") }
      .to raise_error(TaskerCore::Errors::NotFoundError, /nope/)
    expect { TaskerCore::FFI.template_get("math", 42, "1.0.0") }
      .to raise_error(TaskerCore::Errors::ValidationError, /name must be a String/)
    expect { TaskerCore::FFI.template_get("math", "", "1.0.0") }
      .to raise_error(TaskerCore::Errors::ValidationError, /name is required/)
  end

  it "emits Prometheus text that promtool accepts, with counters and histograms per namespace" do
    start_worker
    run_tasks
    text = obs.prometheus_metrics
    expect(text).to include('tasker_steps_claimed_total{namespace="math"}', 'tasker_worker_queue_depth{namespace="resilience"} 0',
                            "# TYPE tasker_step_execution_duration_seconds histogram",
                            'tasker_tasks_failures_total{namespace="math"} 1',
                            'tasker_circuit_breaker_state{component="database"} 0')
    count = text[/^tasker_step_execution_duration_seconds_count\{namespace="math"\} (\d+)$/, 1].to_i
    inf = text[/^tasker_step_execution_duration_seconds_bucket\{namespace="math",le="\+Inf"\} (\d+)$/, 1].to_i
    expect(count).to be >= 6
    expect(inf).to eq(count)
    expect(text).not_to match(/correlation_id|task_uuid/)

    promtool = ENV["PATH"].split(File::PATH_SEPARATOR).map { |d| File.join(d, "promtool") }.find { |p| File.executable?(p) }
    skip "promtool is not installed (Debian package prometheus; bin/setup installs it)" unless promtool
    out, status = Open3.capture2e(promtool, "check", "metrics", stdin_data: text)
    expect(status.success?).to be(true), out
  end

  it "is not ready while the database is down and ready again after it returns (database circuit breaker)",
     timeout: 90 do
    server = TaskerCore::EmbeddedPostgres.shared
    skip "needs the embedded PostgreSQL (TASKER_TEST_DATABASE_URL is set)" unless server
    start_worker(circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 1 })
    expect(obs.ready?).to be(true)
    begin
      server.pause
      first = obs.health_ready
      expect(first.status).to eq("not_ready")
      expect(first.checks[:database].status).to eq("unhealthy")
      expect(obs.ready?).to be(false)
      obs.health_ready # second consecutive failure: the breaker opens
      detailed = obs.health_detailed
      expect(detailed.checks[:database].message).to include("circuit breaker is open")
      expect(detailed.checks[:circuit_breakers].status).to eq("unhealthy")
      expect(obs.alive?).to be(true) # liveness needs no database
    ensure
      server.resume
    end
    sleep_until(timeout: 30, interval: 0.2) { obs.ready? }
    expect(obs.health_detailed.checks[:circuit_breakers].message).to start_with("database: closed")
  end

  it "raises WorkerStoppedError without a worker, and ready?/alive? answer false" do
    TaskerCore::Worker.stop if TaskerCore::Worker.running?
    # A stopped worker still answers (its services live until the next start); none at all raises.
    TaskerCore::FFI.worker_start("namespaces" => ["math"]) && TaskerCore::FFI.worker_stop
    expect(obs.health_ready.checks[:command_processor].status).to eq("unhealthy")
    expect(obs.ready?).to be(false)
    pid = fork do
      TaskerCore.boot!
      ok = begin
        TaskerCore::FFI.health_basic
        false
      rescue TaskerCore::Errors::WorkerStoppedError => e
        e.message == "Worker system not running"
      end
      exit!(ok && !TaskerCore::Observability.ready? && !TaskerCore::Observability.alive? ? 0 : 1)
    end
    Process.wait(pid)
    expect($?.exitstatus).to eq(0)
  end
end

RSpec.describe "secrets in observability output" do
  it "never shows a planted database password in any response or log line" do
    secret = "pl4nted-pw-#{rand(1_000_000)}"
    separator = DATABASE_URL.include?("?") ? "&" : "?"
    url = "#{DATABASE_URL}#{separator}password=#{secret}"
    script = <<~RUBY
      require "net/http"
      require #{File.expand_path('../../lib/tasker_core', __dir__).inspect}
      TaskerCore.configure { |c| c.log_level = "debug" }
      worker = TaskerCore::Worker.start(namespaces: ["math"], web: { enabled: true, bind_address: "127.0.0.1:0" },
                                        observability: { config: { "common" => { "auth_token" => #{secret.inspect} } } })
      %i[health_basic health_live health_ready health_detailed metrics_worker metrics_prometheus metrics_events
         templates_cache_stats templates_cache_clear config_runtime config_environment].each { |f| puts TaskerCore::FFI.public_send(f) }
      puts TaskerCore::FFI.templates_list(true)
      puts TaskerCore::FFI.template_refresh("math", "none", "1.0.0")
      %w[/health /health/ready /health/detailed /metrics /metrics/worker /config /templates /nothing].each do |path|
        puts Net::HTTP.get(URI("http://127.0.0.1:\#{worker.web_port}\#{path}"))
      end
      TaskerCore::Worker.stop
    RUBY
    out, err, status = Open3.capture3({ "TASKER_DATABASE_URL" => url }, RbConfig.ruby, "-e", script)
    expect(status.success?).to be(true), err
    expect(out).to include('"url":"***REDACTED***"', '"auth_token":"***REDACTED***"', "common.database.url")
    expect(err).to include("worker_started") # the engine logged at debug level
    expect(out + err).not_to include(secret)
  end
end
