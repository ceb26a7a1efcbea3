# frozen_string_literal: true

# The benchmark: the engine's figures beside the machine's own floors, measured in one run.
#
#   bin/bench            (or: bundle exec rake bench)
#
# Environment:
#   TASKER_BENCH_DATABASE_URL  a database to use instead of the embedded cluster (stock settings,
#                              fsync and synchronous_commit on, pg_stat_statements loaded)
#   BENCH_SAMPLES              samples per workflow shape (default 200)
#   BENCH_SCALE                multiplies the sizes of the throughput and memory runs (default 1.0)
#   BENCH_JSON                 where to write the results (default bench/results/latest.json)
#   BENCH_THREADS              handler threads per worker process in the throughput runs (default 16)
#   BENCH_ONLY                 a comma-separated subset to run: shape keys (linear, diamond, ...),
#                              components, statements, create_task, create_tasks, drain, load, memory,
#                              python, task_list, peers (default: all of these), large_tables (only
#                              when named: the step path with 0, 100k and 1M finished tasks, and the
#                              retention sweep; several minutes, bench/large_tables_run.rb); peers also
#                              runs linear, components and drain, the figures the peers are shown beside
#   BENCH_LIST_TASKS           tasks in the database for the task_list part (default 100000)
#   BENCH_LARGE_LEVELS         the finished-task counts of large_tables (default 0,100000,1000000)
#   BENCH_PEERS_JOBS           jobs in each peer's drain (default 10,000 x BENCH_SCALE)
#
# Prints a table (figure, P50/P95/P99 or value, floor, ratio, target, PASS/MISS, reference) and
# writes the same figures as JSON.

require "etc"
require "fileutils"
require "json"
require "open3"
require "rbconfig"
require "time"

require_relative "../lib/tasker_core"
require_relative "../lib/tasker_core/embedded_postgres"
require_relative "handlers"
require_relative "large_tables_run"
require_relative "peers"
require_relative "python_run"
require_relative "../examples/csv_batch/handlers"
require_relative "../examples/approvals/handlers"

