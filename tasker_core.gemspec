# frozen_string_literal: true

require_relative "lib/tasker_core/version"

Gem::Specification.new do |spec|
  spec.name = "tasker_core"
  spec.version = TaskerCore::VERSION
  spec.summary = "PostgreSQL-backed workflow orchestration with a C engine"
  spec.description = "Describe multi-step workflows as YAML templates, write step handlers in Ruby, " \
                     "and let a C engine over libpq run them on PostgreSQL."
  spec.authors = ["tasker_core developers"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.0"

  spec.files = Dir["lib/**/*.{rb,tt,rake,css,js}", "ext/**/*.{c,h,rb,sql}", "bin/tasker", "examples/**/*",
                   "README.md", "docs/**/*.md"]
  spec.bindir = "bin"
  spec.executables = ["tasker"]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/tasker_core/extconf.rb"]

  spec.add_dependency "dry-struct", ">= 1.4"
  spec.add_dependency "dry-types", ">= 1.5"
  spec.add_dependency "json_schemer", ">= 2.0"

  # The specs of create_task(connection:) run on ActiveRecord and PG::Connection connections; the
  # gem itself needs neither (it uses the connection the caller passes).
  spec.add_development_dependency "activerecord", ">= 7.1"
  spec.add_development_dependency "pg", ">= 1.5"
  # The specs of TaskerCore::Web (the REST API and the dashboard) serve it with Puma, the server
  # `tasker web` uses when it is installed, and read pages through Rack::MockRequest. The gem
  # itself needs neither: TaskerCore::Web is a plain object with call(env).
  spec.add_development_dependency "puma", ">= 6.0"
  spec.add_development_dependency "rack", ">= 3.0"
  spec.add_development_dependency "rake", ">= 13"
  spec.add_development_dependency "rake-compiler", ">= 1.2"
  spec.add_development_dependency "rspec", ">= 3.12"
end
