"""Shared fixtures.

Real data comes from ``../shared/data`` (evaluation only, never copied into the repo).
Converted models and the raw weight packages are where ``keeneye models install`` put them (``make
test`` runs it first), found as keeneye finds them (Settings.models_dir): ``KEENEYE_MODELS_PATH``, else
``$KEENEYE_DATA_DIR/models`` if models were installed there, else ``~/.local/share/keeneye/models``;
the packages in the ``cache`` folder beside it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeneye.config import Settings
from keeneye.store.db import Store
from keeneye.streams import egress
from tests.pg import PostgresServer, on_postgres

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    p = Path(os.environ.get("KEENEYE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
    assert p.is_dir(), f"evaluation data not found at {p} (set KEENEYE_SHARED_DATA)"
    return p


def _installed() -> Settings:
    return Settings(data_dir=_data_dir())


@pytest.fixture(scope="session")
def package_sources() -> Path:
    """Unpacked weight packages (face-recognition-models, human, human-models, fer)."""
    p = _installed().cache_dir.resolve() / "extracted"
    assert p.is_dir(), f"{p} missing: run `keeneye models install` (make test does)"
    return p


@pytest.fixture(scope="session")
def models_dir() -> Path:
    p = _installed().models_dir.resolve()
    assert (p / "manifest.json").is_file(), f"{p}/manifest.json missing: run `keeneye models install`"
    return p


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The test's database: a new PostgreSQL database when on_postgres(), else None (SQLite in the data
    directory, the default)."""
    return str(request.getfixturevalue("pg_url")) if on_postgres() else None


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[Store]:
    """A new store (database and index folder) in the test's temporary directory, closed after the test."""
    s = Store.open(tmp_path, database_url)
    yield s
    s.close()


def _no_dns(host: str, port: int) -> list[str]:
    """The tests' resolver: address literals (every form the system accepts, 2852039166 included) and the
    names of /etc/hosts such as localhost; any other name does not resolve, so no DNS query leaves a
    test. A test that needs a name to resolve gives its EgressPolicy a resolver of its own."""
    flags = 0 if host == "localhost" else socket.AI_NUMERICHOST
    return [str(a[4][0]) for a in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)]


@pytest.fixture(autouse=True)
def _egress_without_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(egress, "system_resolver", _no_dns)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (tests/pg.py): 127.0.0.1 only, in a temporary directory."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The SQLAlchemy URL of a new database with keeneye's schema, on the session's PostgreSQL."""
    return postgres.create_database()


def pytest_configure(config: pytest.Config) -> None:
    if on_postgres():
        # A store a test opens and never closes leaves its pooled connections to the garbage collector:
        # psycopg warns (ResourceWarning), Python 3.11's sqlite3 does not, so the SQLite run never sees
        # these test-side leaks. The PostgreSQL run tolerates them rather than fail tests for what the
        # SQLite run passes; the server's own stores are closed at its stop (keeneye/app.py).
        config.addinivalue_line(
            "filterwarnings",
            "ignore:Exception ignored in.*BaseConnection.__del__:pytest.PytestUnraisableExceptionWarning",
        )
