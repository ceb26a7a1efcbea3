# frozen_string_literal: true

require "spec_helper"
require "open3"
require "rbconfig"

RSpec.describe "examples/client_usage.rb (seed 000's and seed 001's client examples)" do
  let(:script) { File.expand_path("../../examples/client_usage.rb", __dir__) }

  # What the seeds print, line by line (seed 000 shows "pending" as the new task's status: this
  # engine starts the task in the creating transaction, see the script).
  def expected_lines
    uuid = '\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}'
    [
      "== seed 000: TaskerCore::Client",
      /\Aresponse\.task_uuid  # => "(?<processing>#{uuid})"\z/,
      'response.status     # => "steps_in_process"',
      "response.class      # => TaskerCore::Types::ClientTypes::TaskResponse",
      "== seed 001: submitting tasks via the client",
      /\ATask created: (?<fulfillment>#{uuid})\z/,
      "Status: steps_in_process",
      "Task status: steps_in_process",
      :fulfillment_listed,
      :processing_listed,
      "Total: 2",
      "Step validate_order: enqueued",
      "Step reserve_inventory: pending",
      "Step charge_payment: pending",
      "Step ship_order: pending",
      "API healthy: true",
      "== the rest of seed 000's methods",
      "cancel_task        # => cancelled: true, 4 steps cancelled",
      'get_task.status    # => "cancelled"',
      "get_step           # => validate_order: cancelled",
      "audit history      # => cancelled <- enqueued <- pending (newest first)",
      'list_tasks(status: "cancelled").pagination.total_count  # => 1',
      :state_error
    ]
  end

  def check_output(out)
    lines = out.lines(chomp: true)
    expected_lines = self.expected_lines
    expect(lines.size).to eq(expected_lines.size), out
    uuids = {}
    expected_lines.zip(lines).each do |expected, line|
      case expected
      when Regexp
        match = expected.match(line)
        expect(match).not_to be_nil, "#{line.inspect} does not match #{expected.inspect}"
        match.named_captures.each { |k, v| uuids[k] = v }
      when :fulfillment_listed then expect(line).to eq("  #{uuids['fulfillment']}: steps_in_process")
      when :processing_listed then expect(line).to eq("  #{uuids['processing']}: steps_in_process")
      when :state_error
        expect(line).to eq("cancel_task again  # => TaskerCore::Errors::StateError: task #{uuids['fulfillment']} " \
                           "is cancelled: only a task that has not finished can be cancelled")
      else expect(line).to eq(expected)
      end
    end
  end

  it "runs unchanged and prints what the seeds say it prints" do
    # Against its own throwaway PostgreSQL, as a reader would run it, when this suite runs on one
    # too (the server programs are there; the sanitizer build's preload must not reach them);
    # otherwise against the suite's (freshly truncated) database.
    env = if TaskerCore::EmbeddedPostgres.shared && !ENV["TASKER_EXT_PATH"]
            { "TASKER_DATABASE_URL" => nil, "DATABASE_URL" => nil }
          else
            { "TASKER_DATABASE_URL" => DATABASE_URL }
          end
    out, err, status = Open3.capture3(env, RbConfig.ruby, script)
    expect(status).to be_success, err
    check_output(out)
  end
end
