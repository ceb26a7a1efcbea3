# frozen_string_literal: true

require "open3"

module Bench
  # Finished tasks in bulk, for measuring the engine with large tables: copies of one real
  # finished task (the prototype), made by set-based SQL, one INSERT ... SELECT per table per
  # chunk of tasks. Every table of the tasker schema with a task_uuid column is copied (tasks,
  # steps, edges, step attempts, step transition log, task transitions, and the outbox and DLQ rows
  # when the prototype has any), every column of it, through the table's indexes:
  #
  # - uuids are remapped per copy, consistently across tables (a step's uuid is the same in its
  #   step row, its edges and its attempts), and stay uuid v7 whose time is the copy's time; the
  #   last byte is kept (an attempt's uuid ends in 00, the view of the transitions relies on it).
  #   Uuids of things a copy shares with the prototype are kept: the template (named_task_uuid), the
  #   worker (worker_uuid, claim_owner), processor_uuid, parent_correlation_id;
  # - timestamps move by the copy's offset: copy n was created 1 day + n x 8.64 s before the
  #   prototype (10,000 tasks per day of history, the newest a day old);
  # - the context gets "large_tables": n, and identity_hash is computed from it as create_task
  #   does (the default identity strategy), so create_task with that context finds the copy;
  # - a step_uuid inside a jsonb column (a step's result) is the copy's step uuid.
  #
  # Runs through one psql session per call; the engine is not involved.
  class LargeTables
    CHUNK = 100_000
    SPACING_MS = 8640
    DAY_MS = 86_400_000
    TASKS_PER_DAY = DAY_MS / SPACING_MS
    SHARED_UUIDS = %w[named_task_uuid worker_uuid claim_owner processor_uuid parent_correlation_id].freeze
    # Written before the tables that reference them.
    FIRST = %w[tasks workflow_steps].freeze

    attr_reader :prototype, :generated

    def initialize(url, prototype, chunk: CHUNK)
      @url = url
      @prototype = prototype
      @chunk = chunk
      @generated = 0
      check_prototype
    end

    # VACUUM (ANALYZE) of the tables written, as autovacuum does after many inserts (the statistics
    # the planner then uses, the visibility map), then a CHECKPOINT (superuser), so that what is
    # measured next does not share the disk with writing out the copies; returns the seconds taken.
    def vacuum_analyze
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      sql("VACUUM (ANALYZE) #{tables.keys.map { |t| "tasker.#{t}" }.join(', ')}")
      sql("CHECKPOINT") if superuser?
      Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    end

    # Tables with a task_uuid column, parents first, and their columns (name, type; serial
    # columns left to their default).
    def tables
      @tables ||= begin
        rows = sql("SELECT c.table_name, c.column_name, c.data_type, coalesce(c.column_default, '') " \
                   "FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name) " \
                   "WHERE c.table_schema = 'tasker' AND t.table_type = 'BASE TABLE' AND c.table_name IN " \
                   "(SELECT table_name FROM information_schema.columns WHERE table_schema = 'tasker' " \
                   "AND column_name = 'task_uuid') ORDER BY c.table_name, c.ordinal_position")
        grouped = rows.group_by(&:first).transform_values do |cols|
          cols.reject { |c| c[3].start_with?("nextval(") }.map { |c| [c[1], c[2]] }
        end
        grouped.sort_by { |name, _| [FIRST.index(name) || FIRST.size, name] }.to_h
      end
    end

    # Rows the prototype has in each table.
    def prototype_rows
      @prototype_rows ||= tables.keys.to_h { |t| [t, sql("SELECT count(*) FROM tasker.#{t} WHERE task_uuid = '#{@prototype}'")[0][0].to_i] }
    end

    # Adds count copies (numbered after those already made), in chunks: one transaction and one
    # statement per table per chunk. Yields (copies made so far, seconds) after each chunk.
    def generate(count)
      copied = tables.select { |t, _| prototype_rows[t].positive? }
      script = +"\\set ON_ERROR_STOP 1\n"
      # The copies are consistent by construction: a superuser skips the foreign-key checks
      # (triggers), which would only probe the rows just written.
      script << "SET session_replication_role = replica;\n" if superuser?
      copied.each { |t, cols| script << prototype_sql(t, cols) << ";\n" }
      first = @generated + 1
      last = @generated + count
      first.step(last, @chunk) do |lo|
        hi = [lo + @chunk - 1, last].min
        script << "BEGIN;\n"
        copied.each { |t, cols| script << insert_sql(t, cols, lo, hi) << ";\n" }
        # Progress on stderr, which psql does not buffer.
        script << "COMMIT;\n\\warn chunk #{hi}\n"
      end
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Open3.popen3({ "LD_PRELOAD" => nil }, "psql", @url, "-X", "-q", "-At") do |stdin, stdout, stderr, wait|
        out = Thread.new { stdout.read }
        writer = Thread.new do
          stdin.write(script)
          stdin.close
        rescue Errno::EPIPE
          nil # psql stopped at an error, reported below
        end
        errors = +""
        stderr.each_line do |line|
          if (done = line[/\Achunk (\d+)$/, 1])
            @generated = done.to_i
            yield @generated, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started if block_given?
          else
            errors << line
          end
        end
        writer.join
        out.join
        raise "generating large tables failed: #{errors}" unless wait.value.success? && @generated == last
      rescue Exception # an interrupted run (Ctrl-C) stops psql too, then goes on unwinding
        Process.kill("TERM", wait.pid) if wait&.alive?
        raise
      end
      Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    end

    # The prototype's rows of one table, in a temporary table, with the parts of each uuid that its
    # copies keep (column__ms, __mid, __tail: see remap), so that the copies only assemble them.
    def prototype_sql(table, cols)
      parts = cols.flat_map do |name, type|
        if remapped?(name, type)
          uuid_parts("p.#{name}", name)
        elsif type == "jsonb"
          uuid_parts("(CASE WHEN jsonb_typeof(p.#{name}) = 'object' THEN p.#{name}->>'step_uuid' END)::uuid",
                     "#{name}_step")
        else
          []
        end
      end
      "CREATE TEMP TABLE proto_#{table} AS SELECT #{['p.*', *parts].join(', ')} FROM tasker.#{table} p " \
        "WHERE p.task_uuid = '#{@prototype}'"
    end

    # The statement that copies one table's prototype rows for copies lo..hi.
    def insert_sql(table, cols, lo, hi)
      exprs = cols.map { |name, type| column_expr(table, name, type) }
      "INSERT INTO tasker.#{table} (#{cols.map(&:first).join(', ')}) SELECT #{exprs.join(', ')} " \
        "FROM generate_series(#{hi}, #{lo}, -1) AS g(n) " \
        "CROSS JOIN LATERAL (SELECT -(#{DAY_MS}::bigint + g.n::bigint * #{SPACING_MS}) AS ms, " \
        "lpad(to_hex(g.n), 8, '0') AS nhex) s " \
        "CROSS JOIN LATERAL (SELECT s.ms * interval '1 millisecond' AS shift) d " \
        "CROSS JOIN proto_#{table} p"
    end

    # How many copies are older than `days` (by created_at): those retention with that age removes.
    def self.due(days, generated)
      (generated - ((days - 1) * TASKS_PER_DAY)).clamp(0, generated)
    end

    private

    def column_expr(table, name, type)
      col = "p.#{name}"
      if table == "tasks" && name == "context"
        context_expr
      elsif table == "tasks" && name == "identity_hash"
        identity_expr(context_expr)
      elsif remapped?(name, type)
        remap(name)
      elsif type.start_with?("timestamp")
        "#{col} + d.shift"
      elsif type == "jsonb"
        "CASE WHEN p.#{name}_step__ms IS NULL THEN #{col} " \
          "ELSE jsonb_set(#{col}, '{step_uuid}', to_jsonb(#{remap("#{name}_step")}::text)) END"
      else
        col
      end
    end

    def remapped?(name, type) = type == "uuid" && !SHARED_UUIDS.include?(name)

    def context_expr = "p.context || jsonb_build_object('large_tables', g.n)"

    # As tasker.insert_task computes it for the default (strict) identity strategy.
    def identity_expr(context)
      "encode(sha256(convert_to(p.named_task_uuid::text || chr(1) || 'ctx' || chr(1) || (#{context})::text, 'UTF8')), 'hex')"
    end

    # The copy's uuid: the time of the original moved by the copy's offset, the version and the
    # first random bits of the original, the copy number, the original's last two bytes.
    def uuid_parts(uuid, name)
      hex = "replace((#{uuid})::text, '-', '')"
      ["('x' || left(#{hex}, 12))::bit(48)::bigint AS #{name}__ms", "substr(#{hex}, 13, 8) AS #{name}__mid",
       "right(#{hex}, 4) AS #{name}__tail"]
    end

    def remap(name)
      "(lpad(to_hex(p.#{name}__ms + s.ms), 12, '0') || p.#{name}__mid || s.nhex || p.#{name}__tail)::uuid"
    end

    # The copies are only as good as their prototype: a finished task whose identity create_task
    # computes from its context.
    def check_prototype
      row = sql("SELECT status, (identity_hash = #{identity_expr('p.context')}) FROM tasker.tasks p " \
                "WHERE task_uuid = '#{@prototype}'").first
      raise "prototype task #{@prototype} not found" unless row
      raise "prototype task #{@prototype} is #{row[0]}, not finished" unless %w[complete error cancelled resolved_manually].include?(row[0])
      raise "prototype task #{@prototype}: its template's identity strategy is not the default" unless row[1] == "t"
    end

    def superuser? = sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0] == "t"

    def sql(text)
      out, err, status = Open3.capture3({ "LD_PRELOAD" => nil }, "psql", @url, "-X", "-q", "-At", "-F", "\t",
                                        "-v", "ON_ERROR_STOP=1", "-c", text)
      raise "psql failed: #{err}" unless status.success?

      out.lines.map { |l| l.chomp.split("\t", -1) }
    end
  end
end
