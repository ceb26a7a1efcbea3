"""Step handlers and their results (seed 001): StepHandler, StepHandlerResult, and the decision
and batch bases, whose outcomes are the ones the Ruby gem's handlers produce."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from .errors import PermanentError
from .step_context import StepContext


@dataclass
class StepHandlerResult:
    """What a handler returns: a success with its result, a failure that says whether a retry can
    help, or a checkpoint (progress saved; the handler runs again at once with it)."""

    is_success: bool
    result: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    context: dict[str, Any] = field(default_factory=dict)
    backtrace: list[str] | None = None
    exception_class: str | None = None
    checkpoint_data: dict[str, Any] | None = None

    @property
    def is_checkpoint(self) -> bool:
        return self.checkpoint_data is not None

    @property
    def message(self) -> str | None:
        return self.error_message

    @classmethod
    def success(cls, result: Any = None, metadata: dict[str, Any] | None = None) -> "StepHandlerResult":
        return cls(is_success=True, result=result, metadata={} if metadata is None else metadata)

    @classmethod
    def failure(cls, message: str = "step failed", error_type: str = "UnexpectedError", retryable: bool = False,
                error_code: str | None = None, metadata: dict[str, Any] | None = None,
                retry_after: float | None = None, context: dict[str, Any] | None = None,
                backtrace: list[str] | None = None, exception_class: str | None = None) -> "StepHandlerResult":
        return cls(is_success=False, error_message=str(message), error_type=str(error_type), error_code=error_code,
                   retryable=bool(retryable), retry_after=retry_after,
                   metadata={} if metadata is None else metadata, context={} if context is None else context,
                   backtrace=backtrace, exception_class=exception_class)

    @classmethod
    def checkpoint(cls, cursor: Any, items_processed: int, accumulated_results: Any = None) -> "StepHandlerResult":
        """Saves progress and asks to be called again with it (context.checkpoint_cursor,
        checkpoint_items_processed, accumulated_results), without consuming a retry attempt."""
        return cls(is_success=False, checkpoint_data={"cursor": cursor, "items_processed": items_processed,
                                                      "accumulated_results": accumulated_results})

    @classmethod
    def from_value(cls, value: Any) -> "StepHandlerResult":
        """Interprets any handler return value: a StepHandlerResult, a dict with "success", or any
        other value, which is wrapped as a successful result."""
        if isinstance(value, StepHandlerResult):
            return value
        if isinstance(value, dict) and value.get("success") is not None:
            if value["success"]:
                return cls.success(value.get("result"), value.get("metadata") or {})
            return cls.failure(value.get("message") or value.get("error_message") or "step failed",
                               error_type=value.get("error_type") or "UnexpectedError",
                               retryable=bool(value.get("retryable")), error_code=value.get("error_code"),
                               metadata=value.get("metadata") or {})
        return cls.success(value, {"wrapped": True, "original_type": type(value).__name__})


class StepHandler:
    """Base class of step handlers: define ``call(self, context)`` (or ``async def call``) and
    return ``self.success(...)`` / ``self.failure(...)``, or raise PermanentError / RetryableError.
    ``self.config`` is the step's handler.initialization."""

    handler_name: str | None = None
    handler_version: str = "1.0.0"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})

    def call(self, context: StepContext) -> StepHandlerResult:
        raise NotImplementedError("%s must define call(self, context)" % type(self).__qualname__)

    def success(self, result: Any = None, metadata: dict[str, Any] | None = None) -> StepHandlerResult:
        return StepHandlerResult.success(result, metadata)

    def failure(self, message: str = "step failed", error_type: str = "UnexpectedError", retryable: bool = False,
                error_code: str | None = None, metadata: dict[str, Any] | None = None,
                retry_after: float | None = None, context: dict[str, Any] | None = None) -> StepHandlerResult:
        return StepHandlerResult.failure(message, error_type=error_type, retryable=retryable, error_code=error_code,
                                         metadata=metadata, retry_after=retry_after, context=context)

    def checkpoint_yield(self, cursor: Any, items_processed: int, accumulated_results: Any = None) -> StepHandlerResult:
        return StepHandlerResult.checkpoint(cursor=cursor, items_processed=items_processed,
                                            accumulated_results=accumulated_results)


