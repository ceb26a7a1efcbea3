# frozen_string_literal: true

require "spec_helper"
require "logger"
require "stringio"

RSpec.describe TaskerCore::Types::ClientTypes do
  let(:uuid) { "01a20000-0000-7000-8000-000000000001" }
  let(:step) do
    { "workflow_step_uuid" => "01a20000-0000-7000-8000-000000000002", "task_uuid" => uuid, "named_step_uuid" => nil,
      "name" => "charge", "current_state" => "enqueued", "dependencies_satisfied" => true, "retry_eligible" => true,
      "ready_for_execution" => true, "last_failure_at" => nil, "next_retry_at" => nil, "total_parents" => 0,
      "completed_parents" => 0, "attempts" => 0, "max_attempts" => 3, "backoff_request_seconds" => nil,
      "last_attempted_at" => nil }
  end
  let(:task) do
    { "task_uuid" => uuid, "name" => "checkout", "namespace" => "ecommerce", "version" => "1.0.0",
      "status" => "steps_in_process", "created_at" => "2026-01-02T03:04:05.123456",
      "updated_at" => "2026-01-02T03:04:05.123456", "completed_at" => nil, "context" => { "order" => { "id" => 7 } },
      "initiator" => "web", "source_system" => "shop", "reason" => "order", "priority" => 0, "tags" => ["a"],
      "correlation_id" => "01a20000-0000-7000-8000-000000000003", "parent_correlation_id" => nil,
      "total_steps" => 1, "pending_steps" => 0, "in_progress_steps" => 1, "completed_steps" => 0, "failed_steps" => 0,
      "ready_steps" => 1, "execution_status" => "has_ready_steps", "recommended_action" => "execute_ready_steps",
      "completion_percentage" => 0.0, "health_status" => "healthy", "steps" => [step] }
  end

  describe "construction" do
    it "symbolizes the engine's string keys, nested structs included, and leaves data Hashes alone" do
      t = described_class::TaskResponse.new(task)
      expect(t.status).to eq("steps_in_process")
      expect(t.steps.first).to be_a(described_class::StepReadiness)
      expect(t.steps.first.name).to eq("charge")
      expect(t.context).to eq("order" => { "id" => 7 })
      expect(t.created).to be_nil
    end

    it "defaults steps to [] (task lists carry no steps) and accepts absent optional keys" do
      t = described_class::TaskResponse.new(task.reject { |k, _| %w[steps completed_at priority tags parent_correlation_id].include?(k) })
      expect(t.steps).to eq([])
      expect(t.tags).to be_nil
    end

    it "is strict: no coercion, no unknown states, no missing fields" do
      { "completion_percentage" => 100, "status" => "done", "total_steps" => "1", "task_uuid" => "nope",
        "execution_status" => "busy", "context" => [] }.each do |key, bad|
        expect { described_class::TaskResponse.new(task.merge(key => bad)) }
          .to raise_error(Dry::Struct::Error, /#{key}/), "#{key} => #{bad.inspect} was accepted"
      end
      expect { described_class::TaskResponse.new(task.except("correlation_id")) }.to raise_error(Dry::Struct::Error, /correlation_id/)
      expect { described_class::StepReadiness.new(step.merge("current_state" => "running")) }.to raise_error(Dry::Struct::Error)
      expect { described_class::HealthResponse.new("status" => "healthy") }.to raise_error(Dry::Struct::Error, /healthy/)
    end

    it "builds the other responses" do
      list = described_class::TaskListResponse.new(
        "tasks" => [task.except("steps")],
        "pagination" => { "page" => 1, "per_page" => 50, "total_count" => 1, "total_pages" => 1, "has_next" => false,
                          "has_previous" => false }
      )
      expect(list.pagination.total_count).to eq(1)
      uncounted = described_class::PaginationInfo.new("page" => 1, "per_page" => 50, "total_count" => nil,
                                                      "total_pages" => nil, "has_next" => true, "has_previous" => false)
      expect(uncounted).to have_attributes(total_count: nil, total_pages: nil, has_next: true)
      expect(list.tasks.first.steps).to eq([])
      health = described_class::HealthResponse.new("healthy" => true)
      expect(health).to have_attributes(healthy: true, status: nil, timestamp: nil)
      audit = described_class::StepAuditResponse.new(
        "audit_uuid" => uuid, "workflow_step_uuid" => uuid, "transition_uuid" => nil, "task_uuid" => uuid,
        "recorded_at" => "2026-01-02T03:04:05", "success" => false, "step_name" => "charge", "to_state" => "in_progress"
      )
      expect(audit).to have_attributes(from_state: nil, result: nil, worker_uuid: nil)
    end

    it "is reachable under seed 000's aliases" do
      expect(TaskerCore::Types::ClientTaskResponse).to be(described_class::TaskResponse)
      expect(TaskerCore::Types::ClientTaskListResponse).to be(described_class::TaskListResponse)
      expect(TaskerCore::Types::ClientStepResponse).to be(described_class::StepResponse)
      expect(TaskerCore::Types::ClientStepAuditResponse).to be(described_class::StepAuditResponse)
      expect(TaskerCore::Types::ClientHealthResponse).to be(described_class::HealthResponse)
      expect(TaskerCore::Types::ClientPaginationInfo).to be(described_class::PaginationInfo)
      expect(TaskerCore::Types::Strict::String["x"]).to eq("x")
    end
  end

  describe "Hash-style reading" do
    subject(:t) { described_class::TaskResponse.new(task) }

    it "reads attributes by String or Symbol key, nil for anything else, like a Hash" do
      expect(t["status"]).to eq("steps_in_process")
      expect(t[:status]).to eq("steps_in_process")
      expect(t["no_such_field"]).to be_nil
      expect(t["steps"].first["name"]).to eq("charge")
      expect(t.dig("context", "order", "id")).to eq(7)
      expect(t.dig("steps")).to eq(t.steps)
      expect(t.dig("completed_at", "x")).to be_nil
    end

    it "fetches and tests keys like a Hash" do
      expect(t.fetch("name")).to eq("checkout")
      expect(t.fetch("created", :none)).to eq(:none)
      expect(t.fetch("created") { |k| "no #{k}" }).to eq("no created")
      expect { t.fetch("created") }.to raise_error(KeyError, /created/)
      expect(t.key?("name")).to be(true)
      expect(t.key?(:created)).to be(false)
    end

    it "works with RSpec's include matcher written for the Hashes" do
      expect(t).to include("status" => "steps_in_process", "ready_steps" => 1)
      expect(t).not_to include("status" => "complete")
      expect(t).to include("name")
    end
  end

  describe "TaskerCore::Client's fallback on a schema mismatch" do
    let(:log) { StringIO.new }

    around do |example|
      previous = TaskerCore::Client.logger
      TaskerCore::Client.logger = Logger.new(log)
      TaskerCore::Client.instance_variable_get(:@mismatches).clear
      example.run
    ensure
      TaskerCore::Client.logger = previous
      TaskerCore::Client.instance_variable_get(:@mismatches).clear
    end

    it "returns the plain Hash and logs the first mismatch of each type only" do
      bad = task.merge("status" => "archived")
      expect(TaskerCore::Client.typed(described_class::TaskResponse, bad)).to be(bad)
      expect(TaskerCore::Client.typed(described_class::TaskResponse, bad)).to be(bad)
      expect(log.string.lines.size).to eq(1)
      expect(log.string).to include("did not match TaskerCore::Types::ClientTypes::TaskResponse", "archived")
      expect(TaskerCore::Client.typed(described_class::TaskResponse, task)).to be_a(described_class::TaskResponse)
    end

    it "returns the whole plain Array when one element does not match" do
      good = { "step_uuid" => uuid, "task_uuid" => uuid, "name" => "a", "created_at" => "t", "updated_at" => "t",
               "current_state" => "pending", "dependencies_satisfied" => true, "retry_eligible" => true,
               "ready_for_execution" => false, "total_parents" => 0, "completed_parents" => 0, "attempts" => 0,
               "max_attempts" => 3 }
      list = [good, good.merge("attempts" => -1)]
      expect(TaskerCore::Client.typed_list(described_class::StepResponse, list)).to be(list)
      expect(TaskerCore::Client.typed_list(described_class::StepResponse, [good]).first).to be_a(described_class::StepResponse)
    end
  end
end
