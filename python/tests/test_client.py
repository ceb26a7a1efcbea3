"""TaskerClient of seed 000: defaults, the eight methods, frozen dataclass responses with
from_dict, the Client* re-exports, the fallback to plain dicts, and seed 001's client script."""
from __future__ import annotations

import dataclasses
import inspect
import uuid

import pytest

import tasker_core
from tasker_core import (
    ClientHealthResponse, ClientPaginationInfo, ClientStepAuditResponse, ClientStepResponse,
    ClientTaskListResponse, ClientTaskResponse, TaskerClient,
)
from tasker_core import client as client_module
from tasker_core.errors import NotFoundError, StateError, ValidationError

from conftest import finish


@pytest.fixture(autouse=True, scope="module")
def cancel_what_the_module_created():
    """These tests create tasks no worker here is meant to run: they are cancelled afterwards, so
    that later workers of their namespaces find nothing of theirs."""
    yield
    client = TaskerClient()
    for namespace in ("ecommerce", "py_flows"):
        for task in client.list_tasks(namespace=namespace, limit=1000).tasks:
            if task.status not in client_module.TERMINAL_STATUSES:
                client.cancel_task(task.task_uuid)


def test_constructor_defaults():
    client = TaskerClient()
    assert client.initiator == "tasker-core-python" and client.source_system == "tasker-core"
    custom = TaskerClient(initiator="my-service", source_system="my-api")
    assert (custom.initiator, custom.source_system) == ("my-service", "my-api")


def test_signatures_are_seed_000s():
    sig = lambda name: str(inspect.signature(getattr(TaskerClient, name)))  # noqa: E731
    assert sig("create_task") == ("(self, name: 'str', *, namespace: 'str' = 'default', context: "
                                  "'dict[str, Any] | None' = None, version: 'str' = '1.0.0', reason: 'str' = "
                                  "'Task requested', **kwargs: 'Any') -> 'TaskResponse'")
    assert sig("list_tasks") == ("(self, *, limit: 'int' = 50, offset: 'int' = 0, namespace: 'str | None' = None, "
                                 "status: 'str | None' = None) -> 'TaskListResponse'")
    for name in ("get_task", "cancel_task", "list_task_steps"):
        assert list(inspect.signature(getattr(TaskerClient, name)).parameters) == ["self", "task_uuid"]
    for name in ("get_step", "get_step_audit_history"):
        assert list(inspect.signature(getattr(TaskerClient, name)).parameters) == ["self", "task_uuid", "step_uuid"]
    assert list(inspect.signature(TaskerClient.health_check).parameters) == ["self"]


def test_client_reexports_are_the_frozen_dataclasses():
    from tasker_core import client_types

    pairs = [(ClientTaskResponse, client_types.TaskResponse), (ClientTaskListResponse, client_types.TaskListResponse),
             (ClientStepResponse, client_types.StepResponse), (ClientStepAuditResponse, client_types.StepAuditResponse),
             (ClientHealthResponse, client_types.HealthResponse), (ClientPaginationInfo, client_types.PaginationInfo)]
    for exported, defined in pairs:
        assert exported is defined
        assert dataclasses.is_dataclass(exported) and exported.__dataclass_params__.frozen
        assert callable(exported.from_dict)


def test_create_task_with_defaults_and_get_task(client):
    response = client.create_task("order_fulfillment", namespace="ecommerce", context={"order_id": 1})
    assert isinstance(response, ClientTaskResponse)
    # Its initial step is enqueued in the transaction that creates it.
    assert response.status == "steps_in_process" and response.created is True and response.step_count == 4
    assert (response.initiator, response.source_system, response.reason, response.version) == (
        "tasker-core-python", "tasker-core", "Task requested", "1.0.0")
    assert uuid.UUID(response.task_uuid)
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.status = "complete"  # type: ignore[misc]
    task = client.get_task(response.task_uuid)
    assert task.task_uuid == response.task_uuid and task.context == {"order_id": 1}
    assert {s.name for s in task.steps} == {"validate_order", "reserve_inventory", "charge_payment", "ship_order"}
    assert all(isinstance(s, tasker_core.ClientStepReadiness) for s in task.steps)
    assert task.total_steps == 4 and task.namespace == "ecommerce" and task.name == "order_fulfillment"


