"""The vector index files after a crash or power cut: whatever state they are left in, a restart
answers from the database's faces, never from damaged files, and writes good files again.

A SIGKILL (tests/faults/test_crash.py) cannot leave these states: the page cache survives it. A
power cut can, on a filesystem that persists a rename before the renamed files' data (written
without fsync): the folder comes back with empty, truncated or zero-filled files. And a crash
between the two renames of ``NumpyIndex.save`` leaves no folder, only ``.old`` and ``.tmp``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from keeneye.models.fake import PixelEmbedder
from keeneye.store.db import Store
from keeneye.store.vectors import NumpyIndex
from tests.factories import fake_collections, noise_image

FACES = 6


def _zero_fill(path: Path) -> None:
    path.write_bytes(b"\0" * path.stat().st_size)


def _zero_data(path: Path) -> None:
    """Keep the .npy header, zero the array: the data blocks never reached the disk."""
    raw = path.read_bytes()
    header = len(raw) - FACES * PixelEmbedder.dim * 4
    path.write_bytes(raw[:header] + b"\0" * (len(raw) - header))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _between_renames(folder: Path) -> None:
    """A crash after ``folder -> .old`` and before ``.tmp -> folder``."""
    folder.rename(folder.with_name(folder.name + ".old"))
    folder.with_name(folder.name + ".tmp").mkdir()
    (folder.with_name(folder.name + ".tmp") / "vectors.npy").write_bytes(b"\x93NUMPY")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "vectors empty": lambda f: _empty(f / "vectors.npy"),
    "vectors truncated": lambda f: _truncate(f / "vectors.npy"),
    "vectors zero-filled": lambda f: _zero_fill(f / "vectors.npy"),
    "vectors' data zero-filled": lambda f: _zero_data(f / "vectors.npy"),
    "ids empty": lambda f: _empty(f / "ids.txt"),
    "ids zero-filled": lambda f: _zero_fill(f / "ids.txt"),
    "meta empty": lambda f: _empty(f / "meta.json"),
    "meta zero-filled": lambda f: _zero_fill(f / "meta.json"),
    "between the renames": _between_renames,
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_restart_rebuilds_from_the_database(tmp_path: Path, damage: str) -> None:
    store = Store.open(tmp_path)
    fc = fake_collections(store)
    fc.create_collection("c")
    ids = [
        fc.index_faces("c", noise_image(i), quality_filter="NONE").indexed[0][0].face_id for i in range(FACES)
    ]
    fc.search_faces_by_image("c", noise_image(0))  # loads the index and writes its files
    folder = store.index_dir / "c-c"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["count"] == FACES
    DAMAGE[damage](folder)
    store.close()

    store = Store.open(tmp_path)  # the restart: a new process's service on the same data directory
    restarted = fake_collections(store)
    for i, face_id in enumerate(ids):
        matches = restarted.search_faces_by_image("c", noise_image(i), threshold=99).matches
        assert [m.face.face_id for m in matches] == [face_id]
    assert {m.face.face_id for m in restarted.search_faces("c", ids[0], threshold=0)} == set(ids[1:])
    reloaded = NumpyIndex.load(folder, meta["generation"], FACES, PixelEmbedder.dim, meta["tag"])
    assert reloaded is not None and sorted(reloaded.ids) == sorted(ids)  # good files written again
    store.close()


def test_saved_files_carry_a_checksum(tmp_path: Path) -> None:
    index = NumpyIndex(4)
    index.add(["a", "b"], np.eye(2, 4, dtype=np.float32))
    index.save(tmp_path / "c-x", generation=1, tag="t")
    assert NumpyIndex.load(tmp_path / "c-x", 1, 2, 4, "t") is not None
    ids = tmp_path / "c-x" / "ids.txt"
    ids.write_text("b\na\n")  # same length, other order: the vectors would be swapped
    assert NumpyIndex.load(tmp_path / "c-x", 1, 2, 4, "t") is None
