# frozen_string_literal: true

module Bench
  # The flusher's two statements as the engine prepares them: the string literals of their macros in
  # core/tc_flush_sql.h, joined (the C comments between the literals dropped), so a replay in psql
  # plans exactly what a worker runs.
  module FlushStatements
    HEADER = File.expand_path("../ext/tasker_core/core/tc_flush_sql.h", __dir__)

    module_function

    def complete = macro("TC_FLUSH_COMPLETE_SQL")

    def claim = macro("TC_FLUSH_CLAIM_SQL")

    def macro(name)
      body = File.read(HEADER)[/^#define #{name} \\\n(.*?)(?=\n\n|\n#)/m, 1]
      raise "#{name} not found in #{HEADER}" unless body

      body.scan(%r{"((?:[^"\\]|\\.)*)"|/\*.*?\*/}m).filter_map(&:first).map { |s| s.gsub(/\\(.)/, '\1') }.join
    end
  end
end
