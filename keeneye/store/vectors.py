"""Vector search: a small ``VectorIndex`` protocol and an exact numpy implementation.

Why exact numpy search rather than faiss/hnswlib: it needs no extra wheel (faiss has none for every
platform we target), the results are exact (what the tests and Rekognition's semantics expect: a
face above the threshold is always found), and one (N, D) float32 matrix-vector product is fast
enough for the collections this service is for. Measured by ``bench/vector_search.py`` on this
project's 2 shared CPU cores, D = 128, one query, OpenBLAS on one thread (p50 / p95):

    faces    k=10              k=4096 (MaxFaces ceiling)   build from matrix   load files
    1k       0.03 / 0.04 ms    0.14 / 0.17 ms              < 1 ms              2 ms
    10k      0.33 / 0.40 ms    0.96 / 1.3 ms               3 ms                7 ms
    100k     2.4  / 2.7  ms    4.5  / 5.6 ms               38 ms               69 ms

(D = 512: 17 ms at 100k.) With OpenBLAS's default thread pool on a busy 2-core machine every
search paid ~8 ms of thread hand-off whatever the size, so the server should run with
``OPENBLAS_NUM_THREADS=1`` (ONNX Runtime has its own pool). Exact search stays well under the
face pipeline's own cost (~20 ms per image) up to ~100k faces of D = 128; for the default 1152-float
vectors and for millions of faces, keeneye/store/faiss_index.py implements the same protocol (an
IVF-PQ first stage re-ranked exactly; chosen by size, docs/vector-index.md).

One index per collection, kept in memory. It is persisted as ``vectors.npy`` + ``ids.txt`` +
``meta.json`` under ``<data_dir>/index/c-<collection_id>/``; ``meta.json`` records the collection's
generation (bumped in the database by every transaction that changes its faces) and the count. The
database is the source of truth: files that are missing, damaged (empty, truncated, or failing the
CRC-32 ``meta.json`` records), or whose generation/count differ from the database are discarded and
the index is rebuilt from the stored vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

from keeneye.core.types import FloatArray
from keeneye.store.files import private_dir, private_open


class VectorIndex(Protocol):
    """Inner-product search over L2-normalised vectors (inner product = cosine)."""

    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: Sequence[str], vectors: FloatArray) -> None:
        """Add (N, D) float32 vectors under ``ids`` (ids already present are replaced)."""

    def remove(self, ids: Sequence[str]) -> None:
        """Remove ``ids``; unknown ids are ignored."""

    def search(self, query: FloatArray, k: int) -> tuple[list[str], FloatArray]:
        """The ``k`` nearest ids to the (D,) query, best first, and their cosines (k,) float32."""

    def vectors_of(self, ids: Sequence[str]) -> FloatArray:
        """The stored (N, D) vectors of ``ids`` (KeyError for an unknown id)."""

    def __contains__(self, face_id: object) -> bool: ...

    def save(self, folder: Path, generation: int, tag: str) -> None:
        """Persist the index under ``folder`` with the collection ``generation`` and incarnation ``tag``
        it reflects (atomically: a crash leaves the previous files or the new ones)."""


class VectorIndexKind(Protocol):
    """How an index is made and read back: the class side of a :class:`VectorIndex` (``NumpyIndex``)."""

    def __call__(self, dim: int, capacity: int = ...) -> VectorIndex: ...

    def load(self, folder: Path, generation: int, count: int, dim: int, tag: str) -> VectorIndex | None:
        """The index saved under ``folder`` if its files are whole and match generation, count, dim and
        tag; else None (the caller rebuilds it from the database)."""

    def suits(self, index: VectorIndex) -> bool:
        """Whether ``index`` is still of the kind its size calls for (else the cache rebuilds it)."""


class NumpyIndex:
    """Exact search over a contiguous (capacity, D) float32 matrix; rows [0, n) are live.

    Removal moves the last row into the hole, so the live rows stay contiguous and a search is one
    matrix-vector product plus a partial sort. Not thread-safe: the caller serialises access.
    """

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._matrix: FloatArray = np.zeros((max(1, capacity), dim), np.float32)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    @property
    def matrix(self) -> FloatArray:
        """The live (N, D) rows (a view; do not modify)."""
        return self._matrix[: len(self._ids)]

    def _reserve(self, n: int) -> None:
        if n <= self._matrix.shape[0]:
            return
        cap = self._matrix.shape[0]
        while cap < n:
            cap *= 2
        grown = np.zeros((cap, self.dim), np.float32)
        grown[: len(self._ids)] = self.matrix
        self._matrix = grown

    def add(self, ids: Sequence[str], vectors: FloatArray) -> None:
        vecs = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        if len(ids) != vecs.shape[0]:
            raise ValueError(f"{len(ids)} ids for {vecs.shape[0]} vectors")
        self.remove([i for i in ids if i in self._row])
        start = len(self._ids)
        self._reserve(start + len(ids))
        self._matrix[start : start + len(ids)] = vecs
        for offset, face_id in enumerate(ids):
            self._row[face_id] = start + offset
            self._ids.append(face_id)

    def remove(self, ids: Sequence[str]) -> None:
        for face_id in ids:
            row = self._row.pop(face_id, None)
            if row is None:
                continue
            last = len(self._ids) - 1
            if row != last:
                moved = self._ids[last]
                self._matrix[row] = self._matrix[last]
                self._ids[row] = moved
                self._row[moved] = row
            self._matrix[last] = 0.0  # no copy of a removed vector stays in the spare capacity
            self._ids.pop()

    def search(self, query: FloatArray, k: int) -> tuple[list[str], FloatArray]:
        n = len(self._ids)
        if n == 0 or k <= 0:
            return [], np.zeros((0,), np.float32)
        q = np.asarray(query, np.float32).reshape(self.dim)
        scores: FloatArray = self.matrix @ q
        k = min(k, n)
        top: npt.NDArray[np.intp] = (
            np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n, dtype=np.intp)
        )
        top = top[np.argsort(-scores[top], kind="stable")]
        cosines: FloatArray = np.clip(scores[top], -1.0, 1.0).astype(np.float32)
        return [self._ids[i] for i in top], cosines

    def vectors_of(self, ids: Sequence[str]) -> FloatArray:
        rows = [self._row[i] for i in ids]
        out: FloatArray = self._matrix[rows].copy() if rows else np.zeros((0, self.dim), np.float32)
        return out

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._row

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path, generation: int, tag: str) -> None:
        """Write the index atomically (temp folder then rename) with its generation and ``tag``.

        ``tag`` identifies the collection incarnation (e.g. its creation time), so files left over
        from a deleted collection of the same name are never mistaken for the new one's.

        Crash safety: every file is flushed to disk (fsync) before the folder is renamed into place,
        and the parent folder after, so a crash or power cut leaves either the previous files or
        the complete new ones. Without the fsync, a filesystem may persist the rename before the
        data, and the folder comes back after a power cut with empty or zero-filled files.
        ``meta.json`` also records a CRC-32 of the vectors and ids, checked by :meth:`load`.
        """
        private_dir(folder.parent)  # face vectors: 0700 folders, 0600 files (keeneye.store.files)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        private_dir(tmp)
        matrix = np.ascontiguousarray(self.matrix)
        ids_text = "".join(f"{i}\n" for i in self._ids).encode()
        with private_open(tmp / "vectors.npy", "wb") as f:
            np.save(f, matrix)
            _flush(f)
        with private_open(tmp / "ids.txt", "wb") as f:
            f.write(ids_text)
            _flush(f)
        meta = {
            "generation": generation,
            "count": len(self._ids),
            "dim": self.dim,
            "tag": tag,
            "crc32": _crc32(matrix, ids_text),
        }
        publish(tmp, folder, meta)

    @staticmethod
    def suits(index: VectorIndex) -> bool:
        """Always: one kind for every size (see keeneye.store.faiss_index.AutoIndexKind for a choice)."""
        return True

    @classmethod
    def load(cls, folder: Path, generation: int, count: int, dim: int, tag: str) -> NumpyIndex | None:
        """The saved index if its files exist, are whole and match generation, count, dim and tag;
        else None (the caller rebuilds from the database)."""
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if not isinstance(meta, dict) or (
                meta.get("generation"),
                meta.get("count"),
                meta.get("dim"),
                meta.get("tag"),
            ) != (generation, count, dim, tag):
                return None
            matrix = np.load(folder / "vectors.npy", allow_pickle=False)
            ids_text = (folder / "ids.txt").read_bytes()
            ids = ids_text.decode().splitlines()
        except (OSError, ValueError, EOFError):
            # Missing, empty, truncated or garbled files (np.load raises EOFError on an empty file).
            return None
        if matrix.shape != (count, dim) or len(ids) != count or matrix.dtype != np.float32:
            return None
        if meta.get("crc32") != _crc32(np.ascontiguousarray(matrix), ids_text):
            return None  # right shape, wrong bytes (e.g. zero-filled after a power cut)
        index = cls(dim, capacity=max(1024, count))
        index.add(ids, matrix)
        if len(index) != count:
            return None  # repeated ids
        return index


def publish(tmp: Path, folder: Path, meta: dict[str, Any]) -> None:
    """Finish a saved index: write ``meta.json`` (last: a folder without it is never loaded) into the
    complete ``tmp`` folder, then swap it in for ``folder`` atomically (the old one moved aside and
    deleted), syncing what a crash could otherwise lose. Shared by every index kind's ``save``."""
    with private_open(tmp / "meta.json", "w") as f:
        f.write(json.dumps(meta))
        _flush(f)
    _fsync_dir(tmp)
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def _crc32(matrix: FloatArray, ids_text: bytes) -> int:
    """CRC-32 of the vectors' bytes then the ids file (about 1 GB/s: 40 ms for 100k x 128 floats)."""
    data = matrix.data.cast("B") if matrix.size else b""  # an empty view cannot be cast
    return zlib.crc32(ids_text, zlib.crc32(data))


def _flush(f: IO[Any]) -> None:
    f.flush()
    os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Persist a folder's entries (new files, a rename). A no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the files themselves are synced
    finally:
        os.close(fd)
