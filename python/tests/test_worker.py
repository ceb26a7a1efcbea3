"""Workflows run end to end on a Python worker: seed 001's examples, failures, retries, async
handlers, checkpoints, decisions and batches."""
from __future__ import annotations

import threading

import pytest

import linear_workflow  # noqa: F401 - registers the linear handlers by handler_name
import pyhandlers
import tasker_core
from tasker_core import _tasker_core as ffi
from tasker_core.errors import StateError

from conftest import finish, step_named, wait_until


def test_linear_workflow_of_seed_001_runs_to_completion(client, start_worker):
    start_worker(["linear_py"])
    task = client.create_task("linear_workflow", namespace="linear_py", context={"even_number": 6})
    assert finish(client, task.task_uuid) == "complete"
    results = {s.name: s.results["result"]["result"] for s in client.list_task_steps(task.task_uuid)}
    assert results == {"linear_step_1": 36, "linear_step_2": 1296, "linear_step_3": 1679616,
                       "linear_step_4": 2821109907456}
    first = step_named(client, task.task_uuid, "linear_step_1").results
    assert first["metadata"]["operation"] == "square" and first["metadata"]["step_type"] == "initial"
    assert first["metadata"]["handler_version"] == "1.0.0"
    assert first["metadata"]["worker_id"].startswith("worker_")


def test_linear_step_1_failure_result_fails_the_task_without_retry(client, start_worker):
    start_worker(["linear_py"])
    task = client.create_task("linear_workflow", namespace="linear_py", context={"even_number": 7})
    assert finish(client, task.task_uuid) == "error"
    step = step_named(client, task.task_uuid, "linear_step_1")
    assert step.current_state == "error" and step.attempts == 1
    error = step.results["error"]
    assert error["message"] == "Task context must contain an even number"
    assert error["error_type"] == "validation_error" and error["retryable"] is False


def test_checkout_workflow_of_seed_001_runs_on_the_python_handlers(client, start_worker):
    start_worker(["ecommerce"])
    task = client.create_task("checkout_workflow", namespace="ecommerce", context={
        "cart_items": [{"product_id": 1, "quantity": 2}, {"product_id": 3, "quantity": 1}],
        "payment_method": "card", "payment_token": "tok_visa", "customer_email": "ada@example.com"})
    assert finish(client, task.task_uuid) == "complete"
    cart = step_named(client, task.task_uuid, "validate_cart").results["result"]
    assert cart["subtotal"] == pytest.approx(79.97) and cart["tax"] == pytest.approx(6.4)
    assert cart["shipping"] == 5.99 and cart["item_count"] == 2
    payment = step_named(client, task.task_uuid, "process_payment").results["result"]
    assert payment["status"] == "completed" and payment["amount_charged"] == pytest.approx(cart["total"])
    confirmation = step_named(client, task.task_uuid, "send_confirmation").results["result"]
    assert confirmation == {"email_sent_to": "ada@example.com", "payment_id": payment["payment_id"],
                            "items_reserved": 3}


def test_validate_cart_permanent_error_fails_the_step_at_once(client, start_worker):
    start_worker(["ecommerce"])
    task = client.create_task("checkout_workflow", namespace="ecommerce", context={"cart_items": []})
    assert finish(client, task.task_uuid) == "error"
    step = step_named(client, task.task_uuid, "validate_cart")
    assert step.attempts == 1
    error = step.results["error"]
    assert error["message"] == "Cart items are required" and error["error_code"] == "MISSING_CART_ITEMS"
    assert error["error_type"] == "PermanentError" and error["retryable"] is False
    assert error["exception_class"] == "tasker_core.errors.PermanentError"
    assert any("step_handlers.py" in line for line in error["backtrace"])


def test_validate_cart_retryable_error_asks_for_its_retry_after(client, start_worker):
    start_worker(["ecommerce"])
    task = client.create_task("checkout_workflow", namespace="ecommerce",
                              context={"cart_items": [{"product_id": 3, "quantity": 1000}]})
    step = wait_until(lambda: (s := step_named(client, task.task_uuid, "validate_cart")).current_state
                      == "waiting_for_retry" and s, message="validate_cart waiting for retry")
    assert step.results["error"]["retryable"] is True
    assert step.results["error"]["context"] == {"product_id": 3, "available": 25, "requested": 1000}
    hint = step.results["orchestration_metadata"]
    assert hint["headers"] == {"retry-after": "30"} and hint["backoff_hint"]["delay_seconds"] == 30
    client.cancel_task(task.task_uuid)


