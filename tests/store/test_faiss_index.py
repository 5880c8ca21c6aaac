"""The faiss index (IVF-PQ fast scan + exact re-rank): the exact scan's answers on real face vectors,
persistence with the same checks as NumpyIndex, rebuilds from the database, deletion that leaves no
vector bytes in its files, and read-only searches from several threads."""

from __future__ import annotations

import functools
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keeneye.analysis.builder import build_face_analyzer
from keeneye.config import Settings, VectorIndexSettings
from keeneye.core.types import Face, FloatArray
from keeneye.store.collections import CollectionRepository
from keeneye.store.db import Store
from keeneye.store.faiss_index import AutoIndexKind, FaissIndex
from keeneye.store.index_cache import IndexCache
from keeneye.store.vectors import NumpyIndex

REPO = Path(__file__).resolve().parents[2]
# Small collections train too: exact only up to 500 faces here (the default is 1,000).
SMALL = VectorIndexSettings(kind="faiss", exact_below=500)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _clustered(n: int, dim: int = 128, people: int = 300, seed: int = 0) -> FloatArray:
    """Unit vectors around ``people`` centres (cosine ~0.75 to their centre), as faces of few people are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    v = centres[rng.integers(0, people, n)] + 0.9 / np.sqrt(dim) * rng.standard_normal((n, dim))
    out: FloatArray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def _lfw() -> FloatArray:
    """Real face vectors of the default embedder (dlib+faceres, 1152 floats): the largest face of each
    of the first 1,300 LFW photos (by path; people with several photos each), embedded here (about a
    minute: the quantisers train from 1,024 faces up)."""
    data = Path(os.environ.get("KEENEYE_SHARED_DATA", REPO.parent / "shared" / "data")) / "faces/lfw"
    assert data.is_dir(), f"LFW not found at {data}"
    settings = Settings(data_dir=Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var")))
    analyzer = build_face_analyzer(settings, with_embedder=True)
    vecs = []
    for path in sorted(data.glob("*/*.jpg"))[:1300]:
        faces = analyzer.analyze(
            np.asarray(Image.open(path).convert("RGB")), attributes="none", embed=True, max_faces=1
        )
        if faces:  # the largest face
            assert faces[0].embedding is not None
            vecs.append(faces[0].embedding)
    assert len(vecs) >= 1250, len(vecs)
    return np.stack(vecs).astype(np.float32)


def _pair(vecs: FloatArray, settings: VectorIndexSettings = SMALL) -> tuple[FaissIndex, NumpyIndex]:
    ids = [f"f{i:05d}" for i in range(len(vecs))]
    approx, exact = FaissIndex(vecs.shape[1], settings=settings), NumpyIndex(vecs.shape[1])
    approx.add(ids, vecs)
    exact.add(ids, vecs)
    return approx, exact


def _assert_same(approx: FaissIndex, exact: NumpyIndex, probes: FloatArray, k: int) -> None:
    for q in probes:
        ids, cos = approx.search(q, k)
        want_ids, want_cos = exact.search(q, k)
        assert ids == want_ids
        np.testing.assert_allclose(cos, want_cos, atol=1e-6)


@functools.cache
def _lfw_pair() -> tuple[FaissIndex, NumpyIndex, FloatArray]:
    vecs = _lfw()
    # Every 10th face probes the rest (~1,150 faces, with other photos of the same people among them).
    probe = np.arange(len(vecs)) % 10 == 0
    probes, gallery = vecs[probe], vecs[~probe]
    approx, exact = _pair(gallery)
    return approx, exact, probes


@pytest.mark.data
@pytest.mark.models
@pytest.mark.parametrize("k", [1, 10])
def test_equals_the_exact_scan_on_lfw_faces(k: int) -> None:
    approx, exact, probes = _lfw_pair()  # built once for both k
    assert approx.trained and len(approx) == len(exact) > 1100
    _assert_same(approx, exact, probes, k)


@pytest.mark.parametrize("k", [1, 10])
def test_equals_the_exact_scan_on_clustered_vectors(k: int) -> None:
    vecs = _clustered(3200)
    approx, exact = _pair(vecs[200:])
    assert approx.trained
    _assert_same(approx, exact, vecs[:200], k)


def test_small_or_untrained_is_exact_and_k_is_clipped() -> None:
    vecs = _clustered(300)
    approx, exact = _pair(vecs)
    assert not approx.trained  # 300 <= exact_below
    _assert_same(approx, exact, vecs[:20], 400)
    assert FaissIndex(128).search(vecs[0], 5)[0] == []
    assert approx.search(vecs[0], 0)[0] == []


def test_changes_replace_remove_and_vectors_of() -> None:
    vecs = _clustered(2000)
    approx, exact = _pair(vecs)
    approx.remove(["f00003", "f00010", "missing"])
    exact.remove(["f00003", "f00010"])
    more = _clustered(2, seed=1)
    approx.add(["f00005", "new"], more)  # a replaced id keeps one slot; a new one is encoded
    exact.add(["f00005", "new"], more)
    assert len(approx) == len(exact) == 1999 and "f00003" not in approx and "new" in approx
    _assert_same(approx, exact, vecs[:30], 10)
    np.testing.assert_array_equal(approx.vectors_of(["new", "f00007"]), exact.vectors_of(["new", "f00007"]))
    with pytest.raises(KeyError):
        approx.vectors_of(["f00003"])
    compact = approx.compacted()  # the holes dropped, trained again
    assert approx.slots == 2002 and compact.slots == len(compact) == 1999  # 2 removed, 1 replaced
    _assert_same(compact, exact, vecs[:30], 10)


def test_save_load_round_trip_and_checks(tmp_path: Path) -> None:
    vecs = _clustered(2000)
    approx, exact = _pair(vecs)
    approx.remove(["f00001"])  # a hole is saved as an empty line and a zero row
    exact.remove(["f00001"])
    folder = tmp_path / "c-x"
    approx.save(folder, generation=3, tag="t")
    assert sorted(os.listdir(folder)) == ["ids.txt", "meta.json", "quantizers.faiss", "vectors.npy"]
    loaded = FaissIndex.load(folder, 3, 1999, 128, "t", SMALL)
    assert loaded is not None and loaded.trained and loaded.slots == 2000
    _assert_same(loaded, exact, vecs[:30], 10)
    _assert_same(approx, exact, vecs[:30], 10)  # the saver now reads the saved vectors, mapped
    assert json.loads((folder / "meta.json").read_text())["codes"] is False  # a removal: quantisers only
    clean = FaissIndex.load(folder, 3, 1999, 128, "t", SMALL)  # codes encoded again: no removal since
    assert clean is not None
    clean.save(tmp_path / "c-y", 3, "t")
    assert json.loads((tmp_path / "c-y" / "meta.json").read_text())["codes"] is True
    with_codes = FaissIndex.load(tmp_path / "c-y", 3, 1999, 128, "t", SMALL)
    assert with_codes is not None
    _assert_same(with_codes, exact, vecs[:30], 10)
    assert FaissIndex.load(folder, 4, 1999, 128, "t") is None  # stale generation
    assert FaissIndex.load(folder, 3, 2000, 128, "t") is None  # count differs
    assert FaissIndex.load(folder, 3, 1999, 128, "other") is None  # another incarnation
    assert NumpyIndex.load(folder, 3, 1999, 128, "t") is None  # the other kind's files
    assert FaissIndex.load(tmp_path / "missing", 3, 1999, 128, "t") is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage-quantizers", "empty-ids"])
def test_damaged_files_are_not_loaded(tmp_path: Path, damage: str) -> None:
    approx, _ = _pair(_clustered(1500))
    folder = tmp_path / "c-x"
    approx.save(folder, 1, "t")
    del approx  # no mapping of the files stays open
    path = folder / "vectors.npy"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "garbage-quantizers":
        (folder / "quantizers.faiss").write_bytes(b"garbage")
    else:
        (folder / "ids.txt").write_bytes(b"")
    assert FaissIndex.load(folder, 1, 1500, 128, "t") is None


def test_removal_leaves_no_vector_bytes_in_the_files(tmp_path: Path) -> None:
    vecs = _clustered(1500)
    approx, _ = _pair(vecs)
    folder = tmp_path / "c-x"
    approx.save(folder, 1, "t")
    needle = np.ascontiguousarray(vecs[42], "<f4").tobytes()
    assert needle in (folder / "vectors.npy").read_bytes()  # positive control
    approx.remove(["f00042"])
    # The mapped file is scrubbed at once (its CRC no longer matches: it is not loaded again) ...
    assert needle not in (folder / "vectors.npy").read_bytes()
    assert FaissIndex.load(folder, 1, 1499, 128, "t") is None
    approx.save(folder, 2, "t")  # ... and the next save holds no trace of it either
    for path in folder.iterdir():
        assert needle not in path.read_bytes() and b"f00042" not in path.read_bytes()
    loaded = FaissIndex.load(folder, 2, 1499, 128, "t")
    assert loaded is not None and "f00042" not in loaded


def test_concurrent_searches_read_only() -> None:
    """Like NumpyIndex, changes need the caller's lock; searches only read, so the scope's lock is the
    only serialisation needed, and searches from several threads agree with one thread's."""
    vecs = _clustered(2500)
    approx, _ = _pair(vecs)
    want = [approx.search(q, 10) for q in vecs[:40]]
    errors: list[str] = []

    def worker() -> None:
        for q, (ids, cos) in zip(vecs[:40], want, strict=True):
            got_ids, got_cos = approx.search(q, 10)
            if got_ids != ids or not np.array_equal(got_cos, cos):
                errors.append(got_ids[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- through the index cache: the kind chosen by size, rebuilt from the database ---------------------


def _face(v: FloatArray) -> Face:
    return Face(np.array([0, 0, 10, 10], np.float32), 0.9, embedding=v, embedder_id="e1")


def _add(repo: CollectionRepository, vecs: FloatArray) -> tuple[int, dict[str, FloatArray]]:
    with repo.write() as tx:
        c = tx.collection("eu-west-1/c")
        added = {
            s.face_id: v for s, v in tx.add_faces(c, "img", None, [_face(v) for v in vecs], (10, 10), NOW)
        }
        return tx.bump_generation(c.key), added


def test_auto_kind_switches_by_size_and_rebuilds_stale_files(tmp_path: Path) -> None:
    repo = CollectionRepository(Store.open(tmp_path))
    with repo.write() as tx:
        tx.add_collection("eu-west-1/c", "arn", NOW, "e1", {})
    kind = AutoIndexKind(VectorIndexSettings(faiss_above=1200, exact_below=500))
    cache = IndexCache(repo, kind=kind)
    vecs = _clustered(1600)
    _add(repo, vecs[:1000])

    def index() -> object:
        with repo.read() as tx:
            return cache.index(tx, tx.collection("eu-west-1/c"), 128)

    assert isinstance(index(), NumpyIndex)
    generation, added = _add(repo, vecs[1000:1600])
    cache.apply("eu-west-1/c", generation, add=added)  # crossed faiss_above: rebuilt at the next search
    current = index()
    assert isinstance(current, FaissIndex) and current.trained and len(current) == 1600
    folder = cache.folder("eu-west-1/c")
    assert (folder / "quantizers.faiss").is_file()
    cache = IndexCache(repo, kind=kind)  # a new process: loads the files
    assert isinstance(index(), FaissIndex)
    (folder / "ids.txt").write_bytes(b"damaged\n")
    cache = IndexCache(repo, kind=kind)
    rebuilt = index()
    assert isinstance(rebuilt, FaissIndex) and len(rebuilt) == 1600  # rebuilt from the database
    assert "damaged" not in (folder / "ids.txt").read_text()
    with repo.read() as tx:
        ids, matrix = tx.vectors("eu-west-1/c", 128)
    exact = NumpyIndex(128)
    exact.add(ids, matrix)
    _assert_same(rebuilt, exact, vecs[:20], 10)
