# frozen_string_literal: true

require_relative "../generator_helpers"

module TaskerCore
  module Generators
    # rails generate tasker:api_step_handler OrderProcess::FetchData [--path /data]
    #
    # Creates OrderProcess::StepHandler::FetchDataHandler (a TaskerCore::StepHandler::Api: HTTP
    # with timeouts, and responses mapped to permanent or retryable failures) and its spec, which
    # runs it against a local stub server. The step needs its API's base_url, so it is printed
    # for you to add to the template rather than added as is.
    class ApiStepHandlerGenerator < ::Rails::Generators::Base
      include Helpers

      namespace "tasker:api_step_handler"
      source_root File.expand_path("templates", __dir__)
      desc "Creates an API step handler (HTTP) and its spec"
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

      def show_template_step
        say <<~TEXT
          Add the step to #{template_path} with its API's address, e.g.:

            - name: #{step_name}
              handler:
                callable: #{step_class_name}
                initialization:
                  base_url: https://api.example.com
                  read_timeout: 15
              retry:
                retryable: true
                max_attempts: 5
        TEXT
      end

      private

      def request_path = options[:path] || "/#{step_name}"
    end
  end
end
