"""The suite's database and workers.

The database is TASKER_DATABASE_URL (or DATABASE_URL) when set, else a throwaway cluster started
once for the session (tasker_core.embedded_postgres, the Ruby suite's approach: initdb into a temp
directory, pg_ctl start on a unix socket), with the schema applied.
"""
from __future__ import annotations

import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYTHON_DIR)
EXAMPLES = os.path.join(PYTHON_DIR, "examples")
SUPPORT = os.path.join(HERE, "support")
for path in (EXAMPLES, SUPPORT):
    if path not in sys.path:
        sys.path.insert(0, path)

import tasker_core  # noqa: E402
from tasker_core.embedded_postgres import EmbeddedPostgres  # noqa: E402

TEMPLATES = os.path.join(EXAMPLES, "templates")
SUPPORT_TEMPLATES = os.path.join(SUPPORT, "templates")
CHECKOUT_TEMPLATES = os.path.join(REPO, "examples", "checkout", "templates")
CLIENT_TEMPLATES = os.path.join(REPO, "examples", "client_usage", "templates")
APPROVAL_TEMPLATES = os.path.join(REPO, "examples", "approvals", "templates")


@pytest.fixture(scope="session")
def database_url():
    configured = os.environ.get("TASKER_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    server = EmbeddedPostgres(fsync=False).start()
    try:
        yield server.url
    finally:
        tasker_core.shutdown()
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def engine(database_url):
    tasker_core.configure(database_url=database_url, pool_size=20)
    tasker_core.migrate()
    tasker_core.load_templates([TEMPLATES, SUPPORT_TEMPLATES, CHECKOUT_TEMPLATES, CLIENT_TEMPLATES,
                                APPROVAL_TEMPLATES])
    yield


@pytest.fixture
def client():
    return tasker_core.TaskerClient()


@pytest.fixture
def start_worker():
    """start_worker(namespaces, **options) -> a running Worker, stopped after the test."""
    started = []

    def start(namespaces, **options):
        options.setdefault("concurrency", 4)
        worker = tasker_core.Worker(namespaces=namespaces, **options).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=10)


def wait_until(condition, timeout=20.0, interval=0.05, message="condition"):
    """Polls condition() until it is truthy (returned) or timeout seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, message))
        time.sleep(interval)


def finish(client, task_uuid, timeout=30.0):
    """The task's terminal status (waits on the task's channel, no polling)."""
    status = client.wait_for_task(task_uuid, timeout=timeout)
    assert status is not None, "task %s did not finish within %ss (status %s)" % (
        task_uuid, timeout, client.get_task(task_uuid).status)
    return status


def step_named(client, task_uuid, name):
    return next(s for s in client.list_task_steps(task_uuid) if s.name == name)
