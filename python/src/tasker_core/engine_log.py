"""Delivers the C engine's log lines to Python's logging, on the logger "tasker_core.engine".

The engine's threads never call Python: they append their JSON lines to a bounded buffer in the
core, and this module's thread ("tasker-log") takes them (without the GIL while it waits) and logs
each one at its level (trace and debug as DEBUG, info, warn as WARNING, error). The message is the
engine's JSON object unchanged ({"ts", "level", "event", "message", "pid", ...}): machine-readable
in a log file or a log shipper; ``json.loads(record.getMessage())`` reads the fields back.

Which lines the engine writes at all is TASKER_LOG_LEVEL (``configure(log_level=...)``, "warn"
by default). Without a logging configuration Python prints WARNING and above to stderr, as the
engine would itself. When the buffer is full (the handlers are much slower than the engine for a
while) an engine thread waits up to 200 ms, then writes its line to stderr.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading

from . import _tasker_core as _ffi

LOGGER = logging.getLogger("tasker_core.engine")
LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR}
WAIT_SECONDS = 0.5

_consumer = threading.Lock()  # the core's buffer has one consumer at a time
_start_lock = threading.Lock()
_thread: threading.Thread | None = None
_pid: int | None = None
_stopping = False


def start() -> None:
    """Sends the running runtime's log to the buffer and starts the log thread (idempotent; a
    forked child starts its own)."""
    global _thread, _pid, _stopping
    _ffi.log_attach()
    with _start_lock:
        if _pid != os.getpid():
            _thread = None
            _pid = os.getpid()
        if _thread is None or not _thread.is_alive():
            _stopping = False
            _thread = threading.Thread(target=_run, name="tasker-log", daemon=True)
            _thread.start()


def flush() -> None:
    """Delivers every line buffered now."""
    _ffi.log_interrupt()  # a waiting log thread lets go of the consumer lock at once
    while _deliver(0):
        pass


def _deliver(timeout: float) -> int:
    with _consumer:
        lines = _ffi.log_next(timeout)
    for level, line in lines:
        LOGGER.log(LEVELS.get(level, logging.INFO), line)
    return len(lines)


def _run() -> None:
    while not _stopping:
        try:
            _deliver(WAIT_SECONDS)
        except Exception:  # noqa: BLE001 - a failing log handler must not end the thread
            LOGGER.exception("tasker_core: delivering the engine's log failed")


@atexit.register
def _at_exit() -> None:
    global _stopping
    if _pid != os.getpid() or _thread is None:
        return
    _stopping = True
    _ffi.log_interrupt()
    _thread.join(2)
    flush()
