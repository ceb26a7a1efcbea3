"""One database, two languages: a workflow created from Ruby runs on a Python worker, and one
created from Python runs on a Ruby worker (the checkout workflow, whose dotted callables name
ecommerce.step_handlers.* in Python and Ecommerce::StepHandlers::* in Ruby)."""
from __future__ import annotations

import os
import subprocess

from conftest import REPO, finish, step_named

CONTEXT = {"cart_items": [{"product_id": 1, "quantity": 2}], "payment_method": "card", "payment_token": "tok",
           "customer_email": "ruby@example.com"}


def ruby(database_url, script, *args):
    env = {**os.environ, "TASKER_DATABASE_URL": database_url, "BUNDLE_GEMFILE": os.path.join(REPO, "Gemfile")}
    done = subprocess.run(["bundle", "exec", "ruby", "-Ilib", "-e", script, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


CREATE = '''
require "json"
require "tasker_core"
task = TaskerCore::Client.create_task(name: "checkout_workflow", namespace: "ecommerce",
                                      context: JSON.parse(ARGV[0]), initiator: "ruby-app")
puts task.task_uuid
'''


def test_a_task_created_from_ruby_runs_on_a_python_worker(database_url, client, start_worker):
    import json

    start_worker(["ecommerce"])
    task_uuid = ruby(database_url, CREATE, json.dumps(CONTEXT))
    assert client.get_task(task_uuid).created is None  # a read, not a create
    assert finish(client, task_uuid) == "complete"
    assert client.get_task(task_uuid).initiator == "ruby-app"
    cart = step_named(client, task_uuid, "validate_cart").results
    assert cart["metadata"]["custom"]["handler_class"] == "ecommerce.step_handlers.ValidateCartHandler"
    assert cart["metadata"]["operation"] == "validate_cart"


RUN = '''
require "tasker_core"
require "./examples/checkout/handlers"
worker = TaskerCore::Worker.start(namespaces: ["ecommerce"], concurrency: 2)
status = TaskerCore::FFI.wait_for_task(ARGV[0], 60)
TaskerCore::Worker.stop(timeout: 10)
puts status
'''


def test_a_task_created_from_python_runs_on_a_ruby_worker(database_url, client):
    # Another context: the template's identity strategy (strict) would return the earlier task.
    task = client.create_task("checkout_workflow", namespace="ecommerce",
                              context={**CONTEXT, "customer_email": "python@example.com"})
    assert task.created is True
    assert ruby(database_url, RUN, task.task_uuid) == "complete"
    assert client.get_task(task.task_uuid).status == "complete"
    cart = step_named(client, task.task_uuid, "validate_cart").results
    assert cart["metadata"]["custom"]["handler_class"] == "Ecommerce::StepHandlers::ValidateCartHandler"
    confirmation = step_named(client, task.task_uuid, "send_confirmation").results["result"]
    assert confirmation["email_sent_to"] == "python@example.com"
