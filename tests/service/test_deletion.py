"""Provable deletion: a deleted face is found by no operation, and its vector's bytes are in no file
(index files, the SQLite database and its write-ahead log) — checked against a positive control."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from keeneye.config import RetentionSettings
from keeneye.core.errors import NotFound
from keeneye.core.types import UInt8Image
from keeneye.models.fake import PixelEmbedder
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.retention import RetentionService
from keeneye.store.db import Store
from tests.factories import fake_collections, noise_image


def _vector_bytes(image: UInt8Image) -> bytes:
    v = PixelEmbedder().embed(image, [None])[0]  # type: ignore[list-item]
    return np.ascontiguousarray(v, dtype="<f4").tobytes()


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()
    )


class World:
    """A collection with a target face (to delete, associated with a user) and a bystander."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = Store.open(data_dir)
        self.fc = fake_collections(self.store)
        self.fc.create_collection("c")
        self.photo = noise_image(1)
        self.target = self.fc.index_faces("c", self.photo, quality_filter="NONE").indexed[0][0].face_id
        self.bystander = self.fc.index_faces("c", noise_image(2), quality_filter="NONE").indexed[0][0].face_id
        self.fc.create_user("c", "u1")
        self.fc.associate_faces("c", "u1", [self.target], threshold=0)
        assert self.findable()
        self.fc.close()  # the index files are written now: they hold the vector (positive control)
        self.needle = _vector_bytes(self.photo)
        holding = _files_holding(data_dir, self.needle)
        assert any(h.startswith("index/") for h in holding), holding
        assert any(h.startswith("keeneye.db") for h in holding), holding

    def findable(self) -> bool:
        """Whether any operation still returns the target face."""
        by_image = self.fc.search_faces_by_image("c", self.photo, threshold=0)
        listed = [f.face_id for f in self.fc.list_faces("c").items]
        by_face = [m.face.face_id for m in self.fc.search_faces("c", self.bystander, threshold=0)]
        _, users = self.fc.search_users_by_image("c", self.photo, threshold=0)
        return (
            self.target in [m.face.face_id for m in by_image.matches]
            or self.target in listed
            or self.target in by_face
            or any(u.user.user_id == "u1" for u in users)
        )


def _delete_faces(w: World) -> None:
    w.fc.disassociate_faces("c", "u1", [w.target])
    deleted, failed = w.fc.delete_faces("c", [w.target])
    assert deleted == [w.target] and failed == []


def _purge(w: World) -> None:
    w.fc.set_retention("c", 30)
    later = datetime.now(UTC) + timedelta(days=31)
    service = RetentionService(
        w.store, RetentionSettings(), collections=w.fc, audit=AuditLog(w.store), clock=lambda: later
    )
    report = service.purge()
    assert report.faces == {"c": 2}  # both faces are older than 30 days by then


DELETIONS: list[tuple[str, Callable[[World], None]]] = [
    ("DeleteFaces", _delete_faces),
    ("retention purge", _purge),
]


@pytest.mark.parametrize(("name", "delete"), DELETIONS, ids=[d[0] for d in DELETIONS])
def test_deleted_face_is_gone_from_every_operation_and_every_file(
    tmp_path: Path, name: str, delete: Callable[[World], None]
) -> None:
    w = World(tmp_path / "data")
    delete(w)
    if name == "retention purge":  # the bystander went too: only the listing and image search remain
        assert w.fc.list_faces("c").items == []
        assert w.fc.search_faces_by_image("c", w.photo, threshold=0).matches == []
        assert w.fc.search_users_by_image("c", w.photo, threshold=0)[1] == []
    else:
        assert not w.findable()
    with pytest.raises(NotFound):
        w.fc.search_faces("c", w.target)
    with pytest.raises(NotFound):
        w.fc.search_users("c", face_id=w.target)
    assert _files_holding(w.data_dir, w.needle) == []
    # ... and after the process ends and the index is written again.
    w.fc.close()
    w.store.close()
    assert _files_holding(w.data_dir, w.needle) == []


def test_delete_collection_leaves_nothing(tmp_path: Path) -> None:
    w = World(tmp_path / "data")
    w.fc.delete_collection("c")
    with pytest.raises(NotFound):
        w.fc.list_faces("c")
    w.fc.create_collection("c")  # a new collection of the same name knows nothing of the old one
    assert w.fc.search_faces_by_image("c", w.photo, threshold=0).matches == []
    assert _files_holding(w.data_dir, w.needle) == []


def test_delete_user_removes_the_user_but_keeps_its_faces(tmp_path: Path) -> None:
    """As in Rekognition: DeleteUser disassociates the faces, it does not delete them."""
    w = World(tmp_path / "data")
    w.fc.delete_user("c", "u1")
    assert w.fc.search_users_by_image("c", w.photo, threshold=0)[1] == []
    assert w.fc.search_users("c", face_id=w.bystander, threshold=0) == []
    assert [f.user_id for f in w.fc.list_faces("c", face_ids=[w.target]).items] == [None]
    deleted, _ = w.fc.delete_faces("c", [w.target])  # deleting the face is a separate, explicit step
    assert deleted == [w.target] and not w.findable()
    assert _files_holding(w.data_dir, w.needle) == []


def test_sqlite_connections_use_secure_delete(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    assert store.scrub()
    assert not (tmp_path / "keeneye.db-wal").exists() or (tmp_path / "keeneye.db-wal").stat().st_size == 0
