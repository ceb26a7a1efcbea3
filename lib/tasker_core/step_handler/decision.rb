# frozen_string_literal: true

module TaskerCore
  module StepHandler
    # Base class of `type: decision` steps: the handler chooses which of the step's declared
    # descendants are created. The engine creates them (and what lies downstream) in the same
    # transaction that completes this step; a deferred_convergence step waits only for the branches
    # that were created.
    class Decision < Base
      # Creates the named steps (each must depend on this decision step in the template).
      def decision_success(steps:, result_data: {}, metadata: {})
        names = Array(steps).map(&:to_s)
        if names.empty?
          raise Errors::PermanentError.new("decision_success needs at least one step name; use decision_no_branches",
                                           error_code: "INVALID_DECISION_OUTCOME")
        end

        repeated = names.select { |n| names.count(n) > 1 }.uniq
        unless repeated.empty?
          raise Errors::PermanentError.new("decision_success names #{repeated.join(', ')} more than once",
                                           error_code: "INVALID_DECISION_OUTCOME")
        end

        outcome = { "type" => "create_steps", "step_names" => names }
        success(PlainData.call(result_data).merge("decision_point_outcome" => outcome),
                metadata: decision_metadata(metadata, "create_steps", names.size))
      end

      # Creates no branch: the workflow continues with what already exists.
      def decision_no_branches(result_data: {}, metadata: {})
        success(PlainData.call(result_data).merge("decision_point_outcome" => { "type" => "no_branches" }),
                metadata: decision_metadata(metadata, "no_branches", 0))
      end
      alias skip_branches decision_no_branches

      private

      def decision_metadata(metadata, type, count)
        PlainData.call(metadata).merge("decision_point" => true, "outcome_type" => type, "branches_created" => count,
                                       "processed_at" => Time.now.utc.iso8601(6), "processed_by" => self.class.name)
      end
    end
  end
end
