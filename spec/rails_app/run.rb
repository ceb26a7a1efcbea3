#!/usr/bin/env ruby
# frozen_string_literal: true

# The Rails app test: generates a fresh minimal Rails app (Rails from RubyGems, this machine's
# Ruby), adds this checkout's gem by path and follows docs/rails.md step by step: every command of
# its ```sh blocks is run (the plan below names them; a command in the page that the plan does not
# run fails the test), and every file block (```ruby whose first line is `# path`) is written into
# the app. It then checks what each step should have produced: the generated specs pass, a task
# created by an HTTP request to the app (in the transaction that records the order) is finished by
# `bin/rails tasker:worker`, of an order and its task created in one transaction only the committed
# ones exist and run (a rolled back one leaves neither), the generated
# event subscriber sees it complete on the worker's events thread, the `tasker` command reports it,
# `/health/ready` answers 200, and with `plugin :tasker` the worker (and the subscriber) runs in
# each Puma worker process and not in the master.
#
#   ruby spec/rails_app/run.rb        # uses TASKER_TEST_DATABASE_URL / DATABASE_URL's server, or
#                                     # starts a throwaway PostgreSQL
#
# The app's gems are installed once into tmp/rails_app_cache/bundle (reruns take seconds);
# TASKER_RAILS_VERSION (default "~> 7.2.0") picks the Rails release.

require "fileutils"
require "json"
require "net/http"
require "open3"
require "shellwords"
require "socket"
require "uri"

ROOT = File.expand_path("../..", __dir__)
DOC = File.join(ROOT, "docs", "rails.md")
CACHE = File.join(ROOT, "tmp", "rails_app_cache")
BUNDLE_DIR = File.join(CACHE, "bundle")
WORK = File.join(ROOT, "tmp", "rails_app")
APP = File.join(WORK, "shop")
LOG = File.join(WORK, "run.log")
RAILS_VERSION = ENV.fetch("TASKER_RAILS_VERSION", "~> 7.2.0")

class Failure < StandardError; end

# ---- Output and commands --------------------------------------------------------------------

def say(text)
  puts text
  $stdout.flush
  File.open(LOG, "a") { |f| f.puts(text) }
end

def check(condition, message)
  raise Failure, message unless condition

  say "  ok: #{message.split("\n").first}"
end

# The environment of every command: no trace of the bundle this script may run under, the app's
# gems in the cache, the database through libpq's PG* variables (the app's config/database.yml has
# no host, so ActiveRecord, the engine and psql all find the server that way).
def base_env(pg)
  env = ENV.to_h.reject do |k, _|
    k.start_with?("BUNDLE_", "BUNDLER_") || %w[RUBYOPT RUBYLIB GEM_HOME GEM_PATH DATABASE_URL TASKER_DATABASE_URL
                                               TASKER_TEST_DATABASE_URL RAILS_ENV RACK_ENV].include?(k)
  end
  # tasker:worker serves its web server: on a free port, never a fixed one.
  env.merge("BUNDLE_PATH" => BUNDLE_DIR, "BUNDLE_SILENCE_ROOT_WARNING" => "1", "BUNDLE_JOBS" => "4",
            "TASKER_WEB_BIND_ADDRESS" => "127.0.0.1:0").merge(pg)
end

# Runs a command (a shell line) in dir; returns its output; raises unless it exits 0 (or with ok:).
def run(line, dir: APP, env: {}, ok: [0])
  say "$ #{line}"
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  out, status = Open3.capture2e($env.merge(env), line, chdir: dir)
  File.open(LOG, "a") { |f| f.puts(out) }
  took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  unless ok.include?(status.exitstatus)
    raise Failure, "`#{line}` exited #{status.exitstatus} after #{took.round(1)} s:\n#{out.lines.last(40).join}"
  end

  say "  (#{took.round(1)} s)" if took > 5
  out
end

