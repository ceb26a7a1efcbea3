"""python -m tasker_core: the worker runs templates' workflows with the handlers it imports, and
shuts down gracefully on SIGTERM and SIGINT; migrate, templates and health."""
from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import EXAMPLES, SUPPORT, SUPPORT_TEMPLATES, TEMPLATES, finish, step_named, wait_until


def run_cli(database_url, *args, cwd=None, **kwargs):
    env = {**os.environ, "TASKER_DATABASE_URL": database_url, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "tasker_core", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def test_worker_command_runs_a_workflow_and_stops_on_sigterm(database_url, client):
    worker = run_cli(database_url, "worker", "--templates", TEMPLATES, "--import", "linear_workflow",
                     "--concurrency", "2", cwd=EXAMPLES)
    try:
        task = client.create_task("linear_workflow", namespace="linear_py", context={"even_number": 2})
        assert finish(client, task.task_uuid) == "complete"
        assert step_named(client, task.task_uuid, "linear_step_4").results["result"] == {"result": 65536}
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, output
    assert "serving batch_jobs, linear_py with 2 handler threads" in output and "stopping (signal 15)" in output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_worker_command_lets_a_running_step_finish_before_it_exits(database_url, client, signum):
    worker = run_cli(database_url, "worker", "--templates", os.path.join(SUPPORT_TEMPLATES, "sleep_step.yml"),
                     "--import", "pyhandlers", "--concurrency", "1", "--web", "127.0.0.1:0", cwd=SUPPORT)
    try:
        task = client.create_task("sleep_step", namespace="py_sleep", context={"seconds": 1.5})
        wait_until(lambda: step_named(client, task.task_uuid, "only").current_state == "in_progress",
                   message="the step to be running")
        worker.send_signal(signum)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, output
    assert "(web on port " in output
    # The step finished on the stopping worker: no claim was left to expire.
    assert client.get_task(task.task_uuid).status == "complete"
    assert step_named(client, task.task_uuid, "only").results["result"] == {"slept": 1.5}


def test_the_walkthrough_of_docs_python_md(database_url):
    """docs/python.md: a worker for the checkout workflow, then examples/submit_checkout.py."""
    checkout = os.path.join(os.path.dirname(os.path.dirname(EXAMPLES)), "examples", "checkout", "templates")
    worker = run_cli(database_url, "worker", "--templates", checkout, "--import", "ecommerce.step_handlers",
                     "--concurrency", "4", cwd=EXAMPLES)
    try:
        submit = subprocess.run([sys.executable, os.path.join(EXAMPLES, "submit_checkout.py")], cwd=EXAMPLES,
                                env={**os.environ, "TASKER_DATABASE_URL": database_url,
                                     "PYTHONPATH": os.pathsep.join(sys.path)},
                                capture_output=True, text=True, timeout=120)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert submit.returncode == 0, submit.stdout + submit.stderr
    lines = submit.stdout.splitlines()
    assert lines[1] == "Task finished: complete"
    assert lines[2:6] == ["  validate_cart: complete", "  process_payment: complete", "  update_inventory: complete",
                          "  send_confirmation: complete"]
    assert lines[6].startswith("Confirmation: ")
    confirmation = ast.literal_eval(lines[6][len("Confirmation: "):])
    assert confirmation["email_sent_to"] == "ada@example.com" and confirmation["items_reserved"] == 3
    assert worker.returncode == 0, output


def test_migrate_templates_and_health_commands(database_url):
    migrate = run_cli(database_url, "migrate")
    out, _ = migrate.communicate(timeout=60)
    assert migrate.returncode == 0 and json.loads(out.strip().splitlines()[-1])["applied"] == []
    validate = run_cli(database_url, "templates", "validate", TEMPLATES)
    out, _ = validate.communicate(timeout=60)
    assert validate.returncode == 0 and "linear_workflow.yml: valid" in out
    register = run_cli(database_url, "templates", "register", TEMPLATES)
    out, _ = register.communicate(timeout=60)
    assert register.returncode == 0 and "registered linear_py/linear_workflow@1.0.0 (4 steps)" in out
    health = run_cli(database_url, "health")
    out, _ = health.communicate(timeout=60)
    assert health.returncode == 0 and json.loads(out.strip().splitlines()[-1])["healthy"] is True
    broken = run_cli("postgresql:///tasker?host=/nonexistent-dir&port=1", "health")
    out, _ = broken.communicate(timeout=60)
    assert broken.returncode == 1 and json.loads(out.strip().splitlines()[-1])["healthy"] is False


def test_a_template_error_is_reported_by_file(database_url, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nnamespace_name: x\nversion: 1.0.0\nsteps:\n  - name: a\n    dependencies: [missing]\n"
                   "    handler: {callable: x.Y}\n")
    validate = run_cli(database_url, "templates", "validate", str(bad))
    out, _ = validate.communicate(timeout=60)
    assert validate.returncode == 1 and "TemplateError: %s:" % bad in out and "missing" in out
    aliases = tmp_path / "aliases.yml"
    aliases.write_text("a: &x [1]\nb: *x\n")
    validate = run_cli(database_url, "templates", "validate", str(aliases))
    out, _ = validate.communicate(timeout=60)
    assert validate.returncode == 1 and "aliases" in out