@pytest.mark.parametrize("kind", ["retryable", "timeout", "network"])
def test_retryable_errors_are_retried_and_then_succeed(client, start_worker, kind):
    start_worker(["py_tests"])
    task = client.create_task("retry_once", namespace="py_tests", context={"kind": kind})
    assert finish(client, task.task_uuid) == "complete"
    step = step_named(client, task.task_uuid, "only")
    assert step.attempts == 2 and step.results["result"] == {"attempt": 1}
    audit = client.get_step_audit_history(task.task_uuid, step.step_uuid)
    failed = [a for a in audit if a.to_state == "error" or (a.result or {}).get("success") is False]
    assert failed, "the first attempt's failure is in the step's history"


def test_permanent_error_carries_its_code_and_context(client, start_worker):
    start_worker(["py_tests"])
    task = client.create_task("permanent_failure", namespace="py_tests")
    assert finish(client, task.task_uuid) == "error"
    error = step_named(client, task.task_uuid, "only").results["error"]
    assert error["error_code"] == "INVALID_ORDER" and error["context"] == {"order": 7}


def test_failure_result_with_error_code(client, start_worker):
    start_worker(["py_tests"])
    task = client.create_task("failure_result", namespace="py_tests")
    assert finish(client, task.task_uuid) == "error"
    results = step_named(client, task.task_uuid, "only").results
    assert results["error"]["error_code"] == "INVALID_DATA" and results["metadata"]["error_type"] == "validation_error"


def test_an_unexpected_exception_is_a_retryable_unexpected_error(client, start_worker):
    start_worker(["py_tests"])
    task = client.create_task("unexpected_error", namespace="py_tests", context={"what": "disk"})
    assert finish(client, task.task_uuid) == "error"
    error = step_named(client, task.task_uuid, "only").results["error"]
    assert error["message"] == "boom: disk" and error["error_type"] == "UnexpectedError"
    assert error["retryable"] is True and error["exception_class"] == "builtins.ValueError"


def test_a_result_that_is_not_plain_data_becomes_a_permanent_failure(client, start_worker):
    start_worker(["py_tests"])
    task = client.create_task("unstorable_result", namespace="py_tests")
    assert finish(client, task.task_uuid) == "error"
    error = step_named(client, task.task_uuid, "only").results["error"]
    assert error["error_type"] == "StepCompletionError"
    assert "result.value is a object" in error["message"]


def test_async_handlers_run_on_the_workers_event_loop(client, start_worker):
    start_worker(["py_tests"], concurrency=3)
    tasks = [client.create_task("async_square", namespace="py_tests", context={"n": n}) for n in range(6)]
    for n, task in enumerate(tasks):
        assert finish(client, task.task_uuid) == "complete"
        assert step_named(client, task.task_uuid, "only").results["result"] == {"square": n * n}
    assert pyhandlers.AsyncSquareHandler.threads == {"tasker-event-loop"}


def test_handler_method_and_initialization(client, start_worker):
    start_worker(["py_tests"])
    task = client.create_task("custom_method", namespace="py_tests")
    assert finish(client, task.task_uuid) == "complete"
    assert step_named(client, task.task_uuid, "only").results["result"] == {"method": "compute",
                                                                            "config": {"rate": 3}}


def test_batch_handler_with_checkpoints_of_seed_001(client, start_worker):
    start_worker(["batch_jobs"])
    task = client.create_task("batch_sum", namespace="batch_jobs", context={"item_count": 250, "batch_size": 100})
    assert finish(client, task.task_uuid) == "complete"
    step = step_named(client, task.task_uuid, "sum_items")
    assert step.results["result"] == {"total": sum(range(250)), "processed": 250}
    assert step.attempts == 1, "checkpoints do not consume retry attempts"
    # Two checkpoints were saved (after items 100 and 200) before the final run.
    steps = ffi.client_get_step(task.task_uuid, step.step_uuid)
    assert steps["current_state"] == "complete"


