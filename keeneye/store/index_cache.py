"""The vector index of each collection, cached in memory and kept current with the database.

The database is the source of truth (keeneye/store/collections.py): every transaction that changes a
collection's faces advances its ``generation``. The cache keeps, per collection, an index and the
generation it reflects:

* :meth:`IndexCache.index` returns it when its generation is the database's, else loads it from its
  files (``<data_dir>/index/c-<key>/``, only if they are whole and of that generation and incarnation)
  or rebuilds it from the stored vectors, and writes the files again;
* :meth:`IndexCache.apply` applies a committed change (faces added or removed) to the loaded index when
  it is the next generation, and drops the index otherwise (another process wrote in between: the next
  search reloads it); every ``save_every`` changed faces the files are rewritten;
* a removal deletes the collection's index files at once, so no removed vector's bytes stay on disk
  (they are written again, without it, by the next save or load).

Not thread-safe: the caller serialises access and holds one lock across a commit and its
:meth:`IndexCache.apply`, so that no search sees the one without the other
(keeneye/service/faces/scope.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keeneye.core import regions
from keeneye.core.types import FloatArray
from keeneye.store.collections import CollectionRecord, CollectionRepository, CollectionSession
from keeneye.store.vectors import NumpyIndex, VectorIndex, VectorIndexKind


@dataclass
class _Loaded:
    index: VectorIndex
    generation: int
    changes_since_save: int = 0


class IndexCache:
    """Each collection's index, by store key.

    repository: where the collections are; save_every: index files are rewritten after this many
    changed faces (and by :meth:`save_changed`); kind: the index implementation.
    """

    def __init__(
        self, repository: CollectionRepository, *, save_every: int = 1000, kind: VectorIndexKind = NumpyIndex
    ) -> None:
        self._repository = repository
        self._kind = kind
        self.save_every = save_every
        self._loaded: dict[str, _Loaded] = {}

    def folder(self, key: str) -> Path:
        """The folder of a collection's index files. The prefix keeps ids such as ".." inside the index
        directory; "@" (in no id or region name) stands for the "/" of another region's key, so every
        collection has one flat folder."""
        return self._repository.index_dir / ("c-" + key.replace(regions.SEPARATOR, "@"))

    def index(self, tx: CollectionSession, collection: CollectionRecord, default_dim: int) -> VectorIndex:
        """The collection's index, current with ``collection.generation`` (read in ``tx``).

        default_dim: the vector length of an empty collection's index (the configured embedder's)."""
        loaded = self._loaded.get(collection.key)
        if loaded is not None and loaded.generation == collection.generation:
            return loaded.index
        count = tx.face_count(collection.key)
        dim = tx.vector_dim(collection.key) or default_dim
        folder = self.folder(collection.key)
        index = self._kind.load(folder, collection.generation, count, dim, collection.tag)
        if index is None:
            index = self._kind(dim, capacity=max(1024, count))
            ids, matrix = tx.vectors(collection.key, dim)
            if ids:
                index.add(ids, matrix)
            index.save(folder, collection.generation, collection.tag)
        self._loaded[collection.key] = _Loaded(index, collection.generation)
        return index

    def apply(
        self,
        key: str,
        generation: int,
        add: Mapping[str, FloatArray] | None = None,
        remove: Sequence[str] = (),
    ) -> None:
        """Apply a change committed at ``generation`` to the loaded index, or drop the index so the next
        search reloads it. A removal also deletes the index files at once (they hold the removed
        vectors); they are written again, without them, by the next save or load."""
        if remove:
            self.delete_files(key)
        loaded = self._loaded.get(key)
        if loaded is None:
            return
        if loaded.generation != generation - 1:
            del self._loaded[key]  # someone else wrote in between: reload lazily
            return
        if remove:
            loaded.index.remove(list(remove))
        if add:
            loaded.index.add(list(add), np.stack(list(add.values())))
        loaded.generation = generation
        loaded.changes_since_save += len(remove) + len(add or {})
        if not self._kind.suits(loaded.index):
            del self._loaded[key]  # its size now calls for the other kind: the next search rebuilds it
            return
        if loaded.changes_since_save >= self.save_every:
            self._save(key, loaded)

    def forget(self, key: str) -> None:
        """A deleted collection: its index leaves memory and its files the disk."""
        self._loaded.pop(key, None)
        self.delete_files(key)

    def delete_files(self, key: str) -> None:
        shutil.rmtree(self.folder(key), ignore_errors=True)

    def save_changed(self) -> None:
        """Write every index that changed since it was last written (the database already has it all)."""
        for key, loaded in self._loaded.items():
            if loaded.changes_since_save:
                self._save(key, loaded)

    def _save(self, key: str, loaded: _Loaded) -> None:
        with self._repository.read() as tx:
            collection = tx.find(key)
        if collection is None or collection.generation != loaded.generation:
            return  # the database moved on; the next load rebuilds
        loaded.index.save(self.folder(key), loaded.generation, collection.tag)
        loaded.changes_since_save = 0
