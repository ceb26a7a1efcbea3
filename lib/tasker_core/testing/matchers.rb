# frozen_string_literal: true

module TaskerCore
  module Testing
    # RSpec matchers for handler results. Each accepts what a handler returned (success(...),
    # failure(...), a Hash with "success"), a result envelope as stored on a step, or a block
    # (whose raised TaskerCore errors and exceptions are judged as the worker would judge them):
    #
    #   expect(handler.call(context)).to be_success.with_result("total" => 12)
    #   expect { handler.call(context) }.to be_permanent_failure.with_error_code("MISSING_CART_ITEMS")
    #   expect(call_handler(Handler, context)).to be_retryable_failure.with_retry_after(30)
    module Matchers
      # A result normalised to: success, retryable, message, error_code, error_type, retry_after, result.
      Outcome = Struct.new(:success, :retryable, :message, :error_code, :error_type, :retry_after, :result,
                           keyword_init: true) do
        def describe
          return "a success with #{result.inspect}" if success

          "a #{retryable ? 'retryable' : 'permanent'} failure (#{error_type}#{" #{error_code}" if error_code}: #{message})"
        end
      end

      class ResultMatcher
        include ::RSpec::Matchers::Composable if defined?(::RSpec::Matchers::Composable)

        def initialize(kind)
          @kind = kind
          @expectations = []
        end

        def supports_block_expectations? = true
        def supports_value_expectations? = true

        def with_result(expected)
          @expectations << ["with result #{expected.inspect}", ->(o) { values_match?(expected, o.result) }]
          self
        end

        def with_error_code(code)
          @expectations << ["with error code #{code.inspect}", ->(o) { values_match?(code, o.error_code) }]
          self
        end

        def with_message(expected)
          @expectations << ["with message #{expected.inspect}", ->(o) { values_match?(expected, o.message) }]
          self
        end

        def with_retry_after(seconds)
          @expectations << ["with retry_after #{seconds.inspect}", ->(o) { values_match?(seconds, o.retry_after) }]
          self
        end

        def matches?(actual)
          @outcome = outcome_of(actual)
          return predicate_match(actual) unless @outcome

          kind_ok = case @kind
                    when :success then @outcome.success
                    when :permanent then !@outcome.success && !@outcome.retryable
                    when :retryable then !@outcome.success && @outcome.retryable
                    end
          kind_ok && @expectations.all? { |_, check| check.call(@outcome) }
        end

        def description
          base = { success: "be a success", permanent: "be a permanent failure", retryable: "be a retryable failure" }[@kind]
          ([base] + @expectations.map(&:first)).join(" ")
        end

        def failure_message
          return "expected `#{@actual_description}.success?` to be truthy, got #{@predicate.inspect}" if @predicate_used

          got = @outcome ? @outcome.describe : "#{@actual_description} (not a step result)"
          "expected #{description}, got #{got}"
        end

        def failure_message_when_negated = "expected not to #{description}, got #{@outcome&.describe}"

        private

        # be_success on anything else with #success? (a Process::Status, a response) is RSpec's
        # predicate matcher, so including these matchers changes no other spec.
        def predicate_match(actual)
          return false unless @kind == :success && @expectations.empty? && actual.respond_to?(:success?)

          @predicate_used = true
          @predicate = actual.success?
          @predicate ? true : false
        end

        def values_match?(expected, actual)
          return ::RSpec::Support::FuzzyMatcher.values_match?(expected, actual) if defined?(::RSpec::Support::FuzzyMatcher)

          expected === actual || expected == actual # rubocop:disable Style/CaseEquality
        end

        def outcome_of(actual)
          if actual.is_a?(Proc)
            begin
              actual = StepHandlerCallResult.from(actual.call)
            rescue StandardError => e
              actual = StepExecutor.failure_for(e)
            end
          end
          @actual_description = actual.inspect[0, 200]
          case actual
          when StepHandlerCallResult::Success then Outcome.new(success: true, result: actual.result)
          when StepHandlerCallResult::Error
            Outcome.new(success: false, retryable: actual.retryable, message: actual.message, error_code: actual.error_code,
                        error_type: actual.error_type, retry_after: actual.retry_after)
          when Hash then envelope_outcome(PlainData.call(actual))
          end
        end

        def envelope_outcome(hash)
          return nil unless hash.key?("success")
          return Outcome.new(success: true, result: hash["result"]) if hash["success"]

          error = hash["error"].is_a?(Hash) ? hash["error"] : {}
          metadata = hash["metadata"].is_a?(Hash) ? hash["metadata"] : {}
          retryable = [error["retryable"], metadata["retryable"], hash["retryable"]].compact.first || false
          Outcome.new(success: false, retryable: retryable,
                      message: error["message"] || hash["message"] || hash["error_message"],
                      error_code: error["error_code"] || metadata["error_code"] || hash["error_code"],
                      error_type: error["error_type"] || metadata["error_type"] || hash["error_type"],
                      retry_after: hash.dig("orchestration_metadata", "backoff_hint", "delay_seconds"))
        end
      end

      def be_success = ResultMatcher.new(:success)
      def be_permanent_failure = ResultMatcher.new(:permanent)
      def be_retryable_failure = ResultMatcher.new(:retryable)
    end
  end
end
