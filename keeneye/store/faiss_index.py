"""An approximate first stage (faiss IVF-PQ) with an exact re-rank, for collections of millions of faces.

:class:`FaissIndex` implements the :class:`~keeneye.store.vectors.VectorIndex` protocol in two stages:

1. **compact first stage**: a faiss ``IndexIVFPQFastScan`` (inner product) over the whole vector, each
   face kept as ``pq_bytes`` bytes of 4-bit product-quantisation codes (64 by default: 72x smaller than
   the 1152 float32 of the default embedder) in ~sqrt(N) inverted lists; a search scans the ``nprobe``
   nearest lists and keeps the ``rerank`` best approximate candidates (at least ``k``). 4-bit "fast
   scan" codes were chosen by measurement (docs/vector-index.md): at 100k faces they searched in
   0.4 ms where 8-bit IVF-PQ took 0.7 ms and encoded 4x slower (31 s per 100k faces on this machine);
2. **exact re-rank** of those candidates on the full float32 vectors, so the scores returned are the
   exact cosines, and the ids equal the exact scan's whenever the exact top ``k`` are among the
   candidates (measured by ``bench/vector_index.py``: recall@1 on LFW probes in a collection padded with
   1M other faces).

The full vectors are not held in RAM: after :meth:`FaissIndex.save` (and :meth:`FaissIndex.load`) they
are read from the saved ``vectors.npy`` through a memory map, so a search touches only the pages of its
candidates (the operating system's page cache keeps what is used; resident memory is the codes, the
lists and the ids). Vectors added since the last save stay in RAM until the next one.

Faces have a *slot* each: the faiss label, and the row of the full vectors. A removed face's slot
becomes a hole: its full vector is overwritten with zeros at once (in RAM, or in the mapped file, so
its bytes are gone from the disk too), its codes leave faiss, and it is written as an empty line in
``ids.txt`` and a zero row in ``vectors.npy``. Holes are dropped when the index is rebuilt from the
database (a new process, a generation gap, or :meth:`FaissIndex.compacted`). Once a face has been
removed, the saved faiss file holds only the trained quantisers, no codes (faiss's fast-scan lists may
keep a removed entry's codes in the padding of their last block), and the codes are computed again
from ``vectors.npy`` at load; an index without removals since it was trained or loaded saves its codes
too, and loads in seconds instead of a minute per million faces (docs/vector-index.md).

Below ``exact_below`` faces, or before enough faces have been added to train the quantisers, search is
an exact scan of the full vectors, like :class:`~keeneye.store.vectors.NumpyIndex`.

Persistence: ``meta.json`` (``"kind": "faiss"``, generation, count, dim, tag, slots, whether codes are
saved, CRC-32 of the other files), ``ids.txt``, ``vectors.npy`` and ``quantizers.faiss``, written like
NumpyIndex's (temp folder, fsync, rename); files that are missing, damaged or stale are discarded and
the index rebuilt from the database. Not thread-safe for changes, like NumpyIndex: the caller
serialises access (keeneye/service/faces/scope.py holds one lock across writes and searches); searches
only read.
"""

from __future__ import annotations

import json
import math
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from keeneye.config import VectorIndexSettings
from keeneye.core.types import FloatArray
from keeneye.store.files import private_dir, private_open
from keeneye.store.vectors import NumpyIndex, VectorIndex, _flush, publish

KIND = "faiss"
_CRC_CHUNK = 1 << 24  # bytes of the mapped vectors checked at a time (no copy of the whole file)


