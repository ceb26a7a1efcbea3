# frozen_string_literal: true

require "json"
require "securerandom"
require "open3"
require_relative "flush_statements"
require_relative "large_tables"

module Bench
  # The benchmark's large_tables part (BENCH_ONLY=large_tables): the step path's figures with 0,
  # 100,000 and 1,000,000 finished tasks in the database, the plans of the claim and the
  # completion at each size, and the retention sweep's cost per 10,000 tasks removed. Included in
  # Bench::Run, whose measurements it repeats at each size.
  module LargeTablesRun
    LEVELS = [0, 100_000, 1_000_000].freeze
    # Verdict: a figure at the largest size within this factor of the same figure at the smallest.
    GROWTH_LIMIT = 1.5
    # Retention: tasks removed per measured sweep, and the batch sizes measured (100: the worker's default).
    SWEEP_TASKS = 10_000
    SWEEP_BATCHES = [100, 1000].freeze
    # The engine's session settings (tc_db.c), for the statements run here through psql.
    ENGINE_OPTIONS = "-c jit=off -c enable_seqscan=off"
    PLAN_ROUNDS = 8

    private

    def large_tables
      levels = ENV.fetch("BENCH_LARGE_LEVELS", LEVELS.join(",")).split(",").map { |l| Integer(l) }
      shape = Run::SHAPES.first
      start_large_worker
      prototype = one_task(shape, 0)[:uuid]
      # A warm-up pass, discarded: without it the smallest size's create_task came out twice as
      # slow as the same size measured again right after, which would favour the larger sizes.
      @warmup.times { |i| one_task(shape, -i - 1) }
      TaskerCore::Worker.stop(timeout: 10)
      create_task_latency
      generator = LargeTables.new(@url, prototype)
      puts "large tables: copies of the finished linear task #{prototype} " \
           "(#{generator.prototype_rows.select { |_, n| n.positive? }.map { |t, n| "#{t} #{n}" }.join(', ')})"
      results = levels.map { |count| large_tables_level(generator, count, shape) }
      sweep = retention_sweeps(generator)
      print_large_tables(results, sweep)
      { "prototype" => prototype, "prototype_rows" => generator.prototype_rows, "levels" => results,
        "retention" => sweep, "growth_limit" => GROWTH_LIMIT }
    end

    def start_large_worker
      TaskerCore::Worker.start(namespaces: %w[bench approvals csv_processing], concurrency: 5)
    end

    # Generates up to count copies, then measures: the linear chain and pickup (worker running),
    # statements per step, the plans of a chain's statements (psql, auto_explain), create_task.
    def large_tables_level(generator, count, shape)
      level = { "generated" => count }
      if count > generator.generated
        level["generate_s"] = generator.generate(count - generator.generated) do |done, s|
          puts format("  generated %d finished tasks (%.1f s)", done, s)
        end
        level["vacuum_analyze_s"] = generator.vacuum_analyze
        puts format("  %d copies in %.1f s; VACUUM (ANALYZE) %.1f s", count, level["generate_s"],
                    level["vacuum_analyze_s"])
        level["copy_check"] = check_copy(generator, count)
      end
      level["floor"] = level_floors
      start_large_worker
      wait_bench_idle
      level["finished_tasks"] = Sql.value(@url, "SELECT count(*) FROM tasker.tasks WHERE status = 'complete'").to_i
      level["tables_mib"] = Sql.value(@url, "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c " \
                                            "WHERE c.relnamespace = 'tasker'::regnamespace AND c.relkind = 'r'").to_i / 1_048_576
      level["identity_index_mib"] = Sql.value(@url, "SELECT pg_relation_size('tasker.tasks_identity_hash_key')").to_i / 1_048_576.0
      @warmup.times { |i| one_task(shape, -i - 1) }
      runs = Array.new(@samples) { |i| one_task(shape, i) }
      level["linear_ms"] = Stats.summary(runs.map { |r| r[:total] })
      level["pickup_ms"] = Stats.summary(runs.map { |r| (r[:spans].first[1] - r[:created]) * 1000 })
      level["stages"] = stages(runs)
      level["hop_ms"] = level["stages"]["between_steps_ms"] / (shape[:steps] - 1)
      statements = statement_counts
      level["statements"] = statements.except("worker_statements")
      TaskerCore::Worker.stop(timeout: 10)
      level["plans"] = chain_plans(count)
      Sql.rows(@url, "SELECT pg_stat_statements_reset()") if statements["available"]
      level["create_task"] = create_task_latency
      level["create_task_server"] = create_task_server_side if statements["available"]
      level["load_average"] = File.read("/proc/loadavg").split.first(3).map(&:to_f) if File.exist?("/proc/loadavg")
      puts format("  %d finished: linear P50 %.2f ms, pickup P50 %.3f ms, between steps %.2f ms per hop, " \
                  "create_task P50 %.3f ms, %d statements with a scan of a whole table or index",
                  level["finished_tasks"], level["linear_ms"]["p50"], level["pickup_ms"]["p50"], level["hop_ms"],
                  level["create_task"]["typed_ms"]["p50"], level["plans"]["statements"].count { |s| s["unkeyed"] })
      level
    end

    # The commit and NOTIFY round-trip floors again at this size (bench/floor.c, a small queue): on
    # a shared machine they tell a slower machine from a slower engine.
    def level_floors
      out, err, status = Open3.capture3({ "LD_PRELOAD" => nil }, FLOOR_BINARY, @url, @samples.to_s, "1000")
      raise "floor probe failed: #{err}" unless status.success?

      raw = JSON.parse(out)
      { "commit_ms" => Stats.summary(raw["commit_ms"]), "notify_rtt_ms" => Stats.summary(raw["notify_rtt_ms"]) }
    end

    # Tasks left enqueued by the previous size's create_task measurement run first.
    def wait_bench_idle(timeout: 120)
      deadline = Probe.now + timeout
      until Sql.value(@url, "SELECT count(*) FROM tasker.workflow_steps WHERE status IN ('enqueued', 'in_progress') " \
                            "AND namespace_name = 'bench'").to_i.zero?
        raise "bench steps still queued after #{timeout} s" if Probe.now > deadline

        sleep 0.2
      end
    end

    # The last copy made (the oldest task), as the engine sees it: create_task with its context finds it,
    # get_task and list_task_steps answer as for the prototype.
    def check_copy(generator, n)
      proto = TaskerCore::Client.get_task(generator.prototype)
      copy = TaskerCore::Client.create_task(name: "bench_linear", namespace: "bench",
                                            context: proto.context.merge("large_tables" => n))
      raise "create_task made a new task instead of finding copy #{n}" unless copy.created == false

      task = TaskerCore::Client.get_task(copy.task_uuid)
      steps = TaskerCore::Client.list_task_steps(copy.task_uuid)
      proto_steps = TaskerCore::Client.list_task_steps(generator.prototype)
      same = task.status == proto.status && task.total_steps == proto.total_steps &&
             steps.map { |s| [s.name, s.current_state, s.results["result"]] } ==
             proto_steps.map { |s| [s.name, s.current_state, s.results["result"]] }
      raise "copy #{n} (#{copy.task_uuid}) does not read like its prototype" unless same

      { "task_uuid" => copy.task_uuid, "created_at" => task.created_at.to_s, "status" => task.status }
    end

    # A worker's chain through psql, with auto_explain logging every statement's plan to this
    # session: create_task_response, then the claim and four flushes (each completing a step and
    # taking the next by hand-off: the flusher's two prepared statements, read from
    # core/tc_flush_sql.h, in one transaction with the flusher's session settings), PLAN_ROUNDS
    # times, in one session, so the last round runs on the plans a long-running worker has cached.
    # The last round's plans are kept: each statement, the scans it made and the buffers it touched.
    def chain_plans(count)
      result = '{"success": true, "status": "completed", "result": {"result": 1}, "metadata": {"execution_time_ms": 0}}'
      script = +<<~SQL
        LOAD 'auto_explain';
        SET auto_explain.log_min_duration = 0;
        SET auto_explain.log_nested_statements = on;
        SET auto_explain.log_analyze = on;
        SET auto_explain.log_buffers = on;
        SET auto_explain.log_timing = off;
        SET client_min_messages = log;
        \\set w '#{SecureRandom.uuid}'
        PREPARE tc_flush_complete(uuid, uuid[], uuid[], jsonb, boolean[], integer) AS #{FlushStatements.complete};
        PREPARE tc_flush_claim(uuid, text[], integer, integer, uuid[]) AS #{FlushStatements.claim};
      SQL
      flush_settings = "SET plan_cache_mode = force_generic_plan; SET enable_bitmapscan = off;\n"
      PLAN_ROUNDS.times do |round|
        request = JSON.generate({ "name" => "bench_linear", "namespace" => "bench", "version" => "1.0.0",
                                  "initiator" => "bench", "source_system" => "bench", "reason" => "bench",
                                  "context" => { "even_number" => 6, "plans" => "#{count}-#{round}-#{SecureRandom.hex(4)}" } })
        script << "\\warn ROUND #{round}\n"
        script << "SELECT tasker.create_task_response(tasker.uuid_v7(), '#{request}'::jsonb || " \
                  "jsonb_build_object('correlation_id', tasker.uuid_v7())) IS NOT NULL AS created \\gset\n"
        script << "SELECT c->'steps'->0->>0 AS token, c->'steps'->0->>2 AS step " \
                  "FROM (SELECT tasker.claim(:'w', '{bench}', 1, 30)::jsonb AS c) x \\gset\n"
        script << flush_settings
        4.times do |i|
          script << "BEGIN;\n"
          script << "EXECUTE tc_flush_complete(:'w', ARRAY[:'step']::uuid[], ARRAY[:'token']::uuid[], " \
                    "'[#{result}]', '{t}', 30) \\g /dev/null\n"
          if i < 3
            script << "EXECUTE tc_flush_claim(:'w', '{bench}', 1, 30, ARRAY[:'step']::uuid[]) \\gset\n"
            script << "SELECT :'event'::json->>0 AS token, :'event'::json->>2 AS step \\gset\n"
          end
          script << "COMMIT;\n"
        end
        script << "RESET plan_cache_mode; RESET enable_bitmapscan;\n"
      end
      _out, err, status = Open3.capture3({ "LD_PRELOAD" => nil, "PGOPTIONS" => ENGINE_OPTIONS }, "psql", @url, "-X",
                                         "-q", "-v", "ON_ERROR_STOP=1", stdin_data: script)
      raise "chain plans: psql failed: #{err[-2000..]}" unless status.success?

      last = err.split(/^ROUND \d+$/).last
      entries = last.split(/^LOG:\s+duration: [\d.]+ ms\s+plan:\n/).drop(1)
      statements = entries.map { |e| plan_summary(e) }
      path = File.join(ROOT, "tmp", "bench", "large_tables_plans_#{count}.txt")
      FileUtils.mkdir_p(File.dirname(path))
      File.write(path, last)
      { "statements" => statements, "log" => path.delete_prefix("#{ROOT}/") }
    end

    # One auto_explain entry: the statement (first line of its text), its scans, the buffers its
    # top node touched, and whether it scanned a whole table or a whole index of tasker's.
    def plan_summary(entry)
      text = entry[/Query Text: (.*)/, 1].to_s.strip
      plan = entry.lines.reject { |l| l.start_with?("CONTEXT:", "\t") && !l.include?("->") }.join
      scans = plan.scan(/((?:Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)(?: Backward)?(?: using \w+)? on (?:tasker\.)?\w+)/).flatten
      buffers = entry[/Buffers: ([^\n]*)/, 1].to_s.scan(/(?:hit|read)=(\d+)/).flatten.sum(&:to_i)
      # A keyed plan reaches its rows through an index by key or a bounded range (a bitmap scan
      # of a key's index is keyed too); a whole-table one is a Seq Scan of an engine table, or
      # reads or filters out thousands of rows or touches thousands of buffers.
      rows_read = [*plan.scan(/Scan[^\n]*\(actual rows=(\d+) loops=(\d+)\)/).map { |r, l| r.to_i * l.to_i },
                   *plan.scan(/Rows Removed by (?:Filter|Index Recheck): (\d+)/).flatten.map(&:to_i)].max.to_i
      unkeyed = scans.any? { |s| s.match?(/\ASeq Scan on (tasks|workflow_|task_|events_outbox)/) } ||
                rows_read > 1000 || buffers > 1000
      { "statement" => text[0, 160], "scans" => scans, "buffers" => buffers, "rows_read" => rows_read,
        "unkeyed" => unkeyed, "top_level" => text.match?(%r{\A(SELECT (tasker\.create_task_response|c->'steps')|/\* tasker\.flush)}) }
    end

    # The retention sweep (tasker.remove_finished_tasks, as the worker's sweeper calls it, through
    # psql with the engine's settings) on the oldest copies: SWEEP_TASKS tasks in batches of each
    # size, each batch one transaction. Time per batch from psql's \timing, WAL from the server's
    # insert position.
    def retention_sweeps(generator)
      needed = SWEEP_TASKS * SWEEP_BATCHES.size
      days = (1..36_500).select { |d| LargeTables.due(d, generator.generated) >= needed }.max
      return { "skipped" => "fewer than #{needed} copies" } unless days

      puts "retention: #{LargeTables.due(days, generator.generated)} copies older than #{days} days"
      SWEEP_BATCHES.map { |batch| sweep(days, batch) }
    end

    def sweep(days, batch)
      calls = SWEEP_TASKS / batch
      script = +"SELECT pg_current_wal_lsn();\n\\timing on\n"
      calls.times { script << "SELECT tasker.remove_finished_tasks(#{days}, NULL, #{batch});\n" }
      script << "\\timing off\nSELECT pg_current_wal_lsn();\n"
      out, err, status = Open3.capture3({ "LD_PRELOAD" => nil, "PGOPTIONS" => ENGINE_OPTIONS }, "psql", @url, "-X",
                                        "-q", "-At", "-v", "ON_ERROR_STOP=1", stdin_data: script)
      raise "retention sweep: psql failed: #{err}" unless status.success?

      lines = out.lines.map(&:chomp)
      times = lines.grep(/\ATime: /).map { |l| l[/Time: ([\d.]+) ms/, 1].to_f }
      counts = lines.grep(/\A\{/).map { |l| JSON.parse(l) }
      lsns = lines.grep(%r{\A[0-9A-F]+/[0-9A-F]+\z})
      wal = Sql.value(@url, "SELECT pg_wal_lsn_diff('#{lsns.last}', '#{lsns.first}')").to_i
      rows = counts.sum { |c| c.values.sum }
      tasks = counts.sum { |c| c["tasks"] }
      raise "retention sweep removed #{tasks} tasks, expected #{SWEEP_TASKS}" unless tasks == SWEEP_TASKS

      per_batch = Stats.summary(times)
      puts format("  batches of %d: %d tasks, %d rows in %.2f s (batch P50 %.1f ms, max %.1f ms), WAL %.1f MiB",
                  batch, tasks, rows, times.sum / 1000, per_batch["p50"], per_batch["max"], wal / 1_048_576.0)
      { "batch_size" => batch, "days" => days, "tasks" => tasks, "rows" => rows, "seconds" => times.sum / 1000,
        "batch_ms" => per_batch, "wal_bytes" => wal,
        "rows_by_table" => counts.each_with_object(Hash.new(0)) { |c, h| c.each { |k, v| h[k] += v } } }
    end

    # The server's side of the create_task calls just measured (pg_stat_statements): mean execution
    # time, and pages per call read from outside shared_buffers, dirtied and written by the backend.
    def create_task_server_side
      calls, ms, read, dirtied, written = Sql.rows(@url, "SELECT sum(calls), sum(total_exec_time) / sum(calls), " \
                                                         "sum(shared_blks_read)::float8 / sum(calls), " \
                                                         "sum(shared_blks_dirtied)::float8 / sum(calls), " \
                                                         "sum(shared_blks_written)::float8 / sum(calls) " \
                                                         "FROM pg_stat_statements WHERE toplevel " \
                                                         "AND query LIKE '%create_task_response%'").first
      { "calls" => calls.to_i, "mean_ms" => ms.to_f, "blocks_read" => read.to_f, "blocks_dirtied" => dirtied.to_f,
        "blocks_written" => written.to_f }
    end

    # ---- output ----

    # The figures at each size, side by side: [label, values, format, whether the verdict applies].
    def large_tables_figures(levels)
      [["linear (4 steps) P50 ms", levels.map { |l| l["linear_ms"]["p50"] }, "%.2f", true],
       ["linear (4 steps) P95 ms", levels.map { |l| l["linear_ms"]["p95"] }, "%.2f", false],
       ["pickup P50 ms", levels.map { |l| l["pickup_ms"]["p50"] }, "%.3f", true],
       ["claim+complete: between two steps P50 ms", levels.map { |l| l["hop_ms"] }, "%.2f", true],
       ["worker statements' server time per step ms",
        levels.map { |l| l.dig("statements", "worker_server_ms_per_step") }, "%.3f", true],
       ["create_task (typed) P50 ms", levels.map { |l| l["create_task"]["typed_ms"]["p50"] }, "%.3f", true],
       ["create_task (typed) P95 ms", levels.map { |l| l["create_task"]["typed_ms"]["p95"] }, "%.3f", false],
       ["create_task (FFI Hash) P50 ms", levels.map { |l| l["create_task"]["ffi_ms"]["p50"] }, "%.3f", true],
       ["create_task server time, mean ms", levels.map { |l| l.dig("create_task_server", "mean_ms") }, "%.3f", true],
       ["create_task pages read from outside shared_buffers per call",
        levels.map { |l| l.dig("create_task_server", "blocks_read") }, "%.2f", false],
       ["size of tasks' identity_hash index (random order), MiB", levels.map { |l| l["identity_index_mib"] }, "%.1f", false],
       ["statements with a whole-table or whole-index scan", levels.map { |l| l["plans"]["statements"].count { |s| s["unkeyed"] } },
        "%d", false],
       ["buffers touched by one task's create, claim and 4 flushes",
        levels.map { |l| l["plans"]["statements"].select { |s| s["top_level"] }.sum { |s| s["buffers"] } }, "%d", false],
       ["floor: 1-row commit P50 ms (same size, same minute)", levels.map { |l| l.dig("floor", "commit_ms", "p50") }, "%.3f",
        false],
       ["floor: NOTIFY round trip P50 ms", levels.map { |l| l.dig("floor", "notify_rtt_ms", "p50") }, "%.3f", false],
       ["machine load average (1 min) after the measurements", levels.map { |l| l["load_average"]&.first }, "%.2f", false]]
    end

    def growth_verdict(values)
      return nil if values.size < 2 || values.any?(&:nil?) || values.first.to_f <= 0

      values.last <= values.first * GROWTH_LIMIT ? "PASS" : "MISS"
    end

    def print_large_tables(levels, sweep)
      puts
      header = ["finished tasks (tables' size)", *levels.map { |l| "#{l['finished_tasks']} (#{l['tables_mib']} MiB)" },
                "largest / smallest", ""]
      rows = large_tables_figures(levels).map do |label, values, fmt, verdict|
        ratio = values.none?(&:nil?) && values.first.to_f.positive? ? format("%.2fx", values.last.to_f / values.first) : ""
        [label, *values.map { |v| v.nil? ? "-" : format(fmt, v) }, ratio, verdict ? growth_verdict(values).to_s : ""]
      end
      widths = header.each_index.map { |i| ([header] + rows).map { |r| r[i].to_s.size }.max }
      [header, widths.map { |w| "-" * w }, *rows].each do |r|
        puts r.each_with_index.map { |c, i| c.to_s.ljust(widths[i]) }.join(" | ").rstrip
      end
      return unless sweep.is_a?(Array)

      sweep.each do |s|
        puts format("retention sweep, batches of %d: %.2f s per 10,000 tasks (%d rows, %.1f MiB WAL)", s["batch_size"],
                    s["seconds"] * 10_000 / s["tasks"], s["rows"], s["wal_bytes"] / 1_048_576.0)
      end
      puts
    end

    # Rows for the main table.
    def large_table_rows
      lt = @results["large_tables"]
      return [] unless lt

      levels = lt["levels"]
      sizes = levels.map { |l| l["finished_tasks"] }.join(" / ")
      rows = large_tables_figures(levels).select { |_, _, _, verdict| verdict }.map do |label, values, fmt, _|
        { figure: "#{label}, #{sizes} finished tasks", value: values.map { |v| v.nil? ? "-" : format(fmt, v) }.join(" / "),
          ratio: growth_verdict(values) && values.last.to_f / values.first,
          target: "largest <= #{lt['growth_limit']} x smallest", verdict: growth_verdict(values) }
      end
      unkeyed = levels.last["plans"]["statements"].select { |s| s["unkeyed"] }
      rows << { figure: "claim and completion plans at #{levels.last['finished_tasks']} finished tasks",
                value: unkeyed.empty? ? "every statement keyed" : "#{unkeyed.size} scan a whole table or index: " +
                                                                  unkeyed.map { |s| s["statement"][0, 60] }.join("; "),
                target: "keyed", verdict: unkeyed.empty? ? "PASS" : "MISS" }
      Array(lt["retention"]).each do |s|
        next unless s.is_a?(Hash) && s["tasks"]

        rows << { figure: "retention sweep per 10,000 tasks, batches of #{s['batch_size']}",
                  value: format("%.2f s, %d rows, %.1f MiB WAL (batch P50 %.1f ms)", s["seconds"] * 10_000 / s["tasks"],
                                s["rows"] * 10_000 / s["tasks"], s["wal_bytes"] * 10_000.0 / s["tasks"] / 1_048_576,
                                s["batch_ms"]["p50"]) }
      end
      rows
    end
  end
end
