# frozen_string_literal: true

require "spec_helper"
require "json"
require "net/http"
require "open3"
require "rbconfig"

module LimitsSpec
  LONG_METHOD = "m#{'x' * 127}" # 128 characters, the limit of handler.method

  class LongMethodHandler < TaskerCore::StepHandler::Base
    define_method(LONG_METHOD) { |context| success({ "got" => context.get_input("n") }) }
  end
end

# Hostile input and faults: limits that agree end to end, secrets that stay secret.
RSpec.describe "limits and secrets" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }
  let(:obs) { TaskerCore::Observability }

  def template(name:, namespace: "math", version: "1.0.0", steps: nil)
    { "name" => name, "namespace_name" => namespace, "version" => version,
      "steps" => steps || [{ "name" => "square", "handler" => { "callable" => "SpecHandlers::SquareInput" } }] }
  end

  def start_worker(namespaces: %w[math], **rest)
    TaskerCore::Worker.start(template_paths: [templates], namespaces: namespaces, concurrency: 2, **rest)
  end

  it "keeps templates whose names contain '/' apart in the template cache" do
    TaskerCore::FFI.template_register(template(name: "a/b", version: "1"))
    TaskerCore::FFI.template_register(template(name: "a", version: "b/1"))
    start_worker
    2.times do
      expect(JSON.parse(obs.template_get(namespace: "math", name: "a/b", version: "1"))["handler_metadata"])
        .to include("name" => "a/b", "version" => "1")
      expect(JSON.parse(obs.template_get(namespace: "math", name: "a", version: "b/1"))["handler_metadata"])
        .to include("name" => "a", "version" => "b/1")
    end
    expect(obs.cache_stats.total_entries).to eq(2)
    expect(obs.template_refresh(namespace: "math", name: "a", version: "b/1").success).to be(true)
    expect(JSON.parse(obs.template_get(namespace: "math", name: "a/b", version: "1"))).to include("cached" => true)
  end

  it "takes every name at the validator's limit end to end: registration, create_task, the worker, the services" do
    name = "n" * 255
    version = "v" * 50
    step = "s" * 128
    TaskerCore::FFI.template_register(template(name: name, version: version, steps: [
      { "name" => step, "handler" => { "callable" => "LimitsSpec::LongMethodHandler", "method" => LimitsSpec::LONG_METHOD } }
    ]))
    worker = start_worker(web: { enabled: true, bind_address: "127.0.0.1:0" })
    task = TaskerCore::Client.create_task(name: name, namespace: "math", version: version, context: { n: 7 })
    expect(wait_for_task(task["task_uuid"])["status"]).to eq("complete")
    expect(steps_by_name(task["task_uuid"])[step]["results"]).to include("result" => { "got" => 7 })
    expect(JSON.parse(obs.template_get(namespace: "math", name: name, version: version))["handler_metadata"])
      .to include("name" => name)
    res = Net::HTTP.get_response(URI("http://127.0.0.1:#{worker.web_port}/templates/math/#{name}/#{version}"))
    expect(res.code).to eq("200"), res.body
    expect(TaskerCore::FFI.template_fetch("math", name, version)["name"]).to eq(name)
  end

  it "refuses at registration what a column or a derived name could not hold, naming the field" do
    too_long_method = template(name: "long_method", steps: [
      { "name" => "a", "handler" => { "callable" => "LimitsSpec::LongMethodHandler", "method" => "m" * 129 } }
    ])
    expect { TaskerCore::FFI.template_register(too_long_method) }
      .to raise_error(TaskerCore::Errors::TemplateError, /step 'a': handler.method is longer than 128 characters/)
    # A batch worker's steps are named <name>_<batch_id> (batch_id up to 32 characters): 95 + 33 = 128.
    batch = ->(worker_name) do
      template(name: "batch_names", steps: [
        { "name" => "split", "type" => "batchable", "handler" => { "callable" => "X" },
          "batch_config" => { "worker_template" => worker_name } },
        { "name" => worker_name, "type" => "batch_worker", "handler" => { "callable" => "X" }, "dependencies" => ["split"] }
      ])
    end
    expect { TaskerCore::FFI.template_normalize(batch.call("w" * 95)) }.not_to raise_error
    expect { TaskerCore::FFI.template_normalize(batch.call("w" * 96)) }
      .to raise_error(TaskerCore::Errors::TemplateError, /step '#{'w' * 96}': a batch_worker step's name is longer than 95/)
    # Characters, not bytes, as the columns count them.
    wide = "\u00e9" * 255
    expect(TaskerCore::FFI.template_register(template(name: wide))["name"]).to eq(wide)
    expect { TaskerCore::FFI.template_register(template(name: "#{wide}e")) }
      .to raise_error(TaskerCore::Errors::TemplateError, /name is required \(a string of 1 to 255 characters\)/)
  end

  it "is ready while serving many namespaces (the probe's namespace list has no fixed size)" do
    namespaces = Array.new(80) { |i| format("ns_%02d_%s", i, "x" * 23) } # 29 characters each
    start_worker(namespaces: namespaces)
    ready = JSON.parse(TaskerCore::FFI.health_ready)
    expect(ready["checks"]["queue_processing"]).to include("status" => "healthy"), ready.to_s
    expect(obs.ready?).to be(true)
    # The metrics read the same probe: every namespace has its queue depth.
    expect(JSON.parse(TaskerCore::FFI.metrics_worker)["metrics"]).to include("queue_depth_#{namespaces.last}")
    expect(TaskerCore::FFI.metrics_prometheus).to include(namespaces.last)
  end

  it "redacts /config by a wider list of names and by shape: credentials in any URL or key=value text, under any key" do
    secrets = %w[dsn-s3cret hook-s3cret pw-s3cret bearer-s3cret url-s3cret tok-s3cret conn-s3cret query-s3cret]
    config = { "sentry" => { "dsn" => "https://#{secrets[0]}@o1.ingest.example/1" },
               "alerts" => { "webhook" => "https://hooks.example/T0/#{secrets[1]}", "passwd" => secrets[2],
                             "authorization" => "Bearer #{secrets[3]}" },
               "replica" => "postgres://app:#{secrets[4]}@replica.internal:5432/app",
               "mirrors" => ["https://#{secrets[5]}@git.example/repo.git", "https://git.example/open.git"],
               "legacy" => "host=db.internal password=#{secrets[6]} dbname=app",
               "cache" => "redis://cache.internal:6379/0?password=#{secrets[7]}&db=1",
               "plain" => "nothing=secret here" }
    start_worker(observability: { config: config })
    text = TaskerCore::FFI.config_runtime
    secrets.each { |secret| expect(text).not_to include(secret) }
    body = JSON.parse(text)
    expect(body["replica"]).to eq("postgres://***REDACTED***@replica.internal:5432/app")
    expect(body["mirrors"]).to eq(["https://***REDACTED***@git.example/repo.git", "https://git.example/open.git"])
    expect(body["legacy"]).to eq("host=db.internal password=***REDACTED*** dbname=app")
    expect(body["cache"]).to eq("redis://cache.internal:6379/0?password=***REDACTED***&db=1")
    expect(body["plain"]).to eq("nothing=secret here")
    expect(body["metadata"]["redacted_fields"])
      .to include("sentry.dsn", "alerts.webhook", "alerts.passwd", "alerts.authorization", "replica", "mirrors[0]", "legacy", "cache")
  end

  it "redacts handler.initialization in /templates/... and Observability.template_get, like /config" do
    secrets = %w[k-s3cret b-s3cret p-s3cret env-s3cret desc-s3cret]
    init = { "api_key" => secrets[0], "headers" => { "Authorization" => "Bearer #{secrets[1]}" },
             "base_url" => "https://svc:#{secrets[2]}@api.example/v1", "read_timeout" => 5, "region" => "eu" }
    tpl = template(name: "with_secrets", steps: [
      { "name" => "call", "description" => "mirror at https://ci:#{secrets[4]}@mirror.example",
        "handler" => { "callable" => "SpecHandlers::SquareInput", "initialization" => init } }
    ]).merge("environments" => { "production" => { "steps" => [{ "name" => "ALL", "handler" => { "initialization" => { "token" => secrets[3] } } }] } },
             "input_schema" => { "type" => "object", "properties" => { "token" => { "type" => "string" } } })
    TaskerCore::FFI.template_register(tpl)
    worker = start_worker(web: { enabled: true, bind_address: "127.0.0.1:0" })
    2.times do # the second answer comes from the cache
      text = obs.template_get(namespace: "math", name: "with_secrets", version: "1.0.0")
      http = Net::HTTP.get(URI("http://127.0.0.1:#{worker.web_port}/templates/math/with_secrets/1.0.0"))
      [text, http].each do |body|
        secrets.each { |secret| expect(body).not_to include(secret) }
        step = JSON.parse(body)["template"]["template"]["steps"].first
        expect(step["handler"]["initialization"]).to include("api_key" => "***REDACTED***", "read_timeout" => 5, "region" => "eu",
                                                             "base_url" => "***REDACTED***")
        expect(step["description"]).to eq("mirror at https://***REDACTED***@mirror.example")
        # A JSON Schema's property named like a secret is no secret.
        expect(JSON.parse(body)["template"]["template"]["input_schema"]["properties"]).to eq("token" => { "type" => "string" })
      end
    end
    # The handler still gets the real values.
    stored = TaskerCore::FFI.template_fetch("math", "with_secrets", "1.0.0")
    expect(stored["configuration"]["steps"].first["handler"]["initialization"]["api_key"]).to eq(secrets[0])
  end

  it "refuses a malformed database URL at configure time without echoing it, and never shows its password" do
    secret = "s3c%ret#{rand(1000)}"
    url = "postgresql://app:#{secret}@127.0.0.1:1/app"
    script = <<~RUBY
      require #{File.expand_path('../../lib/tasker_core', __dir__).inspect}
      begin
        TaskerCore.configure { |c| c.database_url = #{url.inspect} }
      rescue TaskerCore::Errors::ConfigurationError => e
        puts "configure: \#{e.message}"
      end
      begin
        TaskerCore::Client.health_check
      rescue TaskerCore::Errors::ConfigurationError => e
        puts "health_check: \#{e.message}"
      end
    RUBY
    out, err, status = Open3.capture3({ "TASKER_DATABASE_URL" => url }, RbConfig.ruby, "-e", script)
    expect(status.success?).to be(true), err
    expect(out).to include("configure: database_url is not a valid PostgreSQL URL", "health_check: database_url is not a valid")
    cli, cli_status = Open3.capture2e({ "TASKER_DATABASE_URL" => url }, RbConfig.ruby, File.expand_path("../../bin/tasker", __dir__), "health")
    expect(cli_status.exitstatus).to eq(1)
    expect(cli).to include("ConfigurationError: database_url is not a valid PostgreSQL URL")
    [out, err, cli].each do |text|
      expect(text).not_to include(secret)
      expect(text).not_to include(secret.sub("%", ""))
    end
  end
end
