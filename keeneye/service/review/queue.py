"""The review queue: every identification waits for a person to confirm, reject or mark it unsure.

AWS's guidance for identifying people in public-safety use is that a match is a lead until a person has
reviewed it; this is that step. Producers (stream processors, stored-video face search, upload analysis)
:meth:`ReviewQueue.record` each match with the probe face's crop (JPEG, matches only); reviewers (the
console, ``/v1/identifications``) :meth:`~ReviewQueue.decide`: CONFIRMED, REJECTED ("not this person")
or UNSURE, with who and when, each decision audited as ``ReviewIdentification`` under the reviewer's key.

What a decision does:

* REJECTED: the (person, track) pair is not recorded again for that track in that run (``record``
  answers None; a stream processor's worker is told too, and stops alerting it: keeneye/streams/review.py),
  and the probe embedding is kept as a negative for that person (keeneye/service/review/negatives.py);
* CONFIRMED: a stream processor of a collection with ``review_required`` sends the held records;
* listeners added with :meth:`ReviewQueue.add_listener` hear every decision (the stream processors).

One identification per (source, run, track, person): a track reported again (a stream processor repeats
a track's record every ``record_interval_s``) finds its row and does not queue a second one.

Identifications (crops included) are purged after their collection's ``retention_days``
(:func:`purge_expired`, run by the retention purge) and deleted with their collection (ON DELETE
CASCADE; the store's secure_delete and scrub leave no bytes behind).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.core.types import FloatArray
from keeneye.service.review.negatives import negative_similarity, vector_bytes, vector_of
from keeneye.store.db import Store
from keeneye.store.tables import CollectionRow, FaceRow, IdentificationRow, ReviewNegativeRow

if TYPE_CHECKING:
    from keeneye.service.governance.audit import AuditLog

log = logging.getLogger(__name__)

STATUSES = ("PENDING", "CONFIRMED", "REJECTED", "UNSURE")
DECISIONS = ("CONFIRMED", "REJECTED", "UNSURE")
SOURCE_KINDS = ("stream", "video", "upload")
MAX_LIST = 1000
MAX_CROP_BYTES = 512 * 1024  # a ~160 px JPEG is ~5-15 kB; anything this large is not a face crop
DELETE_CHUNK = 500


@dataclass(frozen=True)
class Identification:
    """One identification as reviewers see it (the crop itself: :meth:`ReviewQueue.crop`)."""

    identification_id: str
    created_at: datetime
    source_kind: str  # "stream" | "video" | "upload"
    source_name: str  # processor name, job id, or bucket/key
    collection_id: str | None
    face_id: str
    user_id: str | None
    similarity: float  # 0-100
    track_id: int | None
    pts_ms: int | None
    has_crop: bool
    status: str  # "PENDING" | "CONFIRMED" | "REJECTED" | "UNSURE"
    decided_by: str | None
    decided_at: datetime | None
    session_id: str | None = None  # the stream processor's run, or the job id

    @property
    def person(self) -> str:
        """Who it matched: the user, else the face."""
        return self.user_id or self.face_id


DecisionListener = Callable[[Identification], None]
"""Called (in the deciding thread) after each decision is committed and audited."""


def _info(row: IdentificationRow) -> Identification:
    return Identification(
        identification_id=row.id,
        created_at=row.created_at,
        source_kind=row.source_kind,
        source_name=row.source_name,
        collection_id=row.collection_id,
        face_id=row.face_id,
        user_id=row.user_id,
        similarity=float(row.similarity),
        track_id=row.track_id,
        pts_ms=row.pts_ms,
        has_crop=row.crop is not None,
        status=row.status,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        session_id=row.session_id,
    )


class ReviewQueue:
    """Identifications and their decisions over the store; ``audit``: where decisions are recorded.
    Thread-safe (each call is one transaction)."""

    def __init__(
        self,
        store: Store,
        *,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._listeners: list[DecisionListener] = []
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        return self._store

    def add_listener(self, listener: DecisionListener) -> None:
        """``listener(identification)`` after every decision (a failing listener is logged)."""
        with self._lock:
            self._listeners.append(listener)

    # -- producers -------------------------------------------------------------------------------------

    def record(
        self,
        *,
        source_kind: str,
        source_name: str,
        collection_id: str | None,
        face_id: str,
        similarity: float,
        track_id: int | None = None,
        pts_ms: int | None = None,
        session_id: str | None = None,
        crop_jpeg: bytes | None = None,
        probe_embedding: FloatArray | None = None,
        embedder_id: str | None = None,
        user_id: str | None = None,
        identification_id: str | None = None,
    ) -> Identification | None:
        """Queue one match (PENDING); the identification, or None when it is suppressed: its track
        already had this person rejected in this run, a negative of the person is closer to the probe
        than the person (negatives.py), or its collection no longer exists. A track reported again
        (same source, run, track and person) or an ``identification_id`` already recorded answers the
        identification queued first. ``user_id``: the face's user (looked up when not given)."""
        if source_kind not in SOURCE_KINDS:
            raise InvalidParameter(f"source_kind must be one of {', '.join(SOURCE_KINDS)}")
        if not 0.0 <= similarity <= 100.0:
            raise InvalidParameter("similarity must be in 0-100")
        if crop_jpeg is not None and len(crop_jpeg) > MAX_CROP_BYTES:
            crop_jpeg = None  # not a face crop; the identification is queued without it
        if probe_embedding is not None and embedder_id is None:
            raise InvalidParameter("a probe embedding needs its embedder_id")
        with self._store.transaction() as s:
            if identification_id is not None:
                row = s.get(IdentificationRow, identification_id)
                if row is not None:
                    return None if row.status == "REJECTED" else _info(row)
            if collection_id is not None and s.get(CollectionRow, collection_id) is None:
                return None
            if user_id is None:
                user_id = s.scalar(select(FaceRow.user_id).where(FaceRow.face_id == face_id))
            if track_id is not None:
                earlier = self._same_track(
                    s, source_kind, source_name, session_id, track_id, face_id, user_id
                )
                if earlier is not None:
                    return None if earlier.status == "REJECTED" else _info(earlier)
            if probe_embedding is not None and collection_id is not None and embedder_id is not None:
                closest = negative_similarity(
                    s, collection_id, face_id, user_id, probe_embedding, embedder_id
                )
                if closest is not None and closest > similarity:
                    return None
            row = IdentificationRow(
                id=identification_id or str(uuid.uuid4()),
                created_at=self._clock(),
                source_kind=source_kind,
                source_name=source_name[:2048],
                session_id=session_id,
                collection_id=collection_id,
                track_id=track_id,
                face_id=face_id,
                user_id=user_id,
                similarity=float(similarity),
                pts_ms=None if pts_ms is None else int(pts_ms),
                crop=crop_jpeg,
                probe_embedding=None if probe_embedding is None else vector_bytes(probe_embedding),
                embedder_id=embedder_id if probe_embedding is not None else None,
                status="PENDING",
            )
            s.add(row)
            s.flush()
            return _info(row)

    @staticmethod
    def _same_track(
        s: Session,
        source_kind: str,
        source_name: str,
        session_id: str | None,
        track_id: int,
        face_id: str,
        user_id: str | None,
    ) -> IdentificationRow | None:
        """The first identification of this person on this track of this run (a rejected one first)."""
        same = (
            IdentificationRow.face_id == face_id if user_id is None else IdentificationRow.user_id == user_id
        )
        q = (
            select(IdentificationRow)
            .where(
                IdentificationRow.source_kind == source_kind,
                IdentificationRow.source_name == source_name[:2048],
                IdentificationRow.track_id == track_id,
                IdentificationRow.session_id.is_(None)
                if session_id is None
                else IdentificationRow.session_id == session_id,
                same,
            )
            .order_by((IdentificationRow.status == "REJECTED").desc(), IdentificationRow.created_at)
            .limit(1)
        )
        return s.scalars(q).first()

    # -- reviewers ---------------------------------------------------------------------------------------

    def list(
        self,
        *,
        status: str | None = None,
        collection_id: str | None = None,
        source_kind: str | None = None,
        limit: int = 100,
    ) -> list[Identification]:
        """Identifications newest first, filtered; at most ``limit`` (1-1000)."""
        if status is not None and status not in STATUSES:
            raise InvalidParameter(f"status must be one of {', '.join(STATUSES)}")
        if source_kind is not None and source_kind not in SOURCE_KINDS:
            raise InvalidParameter(f"source_kind must be one of {', '.join(SOURCE_KINDS)}")
        q = select(IdentificationRow).order_by(
            IdentificationRow.created_at.desc(), IdentificationRow.id.desc()
        )
        if status is not None:
            q = q.where(IdentificationRow.status == status)
        if collection_id is not None:
            q = q.where(IdentificationRow.collection_id == collection_id)
        if source_kind is not None:
            q = q.where(IdentificationRow.source_kind == source_kind)
        # The crop and embedding are not loaded for a list (has_crop is computed from the column).
        with self._store.sessions() as s:
            rows = list(s.scalars(q.limit(max(1, min(int(limit), MAX_LIST)))))
            return [_info(r) for r in rows]

    def get(self, identification_id: str) -> Identification:
        """One identification; NotFound when there is none (or it was purged)."""
        with self._store.sessions() as s:
            return _info(self._row(s, identification_id))

    def crop(self, identification_id: str) -> bytes | None:
        """The probe face's JPEG (None: none was kept); NotFound when the identification is gone."""
        with self._store.sessions() as s:
            return self._row(s, identification_id).crop

    def counts(self, *, collection_id: str | None = None) -> dict[str, int]:
        """How many identifications are in each status (every status present), of one collection if
        given."""
        q = select(IdentificationRow.status, func.count()).group_by(IdentificationRow.status)
        if collection_id is not None:
            q = q.where(IdentificationRow.collection_id == collection_id)
        with self._store.sessions() as s:
            rows = s.execute(q).all()
        out = dict.fromkeys(STATUSES, 0)
        out.update({str(k): int(n) for k, n in rows})
        return out

    def decide(self, identification_id: str, decision: str, *, access_key: str | None) -> Identification:
        """CONFIRMED, REJECTED or UNSURE (InvalidParameter otherwise), by ``access_key``, now; a decision
        may be changed (the latest counts). REJECTED keeps the probe embedding as a negative for the
        person (removed again if the decision changes). Audited as ``ReviewIdentification``."""
        if decision not in DECISIONS:
            raise InvalidParameter(f"Decision must be one of {', '.join(DECISIONS)}")
        now = self._clock()
        with self._store.transaction() as s:
            row = self._row(s, identification_id)
            previous = row.status
            row.status, row.decided_by, row.decided_at = decision, access_key, now
            s.execute(delete(ReviewNegativeRow).where(ReviewNegativeRow.identification_id == row.id))
            if (
                decision == "REJECTED"
                and row.probe_embedding is not None
                and row.embedder_id is not None
                and row.collection_id is not None
            ):
                s.add(
                    ReviewNegativeRow(
                        id=str(uuid.uuid4()),
                        collection_id=row.collection_id,
                        face_id=row.face_id,
                        user_id=row.user_id,
                        embedder_id=row.embedder_id,
                        embedding=row.probe_embedding,
                        created_at=now,
                        identification_id=row.id,
                    )
                )
            s.flush()
            info = _info(row)
        if self._audit is not None:
            self._audit.append(
                "ReviewIdentification",
                access_key=access_key,
                collection_id=info.collection_id,
                details={
                    "decision": decision,
                    "previous": previous,
                    "identification_id": info.identification_id,
                    "face_id": info.face_id,
                    "user_id": info.user_id,
                    "similarity": info.similarity,
                    "source_kind": info.source_kind,
                    "source_name": info.source_name,
                    "session_id": info.session_id,
                    "track_id": info.track_id,
                },
            )
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(info)
            except Exception:  # a listener (telling a worker) must not undo a committed decision
                log.exception("a review listener failed for identification %s", info.identification_id)
        return info

    def negative_count(self, collection_id: str) -> int:
        """How many negatives the collection keeps (tests, the console)."""
        with self._store.sessions() as s:
            n = s.scalar(
                select(func.count())
                .select_from(ReviewNegativeRow)
                .where(ReviewNegativeRow.collection_id == collection_id)
            )
        return int(n or 0)

    def probe_embedding(self, identification_id: str) -> FloatArray | None:
        """The probe's vector as recorded (None: none was sent)."""
        with self._store.sessions() as s:
            raw = self._row(s, identification_id).probe_embedding
        return None if raw is None else vector_of(raw)

    def review_required(self, collection_id: str) -> bool:
        """Whether the collection holds stream records until a match is CONFIRMED (False when absent)."""
        with self._store.sessions() as s:
            row = s.get(CollectionRow, collection_id)
        return bool(row is not None and row.review_required)

    @staticmethod
    def _row(s: Session, identification_id: str) -> IdentificationRow:
        row = s.get(IdentificationRow, identification_id)
        if row is None:
            raise NotFound(f"identification {identification_id!r} does not exist")
        return row


