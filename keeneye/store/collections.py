"""The collections repository: the SQL of face collections, their faces, users and tags, and nothing else.

No face model, no image, no vector index here (keeneye/store/index_cache.py keeps the indexes): the
use cases in keeneye/service/faces/ validate requests and decide; this module reads and writes rows
and hands back the plain result types below, which every layer above may import (the pipeline's face
search returns :class:`FaceMatch` too). No ORM object leaves this module.

Keys: a collection of ``us-east-1`` is stored under its CollectionId, one of another region under
``REGION/CollectionId`` (keeneye/core/regions.py); :func:`collection_key` builds and checks them.
Listings are keyset paginated on their primary key; the tokens (keeneye/store/paging.py) are opaque.

Sessions: :meth:`CollectionRepository.read` and :meth:`CollectionRepository.write` (one transaction,
committed durably on exit) yield a :class:`CollectionSession`, the queries of that one session.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from keeneye.core import regions
from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.core.types import Face, FloatArray
from keeneye.store.db import Store
from keeneye.store.paging import Page, encode_token, page_of
from keeneye.store.tables import CollectionRow, FaceRow, TagRow, UserRow

T = TypeVar("T")

UserStatus = Literal["ACTIVE", "UPDATING", "CREATING", "CREATED"]

MAX_KEY = 255  # the store key (REGION/CollectionId outside us-east-1) fits the 255-character columns
_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")


# -- plain results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CollectionInfo:
    collection_id: str
    arn: str
    created_at: datetime
    face_count: int
    user_count: int
    face_model_version: str  # the embedder id the collection's vectors come from
    retention_days: int | None = None  # older faces are purged (keeneye/service/governance/retention.py)
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
    face_count: int | None = None  # listed users carry it (one grouped query); None where not counted


@dataclass
class FaceMatch:
    face: StoredFace
    similarity: float  # 0-100


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


@dataclass(frozen=True)
class CollectionRecord:
    """A collection's row as the use cases see it.

    generation: grows by one in every transaction that changes the collection's faces (the index cache
    compares it); tag: the collection's incarnation (its creation time), so index files left by a
    deleted collection of the same name are never taken for the new one's.
    """

    key: str
    arn: str
    created_at: datetime
    embedder_id: str
    generation: int
    retention_days: int | None = None

    @property
    def tag(self) -> str:
        return self.created_at.isoformat()


def user_status(face_count: int) -> UserStatus:
    """A user with faces is ACTIVE; one without is CREATED."""
    return "ACTIVE" if face_count else "CREATED"


# -- keys -------------------------------------------------------------------------------------------
def collection_key(region: str, collection_id: str) -> str:
    """The store key of ``collection_id`` seen from ``region``; a key already qualified with a region
    (``ap-southeast-2/demo``: only outside the AWS API, whose CollectionId cannot hold a ``/``) names
    that region's collection. InvalidParameter for a malformed id or a key too long to store."""
    name = collection_id
    if regions.SEPARATOR in collection_id:
        region, name = collection_id.split(regions.SEPARATOR, 1)
        if not regions.is_region(region):
            raise InvalidParameter(f"{collection_id[:80]!r} is not a collection id or REGION/ID")
    if not isinstance(name, str) or _COLLECTION_ID.fullmatch(name) is None:
        raise InvalidParameter(f"CollectionId {name!r} is not valid (must match {_COLLECTION_ID.pattern})")
    key = regions.scoped_key(region, name)
    if len(key) > MAX_KEY:
        raise InvalidParameter(
            f"CollectionId is too long: in region {region} keeneye keeps collection ids of up to "
            f"{MAX_KEY - len(region) - 1} characters"
        )
    return key


def collection_arn(region: str, account: str, collection_id: str) -> str:
    """The collection's ARN in ``region`` (or the region of a qualified key); not validated, so that
    policies can be checked for ``*`` and for ids that do not exist."""
    name = collection_id
    head, sep, tail = collection_id.partition(regions.SEPARATOR)
    if sep and regions.is_region(head):
        region, name = head, tail
    return f"arn:aws:rekognition:{region}:{account}:collection/{name}"


