# frozen_string_literal: true

require_relative "../generator_helpers"

module TaskerCore
  module Generators
    # rails generate tasker:install (also run by bin/rails tasker:install): config/tasker.yml and
    # the directories for templates and handlers.
    class InstallGenerator < ::Rails::Generators::Base
      namespace "tasker:install"
      source_root File.expand_path("templates", __dir__)
      desc "Creates config/tasker.yml, config/tasker/tasks/ and app/tasks/"

      def create_config
        template "tasker.yml.tt", "config/tasker.yml"
      end

      def create_directories
        create_file "config/tasker/tasks/.keep", ""
        create_file "app/tasks/.keep", ""
      end
    end
  end
end
