# frozen_string_literal: true

require "spec_helper"

# FastLoad builds TaskResponse and StepReadiness without dry-types' per-attribute calls; whatever
# it builds must be what Dry::Struct.new builds, and whatever new refuses it must leave to new.
RSpec.describe TaskerCore::Types::ClientTypes::FastLoad do
  let(:types) { TaskerCore::Types::ClientTypes }
  let(:step) do
    { "workflow_step_uuid" => "01a20000-0000-7000-8000-000000000002", "task_uuid" => "01a20000-0000-7000-8000-000000000001",
      "named_step_uuid" => nil, "name" => "charge", "current_state" => "enqueued", "dependencies_satisfied" => true,
      "retry_eligible" => true, "ready_for_execution" => true, "last_failure_at" => nil, "next_retry_at" => nil,
      "total_parents" => 0, "completed_parents" => 0, "attempts" => 0, "max_attempts" => 3,
      "backoff_request_seconds" => nil, "last_attempted_at" => nil }
  end
  let(:task) do
    { "task_uuid" => "01a20000-0000-7000-8000-000000000001", "name" => "checkout", "namespace" => "ecommerce",
      "version" => "1.0.0", "status" => "steps_in_process", "created_at" => "2026-01-02T03:04:05.123456",
      "updated_at" => "2026-01-02T03:04:05.123456", "completed_at" => nil, "context" => { "order" => { "id" => 7 } },
      "initiator" => "web", "source_system" => "shop", "reason" => nil, "priority" => 0, "tags" => ["a"],
      "correlation_id" => "01a20000-0000-7000-8000-000000000003", "parent_correlation_id" => nil,
      "total_steps" => 2, "pending_steps" => 1, "in_progress_steps" => 1, "completed_steps" => 0, "failed_steps" => 0,
      "ready_steps" => 1, "execution_status" => "has_ready_steps", "recommended_action" => "execute_ready_steps",
      "completion_percentage" => 0.0, "health_status" => "healthy",
      "steps" => [step, step.merge("name" => "ship", "current_state" => "pending", "total_parents" => 1,
                                   "dependencies_satisfied" => false, "ready_for_execution" => false)],
      "created" => true, "step_count" => 2 }
  end
  let(:loader) { described_class.for(types::TaskResponse) }

  # new's struct, or :refused (whatever it raised: a key that is not a String or Symbol raises
  # NoMethodError, and FastLoad leaves that to new as well).
  def built_by_new(data)
    types::TaskResponse.new(data)
  rescue StandardError
    :refused
  end

  # FastLoad builds nothing new refuses, and what it builds is new's struct; with built: true it
  # must build (else it may leave a Hash to new).
  def expect_same(data, built: false)
    fast = loader.call(data)
    slow = built_by_new(data)
    if slow == :refused
      expect(fast).to be_nil, "FastLoad built what new refuses: #{data.inspect[0, 300]}"
    elsif fast || built
      expect(fast).not_to be_nil, "FastLoad refused what new builds: #{data.inspect[0, 300]}"
      expect(fast).to be_a(types::TaskResponse)
      expect(fast.attributes).to eq(slow.attributes)
      expect(fast.attributes.keys).to eq(slow.attributes.keys)
      expect(fast.steps.map(&:attributes)).to eq(slow.steps.map(&:attributes))
      expect(fast.steps.map(&:class).uniq).to eq(slow.steps.map(&:class).uniq)
    end
  end

  it "knows every attribute type of TaskResponse and StepReadiness" do
    expect(loader).not_to be_nil
    expect(described_class.for(types::StepReadiness)).not_to be_nil
  end

  it "builds what new builds, with Symbol keys too, absent optional keys and the steps default" do
    expect_same(task, built: true)
    expect_same(task.transform_keys(&:to_sym), built: true)
    expect_same(task.reject { |k, _| %w[steps completed_at priority tags parent_correlation_id created step_count].include?(k) },
                built: true)
    expect_same(task.merge("unknown" => 1, "steps" => []), built: true)
    expect_same(task.merge("steps" => [step.reject { |k, _| k == "named_step_uuid" }]), built: true)
    expect(loader.call(task.reject { |k, _| k == "steps" }).steps).to eq([])
  end

  it "builds nothing new refuses, and only what new builds" do
    wrong = [nil, 1, -1, 1.5, 101.0, "x", "not-a-uuid", true, [], {}, ["a", 1], [nil], :sym]
    task.each_key do |key|
      wrong.each { |value| expect_same(task.merge(key => value)) }
      expect_same(task.reject { |k, _| k == key })
    end
    step.each_key do |key|
      wrong.each { |value| expect_same(task.merge("steps" => [step.merge(key => value)])) }
      expect_same(task.merge("steps" => [step.reject { |k, _| k == key }]))
    end
    expect_same(task.merge("steps" => [1]))
    expect_same(task.merge("steps" => [types::StepReadiness.new(step)]))
    expect_same(task.merge(1 => "key of another kind"))
  end

  it "is what Client.typed builds" do
    expect(TaskerCore::Client.typed(types::TaskResponse, task).attributes).to eq(types::TaskResponse.new(task).attributes)
    expect(TaskerCore::Client.typed(types::TaskResponse, task.merge("status" => "unknown"))).to eq(task.merge("status" => "unknown"))
  end
end
