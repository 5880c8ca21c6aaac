"""Face collections: the use cases behind Rekognition's collection, face, user and search operations.

Values are backend-neutral: pixel boxes plus the indexed image's size (the AWS layer turns them into
ratio BoundingBoxes), scores 0-1, Similarity 0-100 (the calibrated scale of
keeneye/analysis/similarity.py). Errors: NotFound (collection/face/user missing), AlreadyExists,
InvalidParameter (e.g. no face in the image, bad threshold, a foreign embedder), LimitExceeded,
InvalidImage/ImageTooLarge from decoding.

Storage and consistency: metadata and vectors live in the database (keeneye/store), one transaction
per write operation, committed (durably) before the method returns; the in-memory vector index of
each collection is updated right after the commit while holding the same lock that searches take, so
a deleted face is never returned by a later search. Each index remembers the collection generation it
reflects and is reloaded when the database moved on (another process wrote), so it is never stale.

These methods do not write audit records: the adapter knows the caller's access key and writes
them with ``keeneye.service.governance.audit.AuditLog`` from the results returned here.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, Literal, TypeVar

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.quality_filter import QualityFilter as QualityFilter  # re-exported
from keeneye.analysis.quality_filter import UnindexedReason
from keeneye.analysis.quality_filter import quality_reasons as quality_reasons  # re-exported
from keeneye.analysis.similarity import calibration_for
from keeneye.config import ImageLimits
from keeneye.core import regions
from keeneye.core.errors import (
    AlreadyExists,
    InvalidPaginationToken,
    InvalidParameter,
    LimitExceeded,
    NoFaceFound,
    NotFound,
)
from keeneye.core.types import Face, FloatArray, UInt8Image
from keeneye.service.faces.analysis import ATTRIBUTE_KEYS, FaceService
from keeneye.store.db import Store
from keeneye.store.tables import CollectionRow, FaceRow, TagRow, UserRow
from keeneye.store.vectors import NumpyIndex

T = TypeVar("T")


UserStatus = Literal["ACTIVE", "UPDATING", "CREATING", "CREATED"]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is opaque and None on the last page."""

    items: list[T]
    next_token: str | None = None


@dataclass(frozen=True)
class CollectionInfo:
    collection_id: str
    arn: str
    created_at: datetime
    face_count: int
    user_count: int
    face_model_version: str  # the embedder id the collection's vectors come from
    retention_days: int | None = (
        None  # faces older than this are purged (keeneye/service/governance/retention.py)
    )
    key: str = ""  # the store key: collection_id, or REGION/collection_id outside us-east-1


@dataclass(frozen=True)
class StoredFace:
    """A face kept in a collection: metadata and vector, never the image."""

    face_id: str  # UUID
    collection_id: str
    image_id: str  # UUID shared by all faces indexed from one image
    external_image_id: str | None
    xyxy: tuple[float, float, float, float]  # pixels of the indexed image
    image_width: int
    image_height: int
    score: float  # detector score 0-1
    indexed_at: datetime
    embedder_id: str
    user_id: str | None = None


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    status: UserStatus


@dataclass
class IndexResult:
    image_width: int
    image_height: int
    indexed: list[tuple[StoredFace, Face]] = field(default_factory=list)  # Face carries the FaceDetail data
    unindexed: list[tuple[Face, list[UnindexedReason]]] = field(default_factory=list)
    face_model_version: str = ""


@dataclass(frozen=True)
class EmbeddedImage:
    """An image's faces, already detected, filtered and embedded, to store with
    :meth:`FaceCollections.index_embedded_faces`. image_id: a UUID the caller chooses (a batch job
    derives it from the job and the input, so a replayed batch is recognised); width/height: pixels."""

    image_id: str
    width: int
    height: int
    faces: list[Face]
    external_image_id: str | None = None


@dataclass
class FaceMatch:
    face: StoredFace
    similarity: float  # 0-100


@dataclass
class ImageSearchResult:
    searched: Face  # the largest face of the image, the one searched
    image_width: int
    image_height: int
    matches: list[FaceMatch] = field(default_factory=list)
    unsearched: list[Face] = field(default_factory=list)  # other faces (SearchUsersByImage reports them)
    face_model_version: str = ""


@dataclass
class UserMatch:
    user: UserInfo
    similarity: float  # 0-100


@dataclass
class Unsuccessful:
    face_id: str
    user_id: str | None
    reasons: list[str]
    confidence: float | None = None  # AssociateFaces: similarity to the user when below threshold


# -- limits and validation (botocore's service-2.json) ----------------------------------------------
MAX_LIST_COLLECTIONS = 4096
MAX_LIST_FACES = 4096
MAX_LIST_USERS = 500
DEFAULT_PAGE = 1000
MAX_SEARCH_FACES = 4096
MAX_SEARCH_USERS = 500
MAX_FACES_PER_USER = 100  # Rekognition's limit of faces associated with one user
MAX_ASSOCIATE = 100  # UserFaceIdList max
MAX_DELETE = 4096  # FaceIdList max
MAX_TAGS = 50
MAX_RETENTION_DAYS = 36_500
MAX_KEY = 255  # the store key (REGION/CollectionId outside us-east-1) fits the 255-character columns
PURGE_CHUNK = 500  # faces deleted per transaction by a retention purge

_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
_USER_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
_EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
_FACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TAG_KEY = re.compile(r"^(?!aws:)[\w\s.:/=+\-@]{1,128}$", re.UNICODE)
_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$", re.UNICODE)


