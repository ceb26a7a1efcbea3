"""Domain events of Python steps: declared (conditions, schemas, publishers, broadcast), published
by hand, carried across checkpoints, stored with the result and read by a consumer."""
from __future__ import annotations

import uuid

import pytest

from tasker_core import domain_events
from tasker_core.errors import ValidationError

from conftest import finish


def consume(consumer, task_uuid):
    events = [e for e in domain_events.read(consumer, limit=1000) if e["metadata"].get("task_uuid") == task_uuid]
    return {e["event_name"]: e for e in events}


def test_declared_and_hand_published_events_of_a_success(client, start_worker, caplog):
    start_worker(["py_events"])
    task = client.create_task("charge_with_events", namespace="py_events", context={"amount": 12})
    assert finish(client, task.task_uuid) == "complete"
    consumer = "py-%s" % uuid.uuid4().hex[:8]
    events = consume(consumer, task.task_uuid)
    assert set(events) == {"payment.processed", "payment.audited", "charge.attempted"}
    processed = events["payment.processed"]
    assert processed["payload"]["payload"] == {"payment_id": "pay_12", "amount": 12}
    assert processed["payload"]["execution_result"]["success"] is True
    assert processed["payload"]["task_sequence_step"]["workflow_step"]["name"] == "charge"
    assert processed["metadata"]["fired_by"] == "tasker_core.domain_events.BasePublisher"
    assert processed["delivery_mode"] == "durable"
    audited = events["payment.audited"]
    assert audited["payload"]["payload"] == {"audited_amount": 1200} and audited["metadata"]["auditor"] == "py"
    assert audited["delivery_mode"] == "broadcast"
    assert events["charge.attempted"]["payload"]["payload"] == {"amount": 12}
    assert "payload of payment.unmatched does not match its schema" in caplog.text
    assert domain_events.ack(consumer, [e["event_id"] for e in events.values()]) == 3
    assert consume(consumer, task.task_uuid) == {}


def test_failure_events(client, start_worker):
    start_worker(["py_events"])
    task = client.create_task("charge_with_events", namespace="py_events", context={"amount": 5, "decline": True})
    assert finish(client, task.task_uuid) == "error"
    events = consume("py-%s" % uuid.uuid4().hex[:8], task.task_uuid)
    assert set(events) == {"payment.failed", "charge.attempted"}
    assert events["payment.failed"]["payload"]["payload"]["error"]["error_code"] == "DECLINED"


def test_events_of_checkpointed_runs_go_with_the_result(client, start_worker):
    start_worker(["py_events"])
    task = client.create_task("counting", namespace="py_events", context={"total": 6})
    assert finish(client, task.task_uuid) == "complete"
    events = [e for e in domain_events.read("py-%s" % uuid.uuid4().hex[:8], limit=1000)
              if e["metadata"].get("task_uuid") == task.task_uuid]
    assert sorted(e["payload"]["payload"]["done"] for e in events) == [0, 2, 4]


def test_publish_outside_a_step_and_validation():
    consumer = "py-%s" % uuid.uuid4().hex[:8]
    event_id = domain_events.publish("order.imported", {"n": 1}, metadata={"source": "test"})
    read = [e for e in domain_events.read(consumer, limit=1000) if e["event_id"] == event_id]
    assert read and read[0]["payload"]["payload"] == {"n": 1} and read[0]["metadata"]["source"] == "test"
    with pytest.raises(ValidationError, match="event_name 'Bad Name'"):
        domain_events.publish("Bad Name")
    with pytest.raises(ValidationError, match="delivery_mode must be one of"):
        domain_events.publish("a.b", delivery_mode="carrier_pigeon")
    with pytest.raises(ValidationError, match="fast events have no Python subscribers"):
        domain_events.publish("a.b", delivery_mode="fast")
