"""The collections repository on its own: region-scoped keys, keyset pages, purges, no models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.core.types import Face
from keeneye.store.collections import (
    CollectionRecord,
    CollectionRepository,
    collection_arn,
    collection_key,
)
from keeneye.store.db import Store
from keeneye.store.paging import decode_token

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _face(seed: int, dim: int = 8) -> Face:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return Face(np.array([0, 0, 10, 10], np.float32), 0.9, embedding=v / np.linalg.norm(v), embedder_id="e1")


@pytest.fixture
def repo(tmp_path: Path) -> CollectionRepository:
    return CollectionRepository(Store.open(tmp_path))


def _collection(repo: CollectionRepository, key: str) -> CollectionRecord:
    with repo.write() as tx:
        tx.add_collection(key, collection_arn("us-east-1", "0", key), NOW, "e1", {})
        return tx.collection(key)


@pytest.mark.parametrize(
    ("region", "collection_id", "key"),
    [
        ("us-east-1", "demo", "demo"),
        ("ap-southeast-2", "demo", "ap-southeast-2/demo"),
        ("ap-southeast-2", "us-east-1/demo", "demo"),
        ("us-east-1", "eu-west-1/demo", "eu-west-1/demo"),
    ],
)
def test_keys_are_scoped_by_region(region: str, collection_id: str, key: str) -> None:
    assert collection_key(region, collection_id) == key


@pytest.mark.parametrize("collection_id", ["team/staff", "bad id", "", "eu-west-1/" + "x" * 250])
def test_bad_ids_are_refused(collection_id: str) -> None:
    with pytest.raises(InvalidParameter):
        collection_key("eu-west-1", collection_id)


def test_arn_names_the_region_of_a_qualified_key() -> None:
    assert collection_arn("us-east-1", "123", "eu-west-1/demo") == (
        "arn:aws:rekognition:eu-west-1:123:collection/demo"
    )


def test_collections_are_listed_per_region(repo: CollectionRepository) -> None:
    for key in ("a", "b", "eu-west-1/c"):
        _collection(repo, key)
    with repo.read() as tx:
        assert [c.collection_id for c in tx.list_collections("us-east-1", 10, None).items] == ["a", "b"]
        assert [c.key for c in tx.list_collections("eu-west-1", 10, None).items] == ["eu-west-1/c"]
        with pytest.raises(NotFound, match="The collection id: c does not exist"):
            tx.collection("c")


def test_face_pages_continue_after_a_deletion(repo: CollectionRepository) -> None:
    c = _collection(repo, "c")
    with repo.write() as tx:
        stored = tx.add_faces(c, "img", None, [_face(i) for i in range(5)], (10, 10), NOW)
    ids = sorted(s.face_id for s, _ in stored)
    with repo.read() as tx:
        first = tx.list_faces("c", 2, None)
    assert [f.face_id for f in first.items] == ids[:2] and first.next_token is not None
    with repo.write() as tx:
        tx.delete_faces([ids[2]])
    with repo.read() as tx:
        second = tx.list_faces("c", 2, decode_token(first.next_token, "faces"))
    assert [f.face_id for f in second.items] == ids[3:5] and second.next_token is None


def test_purge_updates_the_status_of_users(repo: CollectionRepository) -> None:
    c = _collection(repo, "c")
    with repo.write() as tx:
        stored = [s for s, _ in tx.add_faces(c, "img", None, [_face(1), _face(2)], (10, 10), NOW)]
        tx.add_user("c", "u", NOW)
        tx.set_faces_user("c", [stored[0].face_id], "u")
        tx.set_user_status("c", "u", "ACTIVE")
    with repo.read() as tx:
        assert tx.expired_faces(NOW + timedelta(days=1)) == {}  # no retention set
    with repo.write() as tx:
        tx.set_retention("c", 1)
    with repo.read() as tx:
        expired = tx.expired_faces(NOW + timedelta(days=2))
    assert expired == {"c": sorted(s.face_id for s in stored)}
    with repo.write() as tx:
        assert sorted(tx.purge_faces("c", expired["c"] + ["missing"])) == expired["c"]
    with repo.read() as tx:
        assert [(u.user_id, u.status) for u in tx.list_users("c", 10, None).items] == [("u", "CREATED")]
        assert tx.info(tx.collection("c")).face_count == 0


def test_generation_advances_per_change(repo: CollectionRepository) -> None:
    c = _collection(repo, "c")
    assert c.generation == 0 and c.tag == NOW.isoformat()
    with repo.write() as tx:
        tx.add_faces(c, "img", None, [_face(1)], (10, 10), NOW)
        assert tx.bump_generation("c") == 1
    with repo.read() as tx:
        assert tx.collection("c").generation == 1 and tx.vector_dim("c") == 8
