# frozen_string_literal: true

namespace :tasker do
  desc "Install tasker_core: config/tasker.yml, config/tasker/tasks/, app/tasks/, then apply the schema migrations"
  task install: :environment do
    require "rails/generators"
    Rails::Generators.invoke("tasker:install", [], behavior: :invoke, destination_root: Rails.root.to_s)
    Rake::Task["tasker:migrate"].invoke
  end

  desc "Apply tasker_core's schema migrations (schema tasker) to the app's database"
  task migrate: :environment do
    report = TaskerCore::WorkerRunner.step($stdout, "tasker: migrating the tasker schema") { TaskerCore.migrate! }
    puts "tasker: #{TaskerCore.migration_summary(report)}"
  end

  desc "Run a tasker worker for the app's templates until SIGTERM/SIGINT (CONCURRENCY=n, NAMESPACES=a,b)"
  task worker: :environment do
    options = TaskerCore.config.worker_options.except(:in_process)
    options[:concurrency] = Integer(ENV["CONCURRENCY"], 10) if ENV["CONCURRENCY"]
    options[:namespaces] = ENV["NAMESPACES"].split(",") if ENV["NAMESPACES"]
    TaskerCore::Railtie.register_subscribers
    TaskerCore::WorkerRunner.run(**options)
  end
end
