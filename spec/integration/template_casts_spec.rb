# frozen_string_literal: true

require "spec_helper"

RSpec.describe "template fields the engine's SQL reads" do
  def template(**extra)
    { "name" => "casts", "namespace_name" => "casts", "version" => "1.0.0",
      "steps" => [{ "name" => "only", "handler" => { "callable" => "SpecHandlers::SquareInput" } }] }.merge(extra)
  end

  def refusal(tpl)
    TaskerCore::FFI.template_register(tpl)
    nil
  rescue TaskerCore::Errors::TemplateError => e
    e.message
  end

  it "refuses a lifecycle.max_steps_in_process_minutes that is no whole number of minutes, naming the field" do
    ["45m", 0, 2.5, 10**9, true].each do |bad|
      expect(refusal(template("lifecycle" => { "max_steps_in_process_minutes" => bad })))
        .to include("casts/casts@1.0.0", "lifecycle.max_steps_in_process_minutes must be an integer between 1 and 525600")
    end
    expect(refusal(template("lifecycle" => "forever"))).to include("lifecycle must be a mapping")
    expect(refusal(template("lifecycle" => { "max_steps_in_process_minutes" => 45 }))).to be_nil
  end

  it "refuses a batch_config.failure_strategy or cursor_field the engine cannot use" do
    steps = lambda do |batch|
      [{ "name" => "split", "type" => "batchable", "handler" => { "callable" => "X" },
         "batch_config" => { "worker_template" => "work" }.merge(batch) },
       { "name" => "work", "type" => "batch_worker", "dependencies" => ["split"], "handler" => { "callable" => "X" } }]
    end
    expect(refusal(template("steps" => steps.call("failure_strategy" => "keep_going"))))
      .to include("step 'split'", "batch_config.failure_strategy must be one of continue_on_failure, fail_fast, isolate")
    expect(refusal(template("steps" => steps.call("cursor_field" => 7)))).to include("batch_config.cursor_field must be")
    expect(refusal(template("steps" => steps.call("failure_strategy" => "isolate", "cursor_field" => "row")))).to be_nil
  end

  it "keeps the staleness detector working past a bad value stored before registration checked it" do
    TaskerCore::FFI.template_register(template("lifecycle" => { "max_steps_in_process_minutes" => 45 }))
    psql("UPDATE tasker.named_tasks SET configuration = jsonb_set(configuration, '{lifecycle,max_steps_in_process_minutes}', '\"45m\"')")
    uuid = TaskerCore::Client.create_task(name: "casts", namespace: "casts", context: { even_number: 2 })["task_uuid"]
    psql("UPDATE tasker.tasks SET updated_at = updated_at - interval '2 hours' WHERE task_uuid = '#{uuid}'")
    actions = TaskerCore::DLQ.detect_stale_tasks(threshold_minutes: 60, dry_run: true)
    expect(actions.map { |a| a["task_uuid"] }).to include(uuid)
  end
end
