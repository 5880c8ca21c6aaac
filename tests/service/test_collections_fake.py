"""FaceCollections logic with deterministic stand-in models (no converted models needed)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Face
from keeneye.service.faces.collections import (
    QualityFilter,
    decode_token,
    encode_token,
    quality_reasons,
)
from keeneye.store.db import Store
from tests.factories import fake_collections, noise_image


def test_exact_match_and_threshold(store: Store) -> None:
    fc = fake_collections(store)
    fc.create_collection("c")
    ids = [fc.index_faces("c", noise_image(i), quality_filter="NONE").indexed[0][0].face_id for i in range(5)]
    res = fc.search_faces_by_image("c", noise_image(3), threshold=99)
    assert [m.face.face_id for m in res.matches] == [ids[3]] and res.matches[0].similarity > 99


def test_collection_is_bound_to_its_embedder(store: Store) -> None:
    fake_collections(store, "pixels-v1").create_collection("c")
    other = fake_collections(store, "pixels-v2")
    with pytest.raises(InvalidParameter, match="pixels-v1"):
        other.index_faces("c", noise_image(0), quality_filter="NONE")
    with pytest.raises(InvalidParameter, match="pixels-v1"):
        other.search_faces_by_image("c", noise_image(0))
    assert other.create_collection("d").face_model_version == "pixels-v2"


def test_concurrent_index_delete_search(store: Store) -> None:
    """Searches racing with deletes never return a deleted face; counts add up at the end."""
    fc = fake_collections(store)
    fc.create_collection("c")
    deleted: set[str] = set()
    errors: list[str] = []
    lock = threading.Lock()

    def writer(offset: int) -> None:
        for i in range(15):
            face_id = (
                fc.index_faces("c", noise_image(offset + i), quality_filter="NONE").indexed[0][0].face_id
            )
            if i % 3 == 0:
                fc.delete_faces("c", [face_id])
                with lock:
                    deleted.add(face_id)

    def reader() -> None:
        for i in range(30):
            with lock:
                gone = set(deleted)
            found = {
                m.face.face_id for m in fc.search_faces_by_image("c", noise_image(i), threshold=0).matches
            }
            if found & gone:
                errors.append(f"deleted faces returned: {found & gone}")

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(3)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert fc.describe_collection("c").face_count == 3 * 15 - len(deleted)
    fresh = fake_collections(store)  # a second process's view, rebuilt from the database
    listed = {f.face_id for f in fresh.list_faces("c", max_results=4096).items}
    found = {m.face.face_id for m in fresh.search_faces_by_image("c", noise_image(1), threshold=0).matches}
    assert found == listed and not listed & deleted


def test_close_saves_index_files(store: Store) -> None:
    fc = fake_collections(store)
    fc.create_collection("c")
    fc.index_faces("c", noise_image(0), quality_filter="NONE")
    fc.search_faces_by_image("c", noise_image(0))  # loads the index
    fc.index_faces("c", noise_image(1), quality_filter="NONE")
    fc.close()
    folder = store.index_dir / "c-c"
    assert (folder / "ids.txt").read_text().count("\n") == 2


def _face(
    score: float = 0.95, side: float = 100, yaw: float = 0, bright: float = 50, sharp: float = 30
) -> Face:
    return Face(
        np.array([0, 0, side, side], np.float32),
        score,
        attributes={"pose": (0.0, yaw, 0.0), "quality": {"brightness": bright, "sharpness": sharp}},
    )


@pytest.mark.parametrize(
    ("face", "level", "reasons"),
    [
        (_face(), "AUTO", []),
        (_face(), "HIGH", []),
        (_face(side=20), "NONE", []),
        (_face(side=25), "LOW", []),
        (_face(side=25), "MEDIUM", ["SMALL_BOUNDING_BOX"]),
        (_face(score=0.72), "HIGH", ["LOW_CONFIDENCE"]),
        (_face(yaw=70), "AUTO", ["EXTREME_POSE"]),
        (_face(yaw=70), "LOW", []),
        (_face(bright=10), "AUTO", ["LOW_BRIGHTNESS"]),
        (_face(sharp=3), "MEDIUM", ["LOW_SHARPNESS"]),
        (_face(sharp=3), "LOW", []),
    ],
)
def test_quality_reasons(face: Face, level: QualityFilter, reasons: list[str]) -> None:
    assert quality_reasons(face, level) == reasons


def test_tokens_round_trip_and_reject_garbage() -> None:
    assert decode_token(encode_token("faces", "abc"), "faces") == "abc"
    assert decode_token(None, "faces") is None
    for bad in ("%%%", "bm90IGpzb24", encode_token("users", "abc")):
        with pytest.raises(InvalidParameter):
            decode_token(bad, "faces")
