"""Maps a template's handler.callable to a handler class: a registered key first (the class's
handler_name, its dotted path, or a key given to register), then a dotted path resolved by import
("ecommerce.step_handlers.ValidateCartHandler" imports ecommerce.step_handlers and takes
ValidateCartHandler). An imported class must be a StepHandler subclass; any other callable runs
only when it was registered explicitly."""
from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any

from .errors import ConfigurationError, TemplateError
from .step_handler import BatchableHandler, DecisionHandler, StepHandler

_FRAMEWORK = (StepHandler, DecisionHandler, BatchableHandler)


class HandlerRegistry:
    """The handlers of this process. Every ``HandlerRegistry()`` shares the process's registrations
    (seed 001 registers on a fresh instance); ``HandlerRegistry(isolated=True)`` starts empty and
    sees only its own."""

    _shared: dict[str, type] = {}
    _shared_lock = threading.Lock()

    def __init__(self, isolated: bool = False) -> None:
        if isolated:
            self._handlers: dict[str, type] = {}
            self._lock = threading.Lock()
        else:
            self._handlers = HandlerRegistry._shared
            self._lock = HandlerRegistry._shared_lock

    def register(self, key: Any, cls: type | None = None) -> type:
        """register(SomeHandler) registers it under its handler_name and its dotted path
        (module.QualName); register("key", SomeHandler) under that key as well."""
        if cls is None:
            key, cls = None, key
        if not inspect.isclass(cls):
            raise ConfigurationError("a handler must be a class (got %r)" % (cls,))
        keys = [key, "%s.%s" % (cls.__module__, cls.__qualname__), getattr(cls, "handler_name", None)]
        with self._lock:
            for k in keys:
                if k:
                    self._handlers[str(k)] = cls
        return cls

    def is_registered(self, callable_name: str) -> bool:
        with self._lock:
            return str(callable_name) in self._handlers

    def registered(self) -> dict[str, type]:
        with self._lock:
            return dict(self._handlers)

    def resolve(self, callable_name: str) -> type:
        name = str(callable_name)
        with self._lock:
            found = self._handlers.get(name)
        if found is not None:
            return found
        cls = self._import(name)
        if cls is None:
            raise TemplateError("no handler for callable '%s': it is not registered and names no importable class"
                                % name)
        if not (inspect.isclass(cls) and issubclass(cls, StepHandler)):
            raise TemplateError("handler.callable '%s' names %r, which is not a step handler (a subclass of "
                                "tasker_core.StepHandler); register any other class explicitly with "
                                "HandlerRegistry().register" % (name, cls))
        return cls

    def handler_method(self, cls: type, method: str | None, callable_name: str) -> str:
        """The method to call for handler.method (None: "call"); TemplateError unless it is `call`
        or a public method the handler class defines beyond the framework's."""
        name = str(method or "call")
        if name == "call":
            return name
        defined = not name.startswith("_") and callable(getattr(cls, name, None))
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if defined and owner is not None and owner not in _FRAMEWORK and owner is not object:
            return name
        raise TemplateError("handler.method '%s' of callable '%s' is not a public method that %s defines (only "
                            "`call` or the handler's own methods may be named)" % (name, callable_name,
                                                                                   cls.__qualname__))

    @staticmethod
    def _import(name: str) -> Any:
        module_name, _, attr = name.rpartition(".")
        if not module_name or not attr:
            return None
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            if e.name and module_name.startswith(e.name):
                # the module itself does not exist; an import error inside it is the handler's bug
                parent, _, _ = module_name.rpartition(".")
                if parent:  # "pkg.module.Outer.Inner" names a nested class
                    outer = HandlerRegistry._import(module_name)
                    return getattr(outer, attr, None) if outer is not None else None
                return None
            raise
        return getattr(module, attr, None)