def purge_expired(store: Store, now: datetime, *, dry_run: bool = False) -> dict[str, int]:
    """Identifications (crops and probe vectors with them) and negatives older than their collection's
    ``retention_days``: deleted (or, ``dry_run``, counted); identifications per collection key. The
    caller scrubs the store afterwards (keeneye/service/governance/retention.py)."""
    out: dict[str, int] = {}
    with store.sessions() as s:
        kept = list(
            s.execute(
                select(CollectionRow.collection_id, CollectionRow.retention_days).where(
                    CollectionRow.retention_days.is_not(None)
                )
            )
        )
    for collection_id, days in kept:
        if days is None:
            continue
        cutoff = now - timedelta(days=int(days))
        with store.sessions() as s:
            ids = list(
                s.scalars(
                    select(IdentificationRow.id).where(
                        IdentificationRow.collection_id == collection_id,
                        IdentificationRow.created_at < cutoff,
                    )
                )
            )
        if ids:
            out[collection_id] = len(ids)
        if dry_run:
            continue
        for start in range(0, len(ids), DELETE_CHUNK):
            with store.transaction() as s:
                s.execute(
                    delete(IdentificationRow).where(
                        IdentificationRow.id.in_(ids[start : start + DELETE_CHUNK])
                    )
                )
        with store.transaction() as s:
            s.execute(
                delete(ReviewNegativeRow).where(
                    ReviewNegativeRow.collection_id == collection_id, ReviewNegativeRow.created_at < cutoff
                )
            )
    return out
