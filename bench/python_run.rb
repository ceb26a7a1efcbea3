# frozen_string_literal: true

require "fileutils"
require "open3"

module Bench
  # The benchmark's python part: the Python worker (the tasker-py package on the same C core) beside
  # the Ruby one, on the same templates and the same database: the 4-step linear chain one task at a
  # time (create_task from this process, handlers in a Python worker process with 5 threads) and the
  # drain of 10,000 single-step tasks by 2 Python worker processes. The package is installed into
  # tmp/python-venv the way bin/test-python installs it (pip, no index); without Debian's python3 the
  # part is skipped, saying why. Included in Bench::Run.
  module PythonRun
    VENV = File.expand_path("../tmp/python-venv", __dir__)
    WORKER = File.join(__dir__, "python", "worker.py")
    # The benchmark templates served by the Python workers, in namespaces of their own.
    NAMESPACES = { "linear.yml" => ["bench", "bench_py"], "single.yml" => ["bench_drain", "bench_py_drain"] }.freeze

    private

    def python_part
      python, reason = python_install
      unless python
        puts "python: skipped (#{reason})"
        puts
        return { "available" => false, "reason" => reason }
      end
      TaskerCore::Templates.load([python_templates])
      chain = python_chain(python)
      drain = python_drain(python)
      puts
      { "available" => true, "linear" => chain, "drain" => drain }
    end

    # The venv's interpreter with tasker-py built from this checkout, or [nil, why not].
    def python_install
      system_python = ENV.fetch("TASKER_PYTHON", "/usr/bin/python3")
      return [nil, "#{system_python} not found"] unless File.executable?(system_python)

      python = File.join(VENV, "bin", "python")
      unless File.executable?(python)
        _out, err, status = Open3.capture3(system_python, "-m", "venv", "--system-site-packages", VENV)
        return [nil, "python3 -m venv failed: #{err.lines.last&.strip}"] unless status.success?
      end
      _out, err, status = Open3.capture3(python, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                                         File.expand_path("../python", __dir__), chdir: File.expand_path("..", __dir__))
      return [nil, "pip install ./python failed: #{err.lines.last&.strip}"] unless status.success?

      [python, nil]
    end

    # Copies of the linear and single-step templates in the Python workers' namespaces.
    def python_templates
      dir = File.expand_path("../tmp/bench/python_templates", __dir__)
      FileUtils.mkdir_p(dir)
      NAMESPACES.each do |file, (from, to)|
        text = File.read(File.join(__dir__, "templates", file))
        File.write(File.join(dir, file), text.sub(/^namespace_name: #{from}$/, "namespace_name: #{to}"))
      end
      dir
    end

    # One task at a time, create_task -> observed complete, as the Ruby shapes are measured.
    def python_chain(python)
      worker, = spawn_worker("bench_py", 5, command: [python, WORKER])
      run = lambda do |i|
        t0 = Probe.now
        task = TaskerCore::Client.create_task(name: "bench_linear", namespace: "bench_py",
                                              context: { "even_number" => 6, "python_sample" => i })
        status = TaskerCore::Client.wait_for_task_status(task.task_uuid, timeout: 60)
        raise "python linear task #{task.task_uuid} ended #{status}" unless status == "complete"

        (Probe.now - t0) * 1000
      end
      @warmup.times { |i| run.call(-i - 1) }
      result = Stats.summary(Array.new(@samples) { |i| run.call(i) })
      stop_child(worker)
      puts format("python: linear (4 steps) on a Python worker  P50 %8.2f ms  P95 %8.2f ms  P99 %8.2f ms",
                  result["p50"], result["p95"], result["p99"])
      result
    end

    # drain's measurement with Python worker processes.
    def python_drain(python)
      drain(namespace: "bench_py_drain", command: [python, WORKER],
            label: "python: drain %d single-step tasks, 2 Python processes")
    end

    def python_rows
      py = @results["python"]
      return [] unless py

      return [{ figure: "Python worker", value: "skipped: #{py['reason']}" }] unless py["available"]

      ruby = @results.dig("workflows", "linear")
      rd = @results.dig("throughput", "drain")
      l = py["linear"]
      d = py["drain"]
      [{ figure: "linear (4 steps) latency, Python worker",
         value: format("P50 %.2f / P95 %.2f / P99 %.2f ms", l["p50"], l["p95"], l["p99"]),
         reference: ruby ? format("Ruby worker, same run: P50 %.2f ms", ruby["p50"]) : nil },
       { figure: "drain #{d['tasks']} single-step tasks, 2 Python processes x #{d['threads_per_process']} threads",
         value: format("%.0f steps/s (server %.0f us, workers %.0f us CPU per step)", d["steps_per_s"],
                       d["server_cpu_us_per_step"], d["worker_cpu_us_per_step"]),
         reference: rd ? format("Ruby workers, same run: %.0f steps/s", rd["steps_per_s"]) : nil }]
    end
  end
end
