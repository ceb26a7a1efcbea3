"""A benchmark worker process in Python (bench/worker.rb's twin): serves one namespace with the
benchmark handlers until SIGTERM.

    python bench/python/worker.py NAMESPACE CONCURRENCY

Reads TASKER_DATABASE_URL; prints "ready <pid>" once its worker runs."""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tasker_core  # noqa: E402
import bench_handlers  # noqa: E402,F401  (registers the handlers)
from tasker_core import Worker  # noqa: E402


def main():
    namespace, concurrency = sys.argv[1], int(sys.argv[2])
    tasker_core.configure(database_url=os.environ["TASKER_DATABASE_URL"], log_level="error")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = Worker(namespaces=[namespace], concurrency=concurrency).start()
    print("ready %d" % os.getpid(), flush=True)
    stop.wait()
    worker.stop(timeout=10)


if __name__ == "__main__":
    main()