class DecisionHandler(StepHandler):
    """Base class of ``type: decision`` steps: the handler chooses which of the step's declared
    descendants are created, in the transaction that completes this step."""

    def decision_success(self, steps: Iterable[str], result_data: dict[str, Any] | None = None,
                         metadata: dict[str, Any] | None = None) -> StepHandlerResult:
        names = [steps] if isinstance(steps, str) else [str(s) for s in steps]
        if not names:
            raise PermanentError("decision_success needs at least one step name; use decision_no_branches",
                                 error_code="INVALID_DECISION_OUTCOME")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PermanentError("decision_success names %s more than once" % ", ".join(repeated),
                                 error_code="INVALID_DECISION_OUTCOME")
        outcome = {"type": "create_steps", "step_names": names}
        return self.success({**(result_data or {}), "decision_point_outcome": outcome},
                            self._decision_metadata(metadata, "create_steps", len(names)))

    def decision_no_branches(self, result_data: dict[str, Any] | None = None,
                             metadata: dict[str, Any] | None = None) -> StepHandlerResult:
        """Creates no branch: the workflow continues with what already exists."""
        return self.success({**(result_data or {}), "decision_point_outcome": {"type": "no_branches"}},
                            self._decision_metadata(metadata, "no_branches", 0))

    skip_branches = decision_no_branches

    def _decision_metadata(self, metadata: dict[str, Any] | None, kind: str, count: int) -> dict[str, Any]:
        return {**(metadata or {}), "decision_point": True, "outcome_type": kind, "branches_created": count,
                "processed_at": datetime.now(timezone.utc).isoformat(),
                "processed_by": "%s.%s" % (type(self).__module__, type(self).__qualname__)}


class BatchableHandler(StepHandler):
    """Helpers for batch processing: the ``batchable`` step splits the work into cursor ranges, the
    engine creates one ``batch_worker`` step per range, and a ``deferred_convergence`` step
    aggregates."""

    def create_cursor_configs(self, total_items: int, worker_count: int) -> list[dict[str, Any]]:
        """Splits total_items into at most worker_count ranges: 0-based, end exclusive, batch_id "001"..."""
        valid = (isinstance(total_items, int) and not isinstance(total_items, bool) and total_items >= 0 and
                 isinstance(worker_count, int) and not isinstance(worker_count, bool) and worker_count > 0)
        if not valid:
            raise PermanentError("create_cursor_configs needs total_items >= 0 and worker_count > 0",
                                 error_code="INVALID_BATCH_OUTCOME")
        per = math.ceil(total_items / worker_count)
        configs = []
        for i in range(worker_count):
            first = i * per
            last = min(first + per, total_items)
            if first >= last:
                continue
            configs.append({"batch_id": "%03d" % (i + 1), "start_cursor": first, "end_cursor": last,
                            "batch_size": last - first})
        return configs

    def batch_success(self, worker_template_name: str, cursor_configs: list[dict[str, Any]],
                      total_items: int | None = None, result_data: dict[str, Any] | None = None,
                      metadata: dict[str, Any] | None = None) -> StepHandlerResult:
        """The batchable step's result: the engine creates one worker per cursor config."""
        if not isinstance(cursor_configs, list) or not all(isinstance(c, dict) for c in cursor_configs):
            raise PermanentError("batch_success needs cursor_configs, a list of dicts",
                                 error_code="INVALID_BATCH_OUTCOME")
        ids = [str(c.get("batch_id")) for c in cursor_configs]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise PermanentError("batch_success names batch_id %s more than once" % ", ".join(repeated),
                                 error_code="INVALID_BATCH_OUTCOME")
        outcome = {"type": "create_batches", "worker_template_name": str(worker_template_name),
                   "worker_count": len(cursor_configs), "total_items": total_items, "cursor_configs": cursor_configs}
        return self.success({**(result_data or {}), "batch_processing_outcome": outcome,
                             "worker_count": len(cursor_configs), "total_items": total_items}, metadata)

    def no_batches(self, reason: str | None = None, result_data: dict[str, Any] | None = None,
                   metadata: dict[str, Any] | None = None) -> StepHandlerResult:
        """Nothing to process: one placeholder worker runs as a no-op so the convergence still runs."""
        return self.success({**(result_data or {}),
                             "batch_processing_outcome": {"type": "no_batches", "reason": reason}}, metadata)

    def batch_cursor(self, context: StepContext) -> dict[str, Any] | None:
        """Worker side: this worker's cursor config."""
        return context.step_inputs.get("cursor")

    def is_no_op_worker(self, context: StepContext) -> bool:
        return context.step_inputs.get("is_no_op") is True

    def handle_no_op_worker(self, context: StepContext) -> StepHandlerResult:
        return self.success({"batch_id": (self.batch_cursor(context) or {}).get("batch_id"), "no_op": True})

    def batch_worker_success(self, items_processed: int, items_succeeded: int, items_failed: int = 0,
                             items_skipped: int = 0, last_cursor: Any = None, results: Any = None,
                             errors: list[Any] | None = None,
                             metadata: dict[str, Any] | None = None) -> StepHandlerResult:
        return self.success({"items_processed": items_processed, "items_succeeded": items_succeeded,
                             "items_failed": items_failed, "items_skipped": items_skipped,
                             "last_cursor": last_cursor, "results": results, "errors": errors or []}, metadata)
