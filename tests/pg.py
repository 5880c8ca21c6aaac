"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` (tools/system-deps.sh installs it
for ``make test``), started in a temporary directory, listening on a free port of 127.0.0.1 only (its unix
socket in that directory), stopped and removed at the end.

``initdb`` and ``postgres`` refuse to run as root: under root they run as the ``postgres`` system user
that Debian's package creates (``nobody`` where there is none), through :class:`subprocess.Popen`'s
``user``/``group`` (a setuid before exec, as ``setpriv`` does), so the server is the tests' own child
process. Authentication is ``trust`` for the one superuser ``keeneye``: nothing but loopback reaches it.
Durability is off (``fsync=off``, ``synchronous_commit=off``, ``full_page_writes=off``): a crash of the
test machine loses nothing the tests need.

A watchdog process holds a pipe from the tests' process: when that pipe closes, however the tests end
(SIGKILL included), it stops the server ("fast" shutdown) and removes the directory, so no server is
left behind.

Each test gets a database of its own, copied from a template that is already migrated to the latest
schema (``CREATE DATABASE ... TEMPLATE``: ~30 ms instead of running the migrations each time).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import psycopg
import pytest

WATCHDOG = """
import os, shutil, signal, sys, time
pid, root = int(sys.argv[1]), sys.argv[2]
sys.stdin.buffer.read()  # returns when the tests' process closes the pipe or dies
try:
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        os.kill(pid, 0)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
except ProcessLookupError:
    pass
shutil.rmtree(root, ignore_errors=True)
"""
PACKAGES = ["postgresql"]  # Debian's; tools/system-deps.sh test installs it (tests/test_system_deps.py)
SUPERUSER = "keeneye"
TEMPLATE = "keeneye_template"
START_TIMEOUT_S = 30.0
MISSING = (
    "PostgreSQL's server binaries (initdb, postgres) were not found: install Debian's postgresql "
    "(make test does, through tools/system-deps.sh test) or set KEENEYE_PG_BIN to the folder that holds them"
)


def on_postgres() -> bool:
    """Whether the tests' stores and servers run on PostgreSQL: ``KEENEYE_TEST_DATABASE=postgresql``
    (``make test-postgres``; tests/conftest.py); SQLite otherwise."""
    value = os.environ.get("KEENEYE_TEST_DATABASE", "sqlite")
    if value not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"KEENEYE_TEST_DATABASE={value!r}: use sqlite or postgresql")
    return value == "postgresql"


def bin_dir() -> Path:
    """The folder of ``initdb`` and ``postgres``: ``KEENEYE_PG_BIN``, else Debian's newest
    ``/usr/lib/postgresql/<major>/bin``, else the ``PATH``'s. Fails the test (never skips) when none."""
    configured = os.environ.get("KEENEYE_PG_BIN")
    candidates = [Path(configured)] if configured else []
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    candidates += sorted((Path(p).parent for p in found), key=lambda p: int(p.parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    pytest.fail(MISSING, pytrace=False)


def _run_as() -> str | None:
    """The user the server runs as: None (this one) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    pytest.fail("running as root and neither a postgres nor a nobody user exists to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One ``postgres`` process on 127.0.0.1:``port`` with its cluster in a temporary directory."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="keeneye-pg-"))
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._databases = 0

    def _popen(self, args: list[str], out: IO[bytes] | int) -> subprocess.Popen[bytes]:
        # A session of its own: a signal to the tests' process group (Ctrl-C, a runner's timeout) does not
        # reach it half-way; the watchdog stops it in order and removes its directory.
        if self.user is None:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        gid = pwd.getpwnam(self.user).pw_gid
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=self.user,
            group=gid,
            extra_groups=[],
            start_new_session=True,
        )

    def start(self) -> PostgresServer:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        data = self.root / "data"
        initdb = [str(self.bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]
        init = self._popen([*initdb, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], subprocess.PIPE)
        out, _ = init.communicate(timeout=120)
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({init.returncode}):\n{out.decode(errors='replace')}", pytrace=False)
        self.port = _free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        args = [str(self.bin / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self._log = (self.root / "server.log").open("wb")
        self._process = self._popen(args, self._log)
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(self._process.pid), str(self.root)],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_ready()
        self._template()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                pytest.fail(f"postgres exited at start:\n{self.log_tail()}", pytrace=False)
            try:
                with self.connect("postgres"):
                    return
            except psycopg.OperationalError:  # not accepting connections yet
                if time.monotonic() > deadline:
                    pytest.fail(f"postgres did not start in {START_TIMEOUT_S} s:\n{self.log_tail()}")
                time.sleep(0.05)

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def connect(self, database: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database, autocommit=True
        )

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _template(self) -> None:
        """The template every test's database is copied from: keeneye's schema at the latest migration."""
        from keeneye.store.db import Store

        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        store = Store(self.url(TEMPLATE), self.root)
        try:
            store.upgrade()
        finally:
            store.close()

    def create_database(self, *, empty: bool = False) -> str:
        """A new database with keeneye's schema (``empty``: without, not even Alembic's table); its URL."""
        self._databases += 1
        name = f"keeneye_{os.getpid()}_{self._databases}"
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {'template0' if empty else TEMPLATE}")
        return self.url(name)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # "fast" shutdown: ends the clients' sessions
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._watchdog is not None and self._watchdog.stdin is not None:
            self._watchdog.stdin.close()  # it finds the server gone, and removes the directory
            self._watchdog.wait(timeout=30)
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def database_dump(url: str) -> bytes:
    """Every row of every keeneye table of a PostgreSQL database as text (``row::text``), what the tests
    search for bytes that must not be stored (the SQLite run reads the database file)."""
    from sqlalchemy import create_engine

    from keeneye.store.tables import Base

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [
                str(text)
                for table in Base.metadata.sorted_tables
                for (text,) in conn.exec_driver_sql(f'SELECT t::text FROM "{table.name}" t')
            ]
    finally:
        engine.dispose()
    return "\n".join(rows).encode()