def _check(pattern: re.Pattern[str], value: str, name: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidParameter(f"{name} {value!r} is not valid (must match {pattern.pattern})")
    return value


def _check_range(value: float, low: float, high: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def _page_size(max_results: int, limit: int) -> int:
    """0 means the default page (PageSize allows 0); anything else must be within 1..limit."""
    if max_results == 0:
        return min(DEFAULT_PAGE, limit)
    _check_range(max_results, 1, limit, "MaxResults")
    return max_results


# -- pagination tokens ------------------------------------------------------------------------------
# A token is base64url(JSON {"v": 1, "l": listing, "k": last key returned}). Listings are keyset
# paginated on their primary key (collection id, face id, user id), so a token stays valid and no
# item is repeated or skipped when items are inserted or deleted between pages (new items whose key
# sorts before the cursor are simply not in this pass, as with any snapshot-free listing).


def encode_token(listing: str, last_key: str) -> str:
    raw = json.dumps({"v": 1, "l": listing, "k": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, listing: str) -> str | None:
    if token is None or token == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPaginationToken("NextToken is not a valid pagination token") from exc
    if not isinstance(data, dict) or data.get("v") != 1 or data.get("l") != listing:
        raise InvalidPaginationToken("NextToken is not a valid pagination token for this listing")
    key = data.get("k")
    if not isinstance(key, str):
        raise InvalidPaginationToken("NextToken is not a valid pagination token")
    return key


# -- conversions ------------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


def _new_face_row(
    collection: CollectionRow,
    image_id: str,
    external_image_id: str | None,
    face: Face,
    width: int,
    height: int,
    now: datetime,
) -> tuple[FaceRow, FloatArray]:
    """A new FaceRow for an embedded face (box in pixels of a ``width`` x ``height`` image), and its
    vector as float32 for the search index."""
    assert face.embedding is not None
    vec = np.ascontiguousarray(face.embedding, dtype="<f4")
    x1, y1, x2, y2 = (float(v) for v in face.xyxy)
    face_row = FaceRow(
        face_id=str(uuid.uuid4()),
        collection_id=collection.collection_id,
        image_id=image_id,
        external_image_id=external_image_id,
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2,
        image_width=width,
        image_height=height,
        score=float(face.score),
        indexed_at=now,
        embedder_id=collection.embedder_id,
        user_id=None,
        vector=vec.tobytes(),
    )
    return face_row, vec.astype(np.float32)


def _stored(row: FaceRow) -> StoredFace:
    return StoredFace(
        face_id=row.face_id,
        collection_id=row.collection_id,
        image_id=row.image_id,
        external_image_id=row.external_image_id,
        xyxy=(row.x1, row.y1, row.x2, row.y2),
        image_width=row.image_width,
        image_height=row.image_height,
        score=row.score,
        indexed_at=row.indexed_at,
        embedder_id=row.embedder_id,
        user_id=row.user_id,
    )


def _vector(row: FaceRow) -> FloatArray:
    return np.frombuffer(row.vector, dtype="<f4").astype(np.float32)


def _status(face_count: int) -> UserStatus:
    return "ACTIVE" if face_count else "CREATED"


@dataclass
class _LoadedIndex:
    index: NumpyIndex
    generation: int
    changes_since_save: int = 0


class FaceCollections:
    """Collections, faces, users, search and tags over the store and the face pipeline.

    store: the database and data directory; analyzer: the configured face pipeline (its embedder
    binds new collections); limits: image decoding limits. Thread-safe: model inference runs
    outside the lock, database writes + index updates and index searches inside it.
    """

    def __init__(
        self,
        store: Store,
        analyzer: FaceAnalyzer,
        limits: ImageLimits | None = None,
        region: str = regions.HOME_REGION,
        account: str = "000000000000",
        save_every: int = 1000,
    ) -> None:
        self._store = store
        self._analyzer = analyzer
        self._images = FaceService(analyzer, limits or ImageLimits())
        self.region = region
        self.account = account
        self.save_every = save_every  # index files are rewritten after this many changed faces
        self._lock = threading.RLock()
        self._indexes: dict[str, _LoadedIndex] = {}

    @property
    def store(self) -> Store:
        """The store this service keeps collections in (other services of the server share it)."""
        return self._store

    @property
    def has_embedder(self) -> bool:
        return self._analyzer.embedder is not None

    @property
    def embedder_id(self) -> str:
        if self._analyzer.embedder is None:
            raise InvalidParameter("no face embedder is configured")
        return self._analyzer.embedder.embedder_id

    def in_region(self, region: str) -> FaceCollections:
        """This service as seen from ``region`` (the region a caller signed for): collection ids name
        that region's collections (keeneye.core.regions). The views share the store, lock and indexes."""
        try:
            regions.check_region(region)
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
        if region == self.region:
            return self
        view = copy.copy(self)
        view.region = region
        return view

    def key(self, collection_id: str) -> str:
        """The store key of ``collection_id`` in this view's region; a key already qualified with a
        region (``ap-southeast-2/demo``: only outside the AWS API, whose CollectionId cannot hold a
        ``/``) names that region's collection."""
        region, name = self.region, collection_id
        if regions.SEPARATOR in collection_id:
            region, name = collection_id.split(regions.SEPARATOR, 1)
            if not regions.is_region(region):
                raise InvalidParameter(f"{collection_id[:80]!r} is not a collection id or REGION/ID")
        _check(_COLLECTION_ID, name, "CollectionId")
        key = regions.scoped_key(region, name)
        if len(key) > MAX_KEY:
            raise InvalidParameter(
                f"CollectionId is too long: in region {region} keeneye keeps collection ids of up to "
                f"{MAX_KEY - len(region) - 1} characters"
            )
        return key

    def arn(self, collection_id: str) -> str:
        """The collection's ARN in this view's region (or the region of a qualified key); not
        validated, so that policies can be checked for ``*`` and for ids that do not exist."""
        region, name = self.region, collection_id
        head, sep, tail = collection_id.partition(regions.SEPARATOR)
        if sep and regions.is_region(head):
            region, name = head, tail
        return f"arn:aws:rekognition:{region}:{self.account}:collection/{name}"

    def close(self) -> None:
        """Save every index that changed since it was last written (the database already has it all)."""
        with self._lock:
            for collection_id, loaded in self._indexes.items():
                if loaded.changes_since_save:
                    self._save_index(collection_id, loaded)

    # -- helpers --------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._lock, self._store.transaction() as session:
            yield session

    def _collection(self, session: Session, key: str) -> CollectionRow:
        """The row of a store key (see :meth:`key`), or NotFound naming the collection as its caller
        knows it."""
        row = session.get(CollectionRow, key)
        if row is None:
            raise NotFound(f"The collection id: {regions.name_of(key)} does not exist")
        return row

    def _check_embedder(self, row: CollectionRow, embedder_id: str | None) -> None:
        if embedder_id != row.embedder_id:
            raise InvalidParameter(
                f"collection {regions.name_of(row.collection_id)} holds vectors of face model "
                f"{row.embedder_id}; "
                f"the configured embedder is {embedder_id}: vectors of different models are never compared"
            )

    def _bump(self, session: Session, collection_id: str) -> int:
        """Advance the collection's generation in this transaction (a SQL increment, safe across
        processes) and return the new value."""
        session.execute(
            update(CollectionRow)
            .where(CollectionRow.collection_id == collection_id)
            .values(generation=CollectionRow.generation + 1)
        )
        gen = session.scalar(
            select(CollectionRow.generation).where(CollectionRow.collection_id == collection_id)
        )
        assert gen is not None
        return gen

    def _index_folder(self, collection_id: str) -> str:
        # The prefix keeps ids such as ".." inside the index directory; "@" (in no id or region name)
        # stands for the "/" of another region's key, so every collection has one flat folder.
        return "c-" + collection_id.replace(regions.SEPARATOR, "@")

    def _tag(self, row: CollectionRow) -> str:
        return row.created_at.isoformat()

    def _save_index(self, collection_id: str, loaded: _LoadedIndex) -> None:
        with self._store.sessions() as session:
            row = session.get(CollectionRow, collection_id)
        if row is None or row.generation != loaded.generation:
            return  # the database moved on; the next load rebuilds
        loaded.index.save(
            self._store.index_dir / self._index_folder(collection_id), loaded.generation, self._tag(row)
        )
        loaded.changes_since_save = 0

    def _index(self, session: Session, row: CollectionRow) -> NumpyIndex:
        """The collection's index, current with ``row.generation`` (caller holds the lock)."""
        loaded = self._indexes.get(row.collection_id)
        if loaded is not None and loaded.generation == row.generation:
            return loaded.index
        count = session.scalar(
            select(func.count()).select_from(FaceRow).where(FaceRow.collection_id == row.collection_id)
        )
        assert count is not None
        dim = self._dim(session, row)
        folder = self._store.index_dir / self._index_folder(row.collection_id)
        index = NumpyIndex.load(folder, row.generation, count, dim, self._tag(row))
        if index is None:
            index = NumpyIndex(dim, capacity=max(1024, count))
            ids: list[str] = []
            chunks: list[bytes] = []
            stmt = (
                select(FaceRow.face_id, FaceRow.vector)
                .where(FaceRow.collection_id == row.collection_id)
                .execution_options(yield_per=10_000)
            )
            for face_id, blob in session.execute(stmt):
                ids.append(face_id)
                chunks.append(blob)
            if ids:
                index.add(ids, np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(ids), dim))
            index.save(folder, row.generation, self._tag(row))
        self._indexes[row.collection_id] = _LoadedIndex(index, row.generation)
        return index

    def _dim(self, session: Session, row: CollectionRow) -> int:
        blob = session.scalar(
            select(FaceRow.vector).where(FaceRow.collection_id == row.collection_id).limit(1)
        )
        if blob is not None:
            return len(blob) // 4
        embedder = self._analyzer.embedder
        return embedder.dim if embedder is not None else 0

    def _after_commit(
        self,
        collection_id: str,
        generation: int,
        add: dict[str, FloatArray] | None = None,
        remove: Sequence[str] = (),
    ) -> None:
        """Apply a committed change to the loaded index, or drop it so the next search reloads it.

        A removal also deletes the persisted index files at once (they hold the removed vectors);
        they are written again, without them, by the next save (``save_every``, ``close``) or load.
        """
        if remove:
            shutil.rmtree(self._store.index_dir / self._index_folder(collection_id), ignore_errors=True)
        loaded = self._indexes.get(collection_id)
        if loaded is None:
            return
        if loaded.generation != generation - 1:
            del self._indexes[collection_id]  # someone else wrote in between: reload lazily
            return
        if remove:
            loaded.index.remove(list(remove))
        if add:
            loaded.index.add(list(add), np.stack(list(add.values())))
        loaded.generation = generation
        loaded.changes_since_save += len(remove) + len(add or {})
        if loaded.changes_since_save >= self.save_every:
            self._save_index(collection_id, loaded)

    def _info(self, session: Session, row: CollectionRow) -> CollectionInfo:
        faces = session.scalar(
            select(func.count()).select_from(FaceRow).where(FaceRow.collection_id == row.collection_id)
        )
        users = session.scalar(
            select(func.count()).select_from(UserRow).where(UserRow.collection_id == row.collection_id)
        )
        return CollectionInfo(
            collection_id=regions.name_of(row.collection_id),
            arn=row.arn,
            created_at=row.created_at,
            face_count=int(faces or 0),
            user_count=int(users or 0),
            face_model_version=row.embedder_id,
            retention_days=row.retention_days,
            key=row.collection_id,
        )

    # -- collections ------------------------------------------------------------------------
    def create_collection(self, collection_id: str, tags: dict[str, str] | None = None) -> CollectionInfo:
        """A new, empty collection bound to the configured embedder (its FaceModelVersion)."""
        collection_id = self.key(collection_id)
        embedder_id = self.embedder_id
        _check_tags(tags or {})
        with self._write() as session:
            if session.get(CollectionRow, collection_id) is not None:
                raise AlreadyExists(f"The collection id: {regions.name_of(collection_id)} already exists")
            row = CollectionRow(
                collection_id=collection_id,
                arn=self.arn(collection_id),
                created_at=_now(),
                embedder_id=embedder_id,
                generation=0,
            )
            session.add(row)
            for key, value in (tags or {}).items():
                session.add(TagRow(resource_arn=row.arn, key=key, value=value))
            session.flush()
            info = self._info(session, row)
        # A collection of the same name may have left index files behind (deleted while the process died).
        shutil.rmtree(self._store.index_dir / self._index_folder(collection_id), ignore_errors=True)
        return info

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        collection_id = self.key(collection_id)
        with self._store.sessions() as session:
            return self._info(session, self._collection(session, collection_id))

    def list_collections(
        self, max_results: int = 1000, next_token: str | None = None
    ) -> Page[CollectionInfo]:
        """Collections in id order; ``next_token`` continues after the last id returned."""
        size = _page_size(max_results, MAX_LIST_COLLECTIONS)
        after = decode_token(next_token, "collections")
        with self._store.sessions() as session:
            stmt = select(CollectionRow).order_by(CollectionRow.collection_id).limit(size + 1)
            if self.region == regions.HOME_REGION:
                stmt = stmt.where(~CollectionRow.collection_id.contains(regions.SEPARATOR, autoescape=True))
            else:
                prefix = self.region + regions.SEPARATOR
                stmt = stmt.where(CollectionRow.collection_id.startswith(prefix, autoescape=True))
            if after is not None:
                stmt = stmt.where(CollectionRow.collection_id > after)
            rows = list(session.scalars(stmt))
            items = [self._info(session, r) for r in rows[:size]]
        token = encode_token("collections", items[-1].key) if len(rows) > size else None
        return Page(items, token)

    def delete_collection(self, collection_id: str) -> None:
        """The collection, its faces, users and tags, then its index files."""
        collection_id = self.key(collection_id)
        with self._write() as session:
            row = self._collection(session, collection_id)
            session.execute(delete(FaceRow).where(FaceRow.collection_id == collection_id))
            session.execute(delete(UserRow).where(UserRow.collection_id == collection_id))
            session.execute(delete(TagRow).where(TagRow.resource_arn == row.arn))
            session.delete(row)
        with self._lock:
            self._indexes.pop(collection_id, None)
            shutil.rmtree(self._store.index_dir / self._index_folder(collection_id), ignore_errors=True)
        self._store.scrub()

    # -- faces ------------------------------------------------------------------------------
    def index_faces(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = "AUTO",
        attributes: frozenset[str] = frozenset(),
    ) -> IndexResult:
        """Detect all faces (largest first), drop those below the quality bar, keep the largest
        ``max_faces`` (the rest: EXCEEDS_MAX_FACES), embed and store them in one transaction.

        attributes: Rekognition attribute names beyond DEFAULT (e.g. AGE_RANGE, EMOTIONS) to fill
        in the returned ``Face`` objects (they are not stored, like Rekognition).
        """
        collection_id = self.key(collection_id)
        if external_image_id is not None:
            _check(_EXTERNAL_IMAGE_ID, external_image_id, "ExternalImageId")
        if max_faces is not None:
            _check_range(max_faces, 1, float("inf"), "MaxFaces")
        quality_reasons(Face(np.zeros(4, np.float32), 1.0), quality_filter)  # validates the name
        with self._store.sessions() as session:
            self._check_embedder(self._collection(session, collection_id), self.embedder_id)
        pixels = self._images.decode(image)
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        want = frozenset(ATTRIBUTE_KEYS[a] for a in attributes if a in ATTRIBUTE_KEYS)
        faces = self._analyzer.analyze(pixels, attributes="all" if want else "default", want=want or None)
        result = IndexResult(width, height, face_model_version=self.embedder_id)
        passing: list[Face] = []
        for face in faces:
            reasons = quality_reasons(face, quality_filter)
            if reasons:
                result.unindexed.append((face, reasons))
            else:
                passing.append(face)
        if max_faces is not None and len(passing) > max_faces:
            for face in passing[max_faces:]:
                result.unindexed.append((face, ["EXCEEDS_MAX_FACES"]))
            passing = passing[:max_faces]
        if not passing:
            return result
        self._analyzer.embed(pixels, passing)
        image_id = str(uuid.uuid4())
        now = _now()
        added: dict[str, FloatArray] = {}
        # The lock spans commit and index update, so no search sees one without the other.
        with self._lock:
            with self._write() as session:
                row = self._collection(session, collection_id)
                for face in passing:
                    self._check_embedder(row, face.embedder_id)
                    face_row, vec = _new_face_row(row, image_id, external_image_id, face, width, height, now)
                    session.add(face_row)
                    result.indexed.append((_stored(face_row), face))
                    added[face_row.face_id] = vec
                session.flush()
                generation = self._bump(session, collection_id)
            self._after_commit(collection_id, generation, add=added)
        return result

    def index_embedded_faces(
        self, collection_id: str, images: Sequence[EmbeddedImage]
    ) -> list[list[StoredFace]]:
        """Store faces detected and embedded elsewhere (``keeneye batch --task index-faces``: workers
        run the models, the driver writes), all images in ONE transaction: a batch is in the
        collection entirely or not at all. Returns the stored faces of each image, in order.

        The caller has applied IndexFaces' rules per image (QualityFilter, MaxFaces, largest first).
        An image whose ``image_id`` is already in the collection is not stored again: its stored
        faces are returned, so a batch replayed after a crash (a resumed job) indexes nothing twice.
        Raises NotFound (collection), InvalidParameter (ExternalImageId, a vector of another embedder).
        """
        collection_id = self.key(collection_id)
        for item in images:
            if item.external_image_id is not None:
                _check(_EXTERNAL_IMAGE_ID, item.external_image_id, "ExternalImageId")
            for face in item.faces:
                if face.embedding is None:
                    raise InvalidParameter(f"image {item.image_id}: a face has no embedding")
        now = _now()
        out: list[list[StoredFace]] = []
        added: dict[str, FloatArray] = {}
        with self._lock:
            with self._write() as session:
                row = self._collection(session, collection_id)
                ids = [i.image_id for i in images]
                existing: dict[str, list[StoredFace]] = {}
                for face_row in session.scalars(
                    select(FaceRow)
                    .where(FaceRow.collection_id == collection_id, FaceRow.image_id.in_(ids))
                    .order_by(FaceRow.score.desc())
                ):
                    existing.setdefault(face_row.image_id, []).append(_stored(face_row))
                for item in images:
                    if item.image_id in existing:
                        out.append(existing[item.image_id])
                        continue
                    stored: list[StoredFace] = []
                    for face in item.faces:
                        self._check_embedder(row, face.embedder_id)
                        face_row, vec = _new_face_row(
                            row, item.image_id, item.external_image_id, face, item.width, item.height, now
                        )
                        session.add(face_row)
                        stored.append(_stored(face_row))
                        added[face_row.face_id] = vec
                    existing[item.image_id] = stored  # the same image twice in one batch: once
                    out.append(stored)
                if not added:
                    return out
                session.flush()
                generation = self._bump(session, collection_id)
            self._after_commit(collection_id, generation, add=added)
        return out

    def list_faces(
        self,
        collection_id: str,
        max_results: int = 1000,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[StoredFace]:
        """Faces in FaceId order, optionally only those of ``user_id`` and/or among ``face_ids``."""
        collection_id = self.key(collection_id)
        size = _page_size(max_results, MAX_LIST_FACES)
        after = decode_token(next_token, "faces")
        if user_id is not None:
            _check(_USER_ID, user_id, "UserId")
        for face_id in face_ids or ():
            _check(_FACE_ID, face_id, "FaceId")
        with self._store.sessions() as session:
            self._collection(session, collection_id)
            stmt = (
                select(FaceRow)
                .where(FaceRow.collection_id == collection_id)
                .order_by(FaceRow.face_id)
                .limit(size + 1)
            )
            if after is not None:
                stmt = stmt.where(FaceRow.face_id > after)
            if user_id is not None:
                stmt = stmt.where(FaceRow.user_id == user_id)
            if face_ids:
                stmt = stmt.where(FaceRow.face_id.in_(list(face_ids)))
            rows = list(session.scalars(stmt))
        items = [_stored(r) for r in rows[:size]]
        token = encode_token("faces", items[-1].face_id) if len(rows) > size else None
        return Page(items, token)

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], list[Unsuccessful]]:
        """Delete faces (rows and vectors at once). Faces associated with a user are refused
        (ASSOCIATED_TO_AN_EXISTING_USER: disassociate them first); unknown ids are FACE_NOT_FOUND."""
        collection_id = self.key(collection_id)
        if not 1 <= len(face_ids) <= MAX_DELETE:
            raise InvalidParameter(f"FaceIds must hold 1 to {MAX_DELETE} ids")
        for face_id in face_ids:
            _check(_FACE_ID, face_id, "FaceId")
        wanted = list(dict.fromkeys(face_ids))
        deleted: list[str] = []
        failed: list[Unsuccessful] = []
        with self._lock:  # commit and index update under one lock: a deleted face is never found
            with self._write() as session:
                self._collection(session, collection_id)
                rows = _faces_by_id(session, collection_id, wanted)
                for face_id in wanted:
                    found = rows.get(face_id)
                    if found is None:
                        failed.append(Unsuccessful(face_id, None, ["FACE_NOT_FOUND"]))
                    elif found.user_id is not None:
                        failed.append(
                            Unsuccessful(face_id, found.user_id, ["ASSOCIATED_TO_AN_EXISTING_USER"])
                        )
                    else:
                        deleted.append(face_id)
                generation = None
                if deleted:
                    session.execute(delete(FaceRow).where(FaceRow.face_id.in_(deleted)))
                    generation = self._bump(session, collection_id)
            if generation is not None:
                self._after_commit(collection_id, generation, remove=deleted)
        if deleted:
            self._store.scrub()
        return deleted, failed

    # -- retention ----------------------------------------------------------------------------
    def set_retention(self, collection_id: str, days: int | None) -> CollectionInfo:
        """Keep the collection's faces ``days`` days after they were indexed (None: until deleted).
        The purge (keeneye/service/governance/retention.py) deletes older ones."""
        collection_id = self.key(collection_id)
        if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
            raise InvalidParameter(f"retention days must be a whole number of days, got {days!r}")
        if days is not None:
            _check_range(days, 1, MAX_RETENTION_DAYS, "retention days")
        with self._write() as session:
            row = self._collection(session, collection_id)
            row.retention_days = days
            session.flush()
            return self._info(session, row)

    def expired_faces(self, now: datetime) -> dict[str, list[str]]:
        """FaceIds indexed longer ago than their collection's retention, by collection (id order)."""
        out: dict[str, list[str]] = {}
        with self._store.sessions() as session:
            rows = list(
                session.scalars(select(CollectionRow).where(CollectionRow.retention_days.is_not(None)))
            )
            for row in rows:
                assert row.retention_days is not None
                cutoff = now - timedelta(days=row.retention_days)
                ids = list(
                    session.scalars(
                        select(FaceRow.face_id)
                        .where(FaceRow.collection_id == row.collection_id, FaceRow.indexed_at < cutoff)
                        .order_by(FaceRow.face_id)
                    )
                )
                if ids:
                    out[row.collection_id] = ids
        return out

    def purge_faces(self, collection_id: str, face_ids: Sequence[str]) -> int:
        """Delete faces for retention: like DeleteFaces (rows, vectors, index files, log scrubbed)
        but also faces associated with a user (the user stays, with its status updated). How many
        were deleted (ids already gone are skipped)."""
        collection_id = self.key(collection_id)
        total = 0
        for start in range(0, len(face_ids), PURGE_CHUNK):
            chunk = list(face_ids[start : start + PURGE_CHUNK])
            with self._lock:
                with self._write() as session:
                    self._collection(session, collection_id)
                    found = list(
                        session.execute(
                            select(FaceRow.face_id, FaceRow.user_id).where(
                                FaceRow.collection_id == collection_id, FaceRow.face_id.in_(chunk)
                            )
                        )
                    )
                    if not found:
                        continue
                    gone = [f for f, _ in found]
                    session.execute(delete(FaceRow).where(FaceRow.face_id.in_(gone)))
                    for user_id in sorted({u for _, u in found if u is not None}):
                        user = session.get(UserRow, (collection_id, user_id))
                        if user is not None:
                            user.status = _status(self._user_face_count(session, collection_id, user_id))
                    generation = self._bump(session, collection_id)
                self._after_commit(collection_id, generation, remove=gone)
            total += len(gone)
        if total:
            self._store.scrub()
        return total

    def _matches(
        self,
        collection_id: str,
        query: FloatArray,
        embedder_id: str | None,
        threshold: float,
        max_faces: int,
        exclude: str | None = None,
    ) -> list[FaceMatch]:
        """Faces of the collection at Similarity >= threshold to ``query``, best first."""
        with self._lock, self._store.sessions() as session:
            row = self._collection(session, collection_id)
            self._check_embedder(row, embedder_id)
            index = self._index(session, row)
            calibration = calibration_for(row.embedder_id)
            k = max_faces + (1 if exclude else 0)
            ids, cosines = index.search(query, k)
            # Cut at the threshold in cosine space first (the calibration is monotonic).
            sims = calibration.similarity(cosines)
            hits = [
                (i, float(s))
                for i, s in zip(ids, sims, strict=True)
                if i != exclude and float(s) >= threshold
            ][:max_faces]
            if not hits:
                return []
            rows = {
                r.face_id: r
                for r in session.scalars(select(FaceRow).where(FaceRow.face_id.in_([i for i, _ in hits])))
            }
        return [FaceMatch(_stored(rows[i]), s) for i, s in hits if i in rows]

    def search_faces(
        self, collection_id: str, face_id: str, threshold: float = 80.0, max_faces: int = 4096
    ) -> list[FaceMatch]:
        """Faces similar to a stored face (the face itself excluded), best first."""
        collection_id = self.key(collection_id)
        _check(_FACE_ID, face_id, "FaceId")
        _check_range(threshold, 0, 100, "FaceMatchThreshold")
        _check_range(max_faces, 1, MAX_SEARCH_FACES, "MaxFaces")
        with self._store.sessions() as session:
            self._collection(session, collection_id)
            face = session.get(FaceRow, face_id)
            if face is None or face.collection_id != collection_id:
                raise NotFound(f"face {face_id} is not in collection {regions.name_of(collection_id)}")
            query, embedder_id = _vector(face), face.embedder_id
        return self._matches(collection_id, query, embedder_id, threshold, max_faces, exclude=face_id)

    def search_faces_by_vector(
        self,
        collection_id: str,
        embedding: FloatArray,
        embedder_id: str,
        threshold: float = 80.0,
        max_faces: int = 4096,
    ) -> list[FaceMatch]:
        """Faces similar to an embedding computed elsewhere (a face seen in a video), best first.
        Raises NotFound for a missing collection, InvalidParameter for another embedder's vector."""
        collection_id = self.key(collection_id)
        _check_range(threshold, 0, 100, "FaceMatchThreshold")
        _check_range(max_faces, 1, MAX_SEARCH_FACES, "MaxFaces")
        return self._matches(collection_id, embedding, embedder_id, threshold, max_faces)

    def _searched_face(
        self, collection_id: str, image: bytes | UInt8Image, quality_filter: QualityFilter
    ) -> tuple[Face, list[Face], int, int]:
        """The largest face of the image that passes the bar, embedded; the others; image size."""
        quality_reasons(Face(np.zeros(4, np.float32), 1.0), quality_filter)  # validates the name
        with self._store.sessions() as session:
            self._check_embedder(self._collection(session, collection_id), self.embedder_id)
        pixels = self._images.decode(image)
        faces = self._analyzer.analyze(pixels, attributes="none" if quality_filter == "NONE" else "default")
        candidates = [f for f in faces if not quality_reasons(f, quality_filter)]
        if not candidates:
            raise NoFaceFound("There are no faces in the image. Should be at least 1.")
        searched = candidates[0]
        self._analyzer.embed(pixels, [searched])
        others = [f for f in faces if f is not searched]
        return searched, others, int(pixels.shape[1]), int(pixels.shape[0])

    def search_faces_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_faces: int = 4096,
        quality_filter: QualityFilter = "NONE",
    ) -> ImageSearchResult:
        """Search the collection with the largest face of the image (InvalidParameter if none)."""
        collection_id = self.key(collection_id)
        _check_range(threshold, 0, 100, "FaceMatchThreshold")
        _check_range(max_faces, 1, MAX_SEARCH_FACES, "MaxFaces")
        searched, others, width, height = self._searched_face(collection_id, image, quality_filter)
        assert searched.embedding is not None
        matches = self._matches(collection_id, searched.embedding, searched.embedder_id, threshold, max_faces)
        return ImageSearchResult(searched, width, height, matches, others, self.embedder_id)

    # -- users ------------------------------------------------------------------------------
    def _user(self, session: Session, collection_id: str, user_id: str) -> UserRow:
        _check(_USER_ID, user_id, "UserId")
        user = session.get(UserRow, (collection_id, user_id))
        if user is None:
            raise NotFound(f"user {user_id} does not exist in collection {regions.name_of(collection_id)}")
        return user

    def create_user(self, collection_id: str, user_id: str) -> None:
        collection_id = self.key(collection_id)
        _check(_USER_ID, user_id, "UserId")
        with self._write() as session:
            self._collection(session, collection_id)
            if session.get(UserRow, (collection_id, user_id)) is not None:
                raise AlreadyExists(
                    f"user {user_id} already exists in collection {regions.name_of(collection_id)}"
                )
            session.add(
                UserRow(collection_id=collection_id, user_id=user_id, status="CREATED", created_at=_now())
            )

    def delete_user(self, collection_id: str, user_id: str) -> None:
        """Delete the user; its faces stay in the collection, disassociated (as Rekognition does)."""
        collection_id = self.key(collection_id)
        with self._write() as session:
            self._collection(session, collection_id)
            user = self._user(session, collection_id, user_id)
            session.execute(
                update(FaceRow)
                .where(FaceRow.collection_id == collection_id, FaceRow.user_id == user_id)
                .values(user_id=None)
            )
            session.delete(user)
        self._store.scrub()

    def list_users(
        self, collection_id: str, max_results: int = 500, next_token: str | None = None
    ) -> Page[UserInfo]:
        collection_id = self.key(collection_id)
        size = _page_size(max_results, MAX_LIST_USERS)
        after = decode_token(next_token, "users")
        with self._store.sessions() as session:
            self._collection(session, collection_id)
            stmt = (
                select(UserRow.user_id, func.count(FaceRow.face_id))
                .outerjoin(
                    FaceRow,
                    (FaceRow.collection_id == UserRow.collection_id) & (FaceRow.user_id == UserRow.user_id),
                )
                .where(UserRow.collection_id == collection_id)
                .group_by(UserRow.user_id)
                .order_by(UserRow.user_id)
                .limit(size + 1)
            )
            if after is not None:
                stmt = stmt.where(UserRow.user_id > after)
            rows = list(session.execute(stmt))
        items = [UserInfo(uid, _status(int(n))) for uid, n in rows[:size]]
        token = encode_token("users", items[-1].user_id) if len(rows) > size else None
        return Page(items, token)

    def _user_face_count(self, session: Session, collection_id: str, user_id: str) -> int:
        n = session.scalar(
            select(func.count())
            .select_from(FaceRow)
            .where(FaceRow.collection_id == collection_id, FaceRow.user_id == user_id)
        )
        return int(n or 0)

    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], threshold: float = 75.0
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]:
        """Associate faces with a user. Unsuccessful: FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER,
        or LOW_MATCH_CONFIDENCE when the face's best Similarity to the user's faces (those already
        associated and those accepted earlier in this call) is below ``threshold`` (UserMatchThreshold)."""
        collection_id = self.key(collection_id)
        _check_range(threshold, 0, 100, "UserMatchThreshold")
        wanted = _user_face_ids(face_ids)
        associated: list[str] = []
        failed: list[Unsuccessful] = []
        with self._write() as session:
            row = self._collection(session, collection_id)
            user = self._user(session, collection_id, user_id)
            calibration = calibration_for(row.embedder_id)
            refs = [
                _vector(r)
                for r in session.scalars(
                    select(FaceRow).where(FaceRow.collection_id == collection_id, FaceRow.user_id == user_id)
                )
            ]
            current = len(refs)
            rows = _faces_by_id(session, collection_id, wanted)
            for face_id in wanted:
                face = rows.get(face_id)
                if face is None:
                    failed.append(Unsuccessful(face_id, None, ["FACE_NOT_FOUND"]))
                    continue
                if face.user_id == user_id:
                    associated.append(face_id)  # already this user's: nothing to do, not an error
                    continue
                if face.user_id is not None:
                    failed.append(Unsuccessful(face_id, face.user_id, ["ASSOCIATED_TO_A_DIFFERENT_USER"]))
                    continue
                vec = _vector(face)
                if refs:
                    best = float(calibration.similarity(np.stack(refs) @ vec).max())
                    if best < threshold:
                        failed.append(Unsuccessful(face_id, user_id, ["LOW_MATCH_CONFIDENCE"], best))
                        continue
                if current >= MAX_FACES_PER_USER:
                    raise LimitExceeded(f"a user can have at most {MAX_FACES_PER_USER} faces")
                face.user_id = user_id
                refs.append(vec)
                current += 1
                associated.append(face_id)
            status = _status(current)
            user.status = status
        return associated, failed, status

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]:
        """Remove faces from a user (they stay in the collection)."""
        collection_id = self.key(collection_id)
        wanted = _user_face_ids(face_ids)
        done: list[str] = []
        failed: list[Unsuccessful] = []
        with self._write() as session:
            self._collection(session, collection_id)
            user = self._user(session, collection_id, user_id)
            rows = _faces_by_id(session, collection_id, wanted)
            for face_id in wanted:
                face = rows.get(face_id)
                if face is None:
                    failed.append(Unsuccessful(face_id, None, ["FACE_NOT_FOUND"]))
                elif face.user_id != user_id:
                    failed.append(Unsuccessful(face_id, face.user_id, ["ASSOCIATED_TO_A_DIFFERENT_USER"]))
                else:
                    face.user_id = None
                    done.append(face_id)
            session.flush()
            status = _status(self._user_face_count(session, collection_id, user_id))
            user.status = status
        return done, failed, status

    def _user_matches(
        self,
        collection_id: str,
        queries: FloatArray,
        embedder_id: str | None,
        threshold: float,
        max_users: int,
        exclude_face: str | None = None,
        exclude_user: str | None = None,
    ) -> list[UserMatch]:
        """Users ranked by the best Similarity between any query vector and any of their faces."""
        with self._lock, self._store.sessions() as session:
            row = self._collection(session, collection_id)
            self._check_embedder(row, embedder_id)
            index = self._index(session, row)
            pairs = [
                (f, u)
                for f, u in session.execute(
                    select(FaceRow.face_id, FaceRow.user_id).where(
                        FaceRow.collection_id == collection_id, FaceRow.user_id.is_not(None)
                    )
                )
                if f != exclude_face and u != exclude_user and f in index
            ]
            if not pairs:
                return []
            vectors = index.vectors_of([f for f, _ in pairs])
        cosines = (np.asarray(queries, np.float32).reshape(-1, vectors.shape[1]) @ vectors.T).max(axis=0)
        sims = calibration_for(row.embedder_id).similarity(cosines)
        best: dict[str, float] = {}
        for (_face, user_id), sim in zip(pairs, sims, strict=True):
            assert user_id is not None
            best[user_id] = max(best.get(user_id, 0.0), float(sim))
        ranked = sorted(((u, s) for u, s in best.items() if s >= threshold), key=lambda m: (-m[1], m[0]))
        return [UserMatch(UserInfo(u, "ACTIVE"), s) for u, s in ranked[:max_users]]

    def search_users(
        self,
        collection_id: str,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = 80.0,
        max_users: int = 5,
    ) -> list[UserMatch]:
        """Users similar to a user's faces (the user excluded) or to one stored face (itself excluded)."""
        collection_id = self.key(collection_id)
        _check_range(threshold, 0, 100, "UserMatchThreshold")
        _check_range(max_users, 1, MAX_SEARCH_USERS, "MaxUsers")
        if (user_id is None) == (face_id is None):
            raise InvalidParameter("give exactly one of UserId and FaceId")
        with self._store.sessions() as session:
            row = self._collection(session, collection_id)
            if user_id is not None:
                self._user(session, collection_id, user_id)
                vecs = [
                    _vector(r)
                    for r in session.scalars(
                        select(FaceRow).where(
                            FaceRow.collection_id == collection_id, FaceRow.user_id == user_id
                        )
                    )
                ]
                if not vecs:
                    return []  # a user without faces (CREATED) has nothing to search with
                queries = np.stack(vecs)
            else:
                assert face_id is not None
                _check(_FACE_ID, face_id, "FaceId")
                face = session.get(FaceRow, face_id)
                if face is None or face.collection_id != collection_id:
                    raise NotFound(f"face {face_id} is not in collection {regions.name_of(collection_id)}")
                queries = _vector(face)[None, :]
        return self._user_matches(
            collection_id, queries, row.embedder_id, threshold, max_users, face_id, user_id
        )

    def search_users_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_users: int = 5,
        quality_filter: QualityFilter = "NONE",
    ) -> tuple[ImageSearchResult, list[UserMatch]]:
        """Users matching the largest face of the image; the result's ``matches`` stay empty and
        ``unsearched`` lists the other faces."""
        collection_id = self.key(collection_id)
        _check_range(threshold, 0, 100, "UserMatchThreshold")
        _check_range(max_users, 1, MAX_SEARCH_USERS, "MaxUsers")
        searched, others, width, height = self._searched_face(collection_id, image, quality_filter)
        assert searched.embedding is not None
        users = self._user_matches(
            collection_id, searched.embedding[None, :], searched.embedder_id, threshold, max_users
        )
        return ImageSearchResult(searched, width, height, [], others, self.embedder_id), users

    # -- tags (collections are the taggable resource here) -------------------------------------
    def _arn_collection(self, session: Session, arn: str) -> CollectionRow:
        """The collection of an ARN of this view's region (another region's ARN names nothing here)."""
        parts = arn.split(":")
        row = session.scalar(select(CollectionRow).where(CollectionRow.arn == arn))
        if row is None or len(parts) < 4 or parts[3] != self.region:
            raise NotFound(f"resource {arn} does not exist")
        return row

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        if not tags:
            raise InvalidParameter("Tags must hold at least one tag")
        _check_tags(tags)
        with self._write() as session:
            self._arn_collection(session, arn)
            existing = {t.key: t for t in session.scalars(select(TagRow).where(TagRow.resource_arn == arn))}
            if len(set(existing) | set(tags)) > MAX_TAGS:
                raise LimitExceeded(f"a resource can have at most {MAX_TAGS} tags")
            for key, value in tags.items():
                if key in existing:
                    existing[key].value = value
                else:
                    session.add(TagRow(resource_arn=arn, key=key, value=value))

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
            raise InvalidParameter("TagKeys must be a list of strings")
        with self._write() as session:
            self._arn_collection(session, arn)
            session.execute(delete(TagRow).where(TagRow.resource_arn == arn, TagRow.key.in_(list(keys))))

    def list_tags(self, arn: str) -> dict[str, str]:
        with self._store.sessions() as session:
            self._arn_collection(session, arn)
            return {
                t.key: t.value
                for t in session.scalars(
                    select(TagRow).where(TagRow.resource_arn == arn).order_by(TagRow.key)
                )
            }


