"""The index cache on its own: current with the database's generation, changes applied in order,
a gap (another process wrote) reloads, removals leave no index files behind."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from keeneye.core.types import Face, FloatArray
from keeneye.store.collections import CollectionRepository
from keeneye.store.db import Store
from keeneye.store.index_cache import IndexCache

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DIM = 8


def _face(seed: int) -> Face:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return Face(np.array([0, 0, 10, 10], np.float32), 0.9, embedding=v / np.linalg.norm(v), embedder_id="e1")


@pytest.fixture
def repo(tmp_path: Path) -> CollectionRepository:
    repo = CollectionRepository(Store.open(tmp_path))
    with repo.write() as tx:
        tx.add_collection("eu-west-1/c", "arn", NOW, "e1", {})
    return repo


def _add(repo: CollectionRepository, seeds: list[int]) -> tuple[int, dict[str, FloatArray]]:
    """Faces committed as a use case commits them: rows, then the generation."""
    with repo.write() as tx:
        c = tx.collection("eu-west-1/c")
        added = {
            s.face_id: vec
            for s, vec in tx.add_faces(c, "img", None, [_face(i) for i in seeds], (10, 10), NOW)
        }
        return tx.bump_generation(c.key), added


def _ids(cache: IndexCache, repo: CollectionRepository) -> set[str]:
    with repo.read() as tx:
        index = cache.index(tx, tx.collection("eu-west-1/c"), DIM)
    return set(index.search(np.ones(DIM, np.float32) / np.sqrt(DIM), 100)[0])


def test_changes_apply_in_order_and_a_gap_reloads(repo: CollectionRepository) -> None:
    cache = IndexCache(repo)
    _, first = _add(repo, [1, 2])
    assert _ids(cache, repo) == set(first)
    assert (cache.folder("eu-west-1/c") / "meta.json").is_file()  # written at load; one flat folder
    assert cache.folder("eu-west-1/c").name == "c-eu-west-1@c"
    generation, more = _add(repo, [3])
    cache.apply("eu-west-1/c", generation, add=more)
    assert _ids(cache, repo) == set(first) | set(more)
    _, unseen = _add(repo, [4])  # another process: this cache is not told
    generation, last = _add(repo, [5])
    cache.apply("eu-west-1/c", generation, add=last)  # a gap: dropped, reloaded from the database
    assert _ids(cache, repo) == set(first) | set(more) | set(unseen) | set(last)


def test_removal_deletes_the_files_and_save_writes_them_again(repo: CollectionRepository) -> None:
    cache = IndexCache(repo, save_every=1000)
    _, added = _add(repo, [1, 2])
    _ids(cache, repo)
    gone = next(iter(added))
    with repo.write() as tx:
        tx.delete_faces([gone])
        generation = tx.bump_generation("eu-west-1/c")
    cache.apply("eu-west-1/c", generation, remove=[gone])
    folder = cache.folder("eu-west-1/c")
    assert not folder.exists()
    cache.save_changed()
    assert gone not in (folder / "ids.txt").read_text() and _ids(cache, repo) == set(added) - {gone}
    cache.forget("eu-west-1/c")
    assert not folder.exists()


def test_save_every_rewrites_the_files(repo: CollectionRepository) -> None:
    cache = IndexCache(repo, save_every=2)
    _ids(cache, repo)
    generation, added = _add(repo, [1, 2])
    cache.apply("eu-west-1/c", generation, add=added)
    assert (cache.folder("eu-west-1/c") / "ids.txt").read_text().count("\n") == 2
