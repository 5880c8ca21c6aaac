"""The database: an engine from a URL, sessions, and Alembic migrations run at start.

SQLite is the default (``sqlite:///<data_dir>/keeneye.db``) in WAL mode with ``synchronous=FULL``:
a transaction is on disk when ``commit()`` returns, so a face acknowledged by IndexFaces survives a
``kill -9`` or a power cut. PostgreSQL (``postgresql+psycopg://...``, the ``postgresql`` extra) is the
backend for several servers on one database (docs/deployment.md); the contract suite runs on both.

Deleted means gone from the file (docs/accountability.md): SQLite connections run with
``secure_delete=ON`` (deleted rows are overwritten with zeros, not left in free pages), and
:meth:`Store.scrub`, called after deletions, checkpoints the write-ahead log and truncates it, so
no older copy of a deleted row's page stays in ``keeneye.db-wal`` either.

Private (keeneye.store.files): the data directory is made 0700, and a SQLite database file is
created 0600 before SQLite opens it, so its ``-wal`` and ``-shm`` files are 0600 too, whatever the
umask (they hold face vectors and the audit trail).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from keeneye.store.files import private_dir, private_sqlite

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x6B65656D  # pg_advisory_xact_lock key of the migrations ("keem"; the audit's is "keen")


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'keeneye.db').resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA secure_delete=ON")  # deleted faces' vectors are zeroed, not left in free pages
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
        database = _sqlite_file(url)
        if database is not None and database.parent.is_dir():
            private_sqlite(database)
        try:
            # pre_ping: a pooled connection the database server dropped (a restart, a fail-over) is
            # replaced before use instead of failing the request; SQLite files need no such check.
            self.engine: Engine = create_engine(url, pool_pre_ping=database is None)
        except ModuleNotFoundError as err:
            raise RuntimeError(
                f"the database driver of {make_url(url).drivername} is not installed ({err.name}); for "
                "PostgreSQL: pip install 'keeneye[postgresql]'"
            ) from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None, *, upgrade: bool = True) -> Store:
        """A store on ``url`` (default: SQLite in ``data_dir``), migrated to the latest schema."""
        private_dir(data_dir)
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

    def scrub(self) -> bool:
        """After a deletion: leave no copy of deleted rows in SQLite's write-ahead log.

        ``PRAGMA wal_checkpoint(TRUNCATE)`` copies the log into the database file (where
        secure_delete has zeroed the deleted rows) and truncates it to 0 bytes; it waits (busy
        timeout) for readers of older snapshots. False when it could not finish (busy); the log is
        then truncated by a later scrub. Other databases: nothing to do here (see the docs for
        PostgreSQL's VACUUM). Logged, never raised: the deletion itself is already committed.
        """
        if self.engine.dialect.name != "sqlite":
            return True
        with self.engine.connect() as conn:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        if busy is not None and busy[0]:
            logging.getLogger("keeneye.store").warning(
                "the write-ahead log could not be truncated after a deletion (busy); a later one will"
            )
            return False
        return True

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (idempotent: nothing to do at head)."""
        # Alembic is imported here and in alembic_config, not at the top: importing it costs ~170 ms of
        # CPU, and every command (`keeneye --help` included, ~660 ms) imports this module.
        from alembic import command

        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Servers that start together on one database migrate one at a time (DDL is transactional
                # there: the lock is held until the migration commits; the next finds the schema at head).
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases, in-memory and ``file:`` URIs."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def alembic_config() -> Any:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config  # local: see Store.upgrade

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg
