"""What the face-collection use cases of one process share, seen from one region.

One :class:`CollectionScope` per process holds the repository (keeneye/store/collections.py), the index
cache (keeneye/store/index_cache.py) and the one lock that spans a write's commit and its index update
(so no search sees the one without the other) and every index search. Views for other regions
(:meth:`CollectionScope.in_region`: the region a caller signed for) share all three; only the region, in
which collection ids are read, differs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from keeneye.core import regions
from keeneye.core.errors import InvalidParameter
from keeneye.service.faces.analysis import FaceService
from keeneye.store.collections import (
    CollectionRecord,
    CollectionRepository,
    CollectionSession,
    collection_arn,
    collection_key,
)
from keeneye.store.db import Store
from keeneye.store.index_cache import IndexCache
from keeneye.store.vectors import NumpyIndex, VectorIndexKind

DEFAULT_ACCOUNT = "000000000000"


def now() -> datetime:
    return datetime.now(UTC)


def configured_embedder(images: FaceService | None) -> str:
    """The id of the configured face embedder (the FaceModelVersion new collections are bound to);
    InvalidParameter when there is none (no face model is loaded, or no embedder among them)."""
    embedder = None if images is None else images.analyzer.embedder
    if embedder is None:
        raise InvalidParameter("no face embedder is configured")
    return embedder.embedder_id


@dataclass(frozen=True)
class CollectionScope:
    """The repository, index cache and lock of a process, in ``region`` of ``account``."""

    repository: CollectionRepository
    cache: IndexCache
    region: str = regions.HOME_REGION
    account: str = DEFAULT_ACCOUNT
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def open(
        cls,
        store: Store,
        *,
        region: str = regions.HOME_REGION,
        account: str = DEFAULT_ACCOUNT,
        save_every: int = 1000,
        index_kind: VectorIndexKind = NumpyIndex,
    ) -> CollectionScope:
        """A new scope over ``store`` (one per process: each holds its own index cache); index_kind: how
        each collection's vector index is made (keeneye.store.faiss_index.AutoIndexKind from settings)."""
        repository = CollectionRepository(store)
        cache = IndexCache(repository, save_every=save_every, kind=index_kind)
        return cls(repository, cache, region, account)

    def in_region(self, region: str) -> CollectionScope:
        """This scope as seen from ``region``: the same repository, cache and lock."""
        try:
            regions.check_region(region)
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
        return self if region == self.region else replace(self, region=region)

    def key(self, collection_id: str) -> str:
        """The store key of ``collection_id`` in this scope's region (see collection_key)."""
        return collection_key(self.region, collection_id)

    def arn(self, collection_id: str) -> str:
        """The collection's ARN in this scope's region (or the region of a qualified key)."""
        return collection_arn(self.region, self.account, collection_id)

    @contextmanager
    def write(self) -> Iterator[CollectionSession]:
        """One transaction under the lock, committed on exit."""
        with self.lock, self.repository.write() as tx:
            yield tx

    @staticmethod
    def check_embedder(collection: CollectionRecord, embedder_id: str | None) -> None:
        """Vectors of different embedders are never compared: InvalidParameter unless they match."""
        if embedder_id != collection.embedder_id:
            raise InvalidParameter(
                f"collection {regions.name_of(collection.key)} holds vectors of face model "
                f"{collection.embedder_id}; "
                f"the configured embedder is {embedder_id}: vectors of different models are never compared"
            )
