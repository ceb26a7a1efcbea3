# frozen_string_literal: true

require "spec_helper"

RSpec.describe "TaskerCore::Client.count_tasks and list_tasks(with_total: false)" do
  let(:client) { TaskerCore::Client }
  let(:t) { TaskerCore::Types::ClientTypes }

  before { TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)]) }

  def make(count, namespace: "math", name: "diamond_workflow")
    Array.new(count) { |i| client.create_task(name: name, namespace: namespace, context: { even_number: 2 * i }).task_uuid }
  end

  describe "count_tasks" do
    it "counts by namespace, by status, by a list of states, and both" do
      math = make(3)
      make(2, namespace: "resilience", name: "flaky_workflow")
      client.cancel_task(math[1])
      expect(client.count_tasks).to eq(5)
      expect(client.count_tasks(namespace: "math")).to eq(3)
      expect(client.count_tasks(namespace: :resilience)).to eq(2)
      expect(client.count_tasks(namespace: "nowhere")).to eq(0)
      expect(client.count_tasks(status: "cancelled")).to eq(1)
      expect(client.count_tasks(status: :steps_in_process)).to eq(4)
      expect(client.count_tasks(status: %w[cancelled steps_in_process])).to eq(5)
      expect(client.count_tasks(status: %w[cancelled cancelled])).to eq(1) # a repeat counts once
      expect(client.count_tasks(namespace: "math", status: "steps_in_process")).to eq(2)
      expect(client.count_tasks(namespace: "math", status: [:cancelled, "complete"])).to eq(1)
      expect(client.count_tasks(status: client::UNFINISHED_STATUSES)).to eq(4)
      expect(client.count_tasks(namespace: "math", status: client::TERMINAL_STATUSES)).to eq(1)
      expect(client::UNFINISHED_STATUSES + client::TERMINAL_STATUSES).to match_array(t::TASK_STATES)
    end

    it "answers the same through the raw FFI call" do
      make(2)
      expect(TaskerCore::FFI.client_count_tasks(nil, nil)).to eq(2)
      expect(TaskerCore::FFI.client_count_tasks("math", "steps_in_process")).to eq(2)
      expect(TaskerCore::FFI.client_count_tasks("math", %w[complete error])).to eq(0)
    end

    it "counts with index-only scans, as tasker.count_tasks writes the statement" do
      make(2)
      plan = lambda do |where|
        # A table this small is cheaper to read whole; the settings ask for the plan of a large one.
        psql("SET enable_seqscan = off; SET enable_bitmapscan = off; " \
             "EXPLAIN SELECT count(*) FROM tasker.tasks t WHERE true AND #{where}").flatten.join("\n")
      end
      expect(plan.call("t.status = ANY ('{error,pending}'::varchar[])"))
        .to match(/Index Only Scan using tasks_status_created_idx/)
      expect(plan.call("t.namespace_name = 'math'")).to match(/Index Only Scan using tasks_namespace_created_idx/)
      expect(psql("SELECT prosrc FROM pg_proc WHERE proname = 'count_tasks'").flatten.join("\n"))
        .to include("t.status = ANY ($2::varchar[])", "t.namespace_name = $1")
    end

    it "refuses bad input with a ValidationError naming the field" do
      expect { client.count_tasks(status: "done") }
        .to raise_error(TaskerCore::Errors::ValidationError, /status must be one of pending, .* \(got "done"\)/) { |e|
          expect(e.field).to eq("status")
        }
      expect { client.count_tasks(status: ["pending", "finished"]) }
        .to raise_error(TaskerCore::Errors::ValidationError, /status\[1\] must be one of .*\(got "finished"\)/) { |e|
          expect(e.field).to eq("status[1]")
        }
      expect { client.count_tasks(status: []) }
        .to raise_error(TaskerCore::Errors::ValidationError, /status must name at least one task state/) { |e|
          expect(e.field).to eq("status")
        }
      expect { client.count_tasks(status: 3) }
        .to raise_error(TaskerCore::Errors::ValidationError) { |e| expect(e.field).to eq("status") }
      expect { client.count_tasks(namespace: "") }
        .to raise_error(TaskerCore::Errors::ValidationError, /namespace must be a non-empty String/) { |e|
          expect(e.field).to eq("namespace")
        }
      expect { client.count_tasks(namespace: 42) }
        .to raise_error(TaskerCore::Errors::ValidationError) { |e| expect(e.field).to eq("namespace") }
      expect { client.count_tasks(namespace: "x" * 65) }
        .to raise_error(TaskerCore::Errors::ValidationError, /namespace must be 1 to 64 characters/)
      expect { TaskerCore::FFI.client_count_tasks(nil, ["finished"]) }
        .to raise_error(TaskerCore::Errors::ValidationError, /status must be one of .*\(got finished\)/)
      expect { TaskerCore::FFI.client_count_tasks(nil, []) }
        .to raise_error(TaskerCore::Errors::ValidationError, /status must name at least one/)
      expect { TaskerCore::FFI.client_count_tasks(nil, 3) }
        .to raise_error(TaskerCore::Errors::ValidationError, /status must be a String or an Array of Strings, got Integer/)
    end
  end

  describe "list_tasks(with_total: false)" do
    it "pages without counting: total_count and total_pages are nil, has_next from one task more" do
      uuids = make(7)
      page1 = client.list_tasks(limit: 3, with_total: false)
      expect(page1).to be_a(t::TaskListResponse)
      expect(page1.tasks.map(&:task_uuid)).to eq(uuids.reverse.first(3))
      expect(page1.pagination.to_h.except(:next_cursor)).to eq(page: 1, per_page: 3, total_count: nil, total_pages: nil,
                                                               has_next: true, has_previous: false)
      expect(client.list_tasks_after(cursor: page1.pagination.next_cursor, limit: 3).tasks.map(&:task_uuid))
        .to eq(uuids.reverse[3, 3])
      page2 = client.list_tasks(limit: 3, offset: 3, with_total: false)
      expect(page2.tasks.map(&:task_uuid)).to eq(uuids.reverse[3, 3])
      expect(page2.pagination.has_next).to be(true)
      page3 = client.list_tasks(limit: 3, offset: 6, with_total: false)
      expect(page3.tasks.map(&:task_uuid)).to eq([uuids.first])
      expect(page3.pagination.to_h).to include(page: 3, has_next: false, has_previous: true, total_count: nil)
      exact = client.list_tasks(limit: 7, with_total: false) # exactly one page: no next
      expect(exact.tasks.size).to eq(7)
      expect(exact.pagination.has_next).to be(false)
      expect(client.list_tasks(limit: 3, offset: 9, with_total: false).tasks).to eq([])
      expect(client.list_tasks(namespace: "math", status: "steps_in_process", limit: 6, with_total: false)
               .pagination.has_next).to be(true)
      expect(client.list_tasks(limit: 3).pagination.total_count).to eq(7) # the default still counts
      raw = TaskerCore::FFI.client_list_tasks(3, 0, nil, nil, false)
      expect(raw["pagination"]).to include("total_count" => nil, "total_pages" => nil, "has_next" => true)
      # One definition of each list (the migrations dropped the older signatures).
      expect(psql("SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc " \
                  "WHERE proname IN ('list_tasks', 'list_tasks_after') ORDER BY proname"))
        .to eq([["list_tasks", "p_limit integer, p_offset integer, p_namespace text, p_status text, p_with_total boolean, " \
                               "p_initiator text, p_source_system text"],
                ["list_tasks_after", "p_limit integer, p_cursor text, p_namespace text, p_status text, p_initiator text, " \
                                     "p_source_system text"]])
    end

    it "refuses a with_total that is not true or false" do
      expect { client.list_tasks(with_total: "no") }
        .to raise_error(TaskerCore::Errors::ValidationError, /with_total must be true or false/) { |e|
          expect(e.field).to eq("with_total")
        }
    end
  end
end
