"""The store on a real PostgreSQL server (tests/pg.py): the migrations, the types that differ from SQLite
(timezone-aware times, JSON, bytes, booleans), and several servers migrating one database at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from keeneye.store.db import MIGRATIONS_DIR, Store
from keeneye.store.tables import Base, CollectionRow, FaceRow, VideoJobRow
from tests.pg import PostgresServer


def test_migrations_reach_head_and_match_the_tables(postgres: PostgresServer, tmp_path: Path) -> None:
    store = Store.open(tmp_path, postgres.create_database(empty=True))
    store.upgrade()  # again: nothing to do
    try:
        assert store.engine.dialect.name == "postgresql"
        with store.engine.connect() as conn:
            head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert {"collections", "faces", "audit", "video_jobs"} <= set(inspect(store.engine).get_table_names())
    finally:
        store.close()


def test_servers_starting_together_migrate_one_database_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database(empty=True)
    errors: list[BaseException] = []

    def start(i: int) -> None:
        try:
            Store.open(tmp_path / f"server-{i}", url).close()
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)  # without the migration lock they deadlock on each other's tables
        assert not t.is_alive(), "a server's migration did not finish"
    assert errors == []


def test_values_come_back_as_written(pg_url: str, tmp_path: Path) -> None:
    pg = Store.open(tmp_path / "pg", pg_url)
    vector = np.arange(512, dtype="<f4") / 512
    when = datetime(2026, 12, 6, 23, 59, 59, 123456, tzinfo=UTC)
    try:
        with pg.transaction() as s:
            s.add(CollectionRow(collection_id="c", arn="arn:c", created_at=when, embedder_id="e"))
            s.flush()
            s.add(
                FaceRow(
                    face_id="f", collection_id="c", image_id="i", x1=0, y1=0, x2=1, y2=1, image_width=2,
                    image_height=2, score=0.5, indexed_at=when, embedder_id="e", vector=vector.tobytes(),
                )
            )  # fmt: skip
            s.add(
                VideoJobRow(
                    job_id="j", kind="T", status="IN_PROGRESS", bucket="b", name="n", created_at=when,
                    request={"nested": {"ünïcode": [1, 2.5, None, True]}},
                )
            )  # fmt: skip
        with pg.transaction() as s:
            face, job = s.get(FaceRow, "f"), s.get(VideoJobRow, "j")
            collection = s.get(CollectionRow, "c")
            assert face is not None and job is not None and collection is not None
            assert np.array_equal(np.frombuffer(face.vector, dtype="<f4"), vector)
            assert face.indexed_at == when and face.indexed_at.tzinfo is not None
            assert job.request == {"nested": {"ünïcode": [1, 2.5, None, True]}}
            assert collection.review_required is False and collection.generation == 0
    finally:
        pg.close()
