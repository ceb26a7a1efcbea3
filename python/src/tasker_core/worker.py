"""A worker in this process: the C engine claims steps of its namespaces (LISTEN/NOTIFY plus a
fallback poll) and ``concurrency`` Python threads run their handlers; ``async def call`` handlers
run on an event loop the worker owns (one thread), so they overlap while they await.

    worker = Worker(namespaces=["ecommerce"], concurrency=4).start()
    ...
    worker.stop(timeout=30)
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, Iterable

from . import _tasker_core as _ffi
from . import executor, templates
from .configuration import boot, config
from .errors import ConfigurationError, DatabaseError, StateError, TimeoutError, ValidationError
from .registry import HandlerRegistry

logger = logging.getLogger("tasker_core.worker")

NEXT_STEP_WAIT_SECONDS = 0.5
DEPLOYMENT_MODES = ("Hybrid", "PollingOnly", "EventDrivenOnly")


class Worker:
    """Claims and runs the steps of its namespaces until stopped."""

    _current: "Worker | None" = None
    _current_lock = threading.Lock()

    def __init__(self, namespaces: Iterable[str] | None = None, concurrency: int = 10,
                 template_paths: str | Iterable[str] | None = None, *, poll_interval_ms: int = 1000,
                 visibility_timeout_seconds: int = 30, deployment_mode: str = "Hybrid",
                 staleness_check_interval_seconds: int = 60, staleness_threshold_minutes: int = 30,
                 max_task_lifetime_hours: int = 24, registry: HandlerRegistry | None = None,
                 web: dict[str, Any] | None = None, observability: dict[str, Any] | None = None,
                 startup_timeout_seconds: float = 60) -> None:
        if not (isinstance(concurrency, int) and not isinstance(concurrency, bool) and 1 <= concurrency <= 1000):
            raise ConfigurationError("concurrency must be an int between 1 and 1000 (got %r)" % (concurrency,))
        if deployment_mode not in DEPLOYMENT_MODES:
            raise ConfigurationError("deployment_mode must be one of %s (got %r)"
                                     % (", ".join(DEPLOYMENT_MODES), deployment_mode))
        self.namespaces = [str(n) for n in namespaces] if namespaces is not None else None
        self.concurrency = concurrency
        self.template_paths = template_paths
        self.registry = registry or HandlerRegistry()
        self.errors: list[BaseException] = []
        self._startup_timeout = startup_timeout_seconds
        self._options = {"concurrency": concurrency, "poll_interval_ms": poll_interval_ms,
                         "visibility_timeout_seconds": visibility_timeout_seconds,
                         "deployment_mode": deployment_mode,
                         "staleness_check_interval_seconds": staleness_check_interval_seconds,
                         "staleness_threshold_minutes": staleness_threshold_minutes,
                         "max_task_lifetime_hours": max_task_lifetime_hours}
        self._web = dict(web or {})
        self._observability = dict(observability or {})
        self._threads: list[threading.Thread] = []
        self._running = False
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self.worker_id: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "Worker":
        with Worker._current_lock:
            if Worker._current is not None and Worker._current.running:
                raise StateError("a worker is already running in this process")
            self._start()
            Worker._current = self
        return self

    def _start(self) -> None:
        boot()
        paths = self.template_paths if self.template_paths is not None else config().template_paths
        loaded = self._while_database_starts(lambda: templates.load(paths)) if paths else []
        if self.namespaces is None:
            self.namespaces = list(dict.fromkeys(t["namespace_name"] for t in loaded))
        if not self.namespaces:
            raise ConfigurationError("the worker has no namespaces: pass namespaces= or template paths")
        options = {**self._options, "namespaces": self.namespaces, "web": self._web,
                   "observability": {"environment": config().environment, **self._observability}}
        status = self._while_database_starts(lambda: _ffi.worker_start(options))
        self.worker_id = "worker_%s" % status["worker_uuid"]
        self._pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="tasker-event-loop", daemon=True)
        self._loop_thread.start()
        self._run_coroutine = executor.run_on_loop(self._loop)
        self._running = True
        self._threads = [self._spawn(i) for i in range(self.concurrency)]

    @property
    def running(self) -> bool:
        """False in a forked child: the engine's threads do not survive a fork."""
        return self._running and self._pid == os.getpid()

    def status(self) -> dict[str, Any] | None:
        return _ffi.worker_status()

    @property
    def web_port(self) -> int | None:
        """The web server's port (None when it is off): useful with bind_address "127.0.0.1:0"."""
        st = self.status() or {}
        return (st.get("web") or {}).get("port")

    def observe(self, service: str, args: dict[str, Any] | None = None) -> str:
        """Runs one of the worker's observability services (health_basic, health_ready,
        health_detailed, metrics_worker, metrics_prometheus, templates_list, ...): its answer as text."""
        return _ffi.obs_call(service, args)

    def stop(self, timeout: float = 30) -> "Worker":
        """Stops claiming, lets running handlers finish within timeout seconds, and gives unstarted
        claims back at once. A handler still running after the timeout keeps its thread (Python
        cannot kill it); its step runs again once its claim expires."""
        if not self.running:
            return self
        self._running = False
        _ffi.worker_stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(max(0.0, deadline - time.monotonic()))
            if not self._loop.is_running():
                self._loop.close()
        with Worker._current_lock:
            if Worker._current is self:
                Worker._current = None
        return self

    @classmethod
    def current(cls) -> "Worker | None":
        return cls._current

    @classmethod
    def stop_current(cls, timeout: float = 30) -> None:
        worker = cls._current
        if worker is not None:
            worker.stop(timeout=timeout)

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------
    def _while_database_starts(self, fn):
        """A worker that starts while the database is unreachable waits for it, with backoff, for
        up to startup_timeout_seconds."""
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.1
        while True:
            try:
                return fn()
            except (DatabaseError, TimeoutError) as e:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("tasker worker waits for the database (%s); retrying in %ss",
                               str(e).splitlines()[0] if str(e) else e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _spawn(self, index: int) -> threading.Thread:
        _ffi.worker_handler_threads(1, False)
        thread = threading.Thread(target=self._thread_main, args=(index,), name="tasker-handler-%d" % index,
                                  daemon=True)
        thread.start()
        return thread

    def _thread_main(self, index: int) -> None:
        try:
            self._run_loop()
        finally:
            _ffi.worker_handler_threads(-1, self._running)

    def _run_loop(self) -> None:
        while self._running:
            try:
                event = _ffi.next_step(NEXT_STEP_WAIT_SECONDS)
            except Exception as e:  # noqa: BLE001 - the engine failed; keep serving
                self.errors.append(e)
                logger.error("tasker could not wait for a step: %s: %s", type(e).__name__, e)
                time.sleep(NEXT_STEP_WAIT_SECONDS)
                continue
            if event is False:
                break
            if event is not None:
                self._execute(event)

    def _execute(self, event: dict[str, Any] | None) -> None:
        """Runs the handler; a checkpoint is saved and the handler runs again at once with it, in the
        same claim. The submission of a result may bring the next step (claim on complete), which
        runs next on this thread."""
        carried: list[dict[str, Any]] = []  # events published by runs that yielded a checkpoint
        while event:
            settled = False
            try:
                envelope = executor.execute(event, worker_id=self.worker_id, registry=self.registry,
                                            run_coroutine=self._run_coroutine)
                checkpoint = envelope.get(executor.CHECKPOINT_KEY)
                if checkpoint is not None:
                    carried.extend(envelope.get("domain_events") or [])
                    following = self._save_checkpoint(event, checkpoint)
                    settled = True
                    event = following
                    if event is None:
                        carried = []
                    continue
                if carried:
                    envelope["domain_events"] = carried + (envelope.get("domain_events") or [])
                    carried = []
                answer = self._submit(event, envelope)
                settled = True
                following = (answer or {}).get("next_steps") or []
                event = following[0] if following else None
            except Exception as e:  # noqa: BLE001 - an engine error, not a handler's (those are results)
                # The claim is given up, so the step runs again once it expires instead of being
                # kept alive with nobody working on it; this thread keeps serving.
                self.errors.append(e)
                logger.error("tasker could not run step %s: %s: %s", event.get("step_uuid"), type(e).__name__, e)
                if not settled:
                    self._give_up(event)
                return

    def _give_up(self, event: dict[str, Any]) -> None:
        try:
            _ffi.abandon_step(event["claim_token"])
        except Exception as e:  # noqa: BLE001
            logger.error("tasker could not give up the claim of step %s: %s", event.get("step_uuid"), e)

    def _save_checkpoint(self, event: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = _ffi.checkpoint_step(event["step_uuid"], event["claim_token"], checkpoint)
        except ValidationError as e:
            self._submit(event, executor.unstorable(event, str(e)))
            return None
        if answer.get("applied"):
            return answer.get("event")
        _ffi.abandon_step(event["claim_token"])
        return None

    def _submit(self, event: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any] | None:
        """Hands the result to the engine. While the database is unreachable the step stays claimed
        and the submission is retried with backoff; after twice the visibility timeout it is given
        up, and the step runs again once its claim expires."""
        deadline = time.monotonic() + 2 * self._options["visibility_timeout_seconds"]
        delay = 0.05
        substituted = False
        while True:
            try:
                return _ffi.complete_step(event["step_uuid"], event["claim_token"], envelope)
            except ValidationError as e:
                # A result that cannot be stored is replaced once by a permanent failure saying why.
                if substituted:
                    raise
                substituted = True
                envelope = executor.unstorable(event, str(e))
            except (DatabaseError, TimeoutError) as e:
                if time.monotonic() >= deadline:
                    logger.error("tasker gave up submitting step %s: %s", event.get("step_uuid"), e)
                    self._give_up(event)
                    return None
                logger.info("tasker could not submit step %s (%s); retrying in %ss", event.get("step_uuid"), e,
                            delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
