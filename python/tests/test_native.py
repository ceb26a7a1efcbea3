"""The extension module: the embedded schema, json-c <-> Python conversion, engine errors as
Python exceptions, the GIL released while the engine waits, and fork safety."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import uuid

import pytest

import tasker_core
from tasker_core import _tasker_core as ffi
from tasker_core.errors import (
    ConfigurationError, DatabaseError, EngineError, FFIError, NotFoundError, PermanentError, RetryableError,
    StateError, TemplateError, TimeoutError, ValidationError, WorkerStoppedError,
)

from conftest import PYTHON_DIR, REPO

sys.path.insert(0, PYTHON_DIR)
import gen_migrations  # noqa: E402


def test_the_embedded_schema_is_the_ruby_builds():
    with tempfile.TemporaryDirectory() as tmp:
        ruby_header = os.path.join(tmp, "tc_migrations.h")
        subprocess.run(["ruby", os.path.join(REPO, "ext", "tasker_core", "gen_migrations.rb"),
                        os.path.join(REPO, "ext", "tasker_core", "sql"), ruby_header], check=True)
        with open(ruby_header, encoding="utf-8") as f:
            assert gen_migrations.generate(os.path.join(REPO, "ext", "tasker_core", "sql")) == f.read()
    migrations = os.listdir(os.path.join(REPO, "ext", "tasker_core", "sql", "migrations"))
    assert ffi.schema_version() == len([m for m in migrations if m.endswith(".sql")])


def test_plain_data_round_trips(client):
    context = {"text": "naïve ☃ 日本", "int": 2**63 - 1, "neg": -(2**63), "float": 1.5, "t": True, "f": False,
               "none": None, "list": [1, [2, {"x": "y"}]], "tuple": (1, 2), "empty": {}, 7: "int key"}
    task = client.create_task("order_fulfillment", namespace="ecommerce", context=context)
    expected = {**context, "tuple": [1, 2], "7": "int key"}
    del expected[7]
    assert client.get_task(task.task_uuid).context == expected
    client.cancel_task(task.task_uuid)


@pytest.mark.parametrize("value,message", [
    (float("nan"), "request.context.v is NaN"),
    (float("inf"), "request.context.v is Infinity"),
    (2**64, "request.context.v is an int outside the 64-bit range"),
    ({(1, 2): 3}, "request.context.v has a key of type tuple"),
    ("a\x00b", "request.context.v contains a NUL character"),
    ("\ud800", "request.context.v is not valid UTF-8 text"),
    ({"k\x00": 1}, "request.context.v has a key containing a NUL character"),
    (object(), "request.context.v is a object; only dict, list"),
    ([[1, {"deep": {1.5}}]], "request.context.v[0][1].deep is a set"),
])
def test_values_that_cannot_be_stored_name_their_path(client, value, message):
    with pytest.raises(ValidationError) as e:
        client.create_task("order_fulfillment", namespace="ecommerce", context={"v": value})
    assert str(e.value).startswith(message)


def test_nesting_is_bounded(client):
    deep: list = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested deeper than 100 levels"):
        client.create_task("order_fulfillment", namespace="ecommerce", context={"v": deep})
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValidationError, match="nested deeper than 100 levels"):
        client.create_task("order_fulfillment", namespace="ecommerce", context=cyclic)


def test_engine_errors_map_to_classes_with_code_and_sqlstate(client):
    cases = [
        (lambda: client.get_task("nope"), ValidationError, "TC_EINVAL", None),
        # The database raised: its SQLSTATE comes along.
        (lambda: client.get_task(str(uuid.uuid4())), NotFoundError, "TC_ENOTFOUND", "TK404"),
        (lambda: ffi.template_normalize({"name": "t", "namespace_name": "n", "version": "1", "steps": []}),
         TemplateError, "TC_ETEMPLATE", None),
        (lambda: ffi.database_url_check("postgresql://u:p%zz@host/db"), ConfigurationError, "TC_ECONFIG", None),
    ]
    for call, cls, code, sqlstate in cases:
        with pytest.raises(cls) as e:
            call()
        assert e.value.code == code and e.value.sqlstate == sqlstate
    finished = client.create_task("order_fulfillment", namespace="ecommerce")
    client.cancel_task(finished.task_uuid)
    with pytest.raises(StateError) as e:
        client.cancel_task(finished.task_uuid)
    assert e.value.code == "TC_ESTATE" and isinstance(e.value, EngineError)


def test_error_hierarchy():
    assert issubclass(ValidationError, PermanentError) and issubclass(NotFoundError, PermanentError)
    assert issubclass(TemplateError, ConfigurationError) and issubclass(ConfigurationError, PermanentError)
    assert issubclass(TimeoutError, RetryableError)
    for cls in (DatabaseError, FFIError, StateError):
        assert issubclass(cls, EngineError) and not issubclass(cls, (PermanentError, RetryableError))
    assert issubclass(WorkerStoppedError, FFIError)


CHILD = r'''
import sys, threading, time
from tasker_core import _tasker_core as ffi
from tasker_core.errors import FFIError, DatabaseError, TimeoutError, WorkerStoppedError
url = sys.argv[1]
try:
    ffi.client_health_check()
except FFIError as e:
    print("FFIError", e.code, "not bootstrapped" in str(e))
ffi.bootstrap({"database_url": "postgresql:///tasker?host=/nonexistent-dir&port=1", "connect_timeout_seconds": 1})
try:
    ffi.client_get_task("01a233fe-0000-7000-8000-000000000001")
except DatabaseError as e:
    print("DatabaseError", e.code)
ffi.shutdown()
ffi.bootstrap({"database_url": url})
for call in (lambda: ffi.next_step(0.1), lambda: ffi.obs_call("health_basic")):
    try:
        call()
    except WorkerStoppedError as e:
        print("WorkerStoppedError", e)
ffi.shutdown()
ffi.bootstrap({"database_url": url, "pool_size": 1, "acquire_timeout_ms": 300})
holder = threading.Thread(target=ffi.task_wait, args=(sys.argv[3], 3.0))
holder.start()
time.sleep(0.5)
try:
    ffi.client_get_task(sys.argv[3])
    print("no TimeoutError")
except TimeoutError as e:
    print("TimeoutError", e.code)
holder.join()
ffi.shutdown()
'''


def test_ffi_database_worker_stopped_and_timeout_errors_in_a_fresh_process(database_url, client):
    task = client.create_task("order_fulfillment", namespace="ecommerce")
    out = subprocess.run([sys.executable, "-c", CHILD, database_url, os.path.join(PYTHON_DIR, "src"), task.task_uuid],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "FFIError None True", "DatabaseError TC_EDB",
        "WorkerStoppedError no worker has been started in this process",
        "WorkerStoppedError Worker system not running", "TimeoutError TC_ETIMEDOUT"]
    client.cancel_task(task.task_uuid)


def test_the_gil_is_released_while_the_engine_waits(client):
    task = client.create_task("order_fulfillment", namespace="ecommerce")
    ticks = 0
    waiter = threading.Thread(target=ffi.task_wait, args=(task.task_uuid, 1.0))
    waiter.start()
    while waiter.is_alive():
        ticks += 1
    waiter.join()
    # The main thread kept running Python while the other thread waited in the engine.
    assert ticks > 1000
    client.cancel_task(task.task_uuid)


def test_a_forked_child_starts_its_own_runtime(client):
    tasker_core.boot()
    pid = os.fork()
    if pid == 0:  # the child: the parent's runtime is abandoned, a fresh one works
        code = 1
        try:
            if not ffi.running() and tasker_core.boot() and tasker_core.TaskerClient().health_check().healthy:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert ffi.running() and client.health_check().healthy


def test_uuid_v7_and_versions():
    first, second = ffi.uuid_v7(), ffi.uuid_v7()
    assert uuid.UUID(first).version == 7 and uuid.UUID(second).version == 7 and first != second
    assert ffi.CORE_VERSION == "0.1.0" and ffi.CREATE_TASKS_MAX == 10000