def _faiss() -> Any:
    """faiss, imported on first use (its import costs ~0.2 s; only large collections need it), on one
    OpenMP thread: on this project's busy 2-core machine, faiss's default thread pool made training on
    5k faces take 23 s instead of 2.4 s (threads spinning against other work), as OpenBLAS's pool did
    for numpy (keeneye/store/vectors.py). One search is one thread in faiss anyway."""
    import faiss

    faiss.omp_set_num_threads(1)
    return faiss


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` training faces: ~sqrt(n) rounded to a power of two, within [16, 4096].
    Fewer lists than the usual 4*sqrt(n) keep k-means training short on a small machine (docs)."""
    return int(min(4096, max(16, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))))


class FaissIndex:
    """IVF-PQ candidates re-ranked exactly on the full vectors (see the module docstring).

    dim: vector length; capacity: a size hint for the full vectors kept in RAM; settings: pq_bytes,
    nprobe, rerank, exact_below and train_size (keeneye.config.VectorIndexSettings).
    """

    def __init__(self, dim: int, capacity: int = 1024, settings: VectorIndexSettings | None = None) -> None:
        self.dim = dim
        self.settings = settings or VectorIndexSettings()
        self._ids: list[str | None] = []  # slot -> id (None: a hole)
        self._slot: dict[str, int] = {}
        self._mapped: np.memmap[Any, np.dtype[np.float32]] | None = None  # slots [0, len) from the file
        self._ram: FloatArray = np.zeros((max(1, capacity), dim), np.float32)  # lazily paged in
        self._ivf: Any = None  # PCA + IndexIVFPQFastScan (a faiss.IndexPreTransform) once trained
        self._trained_on = 0  # faces it was trained on
        self._clean = True  # no code was ever removed from the first stage (its lists hold no stale bytes)

    # -- the full vectors ---------------------------------------------------------------------------
    def _mapped_slots(self) -> int:
        return 0 if self._mapped is None else int(self._mapped.shape[0])

    def _put(self, start: int, vecs: FloatArray) -> None:
        """Write the full vectors of new slots [start, start + len(vecs)) (always past the mapped ones)."""
        offset = start - self._mapped_slots()
        need = offset + vecs.shape[0]
        if need > self._ram.shape[0]:
            cap = self._ram.shape[0]
            while cap < need:
                cap *= 2
            grown = np.zeros((cap, self.dim), np.float32)
            grown[:offset] = self._ram[:offset]
            self._ram = grown
        self._ram[offset:need] = vecs

    def _rows(self, slots: npt.NDArray[np.int64]) -> FloatArray:
        """The full (len(slots), D) vectors of ``slots`` (read in slot order: the mapped file's pages
        in order)."""
        out = np.empty((len(slots), self.dim), np.float32)
        split = self._mapped_slots()
        low = slots < split
        if low.any():
            assert self._mapped is not None
            out[low] = self._mapped[slots[low]]
        if not low.all():
            out[~low] = self._ram[slots[~low] - split]
        return out

    def _zero(self, slot: int) -> None:
        split = self._mapped_slots()
        if slot < split:
            assert self._mapped is not None
            self._mapped[slot] = 0.0
        else:
            self._ram[slot - split] = 0.0

    # -- the protocol -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._slot

    @property
    def trained(self) -> bool:
        return self._ivf is not None

    @property
    def slots(self) -> int:
        """Slots in use, holes included."""
        return len(self._ids)

    def add(self, ids: Sequence[str], vectors: FloatArray) -> None:
        vecs = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(-1, self.dim))
        if len(ids) != vecs.shape[0]:
            raise ValueError(f"{len(ids)} ids for {vecs.shape[0]} vectors")
        if len(set(ids)) != len(ids):
            raise ValueError("repeated ids")
        self.remove([i for i in ids if i in self._slot])
        start = len(self._ids)
        self._put(start, vecs)
        for offset, face_id in enumerate(ids):
            self._slot[face_id] = start + offset
            self._ids.append(face_id)
        labels = np.arange(start, start + len(ids), dtype=np.int64)
        if self._ivf is not None and len(self) < 4 * self._trained_on:
            self._ivf.add_with_ids(vecs, labels)
        elif len(self) >= max(self.settings.exact_below, 1):
            self.retrain()  # the first time, or grown 4x since: lists of ~sqrt(n) again

    def retrain(self) -> None:
        """Train the first stage again on the live faces and encode them all (as a rebuild would)."""
        self._ivf = None
        self._train()

    def _train(self) -> None:
        """Train the coarse quantiser and the PQ codebooks on a sample of the live vectors, then encode
        them all (in chunks, so no second copy of the full vectors is made)."""
        faiss = _faiss()
        live = self._live_slots()
        nlist = nlist_for(len(live))
        sample_n = min(len(live), max(self.settings.train_size, 32 * nlist))
        if sample_n < 1024:
            return  # too few faces to train: stay exact
        m = self.settings.pq_bytes * 2  # 4-bit codes: two sub-quantisers per byte
        pca = min(self.settings.pca_dims, self.dim)
        if pca % m:
            raise ValueError(f"pq_bytes x 2 = {m} must divide the PCA dimensions {pca}")
        rng = np.random.default_rng(0)
        sample = self._rows(np.sort(rng.choice(live, sample_n, replace=False)))
        index = faiss.index_factory(self.dim, f"PCAR{pca},IVF{nlist},PQ{m}x4fsr", faiss.METRIC_L2)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        # k-means on <= 32 x nlist points, 10 rounds: seconds, not minutes, on a small machine; small
        # collections train on what they have, without faiss's warning.
        ivf.cp.max_points_per_centroid = 32
        ivf.cp.min_points_per_centroid = 1
        ivf.cp.niter = 10
        ivf.pq.cp.min_points_per_centroid = 1
        ivf.pq.cp.niter = 10
        index.train(sample)
        self._ivf = index
        self._trained_on = len(live)
        self._clean = True
        self._encode(live)

    def _encode(self, slots: npt.NDArray[np.int64]) -> None:
        """Add the codes of ``slots`` to the trained first stage, reading their full vectors in chunks."""
        for lo in range(0, len(slots), 65536):
            chunk = slots[lo : lo + 65536]
            self._ivf.add_with_ids(self._rows(chunk), chunk)
        _faiss().extract_index_ivf(self._ivf).nprobe = self.settings.nprobe

    def _live_slots(self) -> npt.NDArray[np.int64]:
        return np.array([s for s, i in enumerate(self._ids) if i is not None], np.int64)

    def remove(self, ids: Sequence[str]) -> None:
        gone = []
        for face_id in ids:
            slot = self._slot.pop(face_id, None)
            if slot is None:
                continue
            self._ids[slot] = None
            self._zero(slot)
            gone.append(slot)
        if gone and self._ivf is not None:
            self._ivf.remove_ids(np.asarray(gone, np.int64))
            self._clean = False

    def _candidates(self, q: FloatArray, k: int) -> npt.NDArray[np.int64]:
        """Slots to score exactly: the IVF-PQ's best max(k, rerank), or every live slot."""
        if self._ivf is None or len(self) <= self.settings.exact_below:
            return self._live_slots()
        want = min(len(self), max(k, self.settings.rerank))
        _, labels = self._ivf.search(q.reshape(1, -1), want)
        found = labels[0]
        return np.sort(found[found >= 0])

    def search(self, query: FloatArray, k: int) -> tuple[list[str], FloatArray]:
        n = len(self)
        if n == 0 or k <= 0:
            return [], np.zeros((0,), np.float32)
        q = np.ascontiguousarray(np.asarray(query, np.float32).reshape(self.dim))
        if self._ivf is None or n <= self.settings.exact_below:
            scores, slots = self._exact_scores(q)
        else:
            slots = self._candidates(q, k)
            scores = self._rows(slots) @ q
        k = min(k, len(slots))
        top: npt.NDArray[np.intp] = (
            np.argpartition(-scores, k - 1)[:k] if k < len(slots) else np.arange(len(slots), dtype=np.intp)
        )
        top = top[np.lexsort((slots[top], -scores[top]))]  # ties: the earlier slot first
        cosines: FloatArray = np.clip(scores[top], -1.0, 1.0).astype(np.float32)
        return [self._ids[int(s)] or "" for s in slots[top]], cosines

    def _exact_scores(self, q: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """Exact cosines of every live slot (holes are zero rows, dropped here)."""
        split = self._mapped_slots()
        parts = []
        if self._mapped is not None:
            parts.append(np.asarray(self._mapped) @ q)
        parts.append(self._ram[: len(self._ids) - split] @ q)
        scores = np.concatenate(parts) if len(parts) > 1 else parts[0]
        live = np.array([i is not None for i in self._ids], bool)
        slots = np.flatnonzero(live).astype(np.int64)
        out: FloatArray = scores[slots].astype(np.float32)
        return out, slots

    def vectors_of(self, ids: Sequence[str]) -> FloatArray:
        slots = np.array([self._slot[i] for i in ids], np.int64)
        if not len(slots):
            return np.zeros((0, self.dim), np.float32)
        order = np.argsort(slots)
        out = np.empty((len(slots), self.dim), np.float32)
        out[order] = self._rows(slots[order])
        return out

    def compacted(self) -> FaissIndex:
        """A new index of the live faces without holes (quantisers trained again)."""
        index = FaissIndex(self.dim, len(self), self.settings)
        live = [i for i in self._ids if i is not None]
        if live:
            index.add(live, self.vectors_of(live))
        return index

    # -- persistence --------------------------------------------------------------------------------
    def save(self, folder: Path, generation: int, tag: str) -> None:
        """Write the index atomically (temp folder, fsync, rename; as NumpyIndex.save), then read the
        full vectors from the new ``vectors.npy`` through a memory map (RAM holds none of them)."""
        faiss = _faiss()
        private_dir(folder.parent)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        private_dir(tmp)
        slots = len(self._ids)
        ids_text = "".join(f"{i or ''}\n" for i in self._ids).encode()
        crc = zlib.crc32(ids_text)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        with private_open(tmp / "vectors.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {**header, "shape": (slots, self.dim)})
            for lo in range(0, slots, 65536):
                block = np.ascontiguousarray(
                    self._rows(np.arange(lo, min(slots, lo + 65536), dtype=np.int64))
                )
                f.write(block.data)
                crc = zlib.crc32(block.data, crc)
            _flush(f)
        with private_open(tmp / "ids.txt", "wb") as f:
            f.write(ids_text)
            _flush(f)
        blob = b""
        codes = self._ivf is not None and self._clean
        if codes:  # the codes too: loading them is much faster than encoding again (docs)
            blob = faiss.serialize_index(self._ivf).tobytes()
        elif self._ivf is not None:  # the trained quantisers only: a removal's codes may linger in lists
            empty = faiss.clone_index(self._ivf)
            empty.reset()
            blob = faiss.serialize_index(empty).tobytes()
        with private_open(tmp / "quantizers.faiss", "wb") as f:
            f.write(blob)
            _flush(f)
        meta = {
            "kind": KIND,
            "generation": generation,
            "count": len(self),
            "slots": slots,
            "dim": self.dim,
            "tag": tag,
            "codes": codes,
            "crc32": zlib.crc32(blob, crc),
        }
        publish(tmp, folder, meta)
        self._map(folder / "vectors.npy", slots)

    def _map(self, path: Path, slots: int) -> None:
        """Read the full vectors of slots [0, slots) from ``path`` (writable: removal zeroes rows)."""
        mapped = np.load(path, mmap_mode="r+", allow_pickle=False) if slots else None
        self._mapped = mapped
        self._ram = np.zeros((1024, self.dim), np.float32)

    @classmethod
    def load(
        cls,
        folder: Path,
        generation: int,
        count: int,
        dim: int,
        tag: str,
        settings: VectorIndexSettings | None = None,
    ) -> FaissIndex | None:
        """The saved index if its files are whole and match generation, count, dim and tag; else None."""
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if not isinstance(meta, dict) or (
                meta.get("kind"),
                meta.get("generation"),
                meta.get("count"),
                meta.get("dim"),
                meta.get("tag"),
            ) != (KIND, generation, count, dim, tag):
                return None
            slots = int(meta["slots"])
            ids_text = (folder / "ids.txt").read_bytes()
            lines = ids_text.decode().split("\n")
            mapped = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False) if slots else None
            blob = (folder / "quantizers.faiss").read_bytes()
        except (OSError, ValueError, EOFError, KeyError, TypeError):
            return None
        if len(lines) != slots + 1 or lines[-1] != "":
            return None
        ids = [i or None for i in lines[:-1]]
        live = [i for i in ids if i is not None]
        if len(live) != count or len(set(live)) != count:
            return None
        crc = zlib.crc32(ids_text)
        if mapped is not None:
            if mapped.shape != (slots, dim) or mapped.dtype != np.float32:
                return None
            crc = _crc_of_file(folder / "vectors.npy", int(mapped.offset), crc)
        if meta.get("crc32") != zlib.crc32(blob, crc):
            return None
        del mapped
        index = cls(dim, 1024, settings)
        index._ids = ids
        index._slot = {i: s for s, i in enumerate(ids) if i is not None}
        if blob:
            faiss = _faiss()
            index._ivf = faiss.deserialize_index(np.frombuffer(blob, np.uint8))
            index._trained_on = count
        index._map(folder / "vectors.npy", slots)
        if index._ivf is None:
            return index
        if meta.get("codes") is True:
            if index._ivf.ntotal != count:
                return None
            faiss.extract_index_ivf(index._ivf).nprobe = index.settings.nprobe
        else:
            index._encode(index._live_slots())
        return index


def _crc_of_file(path: Path, start: int, crc: int) -> int:
    """CRC-32 of ``path`` from byte ``start`` on, read in chunks (the pages go to the page cache, not
    into this process's mapping: ~1 GB/s, 4.6 s per million 1152-float faces)."""
    buf = bytearray(_CRC_CHUNK)
    view = memoryview(buf)
    with path.open("rb") as f:
        f.seek(start)
        while read := f.readinto(buf):
            crc = zlib.crc32(view[:read], crc)
    return crc


class AutoIndexKind:
    """The :class:`~keeneye.store.vectors.VectorIndexKind` the settings choose, per collection: exact
    :class:`NumpyIndex` below ``faiss_above`` faces, :class:`FaissIndex` from there (``kind="auto"``);
    always one of them with ``kind="numpy"`` / ``"faiss"``. Saved files of the other kind are not
    loaded (the index is rebuilt from the database in the chosen kind)."""

    def __init__(self, settings: VectorIndexSettings) -> None:
        self.settings = settings

    def uses_faiss(self, faces: int) -> bool:
        s = self.settings
        return s.kind == "faiss" or (s.kind == "auto" and faces >= s.faiss_above)

    def __call__(self, dim: int, capacity: int = 1024) -> VectorIndex:
        if self.uses_faiss(capacity):
            return FaissIndex(dim, capacity, self.settings)
        return NumpyIndex(dim, capacity)

    def load(self, folder: Path, generation: int, count: int, dim: int, tag: str) -> VectorIndex | None:
        if self.uses_faiss(count):
            return FaissIndex.load(folder, generation, count, dim, tag, self.settings)
        return NumpyIndex.load(folder, generation, count, dim, tag)

    def suits(self, index: VectorIndex) -> bool:
        """Whether ``index`` is of the kind this collection's size calls for now (a collection that grew
        past ``faiss_above`` or shrank below half of it is rebuilt in the other kind)."""
        if isinstance(index, FaissIndex):
            return self.settings.kind != "numpy" and (
                self.settings.kind == "faiss" or len(index) >= self.settings.faiss_above // 2
            )
        return not self.uses_faiss(len(index))