# A long-running command in the background, its output in a log file; waits for ready (a regexp
# in its output, or a block returning true).
def start(line, name, ready:, timeout: 90, env: {})
  say "$ #{line} &"
  log = File.join(WORK, "#{name}.log")
  pid = Process.spawn($env.merge(env), line, chdir: APP, out: log, err: %i[child out], pgroup: true)
  $children << pid
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
  until ready.is_a?(Regexp) ? File.read(log).match?(ready) : ready.call
    if Process.waitpid(pid, Process::WNOHANG)
      $children.delete(pid)
      raise Failure, "`#{line}` exited early:\n#{File.read(log).lines.last(40).join}"
    end
    raise Failure, "`#{line}` not ready after #{timeout} s:\n#{File.read(log).lines.last(40).join}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    sleep 0.1
  end
  pid
end

# SIGTERM, then waits for a clean exit (SIGKILL to the group after timeout).
def stop(pid, timeout: 30)
  Process.kill("TERM", pid)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
  until (done = Process.waitpid2(pid, Process::WNOHANG))
    if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      Process.kill("KILL", -pid)
      Process.waitpid(pid)
      $children.delete(pid)
      raise Failure, "pid #{pid} did not stop within #{timeout} s of SIGTERM"
    end
    sleep 0.1
  end
  $children.delete(pid)
  # Puma's workers are in the same process group: nothing of it may outlive the master.
  begin
    Process.kill(0, -pid)
    sleep 0.5
    Process.kill("KILL", -pid)
  rescue Errno::ESRCH
    nil
  end
  done[1]
end

def free_port
  server = TCPServer.new("127.0.0.1", 0)
  server.addr[1]
ensure
  server&.close
end

def port_open?(port)
  Socket.tcp("127.0.0.1", port, connect_timeout: 0.2).close
  true
rescue SystemCallError, SocketError
  false
end

# ---- docs/rails.md ----------------------------------------------------------------------------