def test_create_task_options_and_client_identity():
    client = TaskerClient(initiator="billing", source_system="erp")
    parent = str(uuid.uuid4())
    response = client.create_task("order_fulfillment", namespace="ecommerce", context={"order_id": 2},
                                  reason="New order received", tags=["vip", "eu"], priority=5,
                                  parent_correlation_id=parent, idempotency_key="order-2-%s" % uuid.uuid4())
    assert (response.initiator, response.source_system, response.reason) == ("billing", "erp", "New order received")
    assert response.tags == ["vip", "eu"] and response.priority == 5
    assert response.parent_correlation_id == parent
    override = client.create_task("order_fulfillment", namespace="ecommerce", initiator="cron", source_system="ops")
    assert (override.initiator, override.source_system) == ("cron", "ops")


def test_create_task_refuses_unknown_options_and_bad_input(client):
    with pytest.raises(ValidationError, match="unknown create_task option colour") as e:
        client.create_task("order_fulfillment", namespace="ecommerce", colour="red")
    assert e.value.field == "colour"
    with pytest.raises(ValidationError, match=r"request.context.when is a datetime"):
        import datetime

        client.create_task("order_fulfillment", namespace="ecommerce", context={"when": datetime.datetime.now()})
    with pytest.raises(NotFoundError, match="task template not found") as e:
        client.create_task("no_such_template", namespace="ecommerce")
    assert e.value.code == "TC_ENOTFOUND"


def test_create_task_checks_the_templates_input_schema(client):
    with pytest.raises(ValidationError) as e:
        client.create_task("approval_routing", namespace="approvals", context={"amount": -5, "purpose": "x"})
    assert e.value.error_code == "INPUT_SCHEMA_VIOLATION" and e.value.field == "context"
    assert e.value.context["violations"] == ["(root): 'requester' is a required property",
                                             "/amount: -5 is less than or equal to the minimum of 0"]
    task = client.create_task("approval_routing", namespace="approvals",
                              context={"amount": 50, "requester": "ada", "purpose": "books"})
    assert task.created is True
    client.cancel_task(task.task_uuid)


def test_list_tasks_pages_and_filters(client):
    namespace_tasks = [client.create_task("routing", namespace="py_flows", context={"amount": i}) for i in range(3)]
    listed = client.list_tasks(namespace="py_flows", limit=2)
    assert isinstance(listed, ClientTaskListResponse) and isinstance(listed.pagination, ClientPaginationInfo)
    assert len(listed.tasks) == 2 and all(t.namespace == "py_flows" for t in listed.tasks)
    assert listed.pagination.per_page == 2 and listed.pagination.page == 1 and listed.pagination.has_next
    assert listed.pagination.total_count >= 3
    second = client.list_tasks(namespace="py_flows", limit=2, offset=2)
    assert second.pagination.page == 2 and second.pagination.has_previous
    assert not {t.task_uuid for t in listed.tasks} & {t.task_uuid for t in second.tasks}
    running = client.list_tasks(namespace="py_flows", status="steps_in_process", limit=1000)
    assert {t.task_uuid for t in namespace_tasks} <= {t.task_uuid for t in running.tasks}
    assert all(t.status == "steps_in_process" for t in running.tasks)
    for task in namespace_tasks:
        client.cancel_task(task.task_uuid)
    with pytest.raises(ValidationError, match="limit"):
        client.list_tasks(limit=0)
    with pytest.raises(ValidationError, match="status"):
        client.list_tasks(status="sleeping")


def test_cancel_task_and_its_state_error(client):
    task = client.create_task("order_fulfillment", namespace="ecommerce")
    cancelled = client.cancel_task(task.task_uuid)
    assert isinstance(cancelled, dict)
    assert cancelled["cancelled"] is True and cancelled["status"] == "cancelled"
    assert cancelled["task_uuid"] == task.task_uuid and cancelled["previous_status"] == "steps_in_process"
    assert client.get_task(task.task_uuid).status == "cancelled"
    with pytest.raises(StateError) as e:
        client.cancel_task(task.task_uuid)
    assert e.value.code == "TC_ESTATE"


