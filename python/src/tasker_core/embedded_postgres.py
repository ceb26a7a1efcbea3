"""A throwaway PostgreSQL cluster for demos and tests, as the Ruby gem's EmbeddedPostgres.

The cluster lives in a fresh temporary directory, listens on a unix socket only (no TCP), and is
removed completely by stop(). It uses the server programs of the local PostgreSQL installation
(``pg_config --bindir``; Debian's ``postgresql`` package). PostgreSQL refuses to run as root:
when this process is root, the cluster is owned by and run as the ``postgres`` system user.
"""
from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
from urllib.parse import quote

DATABASE = "tasker"
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"
START_TIMEOUT = 30
STOP_TIMEOUT = 30
# Unix socket paths are limited to 107 bytes; ".s.PGSQL.NNNNN" takes 15 of them.
MAX_SOCKET_DIR_LENGTH = 90


class EmbeddedPostgresError(RuntimeError):
    """The cluster could not be created, started or reached."""


class EmbeddedPostgres:
    def __init__(self, fsync: bool = True) -> None:
        self.fsync = fsync
        self.root_dir: str | None = None
        self.data_dir: str | None = None
        self.port: int | None = None
        self.log_path: str | None = None
        self._started = False

    def start(self) -> "EmbeddedPostgres":
        if self.root_dir:
            raise EmbeddedPostgresError("embedded PostgreSQL is already started (%s)" % self.root_dir)
        try:
            self._prepare()
            self._run(self._bin("initdb"), "--no-sync", "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
                      "-D", self.data_dir, step="initdb")
            self._configure()
            self._run(self._bin("pg_ctl"), "-w", "-t", str(START_TIMEOUT), "-D", self.data_dir, "-l", self.log_path,
                      "start", step="pg_ctl start")
            self._started = True
            self._run(self._bin("createdb"), "-h", self.root_dir, "-p", str(self.port), "-U", SUPERUSER, DATABASE,
                      step="createdb")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        """A libpq URL that reaches the `tasker` database over the unix socket."""
        if not self._started:
            raise EmbeddedPostgresError("embedded PostgreSQL is not started")
        return "postgresql:///%s?host=%s&port=%d&user=%s" % (DATABASE, quote(self.root_dir, safe=""), self.port,
                                                              SUPERUSER)

    def stop(self) -> None:
        """Stops the server (fast, then immediate shutdown) and removes the directory. Idempotent."""
        if not self.root_dir:
            return
        if self._postmaster_pid():
            for mode in ("fast", "immediate"):
                self._run_quiet(self._bin("pg_ctl"), "-w", "-t", str(STOP_TIMEOUT), "-D", self.data_dir, "-m", mode,
                                "stop")
                if not self._running():
                    break
            else:
                pid = self._postmaster_pid()
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        shutil.rmtree(self.root_dir, ignore_errors=True)
        self.root_dir = None
        self._started = False

    def __enter__(self) -> "EmbeddedPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        base = tempfile.gettempdir()
        if len(base) + len("/tasker-pg-XXXXXXXXXXXX") > MAX_SOCKET_DIR_LENGTH or (self._root() and base != "/tmp"):
            base = "/tmp"
        self.root_dir = tempfile.mkdtemp(prefix="tasker-pg-", dir=base)
        os.chmod(self.root_dir, 0o755)
        self.data_dir = os.path.join(self.root_dir, "data")
        self.log_path = os.path.join(self.root_dir, "server.log")
        self.port = random.randint(20000, 60000)
        open(self.log_path, "a").close()
        if self._root():
            self._ensure_system_user()
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.root_dir, self.log_path):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _configure(self) -> None:
        settings = {"listen_addresses": "''", "unix_socket_directories": "'%s'" % self.root_dir.replace("'", "''"),
                    "port": str(self.port), "max_connections": "200"}
        if not self.fsync:
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        conf = os.path.join(self.data_dir, "postgresql.conf")
        with open(conf, "a") as f:
            f.write("\n# Settings of tasker_core.embedded_postgres.\n")
            for name, value in settings.items():
                f.write("%s = %s\n" % (name, value))

    @staticmethod
    def _root() -> bool:
        return os.geteuid() == 0

    @staticmethod
    def _ensure_system_user() -> None:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", SYSTEM_USER], check=True, capture_output=True)

    def _bin(self, name: str) -> str:
        try:
            bindir = subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True,
                                    text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            raise EmbeddedPostgresError("pg_config not found; install the Debian packages `postgresql` and "
                                        "`libpq-dev`.") from None
        path = os.path.join(bindir, name)
        if not os.access(path, os.X_OK):
            raise EmbeddedPostgresError("%s not found; install the Debian package `postgresql`." % path)
        return path

    def _command(self, args: tuple) -> list[str]:
        if not self._root():
            return list(args)
        if shutil.which("runuser"):
            return ["runuser", "-u", SYSTEM_USER, "--", *args]
        import shlex

        return ["su", SYSTEM_USER, "-s", "/bin/sh", "-c", shlex.join(args)]

    def _run_quiet(self, *args: str) -> tuple[str, bool]:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        try:
            # Its own session: a Ctrl-C in the terminal reaches this process, not the server.
            done = subprocess.run(self._command(args), cwd=self.root_dir, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        except OSError as e:
            return str(e), False
        return done.stdout, done.returncode == 0

    def _run(self, *args: str, step: str) -> str:
        output, ok = self._run_quiet(*args)
        if not ok:
            tail = ""
            try:
                with open(self.log_path) as f:
                    tail = "".join(f.readlines()[-30:])
            except OSError:
                tail = "(no server log)"
            raise EmbeddedPostgresError("embedded PostgreSQL: %s failed.\n%s\n--- last lines of %s ---\n%s"
                                        % (step, output.strip(), self.log_path, tail))
        return output

    def _postmaster_pid(self) -> int | None:
        if not self.data_dir:
            return None
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def _running(self) -> bool:
        pid = self._postmaster_pid()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