def _check_tags(tags: dict[str, str]) -> None:
    if not isinstance(tags, dict):
        raise InvalidParameter("Tags must be a map of keys to values")
    if len(tags) > MAX_TAGS:
        raise LimitExceeded(f"a resource can have at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not isinstance(key, str) or _TAG_KEY.match(key) is None:
            raise InvalidParameter(f"tag key {key!r} is not valid (1-128 characters, not starting with aws:)")
        if not isinstance(value, str) or _TAG_VALUE.match(value) is None:
            raise InvalidParameter(f"tag value for {key!r} is not valid (0-256 characters)")


def _faces_by_id(session: Session, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceRow]:
    """The collection's rows for these FaceIds (missing ids are simply absent), keyed by FaceId."""
    stmt = select(FaceRow).where(FaceRow.collection_id == collection_id, FaceRow.face_id.in_(list(face_ids)))
    return {r.face_id: r for r in session.scalars(stmt)}


def _user_face_ids(face_ids: Sequence[str]) -> list[str]:
    """Validate an Associate/DisassociateFaces FaceIds list (1-100 well-formed ids); duplicates dropped."""
    if not 1 <= len(face_ids) <= MAX_ASSOCIATE:
        raise InvalidParameter(f"FaceIds must hold 1 to {MAX_ASSOCIATE} ids")
    for face_id in face_ids:
        _check(_FACE_ID, face_id, "FaceId")
    return list(dict.fromkeys(face_ids))
