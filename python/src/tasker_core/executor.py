"""Runs one claimed step's handler and builds the result envelope the engine stores (SPEC 4.4),
as the Ruby gem's StepExecutor: every outcome, exceptions included, becomes an envelope."""
from __future__ import annotations

import asyncio
import inspect
import math
import socket
import time
import traceback
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any, Callable

from .errors import PermanentError, RetryableError, ValidationError
from .registry import HandlerRegistry
from .step_context import StepContext
from .step_handler import StepHandlerResult

BACKTRACE_LINES = 10
#: An envelope with this key is a checkpoint to save, not a result.
CHECKPOINT_KEY = "__checkpoint"
#: The longest retry_after the engine honours.
MAX_RETRY_AFTER_SECONDS = 3600

_HOSTNAME = socket.gethostname()

#: Runs a coroutine to its end and returns its value (the worker's event loop, or asyncio.run).
CoroutineRunner = Callable[[Any], Any]


def _run_coroutine(coro: Any) -> Any:
    return asyncio.run(coro)


def execute(event: dict[str, Any], *, worker_id: str | None = None, registry: HandlerRegistry | None = None,
            run_coroutine: CoroutineRunner = _run_coroutine) -> dict[str, Any]:
    """The envelope for event: the handler's result, its failure, or a checkpoint."""
    registry = registry or HandlerRegistry()
    started_at = datetime.now(timezone.utc)
    clock = time.monotonic()
    handler_cls = None
    context = None
    try:
        handler_cls = registry.resolve(event.get("handler_callable"))
        method = registry.handler_method(handler_cls, event.get("handler_method"), event.get("handler_callable"))
        context = StepContext(event)
        handler = handler_cls()
        handler.config = context.step_config
        value = getattr(handler, method)(context)
        if inspect.isawaitable(value):
            value = run_coroutine(value)
        outcome = StepHandlerResult.from_value(value)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: B902 - a handler's SystemExit fails its step like any exception
        outcome = failure_for(e)
    timing = {
        "execution_time_ms": round((time.monotonic() - clock) * 1000),
        "started_at": started_at.isoformat(),
        "completed_at": datetime.now(timezone.utc).isoformat(),
        "worker_id": worker_id,
        "worker_hostname": _HOSTNAME,
        "handler_version": getattr(handler_cls, "handler_version", None),
        "custom": {"handler_class": ("%s.%s" % (handler_cls.__module__, handler_cls.__qualname__))
                   if handler_cls else event.get("handler_callable")},
    }
    from . import domain_events

    return domain_events.attach(build_envelope(event, outcome, timing), event, context, CHECKPOINT_KEY)


def failure_for(error: BaseException) -> StepHandlerResult:
    """The failure an exception stands for: a RetryableError is retryable after its retry_after; a
    PermanentError is not; anything else, the engine's own errors included, is an unexpected,
    retryable failure."""
    if isinstance(error, RetryableError):
        return _from_exception(error, retryable=True, retry_after=error.retry_after)
    if isinstance(error, PermanentError):
        return _from_exception(error, retryable=False)
    return _from_exception(error, retryable=True, error_type="UnexpectedError")


def _from_exception(error: BaseException, *, retryable: bool, retry_after: Any = None,
                    error_type: str | None = None) -> StepHandlerResult:
    if error_type is None:
        error_type = ("ValidationError" if isinstance(error, ValidationError) else
                      "PermanentError" if isinstance(error, PermanentError) else
                      "RetryableError" if isinstance(error, RetryableError) else "UnexpectedError")
    frames = traceback.format_tb(error.__traceback__)[-BACKTRACE_LINES:]
    context = getattr(error, "context", None)
    return StepHandlerResult.failure(
        str(error) or type(error).__name__, error_type=error_type, retryable=retryable, retry_after=retry_after,
        error_code=getattr(error, "error_code", None), context=context if isinstance(context, dict) else {},
        backtrace=[line.rstrip() for line in frames],
        exception_class="%s.%s" % (type(error).__module__, type(error).__qualname__))


def build_envelope(event: dict[str, Any], outcome: StepHandlerResult, timing: dict[str, Any]) -> dict[str, Any]:
    """The envelope of outcome, or, when it cannot be built (metadata that is no dict), a permanent
    failure envelope that says why."""
    try:
        return envelope(event, outcome, timing)
    except Exception as e:  # noqa: BLE001
        failure = StepHandlerResult.failure("the step result could not be built: %s: %s" % (type(e).__name__, e),
                                            error_type="StepCompletionError", retryable=False,
                                            exception_class=type(e).__qualname__)
        return envelope(event, failure, timing)


def envelope(event: dict[str, Any], outcome: Any, timing: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(outcome, StepHandlerResult):
        outcome = StepHandlerResult.from_value(outcome)
    if outcome.is_checkpoint:
        return {CHECKPOINT_KEY: dict(outcome.checkpoint_data)}
    metadata = outcome.metadata if outcome.metadata is not None else {}
    if not isinstance(metadata, dict):
        raise TypeError("metadata must be a dict (got %s)" % type(metadata).__name__)
    metadata = {**metadata, **timing}
    if outcome.is_success:
        return {"step_uuid": event.get("step_uuid"), "success": True, "status": "completed",
                "result": outcome.result, "metadata": metadata}
    metadata.update({"retryable": outcome.retryable, "error_type": outcome.error_type,
                     "error_code": outcome.error_code})
    error = {"message": outcome.error_message, "error_type": outcome.error_type, "retryable": outcome.retryable,
             "error_code": outcome.error_code, "exception_class": outcome.exception_class,
             "backtrace": outcome.backtrace, "context": outcome.context or {}}
    result = {"step_uuid": event.get("step_uuid"), "success": False, "status": "failed", "result": None,
              "error": {k: v for k, v in error.items() if v is not None}, "metadata": metadata}
    delay = retry_after_seconds(outcome.retry_after)
    if delay is not None:
        result["orchestration_metadata"] = {
            "headers": {"retry-after": str(math.ceil(delay))},
            "backoff_hint": {"backoff_type": "ServerRequested", "delay_seconds": delay, "context": None},
        }
    return result


def retry_after_seconds(value: Any) -> float | None:
    """A handler's retry_after as seconds the engine honours: at most MAX_RETRY_AFTER_SECONDS; None
    (the step's backoff applies) for NaN, a negative number or something that is no number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        delay = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(delay) or delay < 0:
        return None
    return min(delay, float(MAX_RETRY_AFTER_SECONDS))


def unstorable(event: dict[str, Any], message: str) -> dict[str, Any]:
    """A result the engine refused to store (not plain data, too large) becomes a permanent failure."""
    outcome = StepHandlerResult.failure("the step result could not be stored: %s" % message,
                                        error_type="StepCompletionError", retryable=False)
    return envelope(event, outcome, {"execution_time_ms": 0})


def run_on_loop(loop: asyncio.AbstractEventLoop) -> CoroutineRunner:
    """A CoroutineRunner that runs coroutines on loop (running in another thread) and waits."""

    def run(coro: Any) -> Any:
        if not asyncio.iscoroutine(coro):
            async def wrap():
                return await coro
            coro = wrap()
        future: Future = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result()

    return run
