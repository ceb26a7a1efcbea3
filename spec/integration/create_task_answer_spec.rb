# frozen_string_literal: true

require "spec_helper"
require "json"
require "pg"

# create_task answers a created task with the TaskResponse it builds from the rows it inserted
# (tasker.insert_task), not by reading them back: that answer must be get_task's, field for field.
RSpec.describe "create_task's answer" do
  before do
    TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__),
                                File.expand_path("../../examples/approvals/templates", __dir__)])
  end

  # [namespace, name, context]: a linear chain, a diamond, a tree, and a template with a decision
  # (steps created later, a deferred convergence, an input_schema).
  let(:templates) do
    [["math", "linear_workflow", { "even_number" => 2 }],
     ["math", "diamond_workflow", { "even_number" => 2 }],
     ["math", "tree_workflow", { "even_number" => 2 }],
     ["approvals", "approval_routing", { "amount" => 2500, "requester" => "ann", "purpose" => "laptop" }]]
  end

  def request(namespace, name, context, **extra)
    { "name" => name, "namespace" => namespace, "version" => "1.0.0", "context" => context,
      "initiator" => "spec", "source_system" => "specs", "reason" => "answer" }.merge(extra)
  end

  it "is get_task's TaskResponse of the new task, with created and step_count" do
    templates.each do |namespace, name, context|
      answer = TaskerCore::FFI.client_create_task(request(namespace, name, context))
      read = TaskerCore::FFI.client_get_task(answer["task_uuid"])
      expect(answer.except("created", "step_count")).to eq(read), "#{namespace}/#{name}"
      expect(answer).to include("created" => true, "step_count" => read["total_steps"])
      expect(answer["steps"].size).to eq(read["total_steps"])
    end
  end

  it "carries every optional field as get_task reads it back" do
    parent = "01a20000-0000-7000-8000-00000000000a"
    answer = TaskerCore::FFI.client_create_task(
      request("math", "diamond_workflow", { "even_number" => 4, "nested" => { "list" => [1, 2.5, nil, "x"] } },
              "tags" => %w[blue green], "priority" => 7, "parent_correlation_id" => parent,
              "requested_at" => "2026-01-02T03:04:05.123456", "idempotency_key" => "answer-fields")
    )
    expect(answer).to include("tags" => %w[blue green], "priority" => 7, "parent_correlation_id" => parent)
    expect(answer.except("created", "step_count")).to eq(TaskerCore::FFI.client_get_task(answer["task_uuid"]))
  end

  it "is the same struct through the Client as get_task's" do
    created = TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: { even_number: 6 },
                                             tags: ["t"])
    read = TaskerCore::Client.get_task(created.task_uuid)
    expect(created).to be_a(TaskerCore::Types::ClientTypes::TaskResponse)
    expect(created.attributes.except(:created, :step_count)).to eq(read.attributes)
    expect(created.steps.map(&:class).uniq).to eq([TaskerCore::Types::ClientTypes::StepReadiness])
    expect(created).to have_attributes(created: true, step_count: 4, ready_steps: 1, pending_steps: 3,
                                       in_progress_steps: 1, execution_status: "has_ready_steps")
  end

  it "reads the existing task of a repeated identity, as it stands now" do
    first = TaskerCore::FFI.client_create_task(request("math", "linear_workflow", { "even_number" => 2 }))
    psql("UPDATE tasker.tasks SET reason = 'changed since' WHERE task_uuid = '#{first['task_uuid']}'")
    again = TaskerCore::FFI.client_create_task(request("math", "linear_workflow", { "even_number" => 2 }))
    expect(again).to include("task_uuid" => first["task_uuid"], "created" => false, "step_count" => 4,
                             "reason" => "changed since")
    expect(again.except("created", "step_count")).to eq(TaskerCore::FFI.client_get_task(first["task_uuid"]))
  end

  # The engine's connections run create_task as a prepared statement, each preparing it on its
  # first create; a connection the server replaced prepares it again.
  it "creates on connections that prepared the statement, and on new ones" do
    first = TaskerCore::FFI.client_create_task(request("math", "linear_workflow", { "even_number" => 10 }))
    second = TaskerCore::FFI.client_create_task(request("math", "linear_workflow", { "even_number" => 12 }))
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tasker_core' " \
         "AND pid <> pg_backend_pid()")
    third = TaskerCore::FFI.client_create_task(request("math", "linear_workflow", { "even_number" => 14 }))
    expect([first, second, third].map { |t| t["created"] }).to eq([true, true, true])
    expect(third.except("created", "step_count")).to eq(TaskerCore::FFI.client_get_task(third["task_uuid"]))
  end

  it "is built alike on the caller's connection" do
    conn = PG.connect(DATABASE_URL)
    conn.transaction do
      created = TaskerCore::Client.create_task(name: "tree_workflow", namespace: "math", context: { even_number: 8 },
                                               connection: conn)
      expect(created.created).to be(true)
      read = conn.exec_params("SELECT tasker.get_task($1::uuid)", [created.task_uuid]).getvalue(0, 0)
      expect(created.attributes.except(:created, :step_count))
        .to eq(TaskerCore::Client.typed(TaskerCore::Types::ClientTypes::TaskResponse, JSON.parse(read)).attributes)
    end
  ensure
    conn&.close
  end

  # create_tasks builds the answer of every task it creates from the rows it inserted, in the same
  # statement; a repeated identity answers the task created earlier in the batch, an existing one
  # is read with get_task.
  describe "of create_tasks" do
    def batch
      existing = TaskerCore::FFI.client_create_task(request("math", "linear_workflow", { "even_number" => 40 }))
      psql("UPDATE tasker.tasks SET reason = 'changed since' WHERE task_uuid = '#{existing['task_uuid']}'")
      fresh = templates.flat_map do |namespace, name, context|
        [request(namespace, name, context), request(namespace, name, context.merge("n" => 2), "tags" => %w[x y],
                                                    "priority" => 3, "idempotency_key" => "#{name}-k")]
      end
      requests = fresh + [request("math", "linear_workflow", { "even_number" => 40 }), # the existing task
                          request("math", "tree_workflow", { "even_number" => 2 }), # the batch's first tree
                          request("math", "diamond_workflow", { "even_number" => 9 }, "idempotency_key" => "diamond_workflow-k")]
      [requests, existing]
    end

    def expect_get_task(answers)
      answers.each_with_index do |answer, i|
        read = TaskerCore::FFI.client_get_task(answer["task_uuid"])
        expect(answer.except("created", "step_count")).to eq(read), "requests[#{i}]"
        expect(answer["step_count"]).to eq(read["total_steps"]), "requests[#{i}]"
      end
    end

    it "is get_task's TaskResponse of each task, created or not" do
      requests, existing = batch
      answers = TaskerCore::FFI.client_create_tasks(requests)
      expect(answers.map { |a| a["created"] }).to eq([true] * 8 + [false] * 3)
      expect(answers[8]).to include("task_uuid" => existing["task_uuid"], "reason" => "changed since")
      expect(answers[9]["task_uuid"]).to eq(answers[4]["task_uuid"])
      expect(answers[10]["task_uuid"]).to eq(answers[3]["task_uuid"])
      expect_get_task(answers)
    end

    it "is built alike on the caller's connection, as the same structs" do
      requests, = batch
      conn = PG.connect(DATABASE_URL)
      created = conn.transaction do
        TaskerCore::Client.create_tasks(requests.map { |r| r.transform_keys(&:to_sym) }, connection: conn)
      end
      expect(created.map(&:created)).to eq([true] * 8 + [false] * 3)
      created.each_with_index do |task, i|
        expect(task.attributes.except(:created, :step_count))
          .to eq(TaskerCore::Client.get_task(task.task_uuid).attributes), "requests[#{i}]"
      end
    ensure
      conn&.close
    end
  end
end
