# frozen_string_literal: true

require_relative "../tasker/legacy_helpers"

module TaskerCore
  module Generators
    # rails generate api_step_handler OrderProcess::FetchData [--path /data]
    #
    # Seed 002's generator: OrderProcess::StepHandler::FetchDataHandler, a Tasker::StepHandler::Api
    # (process returns connection.get(...), process_results shapes the response), its spec against
    # a local stub server, and the step appended to the task's YAML with a handler_config whose
    # url is ${FETCH_DATA_API_URL:-https://api.example.com} (set the variable, or edit the URL).
    class LegacyApiStepHandlerGenerator < ::Rails::Generators::Base
      include LegacyHelpers

      namespace "api_step_handler"
      source_root File.expand_path("templates", __dir__)
      desc "Creates a Tasker::StepHandler::Api handler and its spec, and adds the step to its task's YAML"
      argument :step, type: :string, banner: "TaskName::StepName"
      class_option :path, type: :string, desc: "the request path (default: /step_name)"

      def setup_names
        parse_step_name!(step)
      end

      def create_handler
        template "api_step_handler.rb.tt", step_file_path
      end

      def create_spec
        tasker_helper
        template "api_step_handler_spec.rb.tt", step_spec_path
      end

      def add_to_template
        previous = previous_legacy_step
        lines = ["  - name: #{step_name}", "    description: #{step_name.humanize}"]
        lines << "    depends_on_step: #{previous}" if previous
        lines += ["    handler_class: #{step_class_name}", "    default_retryable: true", "    default_retry_limit: 5",
                  "    handler_config:", "      type: api", "      url: ${#{url_variable}:-https://api.example.com}",
                  "      timeout: 15"]
        add_legacy_step("#{lines.join("\n")}\n")
      end

      private

      def request_path = options[:path] || "/#{step_name}"
      def url_variable = "#{step_name.upcase}_API_URL"

      def handler_body
        <<~RUBY
          class #{@step_class_base}Handler < Tasker::StepHandler::Api
            # connection: the handler_config's url, headers (${VAR} from the environment) and
            # timeout. 429 and 5xx are retried honouring Retry-After; 400/401/403/404/422 fail the
            # step permanently.
            def process(task, sequence, step)
              connection.get('#{request_path}', task.context.fetch('params', {}))
            end

            def process_results(step, process_output, initial_results)
              step.results = JSON.parse(process_output.body)
            end
          end
        RUBY
      end
    end
  end
end
