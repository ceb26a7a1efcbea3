"""The responses of TaskerClient (seed 000, SPEC 5) as frozen dataclasses with ``from_dict``.

from_dict takes the engine's plain dict; keys the dataclass does not know are ignored (an engine
newer than this file), a missing required key raises KeyError (TaskerClient then returns the plain
dict instead)."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def _build(cls: type[T], data: dict[str, Any], **converted: Any) -> T:
    if not isinstance(data, dict):
        raise TypeError("%s.from_dict needs a dict (got %s)" % (cls.__name__, type(data).__name__))
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in converted:
            kwargs[f.name] = converted[f.name]
        elif f.name in data:
            kwargs[f.name] = data[f.name]
        elif f.default is MISSING and f.default_factory is MISSING:
            raise KeyError("%s needs %s, which the response does not have" % (cls.__name__, f.name))
    return cls(**kwargs)


class _FromDict:
    """``from_dict`` for a response dataclass whose fields are the dict's values as they are; a class
    with nested responses overrides it, converting those."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        return _build(cls, data)


@dataclass(frozen=True)
class StepReadiness(_FromDict):
    """A step's readiness, as listed in a TaskResponse's steps (SPEC 2.7)."""

    workflow_step_uuid: str
    task_uuid: str
    name: str
    current_state: str
    dependencies_satisfied: bool
    retry_eligible: bool
    ready_for_execution: bool
    total_parents: int
    completed_parents: int
    attempts: int
    max_attempts: int
    last_failure_at: str | None = None
    next_retry_at: str | None = None
    backoff_request_seconds: int | None = None
    last_attempted_at: str | None = None
    named_step_uuid: str | None = None


@dataclass(frozen=True)
class TaskResponse(_FromDict):
    """A task with its execution summary (SPEC 2.9) and, from get_task and create_task, its steps."""

    task_uuid: str
    name: str
    namespace: str
    version: str
    status: str
    created_at: str
    updated_at: str
    context: dict[str, Any]
    correlation_id: str
    total_steps: int
    pending_steps: int
    in_progress_steps: int
    completed_steps: int
    failed_steps: int
    ready_steps: int
    execution_status: str
    recommended_action: str
    completion_percentage: float
    health_status: str
    initiator: str | None = None
    source_system: str | None = None
    reason: str | None = None
    completed_at: str | None = None
    priority: int | None = None
    tags: list[str] | None = None
    parent_correlation_id: str | None = None
    steps: list[StepReadiness] = field(default_factory=list)
    #: create_task only: False when a task with the same identity existed and is returned instead.
    created: bool | None = None
    step_count: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskResponse":
        steps = [StepReadiness.from_dict(s) for s in (data.get("steps") or [])]
        return _build(cls, data, steps=steps)


@dataclass(frozen=True)
class PaginationInfo(_FromDict):
    page: int
    per_page: int
    has_next: bool
    has_previous: bool
    #: None when the page was listed without counting (with_total=False).
    total_count: int | None = None
    total_pages: int | None = None


@dataclass(frozen=True)
class TaskListResponse(_FromDict):
    """A page of tasks (newest first); each task has its summary but no steps."""

    tasks: list[TaskResponse]
    pagination: PaginationInfo

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskListResponse":
        return _build(cls, data, tasks=[TaskResponse.from_dict(t) for t in data["tasks"]],
                      pagination=PaginationInfo.from_dict(data["pagination"]))


@dataclass(frozen=True)
class StepResponse(_FromDict):
    step_uuid: str
    task_uuid: str
    name: str
    created_at: str
    updated_at: str
    current_state: str
    dependencies_satisfied: bool
    retry_eligible: bool
    ready_for_execution: bool
    total_parents: int
    completed_parents: int
    attempts: int
    max_attempts: int
    completed_at: str | None = None
    #: The result envelope of the last execution.
    results: dict[str, Any] | None = None
    last_failure_at: str | None = None
    next_retry_at: str | None = None
    last_attempted_at: str | None = None
    step_type: str | None = None
    handler_callable: str | None = None
    parents: list[str] | None = None


@dataclass(frozen=True)
class StepAuditResponse(_FromDict):
    """One entry of a step's history: a transition, with the worker result it recorded if any."""

    audit_uuid: str
    workflow_step_uuid: str
    task_uuid: str
    recorded_at: str
    success: bool
    step_name: str
    to_state: str
    transition_uuid: str | None = None
    worker_uuid: str | None = None
    correlation_id: str | None = None
    execution_time_ms: int | None = None
    result: dict[str, Any] | None = None
    from_state: str | None = None
    event: str | None = None
    attempt: int | None = None
    applied: bool | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class HealthResponse(_FromDict):
    """healthy is the answer; the rest explains it."""

    healthy: bool
    status: str | None = None
    timestamp: str | None = None
    database_connected: bool | None = None
    response_time_ms: float | None = None
    schema_version: int | None = None
    expected_schema_version: int | None = None
    error: str | None = None
