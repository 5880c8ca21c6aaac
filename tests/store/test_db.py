from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from keeneye.service.governance.audit import AuditLog
from keeneye.store.db import MIGRATIONS_DIR, Store
from keeneye.store.tables import Base


def test_migrations_on_empty_db_are_idempotent(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.upgrade()  # second run: nothing to do
    names = set(inspect(store.engine).get_table_names())
    assert {"collections", "faces", "users", "tags", "audit", "alembic_version"} <= names
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()  # the newest revision, whichever
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    store.close()


def test_models_match_migrations(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    store.close()


def test_migrations_are_packaged_with_the_code() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert any((MIGRATIONS_DIR / "versions").glob("0001_*.py"))


def test_audit_is_append_only_and_filtered(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    log = AuditLog(store)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    log.append("IndexFaces", access_key="AK1", collection_id="a", request_faces=1, time=t0)
    log.append(
        "SearchFacesByImage",
        access_key="AK1",
        collection_id="a",
        request_faces=1,
        matches=[{"FaceId": "f", "Similarity": 99.5}],
        threshold=80.0,
        time=t0 + timedelta(hours=1),
    )
    log.append(
        "SearchFaces", access_key="AK2", collection_id="b", threshold=99.0, time=t0 + timedelta(hours=2)
    )
    records = log.read()
    assert [r["operation"] for r in records] == ["IndexFaces", "SearchFacesByImage", "SearchFaces"]
    assert records[1]["flagged_below_99"] and records[1]["matches"] == [{"FaceId": "f", "Similarity": 99.5}]
    assert not records[2]["flagged_below_99"] and not records[0]["flagged_below_99"]
    assert [r["operation"] for r in log.read(collection_id="b")] == ["SearchFaces"]
    # A since in another zone means the same instant.
    since = (t0 + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=5)))
    assert len(log.read(since=since)) == 2
    assert not hasattr(log, "delete") and not hasattr(log, "update")
    store.close()


def test_database_url_overrides_the_default_sqlite_file(tmp_path: Path) -> None:
    """KEENEYE_DATABASE_URL (Settings.database_url) puts the metadata where the operator says."""
    from keeneye.config import Settings

    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    store = Store.open(settings.data_dir, settings.database_url)
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (settings.data_dir / "keeneye.db").exists()
    assert "collections" in set(inspect(store.engine).get_table_names())
