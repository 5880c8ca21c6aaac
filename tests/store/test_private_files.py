"""The data directory is 0700 and its files 0600 whatever the umask (issue 13, item 8): they hold face
vectors, the audit trail, spooled identifications and the key that decrypts stored secrets. Every test
here runs under umask 022, which used to leave them 0644 / 0755."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keeneye.config import Settings
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.credentials import load_or_create
from keeneye.service.governance.keys import AccessKeys
from keeneye.store.db import Store
from keeneye.store.files import private_open, private_sqlite
from keeneye.streams.sinks import JsonlSink
from keeneye.streams.spool import SpooledSink
from tests.factories import fake_collections, noise_image


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _not_private(root: Path) -> list[str]:
    """Every folder under ``root`` (itself included) not 0700 and every file not 0600."""
    wrong = [] if _mode(root) == 0o700 else [f"{root}: {_mode(root):o}"]
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = Path(folder, name)
            if not path.is_symlink() and _mode(path) != 0o700:
                wrong.append(f"{path}: {_mode(path):o}")
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink() and _mode(path) != 0o600:
                wrong.append(f"{path}: {_mode(path):o}")
    return wrong


class _Recorder:
    def __init__(self) -> None:
        self.got: list[Mapping[str, Any]] = []

    def send(self, message: Mapping[str, Any]) -> None:
        self.got.append(message)

    def close(self) -> None:
        return None


def test_everything_a_server_writes_in_its_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    collections = fake_collections(store)
    collections.save_every = 1  # each change writes the index files
    collections.create_collection("staff")
    collections.index_faces("staff", noise_image(1), quality_filter="NONE")
    collections.search_faces("staff", collections.list_faces("staff").items[0].face_id)
    collections.index_faces("staff", noise_image(2), quality_filter="NONE")
    AuditLog(store).append("IndexFaces", access_key="AK", collection_id="staff")  # the head anchor
    AccessKeys(store, data).create("app", actor="cli")  # keys.secret
    load_or_create(Settings(data_dir=data))  # credentials.json
    spool = SpooledSink(_Recorder(), data / "stream-spool" / "door" / "sink-0", name="door/0")
    spool.send({"FaceId": "f"})
    spool.close()
    JsonlSink(data / "notifications" / "t.jsonl").send({"FaceId": "f"})  # a channel's or a stream's file
    with store.transaction() as s:  # the -wal and -shm files exist while a connection is open
        s.execute(text("SELECT 1"))
        names = {p.name for p in data.iterdir()}
        assert {"keeneye.db", "keeneye.db-wal", "keeneye.db-shm"} <= names
        assert _not_private(data) == []
    assert {
        "index",
        "stream-spool",
        "notifications",
        "audit-head.json",
        "keys.secret",
        "credentials.json",
    } <= names
    assert list((data / "index").rglob("vectors.npy"))
    store.close()


def test_an_older_data_directory_is_narrowed_when_opened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    for name in ("keeneye.db", "keeneye.db-wal", "keeneye.db-shm"):
        (data / name).touch(mode=0o644)
    os.chmod(data, 0o755)
    store = Store.open(data)
    assert _mode(data) == 0o700
    assert [_mode(data / n) for n in ("keeneye.db", "keeneye.db-wal", "keeneye.db-shm")] == [0o600] * 3
    store.close()


def test_private_open_narrows_an_existing_file_and_refuses_a_link(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    with private_open(path, "a") as f:
        f.write("new\n")
    assert _mode(path) == 0o600 and path.read_text() == "old\nnew\n"
    (tmp_path / "link").symlink_to(path)
    with pytest.raises(OSError):
        private_open(tmp_path / "link", "w")
    with pytest.raises(ValueError):
        private_open(path, "r")
    db = tmp_path / "spool.sqlite3"
    private_sqlite(db)
    assert db.stat().st_size == 0 and _mode(db) == 0o600
