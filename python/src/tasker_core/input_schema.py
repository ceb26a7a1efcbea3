"""Validates a task's context against its template's input_schema (JSON Schema, with the
jsonschema package) before the task is created, as the Ruby gem does. Schemas are read from the
database and cached per template for TTL seconds, so a re-registered template is picked up within
that time."""
from __future__ import annotations

import threading
import time
from typing import Any

from . import _tasker_core as _ffi
from .errors import NotFoundError, ValidationError

TTL = 30.0
_cache: dict[tuple[str, str, str], tuple[float, Any]] = {}
_lock = threading.Lock()


def validate(namespace: str, name: str, version: str, context: Any) -> None:
    """ValidationError (error_code INPUT_SCHEMA_VIOLATION, every violation in its context) when the
    context does not match; nothing for a template without a schema or one that is not registered
    (the create reports that itself)."""
    validator = _validator_for(namespace, name, version)
    if validator is None:
        return
    errors = sorted(validator.iter_errors(context), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    violations = [_describe(e) for e in errors]
    raise ValidationError("context does not match the input_schema of %s/%s@%s: %s" % (
        namespace, name, version, "; ".join(violations)), field="context", error_code="INPUT_SCHEMA_VIOLATION",
        context={"violations": violations})


def _validator_for(namespace: str, name: str, version: str) -> Any:
    key = (namespace, name, version)
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
    if cached and now - cached[0] < TTL:
        return cached[1]
    try:
        template = _ffi.template_get(namespace, name, version)
    except NotFoundError:
        return None
    schema = (template.get("configuration") or {}).get("input_schema")
    validator = None
    if schema:
        import jsonschema

        cls = jsonschema.validators.validator_for(schema)
        validator = cls(schema)
    with _lock:
        _cache[key] = (now, validator)
    return validator


def _describe(error: Any) -> str:
    pointer = "".join("/%s" % p for p in error.absolute_path) or "(root)"
    return "%s: %s" % (pointer, error.message)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
