# frozen_string_literal: true

require "csv"

# Handlers of the CSV batch workflow (examples/csv_batch/templates/csv_products.yml). The task's
# context names the CSV file: {"csv_path": ".../products.csv"} with columns
# sku,category,price_cents,stock.
module CsvBatch
  def self.rows(path) = CSV.read(path, headers: true)

  class AnalyzeCsvHandler < TaskerCore::StepHandler::Batchable
    def call(context)
      total = CsvBatch.rows(context.get_input("csv_path")).size
      return no_batches(reason: "empty file", result_data: { "total_rows" => 0 }) if total.zero?

      configs = create_cursor_configs(total, context.get_config("worker_count"))
      batch_success(worker_template_name: "process_csv_batch", cursor_configs: configs, total_items: total,
                    result_data: { "total_rows" => total })
    end
  end

  class ProcessCsvBatchHandler < TaskerCore::StepHandler::Batchable
    def call(context)
      return handle_no_op_worker(context) if no_op_worker?(context)

      cursor = batch_cursor(context)
      rows = CsvBatch.rows(context.get_input("csv_path"))[cursor["start_cursor"]...cursor["end_cursor"]]
      by_category = Hash.new(0)
      value = 0
      rows.each do |row|
        value += Integer(row["price_cents"]) * Integer(row["stock"])
        by_category[row["category"]] += Integer(row["stock"])
      end
      batch_worker_success(items_processed: rows.size, items_succeeded: rows.size, last_cursor: cursor["end_cursor"],
                           results: { "inventory_value_cents" => value, "stock_by_category" => by_category })
    end
  end

  class AggregateCsvResultsHandler < TaskerCore::StepHandler::Base
    def call(context)
      workers = context.dependency_results.keys.grep(/\Aprocess_csv_batch_/).sort
      totals = { "rows" => 0, "inventory_value_cents" => 0, "stock_by_category" => Hash.new(0), "failed_workers" => [] }
      workers.each do |name|
        # Under continue_on_failure a failed worker completes with its failure as its result.
        unless context.dependency_results.get_result(name)["success"]
          totals["failed_workers"] << name
          next
        end

        result = context.get_dependency_result(name)
        next if result["no_op"]

        totals["rows"] += result["items_processed"]
        totals["inventory_value_cents"] += result.dig("results", "inventory_value_cents")
        result.dig("results", "stock_by_category").each { |cat, n| totals["stock_by_category"][cat] += n }
      end
      success(totals.merge("workers" => workers))
    end
  end

  # Writes a deterministic products CSV with n rows (for the example and its spec).
  def self.write_products(path, n = 1000)
    categories = %w[tools garden kitchen toys books]
    CSV.open(path, "w") do |csv|
      csv << %w[sku category price_cents stock]
      (1..n).each { |i| csv << [format("SKU%05d", i), categories[i % 5], 100 + ((i * 37) % 900), i % 25] }
    end
    path
  end
end
