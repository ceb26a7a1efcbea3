# frozen_string_literal: true

# Seed 000's Ruby client example and seed 001's client SDK example (written in Python there, in
# Ruby here), run as written: creating, reading, listing and cancelling tasks from application code.
# No worker runs in this process, as in a Rails web process that only creates tasks.
#
#   bundle exec ruby examples/client_usage.rb
#
# With no TASKER_DATABASE_URL / DATABASE_URL it starts a throwaway PostgreSQL and removes it at exit.
require_relative "../lib/tasker_core/embedded_postgres"

url = TaskerCore::EmbeddedPostgres.database_url!
require_relative "../lib/tasker_core"

TaskerCore.configure { |c| c.database_url = url }
TaskerCore.migrate!
TaskerCore::Templates.load([File.join(__dir__, "client_usage", "templates")])

puts "== seed 000: TaskerCore::Client"

# All methods are module_function — call directly on TaskerCore::Client
response = TaskerCore::Client.create_task(
  name: "order_processing",
  namespace: "ecommerce",
  context: { order_id: 123, items: [{ sku: "WIDGET-A", quantity: 2 }] },
  initiator: "my-service",       # default: 'tasker-core-ruby'
  source_system: "my-api",       # default: 'tasker-core'
  reason: "New order received"   # default: 'Task requested'
)

puts "response.task_uuid  # => #{response.task_uuid.inspect}"
# Seed 000 shows "pending" here: this engine starts the task and enqueues its first step in the
# transaction that creates it, so a new task is already "steps_in_process".
puts "response.status     # => #{response.status.inspect}"
puts "response.class      # => #{response.class}"

puts "== seed 001: submitting tasks via the client"

client = TaskerCore::Client

# Create a task
response = client.create_task(
  name: "order_fulfillment",
  namespace: "ecommerce",
  context: {
    customer: { id: 123, email: "customer@example.com" },
    items: [
      { product_id: 1, quantity: 2, price: 29.99 }
    ]
  },
  initiator: "my-service",
  source_system: "my-api",
  reason: "New order received"
)
puts "Task created: #{response.task_uuid}"
puts "Status: #{response.status}"

# Get task status
task = client.get_task(response.task_uuid)
puts "Task status: #{task.status}"

# List tasks with filters
task_list = client.list_tasks(namespace: "ecommerce", limit: 10)
task_list.tasks.each do |t|
  puts "  #{t.task_uuid}: #{t.status}"
end
puts "Total: #{task_list.pagination.total_count}"

# List task steps
steps = client.list_task_steps(response.task_uuid)
steps.each do |step|
  puts "Step #{step.name}: #{step.current_state}"
end

# Check health
health = client.health_check
puts "API healthy: #{health.healthy}"

# Cancel a task
cancelled = client.cancel_task(response.task_uuid)

puts "== the rest of seed 000's methods"

puts "cancel_task        # => cancelled: #{cancelled['cancelled']}, #{cancelled['cancelled_steps']} steps cancelled"
puts "get_task.status    # => #{client.get_task(response.task_uuid).status.inspect}"
step = client.get_step(response.task_uuid, steps.first.step_uuid)
puts "get_step           # => #{step.name}: #{step.current_state}"
history = client.get_step_audit_history(response.task_uuid, step.step_uuid)
puts "audit history      # => #{history.map(&:to_state).join(' <- ')} (newest first)"
page = client.list_tasks(status: "cancelled")
puts "list_tasks(status: \"cancelled\").pagination.total_count  # => #{page.pagination.total_count}"
begin
  client.cancel_task(response.task_uuid)
rescue TaskerCore::Errors::StateError => e
  puts "cancel_task again  # => #{e.class}: #{e.message}"
end
