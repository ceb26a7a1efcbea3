"""What a step handler sees: the task's context, the step's configuration, the results of the
steps it depends on (transitively), its retry position and checkpoint. Built from the engine's
step event, as the Ruby gem's TaskerCore::StepContext."""
from __future__ import annotations

from typing import Any, Iterator, Mapping


class DependencyResults(Mapping[str, Any]):
    """The results of ancestor steps, keyed by step name."""

    def __init__(self, results: dict[str, Any] | None) -> None:
        self._results = results or {}

    def get_result(self, name: str) -> Any:
        """The full result envelope ({"success", "result", "metadata", ...}) of a step."""
        return self._results.get(str(name))

    def get_results(self, name: str) -> Any:
        """The value the step's handler returned."""
        envelope = self.get_result(name)
        if isinstance(envelope, dict) and "result" in envelope:
            return envelope["result"]
        return envelope

    def __getitem__(self, name: str) -> Any:
        if str(name) not in self._results:
            raise KeyError(name)
        return self.get_results(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)


class StepContext:
    """One claimed step, as its handler sees it."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.task_uuid: str = event.get("task_uuid")
        self.step_uuid: str = event.get("step_uuid")
        self.correlation_id: str | None = event.get("correlation_id")
        tss = event.get("task_sequence_step") or {}
        self._task_wrapper = tss.get("task") or {}
        self.workflow_step: dict[str, Any] = tss.get("workflow_step") or {}
        self.step_definition: dict[str, Any] = tss.get("step_definition") or {}
        self.dependency_results = DependencyResults(tss.get("dependency_results"))
        #: Events published by hand during this run (publish_domain_event).
        self.published_domain_events: list[dict[str, Any]] = []

    @classmethod
    def for_test(cls, input_data: dict[str, Any] | None = None, *, dependency_results: dict[str, Any] | None = None,
                 step_config: dict[str, Any] | None = None, step_inputs: dict[str, Any] | None = None,
                 checkpoint: dict[str, Any] | None = None, step_name: str = "test_step",
                 attempts: int = 0, max_attempts: int = 3) -> "StepContext":
        """A context for unit tests of a handler, without an engine: dependency_results maps a step
        name to the value its handler returned."""
        deps = {name: {"success": True, "result": value} for name, value in (dependency_results or {}).items()}
        return cls({
            "task_uuid": "00000000-0000-7000-8000-000000000001",
            "step_uuid": "00000000-0000-7000-8000-000000000002",
            "task_sequence_step": {
                "task": {"task": {"context": input_data or {}}, "namespace_name": "test", "task_name": "test",
                         "task_version": "1.0.0"},
                "workflow_step": {"name": step_name, "attempts": attempts, "max_attempts": max_attempts,
                                  "inputs": step_inputs or {}, "checkpoint": checkpoint},
                "step_definition": {"name": step_name, "handler": {"initialization": step_config or {}}},
                "dependency_results": deps,
            },
        })

    # -- the task -------------------------------------------------------------------------------
    @property
    def task(self) -> dict[str, Any]:
        return self._task_wrapper.get("task") or {}

    @property
    def namespace_name(self) -> str | None:
        return self._task_wrapper.get("namespace_name")

    @property
    def task_name(self) -> str | None:
        return self._task_wrapper.get("task_name")

    @property
    def task_version(self) -> str | None:
        return self._task_wrapper.get("task_version")

    @property
    def step_name(self) -> str | None:
        return self.workflow_step.get("name")

    @property
    def handler_name(self) -> str | None:
        return self.event.get("handler_callable")

    @property
    def context(self) -> dict[str, Any]:
        """The task's context (the input the task was created with)."""
        return self.task.get("context") or {}

    input_data = context

    def get_input(self, key: str) -> Any:
        """A value of the task's context (None when absent)."""
        return self.context.get(str(key))

    def get_input_or(self, key: str, default: Any) -> Any:
        value = self.get_input(key)
        return default if value is None else value

    # -- the step's configuration ---------------------------------------------------------------
    @property
    def step_config(self) -> dict[str, Any]:
        """The step's handler.initialization from the template."""
        return (self.step_definition.get("handler") or {}).get("initialization") or {}

    def get_config(self, key: str, default: Any = None) -> Any:
        return self.step_config.get(str(key), default)

    @property
    def step_inputs(self) -> dict[str, Any]:
        """The step's own inputs (a batch worker's cursor, for instance)."""
        return self.workflow_step.get("inputs") or {}

    # -- dependencies ---------------------------------------------------------------------------
    def get_dependency_result(self, step_name: str) -> Any:
        """The value the handler of an upstream step returned (None when there is none)."""
        return self.dependency_results.get_results(step_name)

    def get_dependency_field(self, step_name: str, *path: Any) -> Any:
        """Digs into a dependency's result: get_dependency_field("validate_cart", "totals", "net")."""
        value = self.get_dependency_result(step_name)
        for key in path:
            if isinstance(value, dict):
                value = value[key] if key in value else value.get(str(key))
            elif isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool):
                value = value[key] if -len(value) <= key < len(value) else None
            else:
                return None
        return value

    # -- retries --------------------------------------------------------------------------------
    @property
    def retry_count(self) -> int:
        return self.workflow_step.get("attempts") or 0

    @property
    def max_retries(self) -> int:
        value = self.workflow_step.get("max_attempts")
        return 3 if value is None else value

    def is_retry(self) -> bool:
        return self.retry_count > 0

    def is_last_retry(self) -> bool:
        return self.retry_count >= self.max_retries - 1

    # -- domain events --------------------------------------------------------------------------
    def publish_domain_event(self, name: str, payload: dict[str, Any] | None = None, *,
                             delivery_mode: str = "durable", condition: str = "always",
                             schema: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Publishes a domain event with this step's result: stored (durable, broadcast) in the
        transaction that stores the result, whatever the outcome unless condition says otherwise. A
        stale result (the claim was lost) publishes nothing. schema, when given, validates payload
        (a mismatch is logged, never raised)."""
        from . import domain_events

        domain_events.validate_name(name)
        domain_events.validate_mode(delivery_mode)
        domain_events.validate_condition(condition)
        if payload is not None and not isinstance(payload, dict):
            from .errors import ValidationError

            raise ValidationError("payload must be a dict", field="payload")
        self.published_domain_events.append({"name": name, "payload": payload or {}, "delivery_mode": delivery_mode,
                                             "condition": condition, "schema": schema, "metadata": metadata or {}})

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def checkpoint(self) -> dict[str, Any] | None:
        return self.workflow_step.get("checkpoint")

    @property
    def checkpoint_cursor(self) -> Any:
        return (self.checkpoint or {}).get("cursor")

    @property
    def checkpoint_items_processed(self) -> int:
        return (self.checkpoint or {}).get("items_processed") or 0

    @property
    def accumulated_results(self) -> Any:
        return (self.checkpoint or {}).get("accumulated_results")

    def has_checkpoint(self) -> bool:
        return self.checkpoint_cursor is not None
