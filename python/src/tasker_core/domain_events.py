"""Domain events (SPEC 8.2), as the Ruby gem's TaskerCore::DomainEvents: business events that
steps declare in their templates (``publishes_events``) or publish by hand from a handler
(``context.publish_domain_event``), committed with the step's result, and read by consumers.

    steps:
      - name: charge_card
        handler: {callable: payments.handlers.ChargeCard}
        publishes_events:
          - name: payment.processed
            condition: success          # failure, retryable_failure, permanent_failure, always
            delivery_mode: durable      # broadcast: also this process's subscribers (Ruby only)
            schema: {type: object, required: [payment_id]}
            publisher: payments.publishers.PaymentPublisher   # optional, a BasePublisher

Durable and broadcast events are written to the outbox in the transaction that stores the step's
result (a stale result publishes nothing) and read with ``read(consumer)`` / ``ack(consumer,
ids)``: at least once per consumer, never again after the acknowledgement. Fast (in-process)
delivery has no Python subscribers yet: fast events of Python handlers are dropped and logged.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import re
import threading
from datetime import datetime, timezone
from typing import Any

from . import _tasker_core as _ffi
from .configuration import boot
from .errors import TemplateError, ValidationError

logger = logging.getLogger("tasker_core.domain_events")

MODES = ("durable", "fast", "broadcast")
CONDITIONS = ("success", "failure", "retryable_failure", "permanent_failure", "always")
NAME = re.compile(r"\A[a-z0-9_]+(\.[a-z0-9_]+)+\Z")


class BasePublisher:
    """Shapes the events a step declares with ``publisher:``. step_result is the step's result
    envelope ({"success", "result", "error", "metadata"}). Publishers run on the handler's thread
    after the handler returned; an exception in one is logged and never fails the step."""

    @property
    def name(self) -> str:
        return "%s.%s" % (type(self).__module__, type(self).__qualname__)

    def transform_payload(self, step_result: dict, event_declaration: dict, step_context: Any) -> dict:
        """The business payload: by default the handler's result (a success) or its error."""
        value = step_result.get("result") if step_result.get("success") else {"error": step_result.get("error")}
        return value if isinstance(value, dict) else {"value": value}

    def should_publish(self, step_result: dict, event_declaration: dict, step_context: Any) -> bool:
        return True

    def additional_metadata(self, step_result: dict, event_declaration: dict, step_context: Any) -> dict:
        """Merged into the event's metadata."""
        return {}


_publishers: dict[str, Any] = {}
_schemas: dict[str, Any] = {}
_lock = threading.Lock()
DEFAULT_PUBLISHER = BasePublisher()


def register_publisher(name: str, publisher: Any) -> None:
    """Makes ``publisher:`` name a publisher (a BasePublisher instance or subclass)."""
    with _lock:
        _publishers[str(name)] = publisher


def validate_name(name: Any) -> None:
    if not (isinstance(name, str) and NAME.match(name) and len(name) <= 128):
        raise ValidationError("event_name %r must be a dotted lowercase name such as payment.processed" % (name,),
                              field="event_name")


def validate_mode(mode: Any) -> None:
    if mode not in MODES:
        raise ValidationError("delivery_mode must be one of %s" % ", ".join(MODES), field="delivery_mode")


def validate_condition(condition: Any) -> None:
    if condition not in CONDITIONS:
        raise ValidationError("condition must be one of %s" % ", ".join(CONDITIONS), field="condition")


def publish(name: str, payload: dict | None = None, *, delivery_mode: str = "durable",
            metadata: dict | None = None, version: str = "1.0") -> str:
    """Publishes one event outside a step result (durable or broadcast: stored at once); returns its
    event_id."""
    validate_name(name)
    validate_mode(delivery_mode)
    if delivery_mode == "fast":
        raise ValidationError("fast events have no Python subscribers: publish durable or broadcast ones",
                              field="delivery_mode")
    if payload is not None and not isinstance(payload, dict):
        raise ValidationError("payload must be a dict", field="payload")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValidationError("metadata must be a dict", field="metadata")
    boot()
    event = {"event_id": _ffi.uuid_v7(), "event_name": name, "event_version": str(version),
             "payload": {"task_sequence_step": None, "execution_result": None, "payload": payload or {}},
             "metadata": {"fired_at": _now(), "fired_by": "manual", **(metadata or {})},
             "delivery_mode": delivery_mode}
    return _ffi.domain_publish(event)["event_id"]


def read(consumer: str, limit: int = 100, visibility_seconds: int = 30,
         modes: list[str] | None = None) -> list[dict]:
    """Leases up to limit events the consumer has not acknowledged (read again after
    visibility_seconds unless acknowledged)."""
    boot()
    return _ffi.domain_read(consumer, limit, visibility_seconds, modes)


def ack(consumer: str, event_ids: list[str]) -> int:
    """Acknowledges events for the consumer: it never reads them again. Returns how many."""
    boot()
    return _ffi.domain_ack(consumer, list(event_ids))["acknowledged"]


