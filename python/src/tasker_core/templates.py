"""Loads YAML task templates from files and directories, validates them in the engine and
registers them in the database (the Ruby gem's TaskerCore::Templates and TemplateFormat)."""
from __future__ import annotations

import glob
import os
import threading
from typing import Any, Iterable

import yaml

from . import _tasker_core as _ffi
from .configuration import boot, config
from .errors import ConfigurationError, TemplateError

LEGACY_KEYS = ("step_templates", "module_namespace", "task_handler_class", "concurrent", "schema")


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (*name) before anything is expanded: a few hundred bytes of
    nested aliases expand into gigabytes, and no template needs them."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise TemplateError("YAML aliases (*name) are not allowed in templates (%s)" % event.start_mark)
        return super().compose_node(parent, index)


# Timestamps and dates stay text, as JSON has them.
_NoAliasLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def files(paths: str | Iterable[str]) -> list[str]:
    """The template files under paths (files, or directories searched for **/*.yml and *.yaml)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            matches = glob.glob(os.path.join(path, "**", "*.yml"), recursive=True)
            matches += glob.glob(os.path.join(path, "**", "*.yaml"), recursive=True)
            found.extend(sorted(matches))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise ConfigurationError("template path %s does not exist" % path)
    return list(dict.fromkeys(found))


def read(path: str, environment: str | None = None) -> dict[str, Any]:
    """Parses one YAML file into the engine's format; TemplateError names the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except TemplateError as e:
        raise TemplateError("%s: %s" % (path, e)) from None
    except yaml.YAMLError as e:
        raise TemplateError("%s: invalid YAML: %s" % (path, e)) from None
    if not isinstance(data, dict):
        raise TemplateError("%s: a template must be a YAML mapping" % path)
    return prepare(data, environment)


def prepare(data: dict[str, Any], environment: str | None = None) -> dict[str, Any]:
    """Legacy (Rails-format) templates converted, the environment's overrides applied."""
    if "step_templates" in data:
        data = convert_legacy(data)
    return apply_environment(data, environment or config().environment)


def validate(path: str) -> dict[str, Any]:
    """The normalized template of a file, without touching the database."""
    return _with_path(path, lambda: _ffi.template_normalize(read(path)))


def load(paths: str | Iterable[str]) -> list[dict[str, Any]]:
    """Registers every template under paths; returns their summaries ({"namespace_name", "name",
    "version", "named_task_uuid", "step_count"})."""
    boot()
    return [_with_path(p, lambda p=p: _ffi.template_register(read(p))) for p in files(paths)]


def register(template: dict[str, Any]) -> dict[str, Any]:
    """Registers one template given as a dict (the YAML's structure)."""
    boot()
    return _ffi.template_register(prepare(template))


def _with_path(path: str, fn):
    try:
        return fn()
    except TemplateError as e:
        if str(e).startswith(path):
            raise
        raise TemplateError("%s: %s" % (path, e)) from None


_registered_pid: int | None = None
_register_lock = threading.Lock()


def register_configured() -> bool:
    """Registers config().template_paths once per process (a forked child registers again); False
    when none are configured. Used when a create finds no template."""
    global _registered_pid
    paths = config().template_paths
    if not paths:
        return False
    with _register_lock:
        if _registered_pid == os.getpid():
            return False
        load(paths)
        _registered_pid = os.getpid()
    return True


def convert_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """The Rails format (step_templates, depends_on_step(s), handler_class, handler_config,
    default_retryable, default_retry_limit, schema, module_namespace, task_handler_class)."""
    out = {k: v for k, v in data.items() if k not in LEGACY_KEYS and k != "environments"}
    out.setdefault("namespace_name", _namespace_from(data.get("module_namespace")))
    out.setdefault("version", "1.0.0")
    if data.get("schema"):
        out["input_schema"] = data["schema"]
    legacy_meta = {k: data[k] for k in ("module_namespace", "task_handler_class", "concurrent") if k in data}
    if legacy_meta:
        out["metadata"] = {**(out.get("metadata") or {}), "legacy": legacy_meta}
    if data.get("task_handler_class"):
        out.setdefault("task_handler", {"callable": str(data["task_handler_class"])})
    out["steps"] = [_convert_legacy_step(s) for s in data.get("step_templates") or []]
    if isinstance(data.get("environments"), dict):
        out["environments"] = {
            name: {"steps": [_convert_legacy_step(s) for s in (env.get("step_templates") or env.get("steps") or [])]}
            for name, env in data["environments"].items()
        }
    return out


def _convert_legacy_step(step: dict[str, Any]) -> dict[str, Any]:
    legacy = ("depends_on_step", "depends_on_steps", "handler_class", "handler_config", "default_retryable",
              "default_retry_limit")
    out = {k: v for k, v in step.items() if k not in legacy}
    deps = _as_list(step.get("depends_on_steps")) + _as_list(step.get("depends_on_step"))
    if deps:
        out["dependencies"] = deps
    handler = {}
    if step.get("handler_class"):
        handler["callable"] = step["handler_class"]
    if step.get("handler_config"):
        handler["initialization"] = step["handler_config"]
    if handler:
        out["handler"] = handler
    retry = {}
    if step.get("default_retryable") is not None:
        retry["retryable"] = step["default_retryable"]
    if step.get("default_retry_limit"):
        retry["max_attempts"] = step["default_retry_limit"]
    if retry:
        out["retry"] = retry
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _namespace_from(module_namespace: Any) -> str:
    if not module_namespace:
        return "default"
    import re

    text = str(module_namespace).replace("::", "_")
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", text).lower()


def apply_environment(data: dict[str, Any], environment: str) -> dict[str, Any]:
    """Applies environments[env].steps: each override names a step or ALL; handler.initialization
    is merged key by key, timeout_seconds replaced, retry replaced whole."""
    overrides = (((data.get("environments") or {}).get(str(environment)) or {}).get("steps")) or []
    if not overrides:
        return data
    steps = []
    for step in data.get("steps") or []:
        for override in overrides:
            if override.get("name") in (step.get("name"), "ALL"):
                step = _override_step(step, override)
        steps.append(step)
    return {**data, "steps": steps}


def _override_step(step: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(step)
    init = (override.get("handler") or {}).get("initialization")
    if init:
        handler = dict(out.get("handler") or {})
        handler["initialization"] = {**(handler.get("initialization") or {}), **init}
        out["handler"] = handler
    if "timeout_seconds" in override:
        out["timeout_seconds"] = override["timeout_seconds"]
    if "retry" in override:
        out["retry"] = override["retry"]
    return out