# [[:sh, [lines]], [:file, path, text, append?]] in the page's order.
def doc_blocks
  File.read(DOC).scan(/^```(\w+)\n(.*?)^```$/m).filter_map do |lang, body|
    if lang == "sh"
      [:sh, body.lines.map { |l| l.sub(/\s+#.*$/, "").strip }.reject(&:empty?)]
    elsif lang == "ruby" && (m = body.match(/\A# (\S+)( \(add\))?\n/))
      [:file, m[1], body.sub(/\A.*\n/, ""), !m[2].nil?]
    end
  end
end

def doc_commands = doc_blocks.select { |b| b[0] == :sh }.flat_map { |b| b[1] }
def doc_files = doc_blocks.select { |b| b[0] == :file }.to_h { |b| [b[1], b[2..]] }

# Writes the page's file block for path into the app (appending for "(add)" blocks).
def write_doc_file(path)
  text, append = doc_files.fetch(path) { raise Failure, "docs/rails.md has no file block for #{path}" }
  target = File.join(APP, path)
  FileUtils.mkdir_p(File.dirname(target))
  if append
    File.write(target, "#{File.read(target).chomp}\n\n#{text}")
  else
    File.write(target, text)
  end
  say "  wrote #{path} from docs/rails.md#{' (appended)' if append}"
end

# Runs a command of the page: it must be there verbatim; $TASK_UUID and localhost:3000 are
# replaced with this run's values.
def doc(line, **opts)
  raise Failure, "docs/rails.md does not contain the command `#{line}`" unless doc_commands.include?(line)

  $done << line
  run(expand(line), **opts)
end

def expand(line)
  line.gsub("$TASK_UUID", $task_uuid.to_s).gsub("localhost:3000", "127.0.0.1:#{$port}")
      .gsub("localhost:8081", "127.0.0.1:#{$worker_web_port}")
end

# ---- The database -----------------------------------------------------------------------------

# libpq environment variables for the server of url.
def pg_env(url)
  uri = URI.parse(url)
  query = URI.decode_www_form(uri.query.to_s).to_h
  env = { "PGHOST" => query["host"] || uri.host, "PGPORT" => (query["port"] || uri.port).to_s,
          "PGUSER" => query["user"] || uri.user, "PGPASSWORD" => query["password"] || uri.password }
  env.reject { |_, v| v.nil? || v.empty? }
end

def database_server
  url = ENV.values_at("TASKER_TEST_DATABASE_URL", "TASKER_DATABASE_URL", "DATABASE_URL").find { |u| u && !u.empty? }
  return [pg_env(url), nil] if url

  require_relative "../../lib/tasker_core/embedded_postgres"
  server = TaskerCore::EmbeddedPostgres.new(fsync: false).start
  [pg_env(server.url), server]
end

# ---- The plan: docs/rails.md, section by section -----------------------------------------------

def generate_app
  generator = File.join(CACHE, "generator")
  FileUtils.mkdir_p(generator)
  gemfile = %(source "https://rubygems.org"\ngem "rails", "#{RAILS_VERSION}"\n)
  File.write(File.join(generator, "Gemfile"), gemfile) unless File.exist?(File.join(generator, "Gemfile")) &&
                                                             File.read(File.join(generator, "Gemfile")) == gemfile
  run("bundle check || bundle install", dir: generator)
  FileUtils.rm_rf(APP)
  run("bundle exec rails new #{APP} --minimal --api -d postgresql --skip-git --skip-bundle --skip-test " \
      "--skip-rubocop --skip-brakeman --skip-docker --skip-ci --skip-keeps", dir: generator)
  # Development conveniences the test needs none of: debug (a native extension) and, in Rails
  # 7.1's Gemfile, error_highlight, which Ruby 3.1 already activated as a default gem.
  gemfile_path = File.join(APP, "Gemfile")
  File.write(gemfile_path, File.read(gemfile_path).lines.reject { |l| l.match?(/gem "(debug|error_highlight)"/) }.join)
  say "  rails #{run('bundle exec rails --version', dir: generator).strip}"
end

# bundle add tasker_core, for this checkout: Bundler 2.3's `bundle add` has no --path, so the same
# line is written by hand, then installed. The app's lock file is cached so reruns resolve offline.
def add_gem
  raise Failure, "docs/rails.md does not contain `bundle add tasker_core`" unless doc_commands.include?("bundle add tasker_core")

  $done << "bundle add tasker_core"
  say "$ bundle add tasker_core   (as: gem \"tasker_core\", path: \"#{ROOT}\")"
  File.open(File.join(APP, "Gemfile"), "a") { |f| f.puts %(\ngem "tasker_core", path: #{ROOT.inspect}) }
  lock = File.join(CACHE, "Gemfile.lock")
  FileUtils.cp(lock, File.join(APP, "Gemfile.lock")) if File.exist?(lock)
  run("bundle install || (rm -f Gemfile.lock && bundle install)")
end

def section_install
  add_gem
  run("bin/rails db:drop", env: { "DISABLE_DATABASE_ENVIRONMENT_CHECK" => "1" })
  doc "bin/rails db:create"
  out = doc "bin/rails tasker:install"
  check(File.file?(File.join(APP, "config/tasker.yml")), "tasker:install wrote config/tasker.yml")
  check(out.match?(/applied migrations 1(, \d+)*; applied function files .* \(now at version \d+\)/),
        "tasker:install applied the migrations")
  out = run("bin/rails tasker:migrate")
  check(out.include?("schema is current"), "tasker:migrate: the schema is current")
end

def section_workflow
  doc "bin/rails generate tasker:task_handler OrderProcess"
  doc "bin/rails generate tasker:step_handler OrderProcess::ProcessData"
  out = doc "bin/rails generate tasker:api_step_handler OrderProcess::FetchData"
  check(out.include?("callable: OrderProcess::StepHandler::FetchDataHandler"), "the API generator printed the step to add")
  %w[app/tasks/order_process.rb config/tasker/tasks/order_process.yaml
     app/tasks/order_process/step_handler/validate_input_handler.rb
     app/tasks/order_process/step_handler/process_data_handler.rb
     app/tasks/order_process/step_handler/fetch_data_handler.rb spec/tasker_helper.rb spec/tasks/order_process_spec.rb
     spec/tasks/order_process/step_handler/process_data_handler_spec.rb
     spec/tasks/order_process/step_handler/fetch_data_handler_spec.rb].each do |path|
    raise Failure, "the generators did not write #{path}" unless File.file?(File.join(APP, path))
  end
  template = File.read(File.join(APP, "config/tasker/tasks/order_process.yaml"))
  check(template.include?("- name: process_data\n    dependencies: [validate_input]"),
        "tasker:step_handler appended process_data after validate_input")
  subscriber_generator
  # Not on the page: a namespaced task with a chain of steps (its specs run below with the others).
  run("bin/rails generate tasker:task_handler Billing::Invoice --steps fetch_invoice charge_card")
  invoice = File.read(File.join(APP, "config/tasker/tasks/billing_invoice.yaml"))
  check(invoice.include?("- name: charge_card\n    dependencies: [fetch_invoice]") &&
        invoice.include?("callable: Billing::Invoice::StepHandler::ChargeCardHandler") &&
        File.file?(File.join(APP, "app/tasks/billing/invoice/step_handler/charge_card_handler.rb")),
        "tasker:task_handler Billing::Invoice --steps fetch_invoice charge_card: a chain in Zeitwerk's layout")
  seed_generators
end

# Not on the page (docs/migrating-from-tasker-engine.md): seed 002's generators, which write
# Tasker:: classes and a template in the original engine's YAML format. Their specs run below with
# the others, and `tasker templates validate --check-handlers` loads their handlers.
def seed_generators
  run("bin/rails generate task_handler ShipmentProcess --steps pack_items")
  run("bin/rails generate step_handler ShipmentProcess::ShipItems")
  run("bin/rails generate api_step_handler ShipmentProcess::FetchRates")
  yaml = File.read(File.join(APP, "config/tasker/tasks/shipment_process.yaml"))
  task = File.read(File.join(APP, "app/tasks/shipment_process.rb"))
  ship = File.read(File.join(APP, "app/tasks/shipment_process/step_handler/ship_items_handler.rb"))
  rates = File.read(File.join(APP, "app/tasks/shipment_process/step_handler/fetch_rates_handler.rb"))
  check(task.include?("class ShipmentProcess < Tasker::TaskHandler::Base") &&
        yaml.include?("task_handler_class: ShipmentProcess") &&
        yaml.include?("  - name: ship_items\n    description: Ship items\n    depends_on_step: pack_items\n" \
                      "    handler_class: ShipmentProcess::StepHandler::ShipItemsHandler") &&
        yaml.include?("    depends_on_step: ship_items\n    handler_class: ShipmentProcess::StepHandler::FetchRatesHandler") &&
        ship.include?("class ShipItemsHandler < Tasker::StepHandler::Base") &&
        rates.include?("class FetchRatesHandler < Tasker::StepHandler::Api") &&
        %w[spec/tasks/shipment_process_spec.rb spec/tasks/shipment_process/step_handler/pack_items_handler_spec.rb
           spec/tasks/shipment_process/step_handler/ship_items_handler_spec.rb
           spec/tasks/shipment_process/step_handler/fetch_rates_handler_spec.rb].all? { |p| File.file?(File.join(APP, p)) },
        "seed 002's generators (task_handler, step_handler, api_step_handler) wrote Tasker:: handlers, specs and " \
        "a step_templates chain")
end

SUBSCRIBER_COMMAND = "bin/rails generate tasker:subscriber notification --events task.completed task.failed step.failed"
SUBSCRIBER = "app/subscribers/notification_subscriber.rb"
# Where the test's probe in the subscriber records each task.completed: "pid thread event task_uuid".
EVENTS_LOG = "tmp/tasker_events.log"

def subscriber_generator
  doc SUBSCRIBER_COMMAND
  check(File.file?(File.join(APP, "spec/subscribers/notification_subscriber_spec.rb")),
        "tasker:subscriber wrote spec/subscribers/notification_subscriber_spec.rb")
  source = File.read(File.join(APP, SUBSCRIBER))
  check(source.include?("class NotificationSubscriber < TaskerCore::Events::Subscribers::BaseSubscriber") &&
        source.include?('subscribe_to "task.completed", "task.failed", "step.failed"') &&
        %w[task_completed task_failed step_failed].all? { |e| source.include?("def handle_#{e}(event)") },
        "tasker:subscriber wrote #{SUBSCRIBER}: the three events, a handle_x_y for each")
end

# After the specs ran: the generated handle_task_completed also records which process and thread
# called it (its generated Rails.logger line stays, and is checked too).
def add_subscriber_probe
  path = File.join(APP, SUBSCRIBER)
  probe = "    File.open(Rails.root.join(#{EVENTS_LOG.inspect}), \"a\") do |f|\n" \
          "      f.puts [Process.pid, Thread.current.name, event[:event_name], event[:task_uuid]].join(\" \")\n" \
          "    end\n"
  source = File.read(path)
  edited = source.sub("  def handle_task_completed(event)\n", "\\0#{probe}")
  raise Failure, "#{SUBSCRIBER} has no handle_task_completed to probe" if edited == source

  File.write(path, edited)
end

# The probe's lines [pid, thread, event] for task uuid, once there are count of them (the feeder
# polls every 50 ms; up to timeout seconds).
def subscriber_calls(uuid, count: 1, timeout: 15)
  path = File.join(APP, EVENTS_LOG)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
  loop do
    lines = File.exist?(path) ? File.readlines(path).map(&:split) : []
    calls = lines.select { |l| l[3] == uuid }.map { |pid, thread, event, _| [pid.to_i, thread, event] }
    return calls if calls.size >= count || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    sleep 0.1
  end
end

def subscriber_logged?(uuid)
  File.read(File.join(APP, "log/development.log")).include?("tasker task.completed: task #{uuid} (order_process)")
end

def section_test
  doc "bundle add rspec --group test"
  FileUtils.cp(File.join(APP, "Gemfile.lock"), File.join(CACHE, "Gemfile.lock"))
  # The generated specs as generated (not a command of the page: it runs them after the edits).
  out = run("bundle exec rspec --format documentation")
  check(out.match?(/\b(\d+) examples, 0 failures/) && out[/(\d+) examples/, 1].to_i >= 15,
        "the generated specs pass as generated (#{out[/\d+ examples, \d+ failures/]})")
  check(out.match?(/^NotificationSubscriber\n  handles task\.completed\n  handles task\.failed\n  handles step\.failed$/),
        "the generated subscriber's spec ran its three examples")
  write_doc_file("app/tasks/order_process/step_handler/process_data_handler.rb")
  write_doc_file("spec/tasks/order_process/step_handler/process_data_handler_spec.rb")
  write_doc_file("spec/tasks/order_process_spec.rb")
  out = doc "bundle exec rspec"
  check(out.match?(/\b\d+ examples, 0 failures/), "the specs of docs/rails.md pass (#{out[/\d+ examples, \d+ failures/]})")
end

def section_controllers
  doc "bin/rails generate model Order number:integer"
  out = doc "bin/rails db:migrate"
  check(out.include?("create_table(:orders)"), "bin/rails db:migrate created the app's orders table")
  write_doc_file("app/controllers/orders_controller.rb")
  write_doc_file("app/controllers/health_controller.rb")
  write_doc_file("config/routes.rb")
end

def start_server
  $port = free_port
  line = "bin/rails server"
  raise Failure, "docs/rails.md does not contain `#{line}`" unless doc_commands.include?(line)

  $done << line
  start("#{line} -p #{$port} -b 127.0.0.1", "server-#{$port}", ready: -> { port_open?($port) })
end

def create_order(order_id)
  out = doc %(curl -s -X POST http://localhost:3000/orders -H 'Content-Type: application/json' -d '{"order": {"order_id": #{order_id}}}')
  answer = JSON.parse(out)
  previous = $task_uuid
  $task_uuid = answer["task_uuid"]
  check($task_uuid.to_s.match?(/\A\h{8}-\h{4}-7\h{3}-\h{4}-\h{12}\z/) && $task_uuid != previous,
        "POST /orders created task #{$task_uuid}")
end

def section_dedicated_worker
  add_subscriber_probe
  # The worker's web server on a free port instead of the default 8081 (suites may run at once).
  $worker_web_port = free_port
  worker = start("bin/rails tasker:worker", "worker", ready: %r{web server on http://127\.0\.0\.1:#{$worker_web_port}},
                                                      env: { "TASKER_WEB_BIND_ADDRESS" => "127.0.0.1:#{$worker_web_port}" })
  $done << "bin/rails tasker:worker"
  check(File.read(File.join(WORK, "worker.log")).match?(/tasker worker \S+ serving .*order_process/),
        "bin/rails tasker:worker serves the app's namespaces")
  server = start_server
  create_order(42)
  out = doc "bundle exec tasker task wait $TASK_UUID"
  check(out.include?("2/2 steps  complete"), "tasker task wait followed the task to complete")
  calls = subscriber_calls($task_uuid)
  check(calls == [[worker, "tasker-events", "task.completed"]],
        "NotificationSubscriber#handle_task_completed saw task #{$task_uuid} complete, in the worker " \
        "(pid #{worker}) on its tasker-events thread (#{calls.inspect})")
  check(subscriber_logged?($task_uuid), "the generated subscriber logged task.completed for it in log/development.log")
  show = JSON.parse(doc("curl -s http://localhost:3000/orders/$TASK_UUID"))
  check(show["status"] == "complete" && show["completed_steps"] == 2, "GET /orders/#{$task_uuid}: complete, 2/2 steps")
  recorded = orders
  check(recorded == [42], "POST /orders recorded order 42 in the app's orders table (#{recorded.inspect})")
  orders_in_transactions
  worker_ready = doc "curl -s http://localhost:8081/health/ready"
  check(JSON.parse(worker_ready)["status"] == "ready", "the worker's own web server: /health/ready is ready")
  # Observability.ready? and TaskerCore::Web describe this process's worker: the server runs none yet.
  %w[/health/ready /tasker/health/ready].each do |path|
    out = run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:#{$port}#{path}")
    check(out.strip == "503", "GET #{path} answers 503 from a server without a worker")
  end
  section_cli
  reload_in_development
  pids = File.readlines(File.join(APP, EVENTS_LOG)).map { |l| l.split.first.to_i }.uniq
  check(pids == [worker], "only the worker process delivered events (not the server, the tasker command or rails runner)")
  stop(server)
  status = stop(worker)
  check(status.exitstatus.zero? && File.read(File.join(WORK, "worker.log")).include?("stopped"),
        "bin/rails tasker:worker stopped cleanly on SIGTERM")
  worker_log = File.read(File.join(WORK, "worker.log"))
  check(worker_log.include?("migrating the schema ... done"), "bin/rails tasker:worker showed its progress")
end

# The app's order numbers, as ActiveRecord reads them.
def orders
  JSON.parse(run(%(bin/rails runner 'puts Order.order(:number).pluck(:number).to_json')).lines.last)
end

# docs/rails.md's "Create the task in the app's transaction": an order and its task in one
# transaction, rolled back, then another committed (in a process that runs no worker, with the
# dedicated worker running); only the committed one's task exists and runs.
def orders_in_transactions
  script = File.join(APP, "tmp", "orders_in_transactions.rb")
  File.write(script, <<~RUBY)
    rolled_back = nil
    Order.transaction do
      Order.create!(number: 7)
      rolled_back = OrderProcess.create_task(context: { order_id: 7 })["task_uuid"]
      raise ActiveRecord::Rollback
    end
    committed = Order.transaction do
      Order.create!(number: 8)
      task = OrderProcess.create_task(context: { order_id: 8 })
      # Inside the open transaction, the engine's own connections (and so the workers) see no task.
      seen = begin
        TaskerCore::Client.get_task(task["task_uuid"]) && true
      rescue TaskerCore::Errors::NotFoundError
        false
      end
      raise "the task of the open transaction is visible" if seen
      task["task_uuid"]
    end
    puts JSON.generate("rolled_back" => rolled_back, "committed" => committed)
  RUBY
  tasks = JSON.parse(run("bin/rails runner tmp/orders_in_transactions.rb").lines.last)
  check(orders == [8, 42], "the rolled back order 7 is not in the orders table, the committed order 8 is")
  out = run("bundle exec tasker task wait #{tasks['committed']} --timeout 30")
  check(out.include?("2/2 steps  complete"),
        "the task created with order 8, in its transaction, ran to the end once committed (#{tasks['committed']})")
  code = run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:#{$port}/orders/#{tasks['rolled_back']}")
  check(tasks["rolled_back"].to_s.match?(/\A\h{8}-/) && code.strip == "404",
        "the task created with order 7 was rolled back with it: GET /orders/#{tasks['rolled_back']} answers 404")
  calls = subscriber_calls(tasks["committed"])
  check(calls.size == 1 && subscriber_calls(tasks["rolled_back"], timeout: 0).empty?,
        "the worker ran only the committed order's task (task.completed for it, nothing for the rolled back one)")
end

# Development reloading: the running server and worker pick up an edited handler and an edited
# template for the next task, without a restart.
def reload_in_development
  path = File.join(APP, "app/tasks/order_process/step_handler/process_data_handler.rb")
  File.write(path, File.read(path).sub('"checked_by" => checked["step"]', '"checked_by" => checked["step"], "reloaded" => true'))
  File.open(File.join(APP, "config/tasker/tasks/order_process.yaml"), "a") do |f|
    f.puts "  - name: archive", "    dependencies: [process_data]", "    handler:",
           "      callable: OrderProcess::StepHandler::ValidateInputHandler"
  end
  out = run(%(curl -s -X POST http://127.0.0.1:#{$port}/orders -H 'Content-Type: application/json' -d '{"order": {"order_id": 44}}'))
  uuid = JSON.parse(out)["task_uuid"]
  out = run("bundle exec tasker task wait #{uuid} --timeout 30")
  check(out.include?("3/3 steps  complete"), "the server created the next task from the edited template (3 steps)")
  result = run(%(bin/rails runner 'step = TaskerCore::Client.list_task_steps(ARGV[0]).find { |s| s["name"] == "process_data" }; ) +
               %(puts step["results"]["result"].to_json' #{uuid}))
  check(JSON.parse(result.lines.last).include?("reloaded"), "the running worker used the edited handler")
end

def section_cli
  out = doc "bundle exec tasker templates validate config/tasker/tasks --check-handlers"
  check(out.include?("ok     config/tasker/tasks/order_process.yaml: order_process/order_process@1.0.0 (2 steps)") &&
        out.include?("shipment_process/shipment_process@1.0.0 (3 steps)") &&
        out.include?("3 valid, 0 invalid"), "tasker templates validate --check-handlers: the app's templates and handlers " \
                                            "(seed 002's Tasker:: ones too)")
  out = doc "bundle exec tasker templates list"
  check(out.match?(%r{order_process/order_process@1\.0\.0\s+2 steps}), "tasker templates list shows order_process")
  out = doc "bundle exec tasker tasks list --status complete"
  check(out.include?($task_uuid) && out.include?("2/2 steps"), "tasker tasks list --status complete shows the task")
  out = doc "bundle exec tasker task show $TASK_UUID"
  check(out.include?("[x] process_data <- validate_input"), "tasker task show draws the DAG")
  out = doc "bundle exec tasker health"
  check(out.include?("database: healthy"), "tasker health: healthy")
end

# /proc/PID/task/*/comm: the names of a process's threads (Ruby names its handler threads).
def thread_names(pid)
  Dir.glob("/proc/#{pid}/task/*/comm").map { |f| File.read(f).strip rescue "" } # rubocop:disable Style/RescueModifier
end

def children_of(pid)
  Dir.glob("/proc/[0-9]*/stat").filter_map do |f|
    fields = File.read(f)[/\) (.*)/, 1]&.split
    f[%r{/proc/(\d+)/}, 1].to_i if fields && fields[1].to_i == pid
  rescue Errno::ENOENT, Errno::ESRCH
    nil
  end
end

def section_puma_plugin
  write_doc_file("config/puma.rb")
  server = start_server
  # Both Puma workers' tasker workers (and their subscribers) run before the order is posted: a
  # process's subscribers see only transitions after they registered.
  log = File.join(APP, "log/development.log")
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
  until File.read(log).scan(/tasker_core: in-process worker serving .* in pid (\d+)$/).uniq.size >= 2 &&
        children_of(server).size == 2
    raise Failure, "the Puma workers did not start their tasker workers within 60 s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    sleep 0.2
  end
  create_order(43)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
  status = nil
  until status == "complete" || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    status = JSON.parse(run(expand("curl -s http://localhost:3000/orders/$TASK_UUID")))["status"]
    sleep 0.2 unless status == "complete"
  end
  check(status == "complete", "the in-process worker finished the task created through Puma")
  ready = doc "curl -s http://localhost:3000/health/ready"
  check(JSON.parse(ready)["status"] == "ready", "GET /health/ready (Observability.ready?): #{ready.strip}")
  live = doc "curl -s http://localhost:3000/health/live"
  check(JSON.parse(live)["status"] == "alive", "GET /health/live (Observability.alive?): #{live.strip}")
  mounted = JSON.parse(doc("curl -s http://localhost:3000/tasker/health/ready"))
  check(mounted["status"] == "ready" && mounted["checks"].is_a?(Hash),
        "GET /tasker/health/ready (the mounted TaskerCore::Web): ready, checks #{mounted['checks']&.keys&.join(', ')}")
  workers = children_of(server)
  check(workers.size == 2, "Puma runs 2 worker processes (#{workers.join(', ')})")
  check(thread_names(server).none? { |n| n.start_with?("tasker-handler") },
        "the Puma master runs no tasker handler threads")
  check(workers.all? { |w| thread_names(w).any? { |n| n.start_with?("tasker-handler") } },
        "each Puma worker runs tasker handler threads")
  log = File.read(File.join(APP, "log/development.log"))
  check(workers.all? { |w| log.match?(/tasker_core: in-process worker serving .*order_process.* in pid #{w}$/) },
        "each Puma worker logged its worker through Rails.logger")
  calls = subscriber_calls($task_uuid, count: 2)
  check(calls.map(&:first).sort == workers.sort && calls.all? { |_, thread, event| thread == "tasker-events" && event == "task.completed" },
        "each Puma worker's NotificationSubscriber saw task #{$task_uuid} complete on its tasker-events thread, " \
        "the master none (#{calls.inspect})")
  stop(server)
end

def main
  FileUtils.mkdir_p(WORK)
  File.write(LOG, "")
  $children = []
  $done = []
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  pg, server = database_server
  $env = base_env(pg)
  say "rails app test: app in #{APP}, log in #{LOG}"
  missing = doc_commands.reject { |c| PLAN_COMMANDS.include?(c) }
  raise Failure, "docs/rails.md has commands this test does not run: #{missing.join(' | ')}" unless missing.empty?

  generate_app
  section_install
  section_workflow
  section_test
  section_controllers
  section_dedicated_worker
  section_puma_plugin
  not_run = doc_commands.uniq - $done
  raise Failure, "commands of docs/rails.md that did not run: #{not_run.join(' | ')}" unless not_run.empty?

  say "rails app test: passed (#{doc_commands.uniq.size} commands of docs/rails.md, " \
      "#{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round(1)} s)"
rescue Failure => e
  say "rails app test: FAILED: #{e.message}"
  exit 1
ensure
  ($children || []).each do |pid|
    Process.kill("KILL", -pid)
    Process.waitpid(pid)
  rescue SystemCallError
    nil
  end
  server&.stop
end

# Every command of docs/rails.md that this plan runs (the page may contain no other).
PLAN_COMMANDS = [
  "bundle add tasker_core", "bin/rails db:create", "bin/rails tasker:install",
  "bin/rails generate tasker:task_handler OrderProcess", "bin/rails generate tasker:step_handler OrderProcess::ProcessData",
  "bin/rails generate tasker:api_step_handler OrderProcess::FetchData",
  SUBSCRIBER_COMMAND,
  "bundle add rspec --group test", "bundle exec rspec",
  "bin/rails generate model Order number:integer", "bin/rails db:migrate",
  "bin/rails tasker:worker", "bin/rails server",
  %(curl -s -X POST http://localhost:3000/orders -H 'Content-Type: application/json' -d '{"order": {"order_id": 42}}'),
  %(curl -s -X POST http://localhost:3000/orders -H 'Content-Type: application/json' -d '{"order": {"order_id": 43}}'),
  "bundle exec tasker task wait $TASK_UUID", "curl -s http://localhost:3000/orders/$TASK_UUID",
  "curl -s http://localhost:3000/health/ready", "curl -s http://localhost:3000/health/live",
  "curl -s http://localhost:3000/tasker/health/ready", "curl -s http://localhost:8081/health/ready",
  "bundle exec tasker templates list",
  "bundle exec tasker tasks list --status complete", "bundle exec tasker task show $TASK_UUID",
  "bundle exec tasker health", "bundle exec tasker templates validate config/tasker/tasks --check-handlers"
].freeze

main if $PROGRAM_NAME == __FILE__
