# frozen_string_literal: true

require "spec_helper"
require "pg"
require "active_record"

# An app's model, in a table of its own beside the engine's schema.
class SpecOrder < ActiveRecord::Base
  self.table_name = "spec_orders"
end

# A task handler class of the fixture diamond template.
class SpecDiamondTask < TaskerCore::TaskHandler::Base
  task_name "diamond_workflow"
  namespace "math"
end

# create_task(connection:) and create_tasks(connection:): the task is created in the caller's
# transaction, on a PG::Connection or an ActiveRecord connection.
RSpec.describe "Creating tasks in the application's transaction" do
  # What a task leaves in the database: the task (with its identity hash), steps, edges, transitions.
  let(:tables) do
    { "tasks" => "tasker.tasks", "steps" => "tasker.workflow_steps", "edges" => "tasker.workflow_step_edges",
      "step transitions" => "tasker.workflow_step_transitions", "task transitions" => "tasker.task_transitions" }
  end

  before { TaskerCore::Templates.load([File.expand_path("../fixtures/templates", __dir__)]) }

  let(:connections) { [] }

  after { connections.each { |c| c.finish unless c.finished? } }

  def pg
    PG.connect(DATABASE_URL).tap do |c|
      c.set_notice_receiver { |_| } # the server's notices stay out of the progress
      connections << c
    end
  end

  def create(connection:, context: { even_number: 2 }, **options)
    TaskerCore::Client.create_task(name: "diamond_workflow", namespace: "math", context: context,
                                   connection: connection, **options)
  end

  def request(even, **options)
    { name: "diamond_workflow", namespace: "math", context: { even_number: even }, **options }
  end

  # Rows of each kind a task leaves, counted by the engine's tables (committed rows only).
  def row_counts
    tables.transform_values { |table| psql_value("SELECT count(*) FROM #{table}").to_i }
  end

  def nothing_left
    tables.transform_values { 0 }
  end

  def visible?(task_uuid)
    TaskerCore::Client.get_task(task_uuid)
    true
  rescue TaskerCore::Errors::NotFoundError
    false
  end

  describe "on a PG::Connection" do
    it "creates the task in the open transaction: invisible to others until the commit, whole after it" do
      conn = pg
      conn.exec("BEGIN")
      task = create(connection: conn)
      expect(task).to be_a(TaskerCore::Types::ClientTypes::TaskResponse)
      expect(task).to include("status" => "steps_in_process", "created" => true, "step_count" => 4, "ready_steps" => 1)
      expect(task.steps.map(&:name)).to eq(%w[diamond_start diamond_branch_b diamond_branch_c diamond_end])
      expect(visible?(task.task_uuid)).to be(false)
      expect(row_counts).to eq(nothing_left)
      conn.exec("COMMIT")
      expect(TaskerCore::Client.get_task(task.task_uuid)).to include("ready_steps" => 1, "pending_steps" => 3)
      expect(row_counts).to eq("tasks" => 1, "steps" => 4, "edges" => 4, "step transitions" => 5, "task transitions" => 4)
    end

    it "leaves nothing behind on rollback, not even the identity: the same request then creates a new task" do
      conn = pg
      conn.exec("BEGIN")
      first = create(connection: conn, idempotency_key: "order-1")
      again = create(connection: conn, context: { even_number: 4 })
      conn.exec("ROLLBACK")
      expect(row_counts).to eq(nothing_left)
      expect(visible?(first.task_uuid) || visible?(again.task_uuid)).to be(false)

      created = create(connection: conn, idempotency_key: "order-1")
      expect(created.created).to be(true)
      expect(created.task_uuid).not_to eq(first.task_uuid)
      expect(create(connection: false, context: { even_number: 4 }).created).to be(true)
    end

    it "creates a batch with create_tasks in the open transaction, and a rollback leaves nothing of it" do
      conn = pg
      conn.exec("BEGIN")
      tasks = TaskerCore::Client.create_tasks([request(2), request(4, idempotency_key: "k"), request(2)], connection: conn)
      expect(tasks.map(&:created)).to eq([true, true, false])
      expect(tasks[2].task_uuid).to eq(tasks[0].task_uuid)
      expect(row_counts).to eq(nothing_left)
      conn.exec("ROLLBACK")
      expect(row_counts).to eq(nothing_left)

      conn.exec("BEGIN")
      committed = SpecDiamondTask.create_tasks([{ context: { even_number: 6 } }, { context: { even_number: 8 } }],
                                               connection: conn)
      conn.exec("COMMIT")
      expect(committed.map { |t| TaskerCore::Client.get_task(t.task_uuid).status }).to eq(%w[steps_in_process] * 2)
      expect(row_counts["tasks"]).to eq(2)
      expect(TaskerCore::Client.create_tasks([], connection: conn)).to eq([])
    end

    it "returns one task for the same key twice in one transaction" do
      conn = pg
      conn.exec("BEGIN")
      first = create(connection: conn, idempotency_key: "order-7")
      second = create(connection: conn, idempotency_key: "order-7", context: { even_number: 4 })
      batch = TaskerCore::Client.create_tasks([request(6, idempotency_key: "order-7")], connection: conn)
      conn.exec("COMMIT")
      expect([second.task_uuid, batch[0].task_uuid]).to eq([first.task_uuid] * 2)
      expect([first.created, second.created, batch[0].created]).to eq([true, false, false])
      expect(row_counts["tasks"]).to eq(1)
    end

    it "commits at once outside a transaction, and runs on a session with none of the engine's settings" do
      conn = pg
      conn.exec("SET search_path TO pg_catalog")
      conn.exec("SET jit TO on")
      task = create(connection: conn, tags: ["x"], priority: 5)
      expect(TaskerCore::Client.get_task(task.task_uuid)).to include("priority" => 5, "tags" => ["x"])
      expect(conn.transaction_status).to eq(PG::PQTRANS_IDLE)
    end

    it "refuses a bad request before sending anything: the caller's transaction stays usable" do
      conn = pg
      conn.exec("BEGIN")
      expect { create(connection: conn, context: [1]) }
        .to raise_error(TaskerCore::Errors::ValidationError, /context must be an object/)
      expect { create(connection: conn, idempotency_kye: "x") }
        .to raise_error(TaskerCore::Errors::ValidationError, /unknown create_task option idempotency_kye/)
      expect { create(connection: conn, correlation_id: "nope") }
        .to raise_error(TaskerCore::Errors::ValidationError, /correlation_id must be a UUID/)
      expect { create(connection: conn, version: "9.9.9") }
        .to raise_error(TaskerCore::Errors::NotFoundError, /task template not found: namespace=math, name=diamond_workflow, version=9\.9\.9\. No template_paths/)
      expect { TaskerCore::Client.create_tasks([request(2), request(4, priority: "high")], connection: conn) }
        .to raise_error(TaskerCore::Errors::ValidationError, /\Arequests\[1\]: priority must be an integer/)
      expect { TaskerCore::Client.create_tasks([request(2), request(4, version: "9.9.9")], connection: conn) }
        .to raise_error(TaskerCore::Errors::NotFoundError, /\Arequests\[1\]: task template not found/)
      expect(conn.transaction_status).to eq(PG::PQTRANS_INTRANS)
      expect(conn.exec("SELECT 1").getvalue(0, 0)).to eq("1")
      expect(create(connection: conn).created).to be(true)
      conn.exec("COMMIT")
      expect(row_counts["tasks"]).to eq(1)
    end

    it "names the connection argument it cannot use" do
      expect { create(connection: Object.new) }.to raise_error(TaskerCore::Errors::ValidationError) { |e|
        expect(e.message).to match(/connection must be an ActiveRecord connection \(PostgreSQL\) or a PG::Connection/)
        expect(e.field).to eq("connection")
      }
      expect { TaskerCore::Client.create_tasks([request(2)], connection: "postgresql://x") }
        .to raise_error(TaskerCore::Errors::ValidationError, /got String/)
    end

    it "registers the configured template_paths before sending, so that a missing template does not abort the transaction" do
      TaskerCore::Templates.instance_variable_set(:@registered_pid, nil)
      psql("DELETE FROM tasker.named_tasks")
      TaskerCore::InputSchema.clear_cache!
      paths = TaskerCore.config.template_paths
      TaskerCore.config.template_paths = [File.expand_path("../fixtures/templates", __dir__)]
      conn = pg
      conn.exec("BEGIN")
      task = create(connection: conn)
      conn.exec("COMMIT")
      expect(task.created).to be(true)
      expect(visible?(task.task_uuid)).to be(true)
    ensure
      TaskerCore.config.template_paths = paths
      TaskerCore::Templates.instance_variable_set(:@registered_pid, nil)
    end

    it "raises the engine's typed error for a statement the database refuses (which aborts the caller's transaction)" do
      conn = pg
      conn.exec("BEGIN")
      expect { create(connection: conn, requested_at: "not a time") }
        .to raise_error(TaskerCore::Errors::ValidationError, /invalid input syntax for type timestamp/) { |e|
          expect(e.sqlstate).to eq("22007")
        }
      expect(conn.transaction_status).to eq(PG::PQTRANS_INERROR)
      expect { create(connection: conn, context: { even_number: 4 }) }
        .to raise_error(TaskerCore::Errors::DatabaseError, /current transaction is aborted/)
      conn.exec("ROLLBACK")
      expect(row_counts).to eq(nothing_left)
    end

    it "says so when the connection's database has no tasker schema" do
      other = PG.connect(DATABASE_URL, dbname: "postgres")
      connections << other
      expect { create(connection: other) }
        .to raise_error(TaskerCore::Errors::ConfigurationError, /the connection's database has no tasker schema .*engine's database/)
    end
  end

  describe "workers" do
    it "do not start a task whose creating transaction is open, and start it promptly after the commit" do
      TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2, deployment_mode: "EventDrivenOnly")
      conn = pg
      conn.exec("BEGIN")
      held = create(connection: conn)
      # A task committed meanwhile runs to the end: the worker claimed and worked while the other
      # transaction was open, and was woken by a notification (EventDrivenOnly does not poll).
      other = create(connection: false, context: { even_number: 4 })
      expect(wait_for_task(other.task_uuid).status).to eq("complete")
      expect(visible?(held.task_uuid)).to be(false)
      states = conn.exec_params("SELECT status, attempts FROM tasker.workflow_steps WHERE task_uuid = $1 ORDER BY position",
                                [held.task_uuid]).values
      expect(states).to eq([%w[enqueued 0], %w[pending 0], %w[pending 0], %w[pending 0]])

      committed_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      conn.exec("COMMIT")
      finished = wait_for_task(held.task_uuid, timeout: 10)
      took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - committed_at
      expect(finished.status).to eq("complete")
      expect(took).to be < 5
      expect(steps_by_name(held.task_uuid)["diamond_branch_b"].dig("results", "result", "result")).to eq(16)
    end

    it "never see a task whose transaction rolled back" do
      TaskerCore::Worker.start(namespaces: ["math"], concurrency: 2, deployment_mode: "EventDrivenOnly")
      conn = pg
      conn.exec("BEGIN")
      dropped = create(connection: conn)
      conn.exec("ROLLBACK")
      kept = create(connection: conn, context: { even_number: 4 })
      expect(wait_for_task(kept.task_uuid).status).to eq("complete")
      expect(visible?(dropped.task_uuid)).to be(false)
      expect(row_counts["tasks"]).to eq(1)
    end
  end

  describe "two transactions creating the same identity at once" do
    # Waits until the connection's backend waits for a lock (the other transaction's new row of
    # the same identity hash).
    def wait_until_blocked(conn)
      sleep_until(timeout: 20, interval: 0.05) do
        psql_value("SELECT wait_event_type FROM pg_stat_activity WHERE pid = #{conn.backend_pid}") == "Lock"
      end
    end

    it "ends with one task: the loser waits for the winner's commit and gets its task" do
      winner = pg
      loser = pg
      winner.exec("BEGIN")
      loser.exec("BEGIN")
      first = create(connection: winner, idempotency_key: "order-9")
      racer = Thread.new { create(connection: loser, idempotency_key: "order-9", context: { even_number: 4 }) }
      wait_until_blocked(loser)
      winner.exec("COMMIT")
      second = racer.value
      loser.exec("COMMIT")
      expect(second.task_uuid).to eq(first.task_uuid)
      expect([first.created, second.created]).to eq([true, false])
      expect(row_counts["tasks"]).to eq(1)
      expect(TaskerCore::Client.get_task(first.task_uuid).context).to eq("even_number" => 2)
    end

    it "ends with the loser's task when the winner rolls back" do
      winner = pg
      loser = pg
      winner.exec("BEGIN")
      loser.exec("BEGIN")
      dropped = create(connection: winner, idempotency_key: "order-9")
      racer = Thread.new { create(connection: loser, idempotency_key: "order-9", context: { even_number: 4 }) }
      wait_until_blocked(loser)
      winner.exec("ROLLBACK")
      second = racer.value
      loser.exec("COMMIT")
      expect(second.created).to be(true)
      expect(second.task_uuid).not_to eq(dropped.task_uuid)
      expect(row_counts["tasks"]).to eq(1)
      expect(TaskerCore::Client.get_task(second.task_uuid).context).to eq("even_number" => 4)
    end

    it "gives create_tasks the winner's task for the contested identity and creates the rest" do
      winner = pg
      loser = pg
      winner.exec("BEGIN")
      loser.exec("BEGIN")
      first = create(connection: winner, idempotency_key: "order-9")
      racer = Thread.new do
        TaskerCore::Client.create_tasks([request(4, idempotency_key: "order-9"), request(6, idempotency_key: "order-10")],
                                        connection: loser)
      end
      wait_until_blocked(loser)
      winner.exec("COMMIT")
      batch = racer.value
      loser.exec("COMMIT")
      expect(batch.map(&:created)).to eq([false, true])
      expect(batch[0].task_uuid).to eq(first.task_uuid)
      expect(row_counts["tasks"]).to eq(2)
    end

    it "raises a typed error naming the conflict under REPEATABLE READ, and still ends with one task" do
      winner = pg
      loser = pg
      winner.exec("BEGIN")
      loser.exec("BEGIN ISOLATION LEVEL REPEATABLE READ")
      first = create(connection: winner, idempotency_key: "order-9")
      racer = Thread.new do
        create(connection: loser, idempotency_key: "order-9", context: { even_number: 4 })
      rescue TaskerCore::Errors::Error => e
        e
      end
      wait_until_blocked(loser)
      winner.exec("COMMIT")
      error = racer.value
      loser.exec("ROLLBACK")
      expect(error).to be_a(TaskerCore::Errors::DatabaseError)
      expect(error.message).to match(/the task was not created: could not serialize access .*retry the whole transaction/)
      expect(error.sqlstate).to eq("40001")
      expect(row_counts["tasks"]).to eq(1)
      expect(create(connection: loser, idempotency_key: "order-9").task_uuid).to eq(first.task_uuid)
    end
  end

  describe "on an ActiveRecord connection" do
    before(:all) do
      ActiveRecord::Base.establish_connection(DATABASE_URL)
      ActiveRecord::Base.connection_pool.with_connection do |c|
        c.execute("SET client_min_messages TO warning")
        c.execute("CREATE TABLE IF NOT EXISTS spec_orders (id bigserial PRIMARY KEY, number integer NOT NULL)")
      end
    end

    after(:all) do
      ActiveRecord::Base.connection_pool.with_connection { |c| c.execute("DROP TABLE IF EXISTS spec_orders") }
      ActiveRecord::Base.remove_connection
    end

    before { psql("TRUNCATE spec_orders") }

    after do
      TaskerCore.config.join_transactions = false
      TaskerCore.config.active_record_database_url = nil
      TaskerCore.config.instance_variable_set(:@join_warned, nil)
      ActiveRecord::Base.connection_handler.clear_active_connections!
    end

    # model's connection (ActiveRecord::Base.connection before Rails 7.2).
    def ar(model = ActiveRecord::Base)
      model.respond_to?(:lease_connection) ? model.lease_connection : model.connection
    end

    it "commits the order and its task together" do
      task = ActiveRecord::Base.transaction do
        order = SpecOrder.create!(number: 1)
        create(connection: ar, context: { even_number: 2, order_id: order.id })
      end
      expect(SpecOrder.count).to eq(1)
      expect(TaskerCore::Client.get_task(task.task_uuid).context).to include("order_id" => SpecOrder.first.id)
    end

    it "rolls the task back with the order: nothing of either is left" do
      uuids = []
      ActiveRecord::Base.transaction do
        SpecOrder.create!(number: 1)
        uuids << create(connection: ar).task_uuid
        uuids.concat(TaskerCore::Client.create_tasks([request(4), request(6)], connection: ar(SpecOrder)).map(&:task_uuid))
        raise ActiveRecord::Rollback
      end
      expect(SpecOrder.count).to eq(0)
      expect(row_counts).to eq(nothing_left)
      expect(uuids.size).to eq(3)
      expect(uuids.none? { |u| visible?(u) }).to be(true)
    end

    it "begins the transaction ActiveRecord left pending when the task is its first statement" do
      uuid = nil
      ActiveRecord::Base.transaction do
        uuid = create(connection: ar).task_uuid
        expect(visible?(uuid)).to be(false)
        raise ActiveRecord::Rollback
      end
      expect(visible?(uuid)).to be(false)
      expect(row_counts).to eq(nothing_left)
    end

    it "raises the engine's typed error, and ActiveRecord rolls the transaction back" do
      expect do
        ActiveRecord::Base.transaction do
          SpecOrder.create!(number: 1)
          create(connection: ar, requested_at: "not a time")
        end
      end.to raise_error(TaskerCore::Errors::ValidationError, /invalid input syntax for type timestamp/) { |e|
        expect(e.cause).to be_a(ActiveRecord::StatementInvalid)
      }
      expect(SpecOrder.count).to eq(0)
      expect(ar.transaction_open?).to be(false)
      expect(create(connection: ar).created).to be(true)
    end

    context "with join_transactions" do
      before { TaskerCore.config.join_transactions = true }

      it "joins the open transaction without connection:, from the client and from a task handler class" do
        uuids = []
        ActiveRecord::Base.transaction do
          SpecOrder.create!(number: 1)
          uuids << SpecDiamondTask.create_task(context: { even_number: 2 }).task_uuid
          uuids.concat(SpecDiamondTask.create_tasks([{ context: { even_number: 4 } }]).map(&:task_uuid))
          uuids << create(connection: nil, context: { even_number: 6 }).task_uuid
          expect(uuids.none? { |u| visible?(u) }).to be(true)
          raise ActiveRecord::Rollback
        end
        expect(row_counts).to eq(nothing_left)

        committed = ActiveRecord::Base.transaction do
          SpecOrder.create!(number: 2)
          SpecDiamondTask.create_task(context: { even_number: 8 })
        end
        expect(visible?(committed.task_uuid)).to be(true)
        expect(SpecOrder.pluck(:number)).to eq([2])
      end

      it "uses the engine's own transaction outside one, with connection: false, and in a non-joinable one" do
        outside = SpecDiamondTask.create_task(context: { even_number: 2 })
        expect(visible?(outside.task_uuid)).to be(true)
        kept = []
        ActiveRecord::Base.transaction do
          SpecOrder.create!(number: 1)
          kept << SpecDiamondTask.create_task(context: { even_number: 4 }, connection: false).task_uuid
          raise ActiveRecord::Rollback
        end
        # Rails' transactional tests wrap each test in a transaction begun with joinable: false.
        ActiveRecord::Base.transaction(joinable: false) do
          SpecOrder.create!(number: 2)
          kept << SpecDiamondTask.create_task(context: { even_number: 6 }).task_uuid
          raise ActiveRecord::Rollback
        end
        expect(kept.all? { |u| visible?(u) }).to be(true)
        expect(SpecOrder.count).to eq(0)
      end

      it "under :auto, joins when the engine's database is the app's, and says so once when it is not" do
        TaskerCore.config.join_transactions = :auto
        TaskerCore.config.active_record_database_url = TaskerCore.config.database_url
        joined = nil
        ActiveRecord::Base.transaction do
          joined = SpecDiamondTask.create_task(context: { even_number: 2 }).task_uuid
          raise ActiveRecord::Rollback
        end
        expect(visible?(joined)).to be(false)

        TaskerCore.config.active_record_database_url = "postgresql:///another_app"
        separate = []
        2.times do |i|
          ActiveRecord::Base.transaction do
            separate << SpecDiamondTask.create_task(context: { even_number: 4 + (2 * i) }).task_uuid
            raise ActiveRecord::Rollback
          end
        end
        expect(separate.all? { |u| visible?(u) }).to be(true)
        expect(captured_log.scan("runs in a transaction of its own, not the app's").size).to eq(1)
        expect(captured_log).to include("config.tasker.join_transactions = true")
      end
    end
  end
end
