# frozen_string_literal: true

require "spec_helper"
require "csv"
require "tmpdir"
require_relative "../../examples/csv_batch/handlers"

RSpec.describe "batch processing" do
  let(:templates) { File.expand_path("../../examples/csv_batch/templates", __dir__) }
  let(:dir) { Dir.mktmpdir("tasker-csv") }

  before { TaskerCore::Worker.start(template_paths: [templates], concurrency: 4) }
  after { FileUtils.rm_rf(dir) }

  def run_csv(path)
    uuid = TaskerCore::Client.create_task(name: "csv_product_inventory", namespace: "csv_processing",
                                          context: { csv_path: path })["task_uuid"]
    [wait_for_task(uuid), steps_by_name(uuid)]
  end

  it "processes a 1,000-row CSV with 5 workers created at run time and aggregates exact totals" do
    path = CsvBatch.write_products(File.join(dir, "products.csv"))
    expected_value = CSV.read(path, headers: true).sum { |r| Integer(r["price_cents"]) * Integer(r["stock"]) }
    expected_stock = CSV.read(path, headers: true).each_with_object(Hash.new(0)) { |r, h| h[r["category"]] += Integer(r["stock"]) }

    task, steps = run_csv(path)
    expect(task["status"]).to eq("complete")
    workers = (1..5).map { |i| format("process_csv_batch_%03d", i) }
    expect(steps.keys).to match_array(%w[analyze_csv aggregate_csv_results] + workers)
    expect(workers.map { |w| steps[w].dig("results", "result", "items_processed") }).to eq([200] * 5)
    expect(workers.map { |w| steps[w].dig("results", "result", "last_cursor") }).to eq([200, 400, 600, 800, 1000])
    aggregate = steps["aggregate_csv_results"]
    expect(aggregate["total_parents"]).to eq(5)
    expect(aggregate.dig("results", "result")).to include("rows" => 1000, "inventory_value_cents" => expected_value,
                                                          "stock_by_category" => expected_stock, "workers" => workers)
    edges = psql("SELECT name, count(*) FROM tasker.workflow_step_edges WHERE task_uuid = '#{task['task_uuid']}' GROUP BY 1 ORDER BY 1")
    expect(edges).to eq([%w[batch_dependency 5], %w[worker_to_convergence 5]])
  end

  it "runs one no-op worker and the aggregator when there is nothing to process" do
    path = CsvBatch.write_products(File.join(dir, "empty.csv"), 0)
    task, steps = run_csv(path)
    expect(task["status"]).to eq("complete")
    expect(steps["process_csv_batch_000"].dig("results", "result")).to include("no_op" => true)
    expect(steps["aggregate_csv_results"].dig("results", "result")).to include("rows" => 0)
  end

  it "fails the batchable step permanently on a malformed outcome" do
    stub_const("CsvBatch::AnalyzeCsvHandler", Class.new(TaskerCore::StepHandler::Batchable) do
      def call(_context) = batch_success(worker_template_name: "nope", cursor_configs: [{ "batch_id" => "001" }])
    end)
    task, steps = run_csv(CsvBatch.write_products(File.join(dir, "p.csv"), 10))
    expect(task["status"]).to eq("error")
    expect(steps["analyze_csv"].dig("results", "error")).to include("error_code" => "INVALID_BATCH_OUTCOME")
    expect(steps["analyze_csv"].dig("results", "error", "message")).to include("worker_template_name must be process_csv_batch")
  end

  it "fails the batchable step permanently on repeated batch_ids or a worker_count that is no number" do
    stub_const("CsvBatch::AnalyzeCsvHandler", Class.new(TaskerCore::StepHandler::Batchable) do
      def call(context)
        configs = [{ "batch_id" => "001" }, { "batch_id" => "001" }]
        return batch_success(worker_template_name: "process_csv_batch", cursor_configs: configs) if context.retry_count.zero? && !File.basename(context.get_input("csv_path")).start_with?("raw")

        success({ "batch_processing_outcome" => { "type" => "create_batches", "worker_template_name" => "process_csv_batch",
                                                  "worker_count" => "five", "cursor_configs" => [{ "batch_id" => "001" }] } })
      end
    end)
    [["dup.csv", "batch_id 001 more than once"], ["raw.csv", "worker_count five does not match"]].each do |file, message|
      task, steps = run_csv(CsvBatch.write_products(File.join(dir, file), 10))
      expect(task["status"]).to eq("error")
      expect(steps["analyze_csv"]["attempts"]).to eq(1)
      expect(steps["analyze_csv"].dig("results", "error")).to include("error_code" => "INVALID_BATCH_OUTCOME", "retryable" => false)
      expect(steps["analyze_csv"].dig("results", "error", "message")).to include(message)
      expect(steps.keys).to eq(["analyze_csv"])
      expect(task["total_steps"]).to eq(1)
    end
  end

  it "lets the aggregator run with a failed worker's failure under continue_on_failure" do
    stub_const("CsvBatch::ProcessCsvBatchHandler", Class.new(CsvBatch::ProcessCsvBatchHandler) do
      def call(context)
        return failure("row 250 is corrupt", retryable: false) if batch_cursor(context)["batch_id"] == "002"

        super
      end
    end)
    task, steps = run_csv(CsvBatch.write_products(File.join(dir, "p.csv"), 1000))
    expect(task["status"]).to eq("complete")
    expect(steps["process_csv_batch_002"]["current_state"]).to eq("complete")
    expect(steps["process_csv_batch_002"].dig("results", "success")).to be(false)
    expect(steps["aggregate_csv_results"].dig("results", "result")).to include("rows" => 800,
                                                                             "failed_workers" => ["process_csv_batch_002"])
  end

  it "creates the steps after the convergence step too" do
    stub_const("CsvBatch::ReportHandler", Class.new(TaskerCore::StepHandler::Base) do
      def call(context) = success({ "rows" => context.get_dependency_field("aggregate_csv_results", "rows") })
    end)
    tpl = TaskerCore::Templates.validate(File.join(templates, "csv_products.yml"))
    tpl["name"] = "csv_with_report"
    tpl["steps"] << { "name" => "publish_report", "dependencies" => ["aggregate_csv_results"],
                      "handler" => { "callable" => "CsvBatch::ReportHandler" } }
    tpl["steps"].each { |step| step.delete("initial") }
    TaskerCore::FFI.template_register(tpl)
    uuid = TaskerCore::Client.create_task(name: "csv_with_report", namespace: "csv_processing",
                                          context: { csv_path: CsvBatch.write_products(File.join(dir, "r.csv"), 30) })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("complete")
    expect(steps_by_name(uuid)["publish_report"].dig("results", "result")).to eq("rows" => 30)
  end

  it "splits N items into K ranges with create_cursor_configs" do
    configs = TaskerCore::StepHandler::Batchable.new.create_cursor_configs(350, 2)
    expect(configs).to eq([{ "batch_id" => "001", "start_cursor" => 0, "end_cursor" => 175, "batch_size" => 175 },
                           { "batch_id" => "002", "start_cursor" => 175, "end_cursor" => 350, "batch_size" => 175 }])
    expect(TaskerCore::StepHandler::Batchable.new.create_cursor_configs(3, 5).size).to eq(3)
  end
end