def test_steps_and_their_audit_history(client, start_worker):
    start_worker(["linear_py"])
    import linear_workflow  # noqa: F401 - registers the linear handlers

    task = client.create_task("linear_workflow", namespace="linear_py", context={"even_number": 4})
    assert finish(client, task.task_uuid) == "complete"
    steps = client.list_task_steps(task.task_uuid)
    assert [s.name for s in steps] == ["linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"]
    assert all(isinstance(s, ClientStepResponse) and s.current_state == "complete" for s in steps)
    assert steps[1].parents == ["linear_step_1"] and steps[0].handler_callable == "linear_step_1"
    one = client.get_step(task.task_uuid, steps[0].step_uuid)
    assert one == steps[0] or (one.step_uuid == steps[0].step_uuid and one.results == steps[0].results)
    audit = client.get_step_audit_history(task.task_uuid, steps[0].step_uuid)
    assert all(isinstance(a, ClientStepAuditResponse) for a in audit)
    assert audit[0].to_state == "complete" and audit[0].step_name == "linear_step_1"
    recorded = [a for a in audit if a.result]
    assert recorded and recorded[0].success is True and recorded[0].result["result"] == {"result": 16}
    assert {a.to_state for a in audit} >= {"in_progress", "complete"}
    with pytest.raises(NotFoundError):
        client.get_step(task.task_uuid, str(uuid.uuid4()))
    with pytest.raises(ValidationError, match="step_uuid"):
        client.get_step_audit_history(task.task_uuid, 42)


def test_unknown_and_malformed_task_uuids(client):
    with pytest.raises(NotFoundError) as e:
        client.get_task(str(uuid.uuid4()))
    assert e.value.code == "TC_ENOTFOUND"
    with pytest.raises(ValidationError, match="task_uuid"):
        client.get_task("not-a-uuid")
    with pytest.raises(ValidationError, match="task_uuid must be a str"):
        client.list_task_steps(None)


def test_health_check(client):
    health = client.health_check()
    assert isinstance(health, ClientHealthResponse)
    assert health.healthy is True and health.status == "healthy" and health.database_connected is True
    assert health.schema_version == health.expected_schema_version == tasker_core._tasker_core.schema_version()


def test_a_response_that_does_not_match_its_dataclass_is_returned_as_a_dict(monkeypatch, caplog, client):
    task = client.create_task("order_fulfillment", namespace="ecommerce")
    raw = tasker_core._tasker_core.client_get_task(task.task_uuid)
    del raw["status"]
    monkeypatch.setattr(client_module._ffi, "client_get_task", lambda _uuid: raw)
    assert client.get_task(task.task_uuid) is raw
    assert "did not match TaskResponse" in caplog.text
    with pytest.raises(KeyError):
        ClientTaskResponse.from_dict(raw)


def test_from_dict_ignores_fields_it_does_not_know(client):
    task = client.create_task("order_fulfillment", namespace="ecommerce")
    raw = tasker_core._tasker_core.client_get_task(task.task_uuid)
    raw["a_future_field"] = 1
    assert ClientTaskResponse.from_dict(raw).task_uuid == task.task_uuid
    health = ClientHealthResponse.from_dict({"healthy": False, "error": "down"})
    assert health.healthy is False and health.error == "down" and health.status is None


SUBMITTING_TASKS = '''
from tasker_core import TaskerClient

# Create a client (defaults: initiator="tasker-core-python", source_system="tasker-core")
client = TaskerClient(initiator="my-service", source_system="my-api")

# Create a task
response = client.create_task(
    "order_fulfillment",
    namespace="ecommerce",
    context={
        "customer": {"id": 123, "email": "customer@example.com"},
        "items": [
            {"product_id": 1, "quantity": 2, "price": 29.99}
        ],
    },
    reason="New order received",
)
print(f"Task created: {response.task_uuid}")
print(f"Status: {response.status}")

# Get task status
task = client.get_task(response.task_uuid)
print(f"Task status: {task.status}")

# List tasks with filters
task_list = client.list_tasks(namespace="ecommerce", limit=10)
for t in task_list.tasks:
    print(f"  {t.task_uuid}: {t.status}")
print(f"Total: {task_list.pagination.total_count}")

# List task steps
steps = client.list_task_steps(response.task_uuid)
for step in steps:
    print(f"Step {step.name}: {step.current_state}")

# Check health
health = client.health_check()
print(f"API healthy: {health.healthy}")

# Cancel a task
client.cancel_task(response.task_uuid)
'''


def test_seed_001_submitting_tasks_script_runs_as_written(capsys, client):
    namespace = {}
    exec(compile(SUBMITTING_TASKS, "submitting_tasks.py", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    task_uuid = namespace["response"].task_uuid
    assert "Task created: %s\nStatus: steps_in_process\nTask status: steps_in_process\n" % task_uuid in out
    assert "  %s: steps_in_process" % task_uuid in out and "Total: " in out
    assert "Step validate_order: enqueued" in out and "Step ship_order: pending" in out
    assert "API healthy: True" in out
    assert client.get_task(task_uuid).status == "cancelled"
    assert client.get_task(task_uuid).initiator == "my-service"
