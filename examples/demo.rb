# frozen_string_literal: true

# The demo: runs seed 001's checkout workflow through a worker and prints every task's steps.
# With no TASKER_DATABASE_URL / DATABASE_URL it starts a throwaway PostgreSQL and removes it at exit.
require "json"
require "time"
require_relative "../lib/tasker_core/embedded_postgres"

url = TaskerCore::EmbeddedPostgres.database_url!
require_relative "../lib/tasker_core"
require_relative "checkout/handlers"

TaskerCore.configure { |c| c.database_url = url }
TaskerCore.migrate!
worker = TaskerCore::Worker.start(template_paths: [File.join(__dir__, "checkout", "templates")], concurrency: 4)

CARTS = [
  { "cart_items" => [{ "product_id" => 1, "quantity" => 2 }], "customer_email" => "ada@example.com" },
  { "cart_items" => [{ "product_id" => 2, "quantity" => 1 }, { "product_id" => 3, "quantity" => 4 }],
    "customer_email" => "grace@example.com" },
  { "cart_items" => [{ "product_id" => 3, "quantity" => 10 }], "customer_email" => "linus@example.com" },
  { "cart_items" => [{ "product_id" => 1, "quantity" => 1 }, { "product_id" => 2, "quantity" => 3 }],
    "customer_email" => "barbara@example.com" },
  # Product 99 does not exist: validate_cart fails permanently and the task ends in error.
  { "cart_items" => [{ "product_id" => 99, "quantity" => 1 }], "customer_email" => "nobody@example.com" }
].freeze

def wait_for(task_uuid, timeout: 30)
  task = TaskerCore::Client.wait_for_task(task_uuid, timeout: timeout) # LISTEN, no polling
  raise "task #{task_uuid} did not finish in #{timeout}s" unless task

  task
end

def summarize(value, width = 70)
  text = value.nil? ? "-" : JSON.generate(value)
  text.length > width ? "#{text[0, width - 3]}..." : text
end

started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
tasks = CARTS.map do |cart|
  TaskerCore::Client.create_task(name: "checkout_workflow", namespace: "ecommerce", version: "1.0.0",
                                 context: cart, reason: "Demo checkout")
end
finished = tasks.map { |t| wait_for(t["task_uuid"]) }
wall_ms = ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round(1)

finished.each do |task|
  created = Time.parse("#{task['created_at']}Z")
  done = task["completed_at"] || task["updated_at"]
  elapsed = ((Time.parse("#{done}Z") - created) * 1000).round(1)
  puts
  puts "task #{task['task_uuid']}  #{task['status'].upcase}  #{elapsed} ms  " \
       "(#{task['completed_steps']}/#{task['total_steps']} steps, #{task['context']['customer_email']})"
  puts format("  %-18s %-10s %8s %6s  %s", "step", "state", "handler", "tries", "result")
  TaskerCore::Client.list_task_steps(task["task_uuid"]).each do |step|
    results = step["results"] || {}
    ms = results.dig("metadata", "execution_time_ms")
    shown = results["success"] == false ? "error: #{results.dig('error', 'message')}" : summarize(results["result"])
    puts format("  %-18s %-10s %8s %6d  %s", step["name"], step["current_state"], ms ? "#{ms} ms" : "-",
                step["attempts"], shown)
  end
end

complete = finished.count { |t| t["status"] == "complete" }
puts
puts "#{finished.size} checkout tasks in #{wall_ms} ms: #{complete} complete, #{finished.size - complete} in error " \
     "(worker claimed #{worker.status['claimed_total']} steps)"
worker.stop
TaskerCore.shutdown!
