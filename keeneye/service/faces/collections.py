"""Face collections: one object for Rekognition's collection, face, user and search operations.

:class:`FaceCollections` is the facade the adapters (keeneye/aws/handlers.py, the native API), batch,
uploads, the CLI and the stream runtime call; each method hands over to one use-case module:

* keeneye/service/faces/catalog.py  collections, faces, tags, retention (:class:`FaceCatalog`, no face
  model) and IndexFaces (:class:`FaceIndexer`);
* keeneye/service/faces/users.py    CreateUser ... AssociateFaces, DisassociateFaces;
* keeneye/service/faces/search.py   SearchFaces(ByImage), SearchUsers(ByImage), search by vector;

over keeneye/store/collections.py (the SQL and the plain result types, re-exported here) and
keeneye/store/index_cache.py (each collection's vector index), shared through one
:class:`~keeneye.service.faces.scope.CollectionScope` per process.

Values are backend-neutral: pixel boxes plus the indexed image's size (the AWS layer turns them into
ratio BoundingBoxes), scores 0-1, Similarity 0-100 (the calibrated scale of
keeneye/analysis/similarity.py). Errors: NotFound (collection/face/user missing), AlreadyExists,
InvalidParameter (e.g. no face in the image, bad threshold, a foreign embedder), LimitExceeded,
InvalidImage/ImageTooLarge from decoding.

Storage and consistency: metadata and vectors live in the database, one transaction per write
operation, committed (durably) before the method returns; the in-memory vector index of each
collection is updated right after the commit while holding the same lock that searches take, so a
deleted face is never returned by a later search. Each index remembers the collection generation it
reflects and is reloaded when the database moved on (another process wrote), so it is never stale.

These methods do not write audit records: the adapter knows the caller's access key and writes
them with ``keeneye.service.governance.audit.AuditLog`` from the results returned here.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.quality_filter import QualityFilter, UnindexedReason, quality_reasons
from keeneye.config import ImageLimits, VectorIndexSettings
from keeneye.core import regions
from keeneye.core.budget import Budget
from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.core.types import Face, FloatArray, UInt8Image
from keeneye.service.faces.analysis import FaceService
from keeneye.service.faces.catalog import EmbeddedImage, FaceCatalog, FaceIndexer, IndexResult
from keeneye.service.faces.scope import DEFAULT_ACCOUNT, CollectionScope, configured_embedder
from keeneye.service.faces.search import FaceSearch, ImageSearchResult
from keeneye.service.faces.users import FaceUsers
from keeneye.store.collections import (
    CollectionInfo,
    FaceMatch,
    StoredFace,
    Unsuccessful,
    UserInfo,
    UserMatch,
    UserStatus,
)
from keeneye.store.db import Store
from keeneye.store.faiss_index import AutoIndexKind
from keeneye.store.paging import Page, decode_token, encode_token
from keeneye.store.tables import CollectionRow

__all__ = [
    "CollectionInfo",
    "EmbeddedImage",
    "FaceCollections",
    "FaceMatch",
    "ImageSearchResult",
    "IndexResult",
    "Page",
    "QualityFilter",
    "StoredFace",
    "Unsuccessful",
    "UserInfo",
    "UserMatch",
    "UserStatus",
    "decode_token",
    "encode_token",
    "quality_reasons",
]


class FaceCollections:
    """Collections, faces, users, search and tags over the store and the face pipeline.

    store: the database and data directory; analyzer: the configured face pipeline (its embedder
    binds new collections), None where only stored faces are handled (retention: no model is loaded,
    and what needs one fails as without an embedder); limits: image decoding limits; save_every: index
    files are rewritten after this many changed faces; budget: the server's pixels in flight, shared
    with its other analysing services (keeneye.core.budget); vector_index: how collections are
    searched (exact numpy, or faiss above a size: keeneye.store.faiss_index.AutoIndexKind).
    Thread-safe: model inference runs outside the lock, database writes + index updates and index
    searches inside it.
    """

    def __init__(
        self,
        store: Store,
        analyzer: FaceAnalyzer | None = None,
        limits: ImageLimits | None = None,
        region: str = regions.HOME_REGION,
        account: str = DEFAULT_ACCOUNT,
        save_every: int = 1000,
        budget: Budget | None = None,
        vector_index: VectorIndexSettings | None = None,
    ) -> None:
        self._store = store
        self._analyzer = analyzer
        self._images = None if analyzer is None else FaceService(analyzer, limits or ImageLimits(), budget)
        kind = AutoIndexKind(vector_index or VectorIndexSettings())
        scope = CollectionScope.open(
            store, region=region, account=account, save_every=save_every, index_kind=kind
        )
        self._bind(scope)

    def _bind(self, scope: CollectionScope) -> None:
        self._scope = scope
        self._catalog = FaceCatalog(scope)
        self._indexer = FaceIndexer(scope, self._catalog, self._images)
        self._users = FaceUsers(scope)
        self._search = FaceSearch(scope, self._images)

    @property
    def store(self) -> Store:
        """The store this service keeps collections in (other services of the server share it)."""
        return self._store

    @property
    def region(self) -> str:
        return self._scope.region

    @property
    def account(self) -> str:
        return self._scope.account

    @property
    def save_every(self) -> int:
        """Index files are rewritten after this many changed faces."""
        return self._scope.cache.save_every

    @save_every.setter
    def save_every(self, value: int) -> None:
        self._scope.cache.save_every = value

    @property
    def has_embedder(self) -> bool:
        return self._analyzer is not None and self._analyzer.embedder is not None

    @property
    def embedder_id(self) -> str:
        return configured_embedder(self._images)

    def in_region(self, region: str) -> FaceCollections:
        """This service as seen from ``region`` (the region a caller signed for): collection ids name
        that region's collections (keeneye.core.regions). The views share the store, lock and indexes."""
        scope = self._scope.in_region(region)
        if scope is self._scope:
            return self
        view = copy.copy(self)
        view._bind(scope)
        return view

    def key(self, collection_id: str) -> str:
        """The store key of ``collection_id`` in this view's region; a key already qualified with a
        region (``ap-southeast-2/demo``: only outside the AWS API, whose CollectionId cannot hold a
        ``/``) names that region's collection."""
        return self._scope.key(collection_id)

    def arn(self, collection_id: str) -> str:
        """The collection's ARN in this view's region (or the region of a qualified key); not
        validated, so that policies can be checked for ``*`` and for ids that do not exist."""
        return self._scope.arn(collection_id)

    def close(self) -> None:
        """Save every index that changed since it was last written (the database already has it all)."""
        with self._scope.lock:
            self._scope.cache.save_changed()

    # -- collections and faces (catalog.py) -----------------------------------------------------------
    def create_collection(self, collection_id: str, tags: dict[str, str] | None = None) -> CollectionInfo:
        """A new, empty collection bound to the configured embedder (its FaceModelVersion)."""
        self.key(collection_id)  # an invalid id is reported before a missing embedder
        return self._catalog.create_collection(collection_id, self.embedder_id, tags)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        return self._catalog.describe_collection(collection_id)

    def list_collections(
        self, max_results: int = 1000, next_token: str | None = None
    ) -> Page[CollectionInfo]:
        """Collections in id order; ``next_token`` continues after the last id returned."""
        return self._catalog.list_collections(max_results, next_token)

    def delete_collection(self, collection_id: str) -> None:
        """The collection, its faces, users and tags, then its index files."""
        self._catalog.delete_collection(collection_id)

    def index_faces(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = "AUTO",
        attributes: frozenset[str] = frozenset(),
    ) -> IndexResult:
        """IndexFaces: see :meth:`FaceIndexer.index_faces`."""
        return self._indexer.index_faces(
            collection_id, image, external_image_id, max_faces, quality_filter, attributes
        )

    def screen_faces(
        self, image: bytes | UInt8Image, quality_filter: QualityFilter = "AUTO"
    ) -> tuple[UInt8Image, list[Face], list[tuple[Face, list[UnindexedReason]]]]:
        """IndexFaces' checks without storing anything: see :meth:`FaceIndexer.screen`."""
        return self._indexer.screen(image, quality_filter)

    def embed_faces(self, pixels: UInt8Image, faces: list[Face]) -> None:
        """Embed faces :meth:`screen_faces` found in ``pixels`` (in place), to store them with
        :meth:`index_embedded_faces`."""
        self._indexer.embed(pixels, faces)

    def index_embedded_faces(
        self, collection_id: str, images: Sequence[EmbeddedImage]
    ) -> list[list[StoredFace]]:
        """Store faces detected and embedded elsewhere, in one transaction: see
        :meth:`FaceCatalog.store_embedded`."""
        return self._catalog.store_embedded(collection_id, images)

    def list_faces(
        self,
        collection_id: str,
        max_results: int = 1000,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[StoredFace]:
        """Faces in FaceId order, optionally only those of ``user_id`` and/or among ``face_ids``."""
        return self._catalog.list_faces(collection_id, max_results, next_token, user_id, face_ids)

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], list[Unsuccessful]]:
        """DeleteFaces: see :meth:`FaceCatalog.delete_faces`."""
        return self._catalog.delete_faces(collection_id, face_ids)

    def set_retention(self, collection_id: str, days: int | None) -> CollectionInfo:
        """Keep the collection's faces ``days`` days after they were indexed (None: until deleted)."""
        return self._catalog.set_retention(collection_id, days)

    def set_review_required(self, collection_id: str, required: bool) -> None:
        """Whether a stream processor on this collection holds each match's records until a person
        CONFIRMED it (keeneye/service/review/queue.py); applies from the processor's next start."""
        if not isinstance(required, bool):
            raise InvalidParameter(f"review_required must be true or false, got {required!r}")
        key = self._scope.key(collection_id)
        with self._store.transaction() as s:
            row = s.get(CollectionRow, key)
            if row is None:
                raise NotFound(f"The collection id: {regions.name_of(key)} does not exist")
            row.review_required = required

    def review_required(self, collection_id: str) -> bool:
        """See :meth:`set_review_required`; NotFound for a missing collection."""
        key = self._scope.key(collection_id)
        with self._store.sessions() as s:
            row = s.get(CollectionRow, key)
            if row is None:
                raise NotFound(f"The collection id: {regions.name_of(key)} does not exist")
            return bool(row.review_required)

    def expired_faces(self, now: datetime) -> dict[str, list[str]]:
        """FaceIds indexed longer ago than their collection's retention, by collection (id order)."""
        return self._catalog.expired_faces(now)

    def purge_faces(self, collection_id: str, face_ids: Sequence[str]) -> int:
        """Delete faces for retention (associated ones too): see :meth:`FaceCatalog.purge_faces`."""
        return self._catalog.purge_faces(collection_id, face_ids)

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self._catalog.tag_resource(arn, tags)

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        self._catalog.untag_resource(arn, keys)

    def list_tags(self, arn: str) -> dict[str, str]:
        return self._catalog.list_tags(arn)

    # -- search (search.py) -------------------------------------------------------------------------
    def search_faces(
        self, collection_id: str, face_id: str, threshold: float = 80.0, max_faces: int = 4096
    ) -> list[FaceMatch]:
        """Faces similar to a stored face (the face itself excluded), best first."""
        return self._search.search_faces(collection_id, face_id, threshold, max_faces)

    def search_faces_by_vector(
        self,
        collection_id: str,
        embedding: FloatArray,
        embedder_id: str,
        threshold: float = 80.0,
        max_faces: int = 4096,
    ) -> list[FaceMatch]:
        """Who an embedding computed elsewhere (a face track in a video or a stream, a batch item) is,
        best first: each user once at their best face's Similarity, and faces without a user;
        ``max_faces`` counts both."""
        return self._search.search_faces_by_vector(
            collection_id, embedding, embedder_id, threshold, max_faces
        )

    def search_faces_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_faces: int = 4096,
        quality_filter: QualityFilter = "NONE",
    ) -> ImageSearchResult:
        """Search the collection with the largest face of the image (InvalidParameter if none)."""
        return self._search.search_faces_by_image(collection_id, image, threshold, max_faces, quality_filter)

    def search_users(
        self,
        collection_id: str,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = 80.0,
        max_users: int = 5,
    ) -> list[UserMatch]:
        """Users similar to a user's faces (the user excluded) or to one stored face (itself excluded)."""
        return self._search.search_users(collection_id, user_id, face_id, threshold, max_users)

    def search_users_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_users: int = 5,
        quality_filter: QualityFilter = "NONE",
    ) -> tuple[ImageSearchResult, list[UserMatch]]:
        """Users matching the largest face of the image; ``unsearched`` lists the other faces."""
        return self._search.search_users_by_image(collection_id, image, threshold, max_users, quality_filter)

    # -- users (users.py) ---------------------------------------------------------------------------
    def create_user(self, collection_id: str, user_id: str) -> None:
        self._users.create_user(collection_id, user_id)

    def delete_user(self, collection_id: str, user_id: str) -> None:
        """Delete the user; its faces stay in the collection, disassociated (as Rekognition does)."""
        self._users.delete_user(collection_id, user_id)

    def list_users(
        self, collection_id: str, max_results: int = 500, next_token: str | None = None
    ) -> Page[UserInfo]:
        return self._users.list_users(collection_id, max_results, next_token)

    def user_face_count(self, collection_id: str, user_id: str) -> int | None:
        """How many faces the user has; None when the collection has no such user."""
        return self._users.user_face_count(collection_id, user_id)

    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], threshold: float = 75.0
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]:
        """AssociateFaces: see :meth:`FaceUsers.associate_faces`."""
        return self._users.associate_faces(collection_id, user_id, face_ids, threshold)

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]:
        """Remove faces from a user (they stay in the collection)."""
        return self._users.disassociate_faces(collection_id, user_id, face_ids)
