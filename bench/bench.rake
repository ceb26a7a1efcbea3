# frozen_string_literal: true

desc "Run the benchmark (bench/run.rb): engine figures beside the machine's floors, with targets"
task bench: :compile do
  ruby File.expand_path("run.rb", __dir__)
end
