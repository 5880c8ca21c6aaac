from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keeneye.store.vectors import NumpyIndex


def _unit(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), np.float32)


def test_search_is_exact_and_sorted() -> None:
    vecs = _unit(500)
    index = NumpyIndex(8, capacity=4)  # grows
    index.add([f"id{i}" for i in range(500)], vecs)
    ids, cos = index.search(vecs[42], 5)
    assert ids[0] == "id42" and cos[0] == pytest.approx(1.0, abs=1e-5)
    expected = np.argsort(-(vecs @ vecs[42]))[:5]
    assert ids == [f"id{i}" for i in expected]
    assert np.all(np.diff(cos) <= 0)


def test_remove_keeps_rows_consistent() -> None:
    vecs = _unit(10)
    index = NumpyIndex(8)
    index.add([str(i) for i in range(10)], vecs)
    index.remove(["0", "5", "missing"])
    assert len(index) == 8 and "0" not in index and "5" not in index
    ids, _ = index.search(vecs[9], 10)
    assert set(ids) == {str(i) for i in range(10)} - {"0", "5"}
    np.testing.assert_array_equal(index.vectors_of(["9"])[0], vecs[9])
    index.add(["9"], vecs[:1])  # replacing an id keeps one row
    assert len(index) == 8 and index.search(vecs[0], 1)[0] == ["9"]


def test_empty_and_k_larger_than_n() -> None:
    index = NumpyIndex(8)
    assert index.search(_unit(1)[0], 3)[0] == []
    index.add(["a"], _unit(1))
    assert index.search(_unit(1)[0], 3)[0] == ["a"]


def test_save_load_checks_generation(tmp_path: Path) -> None:
    vecs = _unit(20)
    index = NumpyIndex(8)
    index.add([str(i) for i in range(20)], vecs)
    folder = tmp_path / "c-x"
    index.save(folder, generation=3, tag="t")
    loaded = NumpyIndex.load(folder, 3, 20, 8, "t")
    assert loaded is not None and loaded.ids == index.ids
    np.testing.assert_array_equal(loaded.matrix, index.matrix)
    assert NumpyIndex.load(folder, 4, 20, 8, "t") is None  # stale generation
    assert NumpyIndex.load(folder, 3, 19, 8, "t") is None  # count differs
    assert NumpyIndex.load(folder, 3, 20, 8, "other") is None  # another incarnation
    assert NumpyIndex.load(tmp_path / "missing", 3, 20, 8, "t") is None
    (folder / "vectors.npy").write_bytes(b"garbage")
    assert NumpyIndex.load(folder, 3, 20, 8, "t") is None
