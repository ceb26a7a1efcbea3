# frozen_string_literal: true

require "spec_helper"
require "tmpdir"

RSpec.describe TaskerCore::ConfigFile do
  around do |example|
    Dir.mktmpdir do |dir|
      @dir = dir
      example.run
    end
  end

  def write(text)
    FileUtils.mkdir_p(File.join(@dir, "config"))
    path = File.join(@dir, "config", "tasker.yml")
    File.write(path, text)
    path
  end

  let(:yaml) do
    <<~YAML
      default: &default
        pool_size: ${TASKER_POOL:-7}
        log_level: <%= "wa" + "rn" %>
        template_paths: [config/tasker/tasks]
        database_url: postgresql://${DB_USER:-app}@db.internal/app_${TASKER_ENV_NAME:-dev}
        worker:
          concurrency: 3
          in_process: ${IN_PROCESS:-true}
      development:
        <<: *default
      production:
        pool_size: 30
        worker:
          concurrency: ${CONCURRENCY}
    YAML
  end

  it "takes the environment's section over default, with ERB and ${VAR:-default} (typed when whole)" do
    settings = described_class.read(write(yaml), environment: "production", env: { "CONCURRENCY" => "12" })
    expect(settings).to eq("pool_size" => 30, "log_level" => "warn", "template_paths" => ["config/tasker/tasks"],
                           "database_url" => "postgresql://app@db.internal/app_dev",
                           "worker" => { "concurrency" => 12, "in_process" => true })
  end

  it "uses the environment's variables before the defaults, and the default section alone when the environment has none" do
    settings = described_class.read(write(yaml), environment: "test",
                                                 env: { "TASKER_POOL" => "9", "DB_USER" => "svc", "IN_PROCESS" => "false" })
    expect(settings["pool_size"]).to eq(9)
    expect(settings["database_url"]).to eq("postgresql://svc@db.internal/app_dev")
    expect(settings["worker"]).to eq("concurrency" => 3, "in_process" => false)
  end

  it "applies the settings to a Configuration, template paths from the app's root" do
    config = TaskerCore::Configuration.new({})
    described_class.apply(config, described_class.read(write(yaml), environment: "development", env: {}), root: @dir)
    expect(config.pool_size).to eq(7)
    expect(config.database_url).to eq("postgresql://app@db.internal/app_dev")
    expect(config.template_paths).to eq([File.join(@dir, "config/tasker/tasks")])
    expect(config.worker_options).to eq(concurrency: 3, in_process: true)
  end

  it "names the variable a value needs when it has no default" do
    expect { described_class.read(write(yaml), environment: "production", env: {}) }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /worker\.concurrency needs the environment variable CONCURRENCY/)
  end

  it "refuses unknown keys, naming them and the file" do
    path = write("default:\n  pool_sise: 3\n")
    expect { described_class.read(path, environment: "development") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /tasker\.yml: unknown setting pool_sise/)
    path = write("default:\n  worker:\n    concurency: 3\n")
    expect { described_class.read(path, environment: "development") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /unknown setting worker\.concurency \(known: .*concurrency/)
  end

  it "reports a missing environment, invalid YAML, failing ERB and a missing file" do
    expect { described_class.read(write("production:\n  pool_size: 3\n"), environment: "staging") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /no section for environment 'staging'/)
    expect { described_class.read(write("default: [unclosed\n"), environment: "development") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /invalid YAML/)
    expect { described_class.read(write("default:\n  pool_size: <%= 1 / 0 %>\n"), environment: "development") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /the ERB failed: ZeroDivisionError/)
    expect { described_class.read(File.join(@dir, "none.yml"), environment: "development") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /does not exist/)
  end

  it "is what TaskerCore.load_config applies (and validates)" do
    path = write("default:\n  pool_size: 900\n")
    config = TaskerCore::Configuration.new({ "TASKER_DATABASE_URL" => "postgresql:///x" })
    allow(TaskerCore).to receive(:config).and_return(config)
    expect { TaskerCore.load_config(path, environment: "development") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /pool_size must be an Integer between 1 and 500/)
  end
end

RSpec.describe TaskerCore::DatabaseUrl do
  it "builds libpq URLs from ActiveRecord configurations" do
    expect(described_class.from_config(adapter: "postgresql", database: "shop_dev")).to eq("postgresql:///shop_dev")
    expect(described_class.from_config(adapter: "postgresql", host: "db", port: 5433, username: "app",
                                       password: "p@ss word", database: "shop", sslmode: "require"))
      .to eq("postgresql://app:p%40ss%20word@db:5433/shop?sslmode=require")
    expect(described_class.from_config("adapter" => "postgis", "host" => "/var/run/postgresql", "port" => 5432,
                                       "database" => "geo"))
      .to eq("postgresql:///geo?host=%2Fvar%2Frun%2Fpostgresql&port=5432")
    expect(described_class.from_config(adapter: "postgresql", url: "postgres://u@h/d")).to eq("postgres://u@h/d")
  end

  it "refuses a database that is not PostgreSQL" do
    expect { described_class.from_config(adapter: "sqlite3", database: "db/dev.sqlite3") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /adapter is "sqlite3": tasker_core needs PostgreSQL/)
  end
end
