"""TaskerClient (seed 000): keyword-argument methods with defaults over the engine's client
functions, returning frozen dataclasses. Works in a process with no worker, and from many threads
at once (each call takes its own pooled connection and releases the GIL while the database works).
Should a response not match its dataclass (a missing field), the plain dict is returned instead
and the mismatch is logged once per type; tasker_core._tasker_core.client_* return the plain
dicts always."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, TypeVar

from . import _tasker_core as _ffi
from . import input_schema, templates
from .client_types import HealthResponse, StepAuditResponse, StepResponse, TaskListResponse, TaskResponse
from .configuration import boot
from .errors import NotFoundError, ValidationError

logger = logging.getLogger("tasker_core.client")

T = TypeVar("T")

#: create_task's **kwargs.
OPTIONS = ("tags", "priority", "correlation_id", "parent_correlation_id", "idempotency_key", "requested_at")
TERMINAL_STATUSES = ("complete", "error", "cancelled", "resolved_manually")

_mismatched: set[type] = set()
_mismatch_lock = threading.Lock()


def _typed(cls: Any, data: Any) -> Any:
    try:
        return cls.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        with _mismatch_lock:
            first = cls not in _mismatched
            _mismatched.add(cls)
        if first:
            logger.warning("TaskerClient: a response did not match %s (returning the plain dict; further "
                           "mismatches of this type are not logged): %s: %s", cls.__name__, type(e).__name__, e)
        return data


def _typed_list(cls: Any, items: list[Any]) -> list[Any]:
    return [_typed(cls, item) for item in items]


class TaskerClient:
    """Creates and inspects tasks."""

    def __init__(self, initiator: str = "tasker-core-python", source_system: str = "tasker-core") -> None:
        self.initiator = initiator
        self.source_system = source_system

    def create_task(self, name: str, *, namespace: str = "default", context: dict[str, Any] | None = None,
                    version: str = "1.0.0", reason: str = "Task requested", **kwargs: Any) -> TaskResponse:
        """Creates a task from a registered template. kwargs: initiator and source_system (this
        client's by default), tags, priority, correlation_id, parent_correlation_id,
        idempotency_key, requested_at. A context that does not match the template's input_schema
        raises ValidationError (error_code INPUT_SCHEMA_VIOLATION). A task with the same identity
        returns the existing task (created False). When the template is not registered, the configured template paths
        (TASKER_TEMPLATE_PATH) are registered once and the create is tried again."""
        initiator = kwargs.pop("initiator", self.initiator)
        source_system = kwargs.pop("source_system", self.source_system)
        unknown = sorted(set(kwargs) - set(OPTIONS))
        if unknown:
            raise ValidationError("unknown create_task option%s %s (known: initiator, source_system, %s)" % (
                "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(OPTIONS)), field=unknown[0])
        request = {"name": name, "namespace": namespace, "version": version,
                   "context": {} if context is None else context, "initiator": initiator,
                   "source_system": source_system, "reason": reason}
        request.update({k: v for k, v in kwargs.items() if v is not None})
        boot()
        if isinstance(request["context"], dict) and all(isinstance(v, str) for v in (namespace, name, version)):
            input_schema.validate(namespace, name, version, request["context"])
        return _typed(TaskResponse, self._registering_when_missing(lambda: _ffi.client_create_task(request)))

    def get_task(self, task_uuid: str) -> TaskResponse:
        """The task with its execution summary and its steps' readiness."""
        boot()
        return _typed(TaskResponse, _ffi.client_get_task(task_uuid))

    def list_tasks(self, *, limit: int = 50, offset: int = 0, namespace: str | None = None,
                   status: str | None = None) -> TaskListResponse:
        """A page of tasks, newest first, optionally of one namespace and/or one status."""
        boot()
        return _typed(TaskListResponse, _ffi.client_list_tasks(limit, offset, namespace, status))

    def cancel_task(self, task_uuid: str) -> dict[str, Any]:
        """Cancels a task that has not finished (StateError for a finished one): {"cancelled": True,
        "task_uuid", "status", "previous_status", "cancelled_steps", "running_steps", "cancelled_at"}."""
        boot()
        return _ffi.client_cancel_task(task_uuid)

    def list_task_steps(self, task_uuid: str) -> list[StepResponse]:
        boot()
        return _typed_list(StepResponse, _ffi.client_list_task_steps(task_uuid))

    def get_step(self, task_uuid: str, step_uuid: str) -> StepResponse:
        boot()
        return _typed(StepResponse, _ffi.client_get_step(task_uuid, step_uuid))

    def get_step_audit_history(self, task_uuid: str, step_uuid: str) -> list[StepAuditResponse]:
        """Every transition of the step, newest first, with the worker results they recorded."""
        boot()
        return _typed_list(StepAuditResponse, _ffi.client_get_step_audit_history(task_uuid, step_uuid))

    def health_check(self) -> HealthResponse:
        """Whether the database answers and its schema is current; an unreachable database is an
        answer (healthy False, with the reason in error), not an exception."""
        boot()
        return _typed(HealthResponse, _ffi.client_health_check())

    def wait_for_task(self, task_uuid: str, timeout: float = 60) -> str | None:
        """Waits (without polling: LISTEN on the task's channel) until the task finishes; its
        terminal status, or None when timeout seconds ran out. Ctrl-C interrupts it."""
        boot()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            # Short waits, so that signals (Ctrl-C) are handled between them.
            status = _ffi.task_wait(task_uuid, max(0.0, min(remaining, 1.0)))
            if status is not None or remaining <= 1.0:
                return status

    @staticmethod
    def _registering_when_missing(create: Callable[[], T]) -> T:
        try:
            return create()
        except NotFoundError as e:
            if "task template not found" not in str(e) or not templates.register_configured():
                raise
        return create()
