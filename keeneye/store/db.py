"""The database: an engine from a URL, sessions, and Alembic migrations run at start.

SQLite is the default (``sqlite:///<data_dir>/keeneye.db``) in WAL mode with ``synchronous=FULL``:
a transaction is on disk when ``commit()`` returns, so a face acknowledged by IndexFaces survives a
``kill -9`` or a power cut. Any SQLAlchemy URL works (PostgreSQL for larger deployments).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'keeneye.db').resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")  # writers wait for each other instead of failing
    finally:
        cur.close()


class Store:
    """Engine, session factory and the data directory (where the vector index files live).

    Build with ``Store.open(data_dir)``; call ``upgrade()`` once at start (the composition root does)
    to bring the schema to the latest migration.
    """

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None, *, upgrade: bool = True) -> Store:
        """A store on ``url`` (default: SQLite in ``data_dir``), migrated to the latest schema."""
        data_dir.mkdir(parents=True, exist_ok=True)
        store = cls(url or default_url(data_dir), data_dir)
        if upgrade:
            store.upgrade()
        return store

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed (durably) on exit, rolled back on any error."""
        with self.sessions.begin() as session:
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (idempotent: nothing to do at head)."""
        from alembic import command

        with self.engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

    def close(self) -> None:
        self.engine.dispose()


def alembic_config() -> Any:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg
