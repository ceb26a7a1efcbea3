"""The command line: ``python -m tasker_core worker|migrate|templates|health``.

    python -m tasker_core worker --templates DIR --import MODULE --concurrency N

The worker registers the templates, imports the modules that define the handlers (dotted
callables are imported on first use too), serves the templates' namespaces (or --namespace) until
SIGTERM or SIGINT, then stops claiming, lets running handlers finish (--shutdown-timeout) and exits.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading

from . import configuration as config_module
from . import templates
from .errors import Error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasker_core", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: TASKER_DATABASE_URL or DATABASE_URL")
    parser.add_argument("--log-level", choices=config_module.LOG_LEVELS, help="the engine's log level")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a worker until SIGTERM/SIGINT")
    worker.add_argument("--templates", action="append", default=[], metavar="PATH",
                        help="a template file or directory to register (repeatable; default TASKER_TEMPLATE_PATH)")
    worker.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="a module to import before starting: it defines or registers handlers (repeatable)")
    worker.add_argument("--namespace", dest="namespaces", action="append", metavar="NAME",
                        help="a namespace to serve (repeatable; default: the templates' namespaces)")
    worker.add_argument("--concurrency", type=int, default=10, help="handler threads (default 10)")
    worker.add_argument("--deployment-mode", default="Hybrid", choices=["Hybrid", "PollingOnly", "EventDrivenOnly"])
    worker.add_argument("--poll-interval-ms", type=int, default=1000)
    worker.add_argument("--web", metavar="HOST:PORT", help="serve health, metrics and templates over HTTP here")
    worker.add_argument("--shutdown-timeout", type=float, default=30,
                        help="seconds running handlers get to finish on SIGTERM/SIGINT (default 30)")
    worker.add_argument("--no-migrate", action="store_true", help="do not apply the schema first")

    sub.add_parser("migrate", help="apply the embedded schema")
    register = sub.add_parser("templates", help="validate or register templates")
    register.add_argument("action", choices=["validate", "register"])
    register.add_argument("paths", nargs="+")
    sub.add_parser("health", help="check the database and its schema (exit 1 when unhealthy)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = {}
    if args.database_url:
        settings["database_url"] = args.database_url
    if args.log_level:
        settings["log_level"] = args.log_level
    if settings:
        config_module.configure(**settings)
    try:
        if args.command == "worker":
            return _worker(args)
        if args.command == "migrate":
            report = config_module.migrate()
            print(json.dumps(report))
            return 0
        if args.command == "templates":
            if args.action == "validate":
                for path in templates.files(args.paths):
                    templates.validate(path)
                    print("%s: valid" % path)
            else:
                for summary in templates.load(args.paths):
                    print("registered %(namespace_name)s/%(name)s@%(version)s (%(step_count)s steps)" % summary)
            return 0
        if args.command == "health":
            from .client import TaskerClient

            health = TaskerClient().health_check()
            print(json.dumps(health.__dict__ if hasattr(health, "__dict__") else health))
            return 0 if getattr(health, "healthy", False) else 1
    except Error as e:
        print("tasker_core: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 2


def _worker(args: argparse.Namespace) -> int:
    from .worker import Worker

    sys.path.insert(0, os.getcwd())  # --import names modules of the directory it runs in, as python -m does
    for module in args.imports:
        importlib.import_module(module)
    if not args.no_migrate:
        config_module.migrate()
    paths = args.templates or None
    web = {"enabled": True, "bind_address": args.web} if args.web else {}
    worker = Worker(namespaces=args.namespaces, concurrency=args.concurrency, template_paths=paths,
                    deployment_mode=args.deployment_mode, poll_interval_ms=args.poll_interval_ms, web=web)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame):
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.start()
        logging.getLogger("tasker_core.worker").info(
            "tasker worker %s serving %s with %d handler threads%s", worker.worker_id, ", ".join(worker.namespaces),
            worker.concurrency, " (web on port %s)" % worker.web_port if args.web else "")
        while not stop.wait(1.0):
            pass
        logging.getLogger("tasker_core.worker").info("tasker worker stopping (signal %s)", received[0])
        worker.stop(timeout=args.shutdown_timeout)
        config_module.shutdown()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