module Bench
  ROOT = File.expand_path("..", __dir__)
  FLOOR_SOURCE = File.join(__dir__, "floor.c")
  FLOOR_BINARY = File.join(ROOT, "tmp", "bench", "floor")

  # P50/P95/P99 and friends over a list of milliseconds.
  module Stats
    module_function

    def percentile(sorted, pct)
      return nil if sorted.empty?

      sorted[[(pct / 100.0 * sorted.size).ceil - 1, 0].max]
    end

    def summary(values)
      sorted = values.sort
      { "n" => sorted.size, "p50" => percentile(sorted, 50), "p95" => percentile(sorted, 95),
        "p99" => percentile(sorted, 99), "min" => sorted.first, "max" => sorted.last }
    end
  end

  # Direct SQL through psql, for setup and for reading timestamps and statement counts (never timed).
  module Sql
    module_function

    def rows(url, sql)
      out, err, status = Open3.capture3({ "LD_PRELOAD" => nil }, "psql", url, "-X", "-q", "-At", "-F", "\t",
                                        "-v", "ON_ERROR_STOP=1", "-c", sql)
      raise "psql failed: #{err}" unless status.success?

      out.lines.map { |l| l.chomp.split("\t", -1) }
    end

    def value(url, sql) = rows(url, sql).dig(0, 0)
  end

  # One benchmark run.
  class Run
    include LargeTablesRun
    include PythonRun

    SHAPES = [
      # key, template name, namespace, context, sequential commits on the critical path
      # (the create, then one completion per level), steps that run
      { key: "linear", name: "bench_linear", namespace: "bench", levels: 4, steps: 4,
        reference: "312-316 ms (Ruby FFI, 10-instance cluster); 127 ms one machine (earlier revision)" },
      { key: "diamond", name: "bench_diamond", namespace: "bench", levels: 3, steps: 4,
        reference: "260-275 ms (Ruby FFI, cluster)" },
      { key: "complex_dag", name: "bench_complex_dag", namespace: "bench", levels: 4, steps: 7,
        reference: "382 ms (Rust handlers, cluster)" },
      { key: "tree", name: "bench_tree", namespace: "bench", levels: 4, steps: 8,
        reference: "389-426 ms (Rust handlers, cluster)" },
      { key: "conditional", name: "approval_routing", namespace: "approvals", levels: 4, steps: 4,
        reference: "251-262 ms (cluster)" },
      { key: "batch_csv_1000", name: "csv_product_inventory", namespace: "csv_processing", levels: 3, steps: 7,
        reference: "358-368 ms (cluster)" }
    ].freeze

    # Handler threads per worker process of the throughput runs: results that finish during one flush share the next,
    # so more threads make larger groups.
    THROUGHPUT_THREADS = Integer(ENV.fetch("BENCH_THREADS", "16"))

    TARGETS = {
      "linear" => { "p50" => 3.0, "p95" => 5.0 }, "diamond" => { "p50" => 3.0 },
      "complex_dag" => { "p50" => 4.5 }, "tree" => { "p50" => 4.5 }, "conditional" => { "p50" => 3.5 },
      "batch_csv_1000" => { "p50" => 20.0 }
    }.freeze

    attr_reader :results

    def initialize
      @samples = Integer(ENV.fetch("BENCH_SAMPLES", "200"))
      @warmup = [@samples / 10, 10].max
      @scale = Float(ENV.fetch("BENCH_SCALE", "1.0"))
      @json_path = ENV.fetch("BENCH_JSON", File.join(ROOT, "bench", "results", "latest.json"))
      @results = { "started_at" => Time.now.utc.iso8601 }
      @children = []
      @only = ENV["BENCH_ONLY"]&.split(",")&.map(&:strip)
      @only |= %w[linear components drain] if @only&.include?("peers")
    end

    def part?(name) = @only.nil? || @only.include?(name)

    def call
      with_database do |url|
        @url = url
        @results["machine"] = machine_facts
        print_machine
        @results["floor"] = floors
        print_floors
        boot_engine
        @results["workflows"] = workflow_latencies
        @results["components"] = components if part?("components")
        @results["statements"] = statement_counts if part?("statements")
        stop_in_process_worker
        @results["create_task"] = create_task_latency if part?("create_task")
        @results["create_tasks"] = create_tasks_batch if part?("create_tasks")
        @results["throughput"] = { "drain" => (drain if part?("drain")), "load" => (load_run if part?("load")) }.compact
        @results["memory"] = memory_run if part?("memory")
        @results["python"] = python_part if part?("python")
        @results["peers"] = peers if part?("peers")
        # Last: they leave their tasks in the database.
        @results["task_list"] = task_list_latency if part?("task_list")
        @results["large_tables"] = large_tables if @only&.include?("large_tables")
        report
      end
    ensure
      @children.each { |pid| stop_child(pid) }
    end

    # The table of a results file as Markdown, with the machine and the floors.
    def markdown(results)
      @results = results
      m = results["machine"]
      f = results["floor"]
      puts "Run of #{results['started_at']}: #{m['cpus']} cpus (#{m['cpu_model']}), #{m['memory_mib']} MiB, " \
           "PostgreSQL #{m['postgresql'].split.first} (#{m['database']}, " \
           "#{m['settings'].slice('fsync', 'synchronous_commit').map { |k, v| "#{k}=#{v}" }.join(', ')}), " \
           "#{m['ruby'].split('(').first.strip}."
      puts
      puts format("Floors: commit P50 %.3f ms, NOTIFY round trip P50 %.3f ms, bare queue %.0f rows/s.",
                  f["commit_ms"]["p50"], f["notify_rtt_ms"]["p50"], f["queue_rows_per_s"])
      puts
      puts "| Figure | Value | Floor | Ratio | Target | | Reference |"
      puts "|---|---|---|---|---|---|---|"
      table_rows.each do |r|
        puts "| #{[r[:figure], r[:value], r[:floor], r[:ratio] && format('%.2fx', r[:ratio]), r[:target], r[:verdict],
                   r[:reference]].map { |c| c.to_s.gsub('|', '/') }.join(' | ')} |"
      end
      puts
      puts "Where the time goes (P50, ms):"
      puts
      puts "| Shape | create_task | pickup | handlers | between steps | finish notice |"
      puts "|---|---|---|---|---|---|"
      results["workflows"].each do |key, w|
        next unless w["stages"]

        st = w["stages"]
        puts format("| %s | %.2f | %.2f | %.2f | %.2f | %.2f |", key, st["create_ms"], st["pickup_ms"],
                    st["handlers_ms"], st["between_steps_ms"], st["finish_notice_ms"])
      end
      return unless results["peers"]

      header, *rows = Peers.table(results["peers"], ours_for_peers)
      puts
      puts "| #{header.join(' | ')} |"
      puts "|---|---|---|---|"
      rows.each { |r| puts "| #{r.map { |c| c.gsub('|', '/') }.join(' | ')} |" }
    end

    private

    # ---- database and machine ----

    def with_database
      url = ENV["TASKER_BENCH_DATABASE_URL"]
      return yield url if url && !url.empty?

      server = TaskerCore::EmbeddedPostgres.new(fsync: true).start
      begin
        yield server.url
      ensure
        TaskerCore.shutdown!
        server.stop
      end
    end

    def machine_facts
      cpu = File.read("/proc/cpuinfo")[/^model name\s*:\s*(.+)$/, 1] if File.exist?("/proc/cpuinfo")
      mem = File.read("/proc/meminfo")[/^MemTotal:\s*(\d+)/, 1].to_i / 1024 if File.exist?("/proc/meminfo")
      settings = Sql.rows(@url, "SELECT name, setting FROM pg_settings WHERE name IN " \
                                "('fsync','synchronous_commit','shared_buffers','max_connections','wal_sync_method')").to_h
      { "cpus" => Etc.nprocessors, "cpu_model" => cpu, "memory_mib" => mem,
        "kernel" => `uname -r`.strip, "ruby" => RUBY_DESCRIPTION,
        "postgresql" => Sql.value(@url, "SHOW server_version"), "settings" => settings,
        "database" => ENV["TASKER_BENCH_DATABASE_URL"] ? "given" : "embedded (unix socket)" }
    end

    def print_machine
      m = @results["machine"]
      puts "tasker_core benchmark, #{@results['started_at']}"
      puts "machine: #{m['cpus']} cpus (#{m['cpu_model']}), #{m['memory_mib']} MiB, Linux #{m['kernel']}"
      puts "ruby: #{m['ruby']}"
      puts "postgresql: #{m['postgresql']}, #{m['database']}, " +
           m["settings"].map { |k, v| "#{k}=#{v}" }.join(", ")
      puts
    end

    # ---- floors: plain libpq, no engine ----

    def floors
      build_floor
      rows = (10_000 * @scale).to_i.clamp(1000, 1_000_000)
      out, err, status = Open3.capture3({ "LD_PRELOAD" => nil }, FLOOR_BINARY, @url, @samples.to_s, rows.to_s)
      raise "floor probe failed: #{err}" unless status.success?

      raw = JSON.parse(out)
      { "commit_ms" => Stats.summary(raw["commit_ms"]), "notify_rtt_ms" => Stats.summary(raw["notify_rtt_ms"]),
        "queue_rows" => raw["queue_rows"], "queue_rows_per_s" => raw["queue_rows_per_s"] }
    end

    def build_floor
      return if File.exist?(FLOOR_BINARY) && File.mtime(FLOOR_BINARY) >= File.mtime(FLOOR_SOURCE)

      FileUtils.mkdir_p(File.dirname(FLOOR_BINARY))
      inc = `pg_config --includedir`.strip
      lib = `pg_config --libdir`.strip
      ok = system("gcc", "-std=gnu99", "-O2", "-Wall", "-pthread", "-I#{inc}", FLOOR_SOURCE, "-o", FLOOR_BINARY,
                  "-L#{lib}", "-lpq")
      raise "could not build #{FLOOR_SOURCE} (gcc and libpq-dev are needed)" unless ok
    end

    def print_floors
      f = @results["floor"]
      puts "floors (plain libpq, same database, same run):"
      puts format("  1-row INSERT commit      P50 %7.3f ms  P95 %7.3f ms", f["commit_ms"]["p50"], f["commit_ms"]["p95"])
      puts format("  write + NOTIFY -> LISTEN P50 %7.3f ms  P95 %7.3f ms", f["notify_rtt_ms"]["p50"],
                  f["notify_rtt_ms"]["p95"])
      puts format("  bare SKIP LOCKED queue, 2 clients, claim+complete: %.0f rows/s", f["queue_rows_per_s"])
      puts
    end

    # ---- the engine in this process ----

    def boot_engine
      ENV["TASKER_DATABASE_URL"] = @url
      TaskerCore.configure do |c|
        c.database_url = @url
        c.log_level = "error"
      end
      TaskerCore.migrate!
      TaskerCore::Templates.load([File.join(__dir__, "templates"), File.join(ROOT, "examples/approvals/templates"),
                                  File.join(ROOT, "examples/csv_batch/templates")])
      @csv_path = File.join(ROOT, "tmp", "bench", "products.csv")
      CsvBatch.write_products(@csv_path, 1000)
      @worker = TaskerCore::Worker.start(namespaces: %w[bench approvals csv_processing], concurrency: 5)
    end

    def stop_in_process_worker
      TaskerCore::Worker.stop(timeout: 10)
    end

    # Every task gets a context of its own: the default identity strategy would give back the
    # existing task for a repeated context.
    def context_for(shape, _i)
      i = (@sequence = (@sequence || 0) + 1)
      case shape[:key]
      when "conditional" then { "amount" => 500, "requester" => "bench", "purpose" => "sample #{i}" }
      when "batch_csv_1000" then { "csv_path" => @csv_path, "sample" => i }
      else { "even_number" => 6, "sample" => i }
      end
    end

    # One task from create_task to observed complete; the wait is LISTEN on the task's channel.
    def one_task(shape, i)
      t0 = Probe.now
      task = TaskerCore::Client.create_task(name: shape[:name], namespace: shape[:namespace],
                                            context: context_for(shape, i))
      created = Probe.now
      status = TaskerCore::Client.wait_for_task_status(task.task_uuid, timeout: 60)
      done = Probe.now
      raise "#{shape[:name]} task #{task.task_uuid} ended #{status}" unless status == "complete"

      { uuid: task.task_uuid, total: (done - t0) * 1000, create: (created - t0) * 1000, created: created,
        done: done, spans: Probe.take(task.task_uuid) }
    end

    def workflow_latencies
      puts "workflow latency: one task at a time, create_task -> observed complete, #{@samples} samples after " \
           "#{@warmup} warm-up"
      SHAPES.select { |shape| part?(shape[:key]) }.to_h do |shape|
        @warmup.times { |i| one_task(shape, -i - 1) }
        check_shape(shape)
        runs = Array.new(@samples) { |i| one_task(shape, i) }
        result = Stats.summary(runs.map { |r| r[:total] })
        result["floor_ms"] = (shape[:levels] + 1) * @results["floor"]["commit_ms"]["p50"]
        result["steps"] = shape[:steps]
        result["stages"] = stages(runs) if %w[linear diamond tree complex_dag].include?(shape[:key])
        puts format("  %-15s P50 %8.2f ms  P95 %8.2f ms  P99 %8.2f ms", shape[:key], result["p50"], result["p95"],
                    result["p99"])
        [shape[:key], result]
      end.tap { puts }
    end

    # The first sample's results are checked, so the benchmark never times a broken workflow.
    def check_shape(shape)
      run = one_task(shape, 0)
      steps = TaskerCore::Client.list_task_steps(run[:uuid])
      ran = steps.count { |s| s.current_state == "complete" }
      raise "#{shape[:key]}: #{ran} steps complete, expected #{shape[:steps]}" unless ran == shape[:steps]

      return unless shape[:key] == "batch_csv_1000"

      totals = steps.find { |s| s.name == "aggregate_csv_results" }.results["result"]
      raise "batch: aggregated #{totals['rows']} rows, expected 1000" unless totals["rows"] == 1000
    end

    # Where a task's time goes: create_task, pickup (create returned -> first handler start),
    # handlers, and the rest (completions, claims of the next steps, and the finish notice).
    def stages(runs)
      pick = runs.map { |r| (r[:spans].first[1] - r[:created]) * 1000 }
      handler = runs.map { |r| r[:spans].sum { |s| s[2] - s[1] } * 1000 }
      finish = runs.map { |r| (r[:done] - r[:spans].map { |s| s[2] }.max) * 1000 }
      between = runs.each_with_index.map { |r, i| r[:total] - r[:create] - pick[i] - finish[i] - handler[i] }
      { "create_ms" => Stats.summary(runs.map { |r| r[:create] })["p50"], "pickup_ms" => Stats.summary(pick)["p50"],
        "handlers_ms" => Stats.summary(handler)["p50"], "between_steps_ms" => Stats.summary(between)["p50"],
        "finish_notice_ms" => Stats.summary(finish)["p50"] }
    end

    # Pickup: create_task returned -> the root step's handler started (P50/P95), linear runs.
    def components
      runs = Array.new(@samples) { |i| one_task(SHAPES.first, 10_000 + i) }
      { "pickup_ms" => Stats.summary(runs.map { |r| (r[:spans].first[1] - r[:created]) * 1000 }) }
    end

    # Statements per executed step, from pg_stat_statements over 50 linear tasks: top-level
    # statements (round trips) of every connection, of the worker alone, and with the statements
    # run inside the SQL functions counted too.
    def statement_counts
      return { "available" => false } unless Sql.value(@url, "SELECT count(*) FROM pg_extension WHERE " \
                                                             "extname = 'pg_stat_statements'").to_i.positive? ||
                                             create_pg_stat_statements

      tasks = 50
      writes_before = settled_table_writes # earlier phases' counts reported first
      top = count_statements(tasks, "top")
      writes = settled_table_writes.zip(writes_before).map { |now, before| now - before }
      all = count_statements(tasks, "all")
      steps = tasks * 4
      { "available" => true, "tasks" => tasks, "steps" => steps,
        "top_level_per_step" => top[:total].fdiv(steps), "worker_per_step" => top[:worker].fdiv(steps),
        "worker_server_ms_per_step" => top[:worker_ms].fdiv(steps),
        "rows_inserted_per_step" => writes[0].fdiv(steps), "rows_updated_per_step" => writes[1].fdiv(steps),
        "client_per_task" => top[:client].fdiv(tasks), "nested_per_step" => all[:total].fdiv(steps),
        "worker_statements" => top[:by_query] }
    end

    # Rows inserted, updated and deleted in the tasker schema so far (pg_stat_user_tables).
    def table_writes
      Sql.rows(@url, "SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_del), 0) " \
                     "FROM pg_stat_user_tables WHERE schemaname = 'tasker'").first.map(&:to_i)
    end

    # table_writes once every backend has reported: a busy backend reports its counts at most once a
    # second, an idle one only after ten seconds, so the counts are read for at least eleven seconds
    # and until they stop moving.
    def settled_table_writes
      started = Probe.now
      last = table_writes
      stable = 0
      deadline = started + 25
      while (stable < 3 || Probe.now < started + 11) && Probe.now < deadline
        sleep 1
        now = table_writes
        stable = now == last ? stable + 1 : 0
        last = now
      end
      last
    end

    def create_pg_stat_statements
      Sql.rows(@url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
      true
    rescue RuntimeError
      false
    end

    CLIENT_QUERY = /create_task|LISTEN|UNLISTEN|tasker\.tasks WHERE task_uuid|get_task|wait/i

    def count_statements(tasks, track)
      Sql.rows(@url, "ALTER SYSTEM SET pg_stat_statements.track = '#{track}'")
      Sql.rows(@url, "SELECT pg_reload_conf()")
      sleep 0.3 # every backend rereads the configuration before its next statement
      Sql.rows(@url, "SELECT pg_stat_statements_reset()")
      tasks.times { |i| one_task(SHAPES.first, 20_000 + i) }
      rows = Sql.rows(@url, "SELECT calls, regexp_replace(query, '\\s+', ' ', 'g'), total_exec_time FROM pg_stat_statements s " \
                            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() " \
                            "AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%pg_reload_conf%'")
      total = rows.sum { |calls, _| calls.to_i }
      client = rows.select { |_, q| q.match?(CLIENT_QUERY) }.sum { |calls, _| calls.to_i }
      worker_rows = rows.reject { |_, q| q.match?(CLIENT_QUERY) }
      { total: total, client: client, worker: total - client,
        worker_ms: worker_rows.sum { |_, _, ms| ms.to_f },
        by_query: worker_rows.map { |calls, q| { "calls" => calls.to_i, "query" => q[0, 120] } }
                             .sort_by { |h| -h["calls"] } }
    ensure
      Sql.rows(@url, "ALTER SYSTEM RESET pg_stat_statements.track")
      Sql.rows(@url, "SELECT pg_reload_conf()")
    end

    # create_task for the 4-step linear template with no worker serving it: the typed call, and the
    # raw FFI call that returns a Hash.
    def create_task_latency
      typed = Array.new(@samples + @warmup) do |i|
        t0 = Probe.now
        TaskerCore::Client.create_task(name: "bench_linear", namespace: "bench", context: { "even_number" => 6, "c" => i })
        (Probe.now - t0) * 1000
      end.drop(@warmup)
      request = { "name" => "bench_linear", "namespace" => "bench", "version" => "1.0.0",
                  "initiator" => "bench", "source_system" => "bench", "reason" => "bench" }
      raw = Array.new(@samples + @warmup) do |i|
        t0 = Probe.now
        TaskerCore::FFI.client_create_task(request.merge("context" => { "even_number" => 6, "r" => i }))
        (Probe.now - t0) * 1000
      end.drop(@warmup)
      { "typed_ms" => Stats.summary(typed), "ffi_ms" => Stats.summary(raw) }
    end

    # 10,000 four-step linear tasks through one create_tasks call (no worker serving them): typed
    # (Client, TaskResponse structs) and raw (FFI, Hashes); beside them the same count through one
    # create_task call after another (FFI), in the same run.
    def create_tasks_batch
      n = TaskerCore::FFI::CREATE_TASKS_MAX
      base = { "name" => "bench_linear", "namespace" => "bench", "version" => "1.0.0",
               "initiator" => "bench", "source_system" => "bench", "reason" => "bench" }
      requests = ->(tag) { Array.new(n) { |i| base.merge("context" => { "even_number" => 6, tag => i }) } }
      typed_requests = requests.call("bt").map { |r| r.transform_keys(&:to_sym) }
      t0 = Probe.now
      typed = TaskerCore::Client.create_tasks(typed_requests)
      typed_s = Probe.now - t0
      raise "create_tasks answered #{typed.size} tasks" unless typed.size == n && typed.all? { |t| t.created == true }

      raw_requests = requests.call("br")
      t0 = Probe.now
      raw = TaskerCore::FFI.client_create_tasks(raw_requests)
      raw_s = Probe.now - t0
      raise "create_tasks answered #{raw.size} tasks" unless raw.size == n

      one_by_one = requests.call("bo")
      t0 = Probe.now
      one_by_one.each { |r| TaskerCore::FFI.client_create_task(r) }
      single_s = Probe.now - t0
      puts format("create_tasks: %d tasks in one call: %.3f s typed (%.0f tasks/s), %.3f s FFI (%.0f tasks/s); " \
                  "one create_task at a time: %.3f s (%.0f tasks/s)", n, typed_s, n / typed_s, raw_s, n / raw_s,
                  single_s, n / single_s)
      puts
      { "tasks" => n, "typed_s" => typed_s, "ffi_s" => raw_s, "create_task_loop_s" => single_s }
    end

    # ---- the task list (GET /v1/tasks) over a large table ----

    LIST_TARGET_P95_MS = 50.0

    # BENCH_LIST_TASKS (100,000) four-step tasks through create_tasks in batches of 10,000 (in a
    # namespace no worker serves, so they stay as created), then GET /v1/tasks answered by the Rack
    # app in this process (routing, the client's list, JSON), one request at a time: the first page,
    # a keyset page 90 % deep, a page filtered by initiator (a tenth of the tasks) and status, and
    # one filtered by an initiator of 0.1 % of the tasks (the filter's worst case short of none).
    def task_list_latency
      n = Integer(ENV.fetch("BENCH_LIST_TASKS", "100000"))
      base = { name: "bench_task_list", namespace: "bench_list", version: "1.0.0", reason: "bench" }
      t0 = Probe.now
      (0...n).each_slice(TaskerCore::FFI::CREATE_TASKS_MAX) do |slice|
        TaskerCore::FFI.client_create_tasks(slice.map do |i|
          { "name" => base[:name], "namespace" => base[:namespace], "version" => base[:version], "reason" => base[:reason],
            "initiator" => (i % 1000).zero? ? "rare-service" : "service-#{i % 10}", "source_system" => "system-#{i % 4}",
            "context" => { "even_number" => 6, "l" => i } }
        end)
      end
      fill_s = Probe.now - t0
      # The state autovacuum reaches soon after such a fill (statistics, visibility map), so the
      # reads are timed without a vacuum of the new rows running beside them.
      Sql.rows(@url, "VACUUM ANALYZE tasker.tasks")
      Sql.rows(@url, "VACUUM ANALYZE tasker.workflow_steps")
      total = Integer(Sql.value(@url, "SELECT count(*) FROM tasker.tasks"))
      deep = Sql.value(@url, "SELECT (to_jsonb(created_at) #>> '{}') || '_' || task_uuid FROM tasker.tasks " \
                             "ORDER BY created_at DESC, task_uuid DESC OFFSET #{(total * 0.9).to_i} LIMIT 1")
      app = TaskerCore::Web.new
      pages = {
        "first" => "per_page=25",
        "deep_keyset" => "per_page=25&cursor=#{URI.encode_www_form_component(deep)}",
        "filtered" => "per_page=25&initiator=service-3&status=steps_in_process",
        "rare_filter" => "per_page=25&initiator=rare-service"
      }
      result = { "tasks" => total, "fill_s" => fill_s }
      pages.each do |key, query|
        env = { "REQUEST_METHOD" => "GET", "PATH_INFO" => "/v1/tasks", "QUERY_STRING" => query }
        check = app.call(env.dup)
        raise "GET /v1/tasks?#{query} answered #{check[0]}: #{check[2].join[0, 300]}" unless check[0] == 200

        body = JSON.parse(check[2].join)
        raise "GET /v1/tasks?#{query} listed no tasks" if body["tasks"].empty?

        times = Array.new(@samples + @warmup) do
          t = Probe.now
          app.call(env.dup)[2].join
          (Probe.now - t) * 1000
        end.drop(@warmup)
        result[key] = Stats.summary(times).merge("query" => query, "listed" => body["tasks"].size,
                                                 "total_count" => body.dig("pagination", "total_count"))
      end
      result["plans"] = task_list_plans
      puts format("task list: %d tasks (filled in %.1f s); GET /v1/tasks P50/P95: first %.2f/%.2f ms, deep keyset " \
                  "%.2f/%.2f ms, filtered %.2f/%.2f ms, rare filter %.2f/%.2f ms", total, fill_s,
                  *%w[first deep_keyset filtered rare_filter].flat_map { |k| [result[k]["p50"], result[k]["p95"]] })
      puts
      result
    end

    # The plans of the list's statements with the initiator filter, for docs/performance.md, under
    # the engine's session settings (enable_seqscan off, jit off).
    def task_list_plans
      explain = ->(sql) { Sql.rows(@url, "SET enable_seqscan = off; SET jit = off; EXPLAIN #{sql}").map(&:first).join("\n") }
      { "initiator_page" => explain.call("SELECT * FROM tasker.tasks t WHERE t.initiator = 'service-3' " \
                                         "ORDER BY t.created_at DESC, t.task_uuid DESC LIMIT 26"),
        "initiator_count" => explain.call("SELECT count(*) FROM tasker.tasks t WHERE t.initiator = 'service-3'") }
    end

    # ---- throughput: separate worker processes ----

    # A benchmark worker process (bench/worker.rb, or another language's twin given as command),
    # once it says it is ready.
    def spawn_worker(namespace, concurrency, command: [RbConfig.ruby, File.join(__dir__, "worker.rb")])
      reader, writer = IO.pipe
      pid = Process.spawn({ "TASKER_DATABASE_URL" => @url, "LD_PRELOAD" => nil }, *command, namespace,
                          concurrency.to_s, out: writer)
      writer.close
      line = reader.gets
      raise "benchmark worker #{pid} did not start" unless line&.start_with?("ready")

      @children << pid
      [pid, reader]
    end

    def stop_child(pid)
      Process.kill("TERM", pid)
      Process.wait(pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    ensure
      @children.delete(pid)
    end

    # Creates n tasks from 4 threads with the raw FFI call.
    def create_many(name, namespace, n, tag)
      request = { "name" => name, "namespace" => namespace, "version" => "1.0.0",
                  "initiator" => "bench", "source_system" => "bench", "reason" => "bench" }
      Array.new(4) do |t|
        Thread.new do
          (t...n).step(4).each do |i|
            TaskerCore::FFI.client_create_task(request.merge("context" => { "even_number" => 6, tag => i }))
          end
        end
      end.each(&:join)
    end

    # Counted through the engine's own pool (one indexed count on an open connection): starting psql
    # here would take CPU from the run it measures.
    def completed(namespace)
      TaskerCore::FFI.client_count_tasks(namespace, "complete")
    end

    # The clock is read from the database's timestamps, so this wait's granularity does not enter
    # the figures.
    def wait_drained(namespace, expected, timeout: 600)
      deadline = Probe.now + timeout
      until completed(namespace) >= expected
        if Probe.now > deadline
          raise "#{namespace}: #{expected - completed(namespace)} tasks not complete after #{timeout} s"
        end

        failed = TaskerCore::FFI.client_count_tasks(namespace, "error")
        raise "#{namespace}: #{failed} tasks failed" if failed.positive?

        sleep 0.25
      end
    end

    # 10,000 single-step no-op tasks, created first, then drained by 2 worker processes (the Ruby
    # benchmark worker, or another language's given as command, serving namespace).
    def drain(namespace: "bench_drain", command: nil, label: "drain: %d single-step tasks, 2 worker processes")
      n = (10_000 * @scale).to_i
      create_many("bench_single", namespace, n, namespace)
      server_before = server_cpu_seconds
      options = command ? { command: command } : {}
      workers = Array.new(2) { spawn_worker(namespace, THROUGHPUT_THREADS, **options) }
      workers_before = workers.sum { |pid, _| cpu_seconds(pid) }
      wait_drained(namespace, n)
      server_cpu = server_cpu_seconds - server_before
      worker_cpu = workers.sum { |pid, _| cpu_seconds(pid) } - workers_before
      workers.each { |pid, _| stop_child(pid) }
      seconds = Sql.value(@url, "SELECT extract(epoch FROM max(t.completed_at) - min(s.last_attempted_at)) " \
                                "FROM tasker.tasks t JOIN tasker.workflow_steps s USING (task_uuid) " \
                                "WHERE t.namespace_name = '#{namespace}'").to_f
      rate = n / seconds
      puts format("#{label} x %d threads: %.0f steps/s (%.2f s); CPU per step: server %.0f us, workers %.0f us", n,
                  THROUGHPUT_THREADS, rate, seconds, server_cpu * 1e6 / n, worker_cpu * 1e6 / n)
      { "tasks" => n, "seconds" => seconds, "steps_per_s" => rate, "threads_per_process" => THROUGHPUT_THREADS,
        "server_cpu_us_per_step" => server_cpu * 1e6 / n, "worker_cpu_us_per_step" => worker_cpu * 1e6 / n }
    end

    # User + system CPU seconds of a process (0 once it is gone).
    def cpu_seconds(pid)
      fields = File.read("/proc/#{pid}/stat").split(") ").last.split
      (fields[11].to_i + fields[12].to_i).fdiv(Etc.sysconf(Etc::SC_CLK_TCK))
    rescue Errno::ENOENT, Errno::ESRCH
      0.0
    end

    # CPU seconds of every process of the PostgreSQL server (the postmaster's children, which
    # include each connection's backend), read from /proc: only for a server on this machine.
    def server_cpu_seconds
      @postmaster ||= begin
        pid_file = File.join(Sql.value(@url, "SHOW data_directory"), "postmaster.pid")
        File.readable?(pid_file) ? File.readlines(pid_file).first.to_i : nil
      end
      return 0.0 unless @postmaster

      Dir["/proc/[0-9]*/stat"].sum do |path|
        fields = File.read(path).split(") ").last.split
        fields[1].to_i == @postmaster ? (fields[11].to_i + fields[12].to_i).fdiv(Etc.sysconf(Etc::SC_CLK_TCK)) : 0.0
      rescue Errno::ENOENT, Errno::ESRCH
        0.0
      end
    end

    # 1,000 four-step linear tasks submitted at once to 2 running worker processes.
    def load_run
      n = (1000 * @scale).to_i
      workers = Array.new(2) { spawn_worker("bench_load", THROUGHPUT_THREADS) }
      create_many("bench_linear_load", "bench_load", n, "l")
      wait_drained("bench_load", n)
      workers.each { |pid, _| stop_child(pid) }
      latencies = Sql.rows(@url, "SELECT extract(epoch FROM completed_at - created_at) * 1000 FROM tasker.tasks " \
                                 "WHERE namespace_name = 'bench_load'").map { |r| r[0].to_f }
      seconds = Sql.value(@url, "SELECT extract(epoch FROM max(completed_at) - min(created_at)) FROM tasker.tasks " \
                                "WHERE namespace_name = 'bench_load'").to_f
      rate = n * 4 / seconds
      lat = Stats.summary(latencies)
      puts format("load: %d linear tasks at once, 2 worker processes x %d threads: %.0f steps/s, task P50 %.1f ms " \
                  "P95 %.1f ms", n, THROUGHPUT_THREADS, rate, lat["p50"], lat["p95"])
      { "tasks" => n, "steps" => n * 4, "seconds" => seconds, "steps_per_s" => rate, "task_latency_ms" => lat }
    end

    # One worker process: RSS after 1,000 and after 20,000 executed steps.
    def memory_run
      first = (1000 * @scale).to_i
      total = (20_000 * @scale).to_i
      Sql.rows(@url, "DELETE FROM tasker.tasks WHERE namespace_name = 'bench_drain'")
      pid, = spawn_worker("bench_drain", 4)
      create_many("bench_single", "bench_drain", first, "m1")
      wait_drained("bench_drain", first)
      rss_first = rss_kib(pid)
      create_many("bench_single", "bench_drain", total - first, "m2")
      wait_drained("bench_drain", total)
      rss_last = rss_kib(pid)
      stop_child(pid)
      growth = (rss_last - rss_first) * 100.0 / rss_first
      puts format("memory: worker RSS %.1f MiB after %d steps, %.1f MiB after %d (%+.1f %%)", rss_first / 1024.0,
                  first, rss_last / 1024.0, total, growth)
      puts
      { "steps_first" => first, "rss_first_kib" => rss_first, "steps_last" => total, "rss_last_kib" => rss_last,
        "growth_pct" => growth }
    end

    def rss_kib(pid) = File.read("/proc/#{pid}/status")[/^VmRSS:\s*(\d+)/, 1].to_i

    # ---- the peers (bench/peers.rb) ----

    def peers
      log_dir = File.join(ROOT, "tmp", "bench", "peers")
      FileUtils.mkdir_p(log_dir)
      Peers::Runner.new(url: @url, samples: @samples, log_dir: log_dir,
                        drain_jobs: Integer(ENV.fetch("BENCH_PEERS_JOBS", (10_000 * @scale).to_i.to_s))).call
    end

    # The engine's figures the peers are compared with: drain steps/s, pickup P50, linear P50.
    def ours_for_peers
      { drain: @results.dig("throughput", "drain", "steps_per_s"), pickup: @results.dig("components", "pickup_ms", "p50"),
        chain: @results.dig("workflows", "linear", "p50") }
    end

    # ---- the table ----

    def report
      rows = table_rows
      @results["table"] = rows
      @results["finished_at"] = Time.now.utc.iso8601
      print_table(rows)
      if @results["peers"]
        puts
        print_cells(Peers.table(@results["peers"], ours_for_peers))
      end
      FileUtils.mkdir_p(File.dirname(@json_path))
      File.write(@json_path, JSON.pretty_generate(@results))
      puts
      puts "results written to #{@json_path.delete_prefix("#{ROOT}/")}"
      missed = rows.count { |r| r[:verdict] == "MISS" }
      puts "#{rows.count { |r| r[:verdict] == 'PASS' }} targets met, #{missed} missed"
    end

    def table_rows
      f = @results["floor"]
      commit = f["commit_ms"]["p50"]
      rows = []
      SHAPES.each do |shape|
        w = @results["workflows"][shape[:key]]
        next unless w

        t = TARGETS[shape[:key]] || {}
        verdict = t.all? { |k, v| w[k] <= v } ? "PASS" : "MISS" unless t.empty?
        rows << { figure: "#{shape[:key]} (#{shape[:steps]} steps) latency",
                  value: format("P50 %.2f / P95 %.2f / P99 %.2f ms", w["p50"], w["p95"], w["p99"]),
                  floor: format("%d commits = %.2f ms", shape[:levels] + 1, w["floor_ms"]),
                  ratio: w["p50"] / w["floor_ms"], target: t.map { |k, v| "#{k.upcase} <= #{v} ms" }.join(", "),
                  verdict: verdict, reference: shape[:reference] }
      end
      c = @results["create_task"]
      c && rows << { figure: "create_task, 4 steps (typed)", value: format("P50 %.3f / P95 %.3f ms", c["typed_ms"]["p50"],
                                                                        c["typed_ms"]["p95"]),
                floor: format("1 commit = %.3f ms", commit), ratio: c["typed_ms"]["p50"] / commit,
                target: "P50 <= 0.6 ms", verdict: c["typed_ms"]["p50"] <= 0.6 ? "PASS" : "MISS",
                reference: "17.7 ms (linear 3, over HTTP)" }
      c && rows << { figure: "create_task, 4 steps (FFI Hash)", value: format("P50 %.3f / P95 %.3f ms", c["ffi_ms"]["p50"],
                                                                           c["ffi_ms"]["p95"]),
                floor: format("1 commit = %.3f ms", commit), ratio: c["ffi_ms"]["p50"] / commit }
      b = @results["create_tasks"]
      b && rows << { figure: "#{b['tasks']} tasks through create_tasks (typed)",
                value: format("%.3f s, %.0f tasks/s", b["typed_s"], b["tasks"] / b["typed_s"]),
                target: "<= 0.5 s", verdict: b["typed_s"] <= 0.5 ? "PASS" : "MISS",
                reference: format("%d create_task calls: %.3f s", b["tasks"], b["create_task_loop_s"]) }
      b && rows << { figure: "#{b['tasks']} tasks through create_tasks (FFI Hash)",
                value: format("%.3f s, %.0f tasks/s", b["ffi_s"], b["tasks"] / b["ffi_s"]),
                target: "<= 0.5 s", verdict: b["ffi_s"] <= 0.5 ? "PASS" : "MISS" }
      pickup = @results.dig("components", "pickup_ms")
      pickup && rows << { figure: "pickup (create returned -> handler start)",
                value: format("P50 %.3f / P95 %.3f ms", pickup["p50"], pickup["p95"]),
                floor: format("NOTIFY round trip %.3f ms", f["notify_rtt_ms"]["p50"]),
                ratio: pickup["p50"] / f["notify_rtt_ms"]["p50"], target: "P50 <= 0.6 ms",
                verdict: pickup["p50"] <= 0.6 ? "PASS" : "MISS", reference: "LISTEN/NOTIFY p95 14.1 ms" }
      s = @results["statements"]
      if s && s["available"]
        rows << { figure: "statements per step (round trips, all connections)",
                  value: format("%.2f (worker %.2f; client %.1f per task)", s["top_level_per_step"],
                                s["worker_per_step"], s["client_per_task"]),
                  target: "<= 4", verdict: s["top_level_per_step"] <= 4 ? "PASS" : "MISS",
                  reference: "~19 database operations per step" }
        hop = @results.dig("workflows", "linear", "stages", "between_steps_ms")
        server = s["worker_server_ms_per_step"]
        rows << { figure: "a chain's step: server time of the worker's statements",
                  value: hop ? format("%.2f ms of %.2f ms between two steps (the rest: commit, hand-over, Ruby)",
                                      server, hop / 3) : format("%.2f ms", server) }
        if s["rows_inserted_per_step"]
          rows << { figure: "rows written per step (linear tasks, their creation included)",
                    value: format("%.1f inserted, %.1f updated", s["rows_inserted_per_step"], s["rows_updated_per_step"]) }
        end
        rows << { figure: "statements per step (incl. inside SQL functions)",
                  value: format("%.1f", s["nested_per_step"]), target: "<= 6",
                  verdict: s["nested_per_step"] <= 6 ? "PASS" : "MISS", reference: "~19 database operations per step" }
      end
      d = @results["throughput"]["drain"]
      bare = f["queue_rows_per_s"]
      d && rows << { figure: "drain #{d['tasks']} single-step tasks, 2 processes x #{d['threads_per_process']} threads",
                value: format("%.0f steps/s", d["steps_per_s"]),
                floor: format("bare queue %.0f rows/s", bare), ratio: d["steps_per_s"] / bare,
                target: ">= 10,000 steps/s and >= 2 x bare queue",
                verdict: d["steps_per_s"] >= 10_000 && d["steps_per_s"] >= 2 * bare ? "PASS" : "MISS" }
      d && rows << { figure: "server CPU per step in the drain", value: format("%.0f us", d["server_cpu_us_per_step"]),
                target: "<= 60 us", verdict: d["server_cpu_us_per_step"] <= 60 ? "PASS" : "MISS" }
      d && rows << { figure: "worker CPU per step in the drain", value: format("%.0f us", d["worker_cpu_us_per_step"]) }
      l = @results["throughput"]["load"]
      l && rows << { figure: "#{l['tasks']} linear tasks at once, 2 processes",
                value: format("%.0f steps/s, task P95 %.1f ms", l["steps_per_s"], l["task_latency_ms"]["p95"]),
                floor: format("bare queue %.0f rows/s", bare), ratio: l["steps_per_s"] / bare,
                target: ">= 8,000 steps/s", verdict: l["steps_per_s"] >= 8000 ? "PASS" : "MISS" }
      tl = @results["task_list"]
      if tl
        %w[first deep_keyset filtered].each do |key|
          r = tl[key]
          rows << { figure: "GET /v1/tasks, #{key.tr('_', ' ')} page, #{tl['tasks']} tasks",
                    value: format("P50 %.2f / P95 %.2f ms", r["p50"], r["p95"]),
                    target: "P95 < #{LIST_TARGET_P95_MS.to_i} ms", verdict: r["p95"] < LIST_TARGET_P95_MS ? "PASS" : "MISS" }
        end
        r = tl["rare_filter"]
        rows << { figure: "GET /v1/tasks, initiator of 0.1 % of the tasks", value: format("P50 %.2f / P95 %.2f ms", r["p50"], r["p95"]) }
      end
      m = @results["memory"]
      m && rows << { figure: "worker RSS growth, #{m['steps_first']} -> #{m['steps_last']} steps",
                value: format("%.1f -> %.1f MiB (%+.1f %%)", m["rss_first_kib"] / 1024.0, m["rss_last_kib"] / 1024.0,
                              m["growth_pct"]),
                target: "< 10 %", verdict: m["growth_pct"] < 10 ? "PASS" : "MISS" }
      rows.concat(python_rows)
      rows.concat(large_table_rows)
    end

    def print_table(rows)
      headers = ["figure", "value", "floor", "ratio", "target", "", "reference"]
      print_cells([headers] + rows.map do |r|
        [r[:figure], r[:value], r[:floor] || "", r[:ratio] ? format("%.2fx", r[:ratio]) : "", r[:target] || "",
         r[:verdict] || "", r[:reference] || ""]
      end)
    end

    # A plain-text table; the first row is the header.
    def print_cells(all)
      headers, *cells = all
      widths = headers.each_index.map { |i| ([headers[i]] + cells.map { |c| c[i] }).map(&:size).max }
      line = ->(c) { c.each_with_index.map { |v, i| v.ljust(widths[i]) }.join(" | ").rstrip }
      puts line.call(headers)
      puts widths.map { |w| "-" * w }.join("-|-")
      cells.each { |c| puts line.call(c) }
    end
  end
end

if $PROGRAM_NAME == __FILE__
  if ARGV.first == "--table"
    # Prints the table of a results file again (Markdown, for docs/performance.md).
    Bench::Run.new.markdown(JSON.parse(File.read(ARGV.fetch(1))))
  else
    Bench::Run.new.call
  end
end
