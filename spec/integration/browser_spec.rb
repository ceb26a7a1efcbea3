# frozen_string_literal: true

require "spec_helper"
require_relative "../support/web_server"
require_relative "../support/chromium"

module SpecHandlers
  # Fails for good until an operator has fixed what it needs (fixed = true), then succeeds once
  # released is true (so a spec can look at the task while the step runs).
  class FailsUntilFixed < TaskerCore::StepHandler::Base
    class << self
      attr_accessor :fixed, :released
    end

    def call(_context)
      if self.class.fixed
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
        sleep 0.01 until self.class.released || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        return success(result: { "charged" => true })
      end

      failure("the card processor is down", error_type: "PermanentError", retryable: false, error_code: "PROCESSOR_DOWN")
    end
  end
end

RSpec.describe "the dashboard in a browser (headless Chromium)", timeout: 180 do
  include SpecSupport::WebServer

  let(:template) do
    { "name" => "charge_order", "namespace_name" => "shop", "version" => "1.0.0",
      "description" => "Validate an order, charge the card, then ship and notify",
      "steps" => [{ "name" => "validate", "handler" => { "callable" => "SpecHandlers::SquareInput" } },
                  { "name" => "charge", "dependencies" => ["validate"], "handler" => { "callable" => "SpecHandlers::FailsUntilFixed" } },
                  { "name" => "reserve_stock", "dependencies" => ["validate"], "handler" => { "callable" => "SpecHandlers::SquareInput" } },
                  { "name" => "ship", "dependencies" => %w[charge reserve_stock], "handler" => { "callable" => "SpecHandlers::SquareInput" } },
                  { "name" => "notify", "dependencies" => ["ship"], "handler" => { "callable" => "SpecHandlers::SquareInput" } }] }
  end
  # Screenshots go to tmp/screenshots; TASKER_SCREENSHOTS=docs/images refreshes the README's.
  let(:shots) { File.expand_path(ENV.fetch("TASKER_SCREENSHOTS", "tmp/screenshots"), File.expand_path("../..", __dir__)) }

  before do
    SpecHandlers::FailsUntilFixed.fixed = false
    SpecHandlers::FailsUntilFixed.released = true
    TaskerCore::FFI.template_register(template)
    TaskerCore::Worker.start(namespaces: %w[shop], concurrency: 2)
    @browser = SpecSupport::Chromium.new(log_path: child_log_path("chromium"))
  end

  after { @browser&.close }

  it "opens a failed task, sees the failed step in red, presses retry, and sees the task complete" do
    # Something for the overview: finished and failed tasks.
    SpecHandlers::FailsUntilFixed.fixed = true
    3.times { |i| wait_for_task(TaskerCore::Client.create_task(name: "charge_order", namespace: "shop", context: { even_number: 10 + (2 * i) })["task_uuid"]) }
    SpecHandlers::FailsUntilFixed.fixed = false
    uuid = TaskerCore::Client.create_task(name: "charge_order", namespace: "shop", context: { even_number: 4 })["task_uuid"]
    expect(wait_for_task(uuid)["status"]).to eq("error")
    charge = steps_by_name(uuid)["charge"]["step_uuid"]

    serve_web do |port|
      base = "http://127.0.0.1:#{port}"
      @browser.visit("#{base}/")
      @browser.wait_for("document.querySelector('h1').textContent === 'Overview'")
      # The last hour's chart (a bar per 5 minutes), its figures, and this process's worker alive.
      expect(@browser.evaluate("document.querySelectorAll('svg.chart g.bar').length")).to eq(12)
      expect(@browser.evaluate("document.getElementById('tasks-completed').textContent")).to eq("3")
      expect(@browser.evaluate("document.getElementById('tasks-errored').textContent")).to eq("1")
      expect(@browser.evaluate("document.getElementById('workers-alive').textContent")).to eq("1")
      @browser.screenshot(File.join(shots, "overview.png"))

      @browser.visit("#{base}/tasks/#{uuid}")
      red = @browser.wait_for("getComputedStyle(document.querySelector('[data-step=\"#{charge}\"] rect')).fill")
      expect(red).to eq("rgb(179, 38, 30)") # the error colour
      expect(@browser.evaluate("document.querySelector('[data-step=\"#{charge}\"] .state').textContent")).to eq("error")
      expect(@browser.evaluate("document.querySelectorAll('svg.dag line.edge').length")).to eq(5)
      @browser.screenshot(File.join(shots, "task.png"))

      # The step's page, then its Retry button, the confirmation, and the form's submit.
      @browser.evaluate("document.querySelector('[data-step=\"#{charge}\"]').closest('a').getAttribute('href')")
              .then { |href| @browser.visit("#{base}#{href}") }
      @browser.wait_for("document.body.textContent.includes('the card processor is down')")
      @browser.evaluate("document.querySelector('a.button.primary').click()")
      @browser.wait_for("document.querySelector('h1') && document.querySelector('h1').textContent === 'Retry step?'")
      SpecHandlers::FailsUntilFixed.fixed = true # the operator fixed the processor
      SpecHandlers::FailsUntilFixed.released = false # and the charge takes a moment
      @browser.evaluate("document.getElementById('reason').value = 'processor is back'; " \
                        "document.querySelector('form.confirm button[type=submit]').click()")

      # Back on the task page, which follows the task as it runs again, without a reload.
      @browser.wait_for("location.pathname === '/tasks/#{uuid}' && !!document.querySelector('.notice')")
      @browser.evaluate("window.__same_page = true")
      expect(@browser.evaluate("document.querySelector('#task-status .badge').textContent")).not_to eq("complete")
      expect(@browser.evaluate("!!document.querySelector('[data-poll]')")).to be(true)
      SpecHandlers::FailsUntilFixed.released = true
      @browser.wait_for("document.querySelector('#task-status .badge').textContent === 'complete'")
      expect(@browser.evaluate("window.__same_page")).to be(true)
      expect(@browser.evaluate("document.querySelector('[data-step=\"#{charge}\"]').getAttribute('class')")).to eq("node state-complete")
    end
    expect(TaskerCore::Client.get_task(uuid)["status"]).to eq("complete")
    reset = TaskerCore::Client.get_step_audit_history(uuid, charge).find { |a| a["event"] == "reset_for_retry" }
    expect(reset["metadata"]).to include("reason" => "processor is back")
  end
end
