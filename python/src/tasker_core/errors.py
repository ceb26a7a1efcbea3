"""Every error tasker_core raises, and the errors step handlers raise to steer retries.

Two families, as in the Ruby gem's TaskerCore::Errors: the step verdicts (PermanentError and
RetryableError, with their subclasses), which tell the engine what to do with a step, and
EngineError (DatabaseError, StateError, FFIError), which says that the engine itself could not do
something and is no verdict on a step: raised inside a handler it fails the step retryably, like
any unexpected exception.

Errors raised by the C engine carry ``code`` (e.g. "TC_ENOTFOUND") and, when PostgreSQL raised,
``sqlstate``.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "Error", "PermanentError", "RetryableError", "ValidationError", "NotFoundError", "ConfigurationError",
    "TemplateError", "EngineError", "DatabaseError", "FFIError", "StateError", "WorkerStoppedError",
    "TimeoutError", "NetworkError",
]


class Error(Exception):
    """The base of every tasker_core error."""

    #: The engine's error code name ("TC_ENOTFOUND"), or None for errors raised in Python.
    code: str | None = None
    #: The PostgreSQL SQLSTATE when the database raised, else None.
    sqlstate: str | None = None

    def __init__(self, message: str | None = None, *, error_code: str | None = None,
                 context: dict[str, Any] | None = None) -> None:
        super().__init__(message if message is not None else "")
        self.message = message if message is not None else ""
        self.error_code = error_code
        self.context = context or {}

    def __str__(self) -> str:
        return self.message


class PermanentError(Error):
    """A failure that retrying cannot fix: the step goes to error at once."""


class RetryableError(Error):
    """A failure that may pass: the step is retried, after ``retry_after`` seconds when given."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None,
                 context: dict[str, Any] | None = None, error_code: str | None = None) -> None:
        super().__init__(message, error_code=error_code, context=context)
        self.retry_after = retry_after


class ValidationError(PermanentError):
    """Bad input: the message names the field."""

    def __init__(self, message: str | None = None, *, field: str | None = None, error_code: str | None = None,
                 context: dict[str, Any] | None = None) -> None:
        super().__init__(message, error_code=error_code, context=context)
        self.field = field


class NotFoundError(PermanentError):
    """An unknown task, step or template."""

    def __init__(self, message: str | None = None, *, resource_type: str | None = None,
                 error_code: str | None = None, context: dict[str, Any] | None = None) -> None:
        super().__init__(message, error_code=error_code, context=context)
        self.resource_type = resource_type


class ConfigurationError(PermanentError):
    """An invalid configuration."""


class TemplateError(ConfigurationError):
    """A task template failed validation; the message names the template and the step."""


class EngineError(Error):
    """The engine could not do what was asked: not a verdict on the step that was running."""


class DatabaseError(EngineError):
    """The database is unreachable or a statement failed."""


class FFIError(EngineError):
    """A failure inside the native extension that has no more specific class."""


class StateError(EngineError):
    """The operation is not allowed in the object's current state (cancelling a finished task)."""


class WorkerStoppedError(FFIError):
    """The worker is stopping or was never started."""


class TimeoutError(RetryableError):  # noqa: A001 - the Ruby gem's name (shadows the builtin here only)
    """A wait ran out (the engine's TC_ETIMEDOUT), or a handler's call timed out."""

    def __init__(self, message: str | None = None, *, timeout_duration: float | None = None,
                 retry_after: float | None = None, context: dict[str, Any] | None = None,
                 error_code: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after, context=context, error_code=error_code)
        self.timeout_duration = timeout_duration


class NetworkError(RetryableError):
    """A connection to another service failed."""

    def __init__(self, message: str | None = None, *, status_code: int | None = None,
                 retry_after: float | None = None, context: dict[str, Any] | None = None,
                 error_code: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after, context=context, error_code=error_code)
        self.status_code = status_code
