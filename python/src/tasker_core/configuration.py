"""Process-wide settings and the engine's lifecycle: boot, migrate, shutdown.

Settings come from the environment (TASKER_DATABASE_URL or DATABASE_URL, TASKER_POOL_SIZE,
TASKER_CONNECT_TIMEOUT, TASKER_LOG_LEVEL, TASKER_TEMPLATE_PATH, TASKER_ENV) and from
``configure(...)``, as the Ruby gem's TaskerCore.config.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from . import _tasker_core as _ffi
from .errors import ConfigurationError

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")


@dataclass
class Config:
    database_url: str | None = None
    pool_size: int = 10
    connect_timeout_seconds: int = 5
    log_level: str = "warn"
    template_paths: list[str] = field(default_factory=list)
    environment: str = "development"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env
        url = env.get("TASKER_DATABASE_URL") or env.get("DATABASE_URL")
        return cls(
            database_url=url or None,
            pool_size=_int_env(env, "TASKER_POOL_SIZE", 10),
            connect_timeout_seconds=_int_env(env, "TASKER_CONNECT_TIMEOUT", 5),
            log_level=env.get("TASKER_LOG_LEVEL", "warn"),
            template_paths=[p for p in env.get("TASKER_TEMPLATE_PATH", "").split(os.pathsep) if p],
            environment=env.get("TASKER_ENV", "development"),
        )

    def validate(self) -> None:
        if not self.database_url:
            raise ConfigurationError(
                "database_url is not set: set TASKER_DATABASE_URL or DATABASE_URL, or "
                "tasker_core.configure(database_url=...)")
        # libpq must be able to parse it; the engine's message never repeats the URL.
        _ffi.database_url_check(str(self.database_url))
        if not (isinstance(self.pool_size, int) and not isinstance(self.pool_size, bool) and 1 <= self.pool_size <= 500):
            raise ConfigurationError("pool_size must be an int between 1 and 500 (got %r)" % (self.pool_size,))
        if self.log_level not in LOG_LEVELS:
            raise ConfigurationError("log_level must be one of %s (got %r)" % (", ".join(LOG_LEVELS), self.log_level))

    def runtime_config(self) -> dict[str, Any]:
        """The configuration the C runtime receives."""
        self.validate()
        return {"database_url": self.database_url, "pool_size": self.pool_size,
                "connect_timeout_seconds": self.connect_timeout_seconds, "log_level": self.log_level}


def _int_env(env: Any, name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value, 10)
    except ValueError:
        raise ConfigurationError("%s must be an integer (got %r)" % (name, value)) from None


_config: Config | None = None
_lock = threading.Lock()


def config() -> Config:
    """The current settings (read from the environment on first use)."""
    global _config
    with _lock:
        if _config is None:
            _config = Config.from_env()
        return _config


def configure(**settings: Any) -> Config:
    """Changes settings (database_url=, pool_size=, log_level=, template_paths=, environment=, ...).
    A runtime that is already booted keeps its connection settings until shutdown()."""
    global _config
    current = config()
    unknown = set(settings) - set(Config.__dataclass_fields__)
    if unknown:
        raise ConfigurationError("unknown setting%s %s (known: %s)" % (
            "s" if len(unknown) > 1 else "", ", ".join(sorted(unknown)), ", ".join(Config.__dataclass_fields__)))
    with _lock:
        _config = replace(current, **settings)
        return _config


def reset_config() -> None:
    """Forgets configure()'s settings: the next config() reads the environment again."""
    global _config
    with _lock:
        _config = None


def boot() -> bool:
    """Starts the engine's runtime (connection pool, logging) once per process; True when this call
    started it."""
    if _ffi.running():
        return False
    started = _ffi.bootstrap(config().runtime_config())
    from . import engine_log

    engine_log.start()
    return started


def migrate() -> dict[str, Any]:
    """Applies the embedded schema; safe to run from several processes at once. Returns
    {"applied": [versions], "functions": [files], "current_version": n}."""
    boot()
    return _ffi.migrate()


def shutdown() -> bool:
    """Stops the worker (if any) and closes every database connection."""
    from .worker import Worker

    Worker.stop_current()
    stopped = _ffi.shutdown()
    # What the engine logged while stopping is delivered before shutdown() returns.
    from . import engine_log

    engine_log.flush()
    return stopped