@pytest.mark.parametrize("amount,branch,approver", [(250, "small", "clerk"), (5000, "large", "manager")])
def test_decision_creates_the_chosen_branch_only(client, start_worker, amount, branch, approver):
    start_worker(["py_flows"])
    task = client.create_task("routing", namespace="py_flows", context={"amount": amount})
    assert finish(client, task.task_uuid) == "complete"
    names = {s.name for s in client.list_task_steps(task.task_uuid)}
    assert names == {"receive", "route", branch, "finish"}
    assert step_named(client, task.task_uuid, branch).results["result"] == {"approved_by": approver}
    assert step_named(client, task.task_uuid, "finish").results["result"] == {"branches": [branch]}
    route = step_named(client, task.task_uuid, "route").results
    assert route["result"]["decision_point_outcome"] == {"type": "create_steps", "step_names": [branch]}
    assert route["metadata"]["outcome_type"] == "create_steps"


def test_decision_without_branches(client, start_worker):
    start_worker(["py_flows"])
    task = client.create_task("routing", namespace="py_flows", context={})
    assert finish(client, task.task_uuid) == "complete"
    # No branch, so nothing downstream of the decision is created.
    assert {s.name for s in client.list_task_steps(task.task_uuid)} == {"receive", "route"}
    route = step_named(client, task.task_uuid, "route").results["result"]
    assert route == {"reason": "no amount", "decision_point_outcome": {"type": "no_branches"}}


@pytest.mark.parametrize("rows,workers", [(10, 3), (0, 1)])
def test_batchable_step_creates_workers_and_the_convergence_adds_them(client, start_worker, rows, workers):
    start_worker(["py_flows"])
    task = client.create_task("batched_sum", namespace="py_flows", context={"rows": rows})
    assert finish(client, task.task_uuid) == "complete"
    total = step_named(client, task.task_uuid, "total").results["result"]
    assert total["sum"] == sum(range(rows)) and len(total["workers"]) == workers


def test_stop_lets_a_running_handler_finish(client, start_worker):
    pyhandlers.SlowHandler.started.clear()
    pyhandlers.SlowHandler.release.clear()
    worker = start_worker(["py_tests"], concurrency=2)
    task = client.create_task("slow_step", namespace="py_tests")
    assert pyhandlers.SlowHandler.started.wait(20)
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": 20})
    stopper.start()
    wait_until(lambda: not worker.running, message="the worker to stop claiming")
    pyhandlers.SlowHandler.release.set()
    stopper.join(20)
    assert not stopper.is_alive()
    assert finish(client, task.task_uuid) == "complete"


def test_one_worker_per_process(start_worker):
    start_worker(["py_tests"])
    with pytest.raises(StateError, match="already running"):
        tasker_core.Worker(namespaces=["py_flows"]).start()


def test_worker_status_and_observability_services(start_worker):
    import json
    import urllib.request

    worker = start_worker(["py_tests"], concurrency=2, web={"enabled": True, "bind_address": "127.0.0.1:0"})
    status = worker.status()
    assert status["running"] is True and status["web"]["enabled"] is True
    wait_until(lambda: json.loads(worker.observe("health_ready")).get("status") == "ready",
               message="the worker to be ready (one handler thread per slot)")
    port = worker.web_port
    with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read())["status"] == "healthy"
    assert "tasker" in worker.observe("metrics_prometheus")


@pytest.mark.parametrize("mode", ["PollingOnly", "EventDrivenOnly"])
def test_deployment_modes(client, start_worker, mode):
    worker = start_worker(["linear_py"], deployment_mode=mode, poll_interval_ms=100)
    assert worker.status()["deployment_mode"] == mode
    task = client.create_task("linear_workflow", namespace="linear_py", context={"even_number": 8, "mode": mode})
    assert finish(client, task.task_uuid) == "complete"


def test_worker_options_are_checked():
    with pytest.raises(tasker_core.errors.ConfigurationError, match="concurrency must be an int between 1 and 1000"):
        tasker_core.Worker(namespaces=["x"], concurrency=0)
    with pytest.raises(tasker_core.errors.ConfigurationError, match="deployment_mode must be one of"):
        tasker_core.Worker(namespaces=["x"], deployment_mode="Sometimes")
    with pytest.raises(tasker_core.errors.ConfigurationError, match="the worker has no namespaces"):
        tasker_core.Worker(namespaces=[]).start()
