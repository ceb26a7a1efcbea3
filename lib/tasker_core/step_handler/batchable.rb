# frozen_string_literal: true

module TaskerCore
  module StepHandler
    # Helpers for batch processing: the `batchable` step splits the work into cursor ranges, the
    # engine creates one `batch_worker` step per range, and a `deferred_convergence` step aggregates.
    class Batchable < Base
      # Splits total_items into at most worker_count ranges: 0-based, end exclusive, batch_id "001"...
      def create_cursor_configs(total_items, worker_count)
        unless total_items.is_a?(Integer) && total_items >= 0 && worker_count.is_a?(Integer) && worker_count.positive?
          raise Errors::PermanentError.new("create_cursor_configs needs total_items >= 0 and worker_count > 0",
                                           error_code: "INVALID_BATCH_OUTCOME")
        end

        per = (total_items.to_f / worker_count).ceil
        (0...worker_count).filter_map do |i|
          first = i * per
          last = [first + per, total_items].min
          next if first >= last

          { "batch_id" => format("%03d", i + 1), "start_cursor" => first, "end_cursor" => last, "batch_size" => last - first }
        end
      end

      # The batchable step's result: create one worker per cursor config.
      def batch_success(worker_template_name:, cursor_configs:, total_items: nil, result_data: {}, metadata: {})
        check_cursor_configs(cursor_configs)
        outcome = { "type" => "create_batches", "worker_template_name" => worker_template_name.to_s,
                    "worker_count" => cursor_configs.size, "total_items" => total_items,
                    "cursor_configs" => PlainData.call(cursor_configs) }
        success(PlainData.call(result_data).merge("batch_processing_outcome" => outcome,
                                                  "worker_count" => cursor_configs.size, "total_items" => total_items),
                metadata: metadata)
      end

      # The engine creates one worker per config, named by its batch_id: a list of Hashes with
      # distinct batch_ids (the engine checks their form too).
      def check_cursor_configs(cursor_configs)
        unless cursor_configs.is_a?(Array) && cursor_configs.all? { |c| c.is_a?(Hash) }
          raise Errors::PermanentError.new("batch_success needs cursor_configs, a list of Hashes", error_code: "INVALID_BATCH_OUTCOME")
        end

        ids = cursor_configs.map { |c| (c["batch_id"] || c[:batch_id]).to_s }
        repeated = ids.select { |id| ids.count(id) > 1 }.uniq
        return if repeated.empty?

        raise Errors::PermanentError.new("batch_success names batch_id #{repeated.join(', ')} more than once",
                                         error_code: "INVALID_BATCH_OUTCOME")
      end

      # Nothing to process: one placeholder worker runs as a no-op so the convergence still runs.
      def no_batches(reason: nil, result_data: {}, metadata: {})
        success(PlainData.call(result_data).merge("batch_processing_outcome" => { "type" => "no_batches", "reason" => reason }),
                metadata: metadata)
      end

      # Worker side: this worker's cursor config, and whether it is the no-op placeholder.
      def batch_cursor(context) = context.step_inputs["cursor"]
      def no_op_worker?(context) = context.step_inputs["is_no_op"] == true

      def handle_no_op_worker(context)
        success({ "batch_id" => batch_cursor(context)&.fetch("batch_id", nil), "no_op" => true })
      end

      def batch_worker_success(items_processed:, items_succeeded:, items_failed: 0, items_skipped: 0,
                               last_cursor: nil, results: nil, errors: [], metadata: {})
        success({ "items_processed" => items_processed, "items_succeeded" => items_succeeded,
                  "items_failed" => items_failed, "items_skipped" => items_skipped, "last_cursor" => last_cursor,
                  "results" => PlainData.call(results), "errors" => PlainData.call(errors) }, metadata: metadata)
      end
    end
  end
end