# -- conversions ------------------------------------------------------------------------------------
def _record(row: CollectionRow) -> CollectionRecord:
    return CollectionRecord(
        row.collection_id, row.arn, row.created_at, row.embedder_id, row.generation, row.retention_days
    )


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


def _vector(blob: bytes) -> FloatArray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


class CollectionRepository:
    """Collections, faces, users and tags in the database of ``store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def index_dir(self) -> Path:
        """Where the index cache keeps each collection's index files."""
        return self._store.index_dir

    @contextmanager
    def read(self) -> Iterator[CollectionSession]:
        """A session for reads (no transaction is committed)."""
        with self._store.sessions() as session:
            yield CollectionSession(session)

    @contextmanager
    def write(self) -> Iterator[CollectionSession]:
        """A session in one transaction: committed (durably) on exit, rolled back on any error."""
        with self._store.transaction() as session:
            yield CollectionSession(session)

    def scrub(self) -> None:
        """After a deletion: no copy of the deleted rows stays in the database's files (Store.scrub)."""
        self._store.scrub()


class CollectionSession:
    """The collection queries of one database session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def release(self) -> None:
        """End the session's transaction and forget what it read; the session can be used again.
        Called before slow work (the face models) so that no connection or snapshot is held through it."""
        self._session.close()

    # -- collections --------------------------------------------------------------------------------
    def find(self, key: str) -> CollectionRecord | None:
        row = self._session.get(CollectionRow, key)
        return None if row is None else _record(row)

    def collection(self, key: str) -> CollectionRecord:
        """The collection of a store key, or NotFound naming the collection as its caller knows it."""
        found = self.find(key)
        if found is None:
            raise NotFound(f"The collection id: {regions.name_of(key)} does not exist")
        return found

    def by_arn(self, arn: str) -> CollectionRecord | None:
        row = self._session.scalar(select(CollectionRow).where(CollectionRow.arn == arn))
        return None if row is None else _record(row)

    def info(self, collection: CollectionRecord) -> CollectionInfo:
        """What DescribeCollection says: the record plus its face and user counts."""
        users = self._session.scalar(
            select(func.count()).select_from(UserRow).where(UserRow.collection_id == collection.key)
        )
        return CollectionInfo(
            collection_id=regions.name_of(collection.key),
            arn=collection.arn,
            created_at=collection.created_at,
            face_count=self.face_count(collection.key),
            user_count=int(users or 0),
            face_model_version=collection.embedder_id,
            retention_days=collection.retention_days,
            key=collection.key,
        )

    def add_collection(
        self, key: str, arn: str, created_at: datetime, embedder_id: str, tags: Mapping[str, str]
    ) -> CollectionInfo:
        row = CollectionRow(
            collection_id=key, arn=arn, created_at=created_at, embedder_id=embedder_id, generation=0
        )
        self._session.add(row)
        for tag_key, value in tags.items():
            self._session.add(TagRow(resource_arn=arn, key=tag_key, value=value))
        self._session.flush()
        return self.info(_record(row))

    def list_collections(self, region: str, size: int, after: str | None) -> Page[CollectionInfo]:
        """``region``'s collections in key order after ``after``: a page of ``size``."""
        stmt = select(CollectionRow).order_by(CollectionRow.collection_id).limit(size + 1)
        if region == regions.HOME_REGION:
            stmt = stmt.where(~CollectionRow.collection_id.contains(regions.SEPARATOR, autoescape=True))
        else:
            prefix = region + regions.SEPARATOR
            stmt = stmt.where(CollectionRow.collection_id.startswith(prefix, autoescape=True))
        if after is not None:
            stmt = stmt.where(CollectionRow.collection_id > after)
        rows = list(self._session.scalars(stmt))
        infos = [self.info(_record(r)) for r in rows[:size]]  # no counting for the extra row
        token = encode_token("collections", infos[-1].key) if len(rows) > size else None
        return Page(infos, token)

    def delete_collection(self, collection: CollectionRecord) -> None:
        """The collection with its faces, users and tags."""
        key = collection.key
        self._session.execute(delete(FaceRow).where(FaceRow.collection_id == key))
        self._session.execute(delete(UserRow).where(UserRow.collection_id == key))
        self._session.execute(delete(TagRow).where(TagRow.resource_arn == collection.arn))
        self._session.execute(delete(CollectionRow).where(CollectionRow.collection_id == key))

    def set_retention(self, key: str, days: int | None) -> CollectionInfo:
        row = self._session.get(CollectionRow, key)
        if row is None:
            raise NotFound(f"The collection id: {regions.name_of(key)} does not exist")
        row.retention_days = days
        self._session.flush()
        return self.info(_record(row))

    def bump_generation(self, key: str) -> int:
        """Advance the collection's generation in this transaction (a SQL increment, safe across
        processes), after the changes made so far, and return the new value."""
        self._session.flush()
        self._session.execute(
            update(CollectionRow)
            .where(CollectionRow.collection_id == key)
            .values(generation=CollectionRow.generation + 1)
        )
        gen = self._session.scalar(select(CollectionRow.generation).where(CollectionRow.collection_id == key))
        assert gen is not None
        return gen

    # -- faces ----------------------------------------------------------------------------------------
    def face_count(self, key: str) -> int:
        n = self._session.scalar(
            select(func.count()).select_from(FaceRow).where(FaceRow.collection_id == key)
        )
        return int(n or 0)

    def vector_dim(self, key: str) -> int | None:
        """The length of the collection's vectors; None while it holds no face."""
        blob = self._session.scalar(select(FaceRow.vector).where(FaceRow.collection_id == key).limit(1))
        return None if blob is None else len(blob) // 4

    def vectors(self, key: str, dim: int) -> tuple[list[str], FloatArray]:
        """All the collection's FaceIds and their (N, dim) little-endian float32 vectors, streamed."""
        ids: list[str] = []
        chunks: list[bytes] = []
        stmt = (
            select(FaceRow.face_id, FaceRow.vector)
            .where(FaceRow.collection_id == key)
            .execution_options(yield_per=10_000)
        )
        for face_id, blob in self._session.execute(stmt):
            ids.append(face_id)
            chunks.append(blob)
        matrix: FloatArray = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(ids), dim)
        return ids, matrix

    def add_faces(
        self,
        collection: CollectionRecord,
        image_id: str,
        external_image_id: str | None,
        faces: Sequence[Face],
        size: tuple[int, int],
        now: datetime,
    ) -> list[tuple[StoredFace, FloatArray]]:
        """New rows for embedded faces of one image (boxes in pixels of a ``size`` = (width, height)
        image), each with a new FaceId; their stored forms and float32 vectors for the index."""
        out: list[tuple[StoredFace, FloatArray]] = []
        for face in faces:
            assert face.embedding is not None
            vec = np.ascontiguousarray(face.embedding, dtype="<f4")
            x1, y1, x2, y2 = (float(v) for v in face.xyxy)
            row = FaceRow(
                face_id=str(uuid.uuid4()),
                collection_id=collection.key,
                image_id=image_id,
                external_image_id=external_image_id,
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                image_width=size[0],
                image_height=size[1],
                score=float(face.score),
                indexed_at=now,
                embedder_id=collection.embedder_id,
                user_id=None,
                vector=vec.tobytes(),
            )
            self._session.add(row)
            out.append((_stored(row), vec.astype(np.float32)))
        return out

    def faces_of_images(self, key: str, image_ids: Sequence[str]) -> dict[str, list[StoredFace]]:
        """The faces already stored from these images, by ImageId, best detector score first."""
        out: dict[str, list[StoredFace]] = {}
        stmt = (
            select(FaceRow)
            .where(FaceRow.collection_id == key, FaceRow.image_id.in_(list(image_ids)))
            .order_by(FaceRow.score.desc())
        )
        for row in self._session.scalars(stmt):
            out.setdefault(row.image_id, []).append(_stored(row))
        return out

    def list_faces(
        self,
        key: str,
        size: int,
        after: str | None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[StoredFace]:
        """Faces in FaceId order after ``after``, optionally only ``user_id``'s and/or among ``face_ids``."""
        stmt = select(FaceRow).where(FaceRow.collection_id == key).order_by(FaceRow.face_id).limit(size + 1)
        if after is not None:
            stmt = stmt.where(FaceRow.face_id > after)
        if user_id is not None:
            stmt = stmt.where(FaceRow.user_id == user_id)
        if face_ids:
            stmt = stmt.where(FaceRow.face_id.in_(list(face_ids)))
        return page_of([_stored(r) for r in self._session.scalars(stmt)], size, "faces", lambda f: f.face_id)

    def faces_by_id(self, key: str, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        """The collection's faces of these FaceIds (missing ids are simply absent), by FaceId."""
        return {r.face_id: _stored(r) for r in self._session.scalars(self._by_id(key, face_ids))}

    def faces_with_vectors(
        self, key: str, face_ids: Sequence[str]
    ) -> dict[str, tuple[StoredFace, FloatArray]]:
        """As :meth:`faces_by_id`, each with its vector."""
        return {
            r.face_id: (_stored(r), _vector(r.vector))
            for r in self._session.scalars(self._by_id(key, face_ids))
        }

    def face_with_vector(self, key: str, face_id: str) -> tuple[StoredFace, FloatArray] | None:
        """One face of the collection with its vector; None when the collection has no such face."""
        row = self._session.get(FaceRow, face_id)
        if row is None or row.collection_id != key:
            return None
        return _stored(row), _vector(row.vector)

    def stored_faces(self, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        """Faces by FaceId (search hits: ids the collection's index returned)."""
        stmt = select(FaceRow).where(FaceRow.face_id.in_(list(face_ids)))
        return {r.face_id: _stored(r) for r in self._session.scalars(stmt)}

    def delete_faces(self, face_ids: Sequence[str]) -> None:
        self._session.execute(delete(FaceRow).where(FaceRow.face_id.in_(list(face_ids))))

    def purge_faces(self, key: str, face_ids: Sequence[str]) -> list[str]:
        """Delete these faces of the collection, associated with a user or not (each such user stays,
        its status updated); the FaceIds that were there and are gone."""
        found = list(
            self._session.execute(
                select(FaceRow.face_id, FaceRow.user_id).where(
                    FaceRow.collection_id == key, FaceRow.face_id.in_(list(face_ids))
                )
            )
        )
        if not found:
            return []
        gone = [f for f, _ in found]
        self._session.execute(delete(FaceRow).where(FaceRow.face_id.in_(gone)))
        for user_id in sorted({u for _, u in found if u is not None}):
            user = self._session.get(UserRow, (key, user_id))
            if user is not None:
                user.status = user_status(self.user_face_count(key, user_id))
        return gone

    def expired_faces(self, now: datetime) -> dict[str, list[str]]:
        """FaceIds indexed longer ago than their collection's retention, by collection key (id order)."""
        out: dict[str, list[str]] = {}
        rows = list(
            self._session.scalars(select(CollectionRow).where(CollectionRow.retention_days.is_not(None)))
        )
        for row in rows:
            assert row.retention_days is not None
            cutoff = now - timedelta(days=row.retention_days)
            ids = list(
                self._session.scalars(
                    select(FaceRow.face_id)
                    .where(FaceRow.collection_id == row.collection_id, FaceRow.indexed_at < cutoff)
                    .order_by(FaceRow.face_id)
                )
            )
            if ids:
                out[row.collection_id] = ids
        return out

    @staticmethod
    def _by_id(key: str, face_ids: Sequence[str]) -> Select[FaceRow]:
        return select(FaceRow).where(FaceRow.collection_id == key, FaceRow.face_id.in_(list(face_ids)))

    # -- users ----------------------------------------------------------------------------------------
    def has_user(self, key: str, user_id: str) -> bool:
        return self._session.get(UserRow, (key, user_id)) is not None

    def add_user(self, key: str, user_id: str, now: datetime) -> None:
        self._session.add(UserRow(collection_id=key, user_id=user_id, status="CREATED", created_at=now))

    def delete_user(self, key: str, user_id: str) -> None:
        """Delete the user; its faces stay, associated with no one."""
        self._session.execute(
            update(FaceRow)
            .where(FaceRow.collection_id == key, FaceRow.user_id == user_id)
            .values(user_id=None)
        )
        self._session.execute(delete(UserRow).where(UserRow.collection_id == key, UserRow.user_id == user_id))

    def set_user_status(self, key: str, user_id: str, status: UserStatus) -> None:
        user = self._session.get(UserRow, (key, user_id))
        if user is not None:
            user.status = status

    def list_users(self, key: str, size: int, after: str | None) -> Page[UserInfo]:
        """Users in UserId order after ``after``, each with its status (from its face count)."""
        stmt = (
            select(UserRow.user_id, func.count(FaceRow.face_id))
            .outerjoin(
                FaceRow,
                (FaceRow.collection_id == UserRow.collection_id) & (FaceRow.user_id == UserRow.user_id),
            )
            .where(UserRow.collection_id == key)
            .group_by(UserRow.user_id)
            .order_by(UserRow.user_id)
            .limit(size + 1)
        )
        if after is not None:
            stmt = stmt.where(UserRow.user_id > after)
        users = [UserInfo(uid, user_status(int(n)), int(n)) for uid, n in self._session.execute(stmt)]
        return page_of(users, size, "users", lambda u: u.user_id)

    def user_face_count(self, key: str, user_id: str) -> int:
        n = self._session.scalar(
            select(func.count())
            .select_from(FaceRow)
            .where(FaceRow.collection_id == key, FaceRow.user_id == user_id)
        )
        return int(n or 0)

    def user_vectors(self, key: str, user_id: str) -> list[FloatArray]:
        """The vectors of the user's faces."""
        stmt = select(FaceRow.vector).where(FaceRow.collection_id == key, FaceRow.user_id == user_id)
        return [_vector(blob) for blob in self._session.scalars(stmt)]

    def set_faces_user(self, key: str, face_ids: Sequence[str], user_id: str | None) -> None:
        """Associate these faces of the collection with ``user_id`` (None: with no one)."""
        if face_ids:
            self._session.execute(
                update(FaceRow)
                .where(FaceRow.collection_id == key, FaceRow.face_id.in_(list(face_ids)))
                .values(user_id=user_id)
            )

    def user_faces(self, key: str) -> list[tuple[str, str]]:
        """(FaceId, UserId) of every face of the collection that is associated with a user."""
        stmt = select(FaceRow.face_id, FaceRow.user_id).where(
            FaceRow.collection_id == key, FaceRow.user_id.is_not(None)
        )
        return [(f, u) for f, u in self._session.execute(stmt) if u is not None]

    # -- tags -----------------------------------------------------------------------------------------
    def tags(self, arn: str) -> dict[str, str]:
        """The resource's tags in key order."""
        stmt = select(TagRow).where(TagRow.resource_arn == arn).order_by(TagRow.key)
        return {t.key: t.value for t in self._session.scalars(stmt)}

    def put_tags(self, arn: str, tags: Mapping[str, str]) -> None:
        """Add these tags, replacing the values of keys already there."""
        existing = {t.key: t for t in self._session.scalars(select(TagRow).where(TagRow.resource_arn == arn))}
        for tag_key, value in tags.items():
            if tag_key in existing:
                existing[tag_key].value = value
            else:
                self._session.add(TagRow(resource_arn=arn, key=tag_key, value=value))

    def delete_tags(self, arn: str, keys: Sequence[str]) -> None:
        self._session.execute(delete(TagRow).where(TagRow.resource_arn == arn, TagRow.key.in_(list(keys))))
