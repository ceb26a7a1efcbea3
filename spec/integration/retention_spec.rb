# frozen_string_literal: true

require "spec_helper"

# Retention (docs/operations.md): finished tasks older than retention.completed_days /
# retention.error_days go, with every row they own, in small batches; nothing else does.
RSpec.describe "retention of finished tasks" do
  let(:templates) { File.expand_path("../fixtures/templates", __dir__) }

  def run_task(name, context)
    uuid = TaskerCore::Client.create_task(name: name, namespace: "math", context: context)["task_uuid"]
    wait_for_task(uuid, timeout: 30)
    uuid
  end

  # Makes tasks (and their events) look days old.
  def age(uuids, days)
    list = uuids.map { |u| "'#{u}'" }.join(",")
    psql("UPDATE tasker.tasks SET created_at = created_at - interval '#{days} days', " \
         "updated_at = updated_at - interval '#{days} days' WHERE task_uuid IN (#{list})")
  end

  def outbox_event(task, days)
    psql("INSERT INTO tasker.events_outbox (event_name, kind, task_uuid, created_at) VALUES " \
         "('order.shipped', 'domain', '#{task}', (now() AT TIME ZONE 'utc') - interval '#{days} days')")
  end

  def remove(completed_days, error_days, limit = 100)
    args = [completed_days, error_days].map { |d| d.nil? ? "NULL" : d }.join(", ")
    JSON.parse(psql_value("SELECT tasker.remove_finished_tasks(#{args}, #{limit})"))
  end

  # Rows of each table that belong to a task (the history tables have no foreign keys).
  OWNED = {
    "tasks" => "SELECT count(*) FROM tasker.tasks WHERE task_uuid = '%s'",
    "workflow_steps" => "SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = '%s'",
    "workflow_step_edges" => "SELECT count(*) FROM tasker.workflow_step_edges WHERE task_uuid = '%s'",
    "workflow_step_attempts" => "SELECT count(*) FROM tasker.workflow_step_attempts WHERE task_uuid = '%s'",
    "workflow_step_transition_log" => "SELECT count(*) FROM tasker.workflow_step_transition_log WHERE task_uuid = '%s'",
    "task_transitions" => "SELECT count(*) FROM tasker.task_transitions WHERE task_uuid = '%s'",
    "tasks_dlq" => "SELECT count(*) FROM tasker.tasks_dlq WHERE task_uuid = '%s'",
    "events_outbox" => "SELECT count(*) FROM tasker.events_outbox WHERE task_uuid = '%s'"
  }.freeze

  def owned(table, task) = psql_value(format(OWNED.fetch(table), task)).to_i

  context "with finished tasks of every kind, some past their age" do
    before do
      TaskerCore::Worker.start(template_paths: [templates], concurrency: 4, staleness_check_interval_seconds: 0)
      @old_done = run_task("diamond_workflow", { even_number: 2 })
      @old_resolved_dlq = run_task("failing_workflow", { even_number: 2 })
      @old_error = run_task("failing_workflow", { even_number: 4 })
      @old_pending_dlq = run_task("failing_workflow", { even_number: 6 })
      @young_done = run_task("diamond_workflow", { even_number: 4 })
      TaskerCore::Worker.stop(timeout: 5)
      age([@old_done, @old_resolved_dlq, @old_error, @old_pending_dlq], 40)
      [@old_resolved_dlq, @old_pending_dlq].each do |task|
        psql("INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot) " \
             "VALUES ('#{task}', 'steps_in_process', 'manual_dlq', '{}')")
      end
      psql("UPDATE tasker.tasks_dlq SET resolution_status = 'manually_resolved' WHERE task_uuid = '#{@old_resolved_dlq}'")
      [@old_done, @old_error, @young_done].each { |task| outbox_event(task, 40) }
      outbox_event(@young_done, 1)
    end

    OWNED.each_key do |table|
      it "removes the #{table} rows of the tasks past their age, and only theirs" do
        before_counts = [@old_done, @young_done, @old_pending_dlq].map { |t| owned(table, t) }
        expect(before_counts.first).to be_positive unless %w[tasks_dlq].include?(table)
        counts = remove(30, 30)
        expect(counts["tasks"]).to eq(3) # old_done, old_resolved_dlq, old_error; the pending DLQ entry keeps its task
        [@old_done, @old_resolved_dlq, @old_error].each { |task| expect(owned(table, task)).to eq(0) }
        # A young task and one with a pending DLQ entry keep everything (but outbox events past the age).
        expect(owned(table, @old_pending_dlq)).to eq(before_counts[2])
        expect(owned(table, @young_done)).to eq(table == "events_outbox" ? 1 : before_counts[1])
      end
    end

    it "keeps error tasks when error_days is not set, and everything when neither is" do
      expect(remove(nil, nil)).to include("tasks" => 0, "events_outbox" => 0)
      expect(remove(30, nil)).to include("tasks" => 1)
      expect(owned("tasks", @old_error)).to eq(1)
      expect(owned("tasks", @old_resolved_dlq)).to eq(1)
      expect(remove(30, 60)["tasks"]).to eq(0) # 40 days old errors are younger than 60
      expect(remove(30, 35)["tasks"]).to eq(2)
    end

    it "removes in batches of the given size" do
      expect(remove(30, 30, 1)["tasks"]).to eq(1)
      expect(remove(30, 30, 1)["tasks"]).to eq(1)
      expect(remove(30, 30, 1)["tasks"]).to eq(1)
      expect(remove(30, 30, 1)["tasks"]).to eq(0)
      expect(psql_value("SELECT count(*) FROM tasker.tasks").to_i).to eq(2)
    end

    it "keeps a task whose DLQ entry is pending until the entry is resolved" do
      remove(30, 30)
      expect(owned("tasks", @old_pending_dlq)).to eq(1)
      psql("UPDATE tasker.tasks_dlq SET resolution_status = 'permanently_failed' WHERE task_uuid = '#{@old_pending_dlq}'")
      expect(remove(30, 30)).to include("tasks" => 1, "tasks_dlq" => 1)
      expect(owned("tasks", @old_pending_dlq)).to eq(0)
    end
  end

  it "sweeps old tasks in small batches while workers run new ones, leaving the new ones whole" do
    TaskerCore::Worker.start(template_paths: [templates], concurrency: 4, staleness_check_interval_seconds: 0)
    old = TaskerCore::Client.create_tasks(Array.new(40) { |i| { name: "diamond_workflow", namespace: "math", context: { even_number: 2, n: i } } })
                            .map { |t| t["task_uuid"] }
    old.each { |uuid| wait_for_task(uuid, timeout: 60) }
    TaskerCore::Worker.stop(timeout: 5)
    age(old, 10)

    TaskerCore::Worker.start(template_paths: [templates], concurrency: 4, staleness_check_interval_seconds: 1,
                             retention: { completed_days: 7, error_days: 7, batch_size: 5 })
    fresh = Array.new(40) do |i|
      TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 4, n: i })["task_uuid"]
    end
    sleep_until(timeout: 60) { psql_value("SELECT count(*) FROM tasker.tasks WHERE task_uuid IN (#{old.map { |u| "'#{u}'" }.join(',')})") == "0" }
    fresh.each { |uuid| expect(wait_for_task(uuid, timeout: 60)["status"]).to eq("complete") }
    OWNED.each_key do |table|
      old.sample(3).each { |task| expect(owned(table, task)).to eq(0) }
    end
    fresh.each do |task|
      expect(owned("workflow_steps", task)).to eq(4)
      expect(TaskerCore::Client.get_task(task)["status"]).to eq("complete")
    end
    expect(psql_value("SELECT count(*) FROM tasker.workflow_step_transitions WHERE to_state = 'in_progress'")).to eq("160")
    expect(captured_log).not_to include("retention_failed")
  end

  describe "its configuration" do
    it "names the setting it refuses" do
      bad = [[{ completed_days: 0 }, /retention\.completed_days must be an integer between 1 and 36500/],
             [{ error_days: "30" }, /retention\.error_days must be an integer/],
             [{ batch_size: 100_000 }, /retention\.batch_size must be an integer between 1 and 10000/],
             [{ keep_days: 3 }, /retention\.keep_days is not a setting/],
             [30, /retention must be a Hash/]]
      bad.each do |retention, message|
        expect { TaskerCore::Worker.start(namespaces: ["math"], retention: retention) }
          .to raise_error(TaskerCore::Errors::ConfigurationError, message)
      end
      expect(TaskerCore::Worker.running?).to be(false)
    end
  end
end
