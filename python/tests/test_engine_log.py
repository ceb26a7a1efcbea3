"""The engine's JSON log lines reach Python's logging on "tasker_core.engine"."""
from __future__ import annotations

import json
import logging

import pytest

from tasker_core import _tasker_core as ffi
from tasker_core import engine_log

from conftest import wait_until


def test_engine_lines_are_logged_at_their_level(caplog, start_worker):
    caplog.set_level(logging.DEBUG, logger="tasker_core.engine")
    ffi.log_level("info")
    try:
        worker = start_worker(["py_tests"], concurrency=1)
        uuid = worker.status()["worker_uuid"]
        started = wait_until(lambda: [r for r in caplog.records if r.name == "tasker_core.engine"
                                      and json.loads(r.getMessage())["event"] == "worker_started"],
                             message="the engine's worker_started line")
        line = json.loads(started[0].getMessage())
        assert started[0].levelno == logging.INFO and line["level"] == "info" and uuid in line["message"]
        assert {"ts", "pid", "message"} <= set(line)
    finally:
        ffi.log_level("warn")


def test_flush_and_bad_levels():
    engine_log.flush()
    with pytest.raises(Exception, match="log_level must be one of"):
        ffi.log_level("loud")
    assert ffi.log_next(0) == []