# -- the events of a step's result ----------------------------------------------------------------
def attach(envelope: dict, event: dict, context: Any, checkpoint_key: str) -> dict:
    """Adds "domain_events" to envelope (a result or a checkpoint) when the step has any."""
    try:
        candidates = [] if checkpoint_key in envelope else _declared(envelope, event, context)
        candidates += _published(context)
    except Exception as e:  # noqa: BLE001 - events never fail the step
        logger.error("tasker_core: building the events of step %s failed: %s: %s", event.get("step_uuid"),
                     type(e).__name__, e)
        return envelope
    fast = [c for c in candidates if c["delivery_mode"] == "fast"]
    if fast:
        logger.warning("tasker_core: %d fast domain event(s) of step %s dropped: Python has no in-process "
                       "subscribers (%s)", len(fast), event.get("step_uuid"), ", ".join(c["event_name"] for c in fast))
    candidates = [c for c in candidates if c["delivery_mode"] != "fast"]
    if candidates:
        envelope["domain_events"] = candidates
    return envelope


def condition_possible(condition: str | None, success: bool) -> bool:
    condition = condition or "success"
    return condition == "always" or (condition == "success" if success else condition != "success")


def _declared(envelope: dict, event: dict, context: Any) -> list[dict]:
    declarations = ((event.get("task_sequence_step") or {}).get("step_definition") or {}).get("publishes_events")
    if not isinstance(declarations, list) or not declarations or context is None:
        return []
    out = []
    for declaration in declarations:
        name = declaration.get("name")
        try:
            if not condition_possible(declaration.get("condition"), envelope.get("success") is True):
                continue
            publisher = _publisher_for(declaration.get("publisher"))
            if not publisher.should_publish(envelope, declaration, context):
                continue
            payload = publisher.transform_payload(envelope, declaration, context)
            if not _valid_payload(name, payload, declaration.get("schema")):
                continue
            metadata = publisher.additional_metadata(envelope, declaration, context) or {}
            out.append(_build(name, payload, context, event=event, envelope=envelope, fired_by=publisher.name,
                              condition=declaration.get("condition") or "success",
                              delivery_mode=declaration.get("delivery_mode") or "durable",
                              version=declaration.get("version"), extra_metadata=metadata))
        except Exception as e:  # noqa: BLE001
            logger.error("tasker_core: event %s of step %s: %s: %s", name, event.get("step_uuid"), type(e).__name__, e)
    return out


def _published(context: Any) -> list[dict]:
    out = []
    for p in getattr(context, "published_domain_events", None) or []:
        if _valid_payload(p["name"], p["payload"], p["schema"]):
            out.append(_build(p["name"], p["payload"], context, event=context.event, envelope=None,
                              fired_by=context.handler_name, condition=p["condition"],
                              delivery_mode=p["delivery_mode"], version=None, extra_metadata=p["metadata"]))
    return out


def _build(name: str, payload: Any, context: Any, *, event: dict, envelope: dict | None, fired_by: Any,
           condition: str, delivery_mode: str, version: Any, extra_metadata: dict) -> dict:
    execution_result = None if envelope is None else {k: v for k, v in envelope.items() if k != "domain_events"}
    return {"event_id": _ffi.uuid_v7(), "event_name": name, "event_version": str(version or "1.0"),
            "payload": {"task_sequence_step": _task_sequence_step(event, context), "execution_result": execution_result,
                        "payload": payload},
            "metadata": {**(extra_metadata or {}), "task_uuid": context.task_uuid, "step_uuid": context.step_uuid,
                         "step_name": context.step_name, "namespace": context.namespace_name,
                         "correlation_id": context.correlation_id, "fired_at": _now(), "fired_by": str(fired_by)},
            "condition": condition, "delivery_mode": delivery_mode}


def _task_sequence_step(event: dict, context: Any) -> dict:
    return {"task": {"task_uuid": context.task_uuid, "name": context.task_name, "namespace": context.namespace_name,
                     "version": context.task_version, "correlation_id": context.correlation_id},
            "workflow_step": {"step_uuid": context.step_uuid, "name": context.step_name,
                              "attempt": context.retry_count + 1, "handler": event.get("handler_callable")}}


def _publisher_for(name: Any) -> Any:
    """A declaration's publisher: one registered under that name, or a BasePublisher subclass by its
    dotted path. Nothing else is instantiated."""
    if not name:
        return DEFAULT_PUBLISHER
    with _lock:
        registered = _publishers.get(str(name))
    if registered is not None:
        return registered() if inspect.isclass(registered) else registered
    module_name, _, attr = str(name).rpartition(".")
    cls = None
    if module_name:
        try:
            cls = getattr(importlib.import_module(module_name), attr, None)
        except ImportError:
            cls = None
    if inspect.isclass(cls) and issubclass(cls, BasePublisher):
        return cls()
    raise TemplateError("publishes_events publisher '%s' is not a publisher: name a subclass of "
                        "tasker_core.domain_events.BasePublisher or one registered with register_publisher" % name)


def _valid_payload(name: str, payload: Any, schema: Any) -> bool:
    if schema is None:
        return True
    import json

    import jsonschema

    key = json.dumps(schema, sort_keys=True)
    with _lock:
        validator = _schemas.get(key)
    if validator is None:
        validator = jsonschema.validators.validator_for(schema)(schema)
        with _lock:
            _schemas[key] = validator
    errors = [e.message for e in validator.iter_errors(payload)]
    if not errors:
        return True
    logger.error("tasker_core: payload of %s does not match its schema: %s", name, "; ".join(errors[:3]))
    return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
