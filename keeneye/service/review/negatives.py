"""Rejected probes kept as negatives: the same stranger stops matching the person they were mistaken for.

When a reviewer rejects an identification ("not this person"), its probe embedding is kept against the
face and user it matched (``review_negatives``). The rule, applied to every later match of that person:

    a match to a person is **suppressed** when the probe's Similarity to one of that person's negatives
    (the embedder's calibrated scale, keeneye/analysis/similarity.py, of the cosine) is **higher** than
    its Similarity to the person.

That is: the probe looks more like the stranger a human already turned down than like the person, so it
is taken for that stranger again. A probe closer to the person than to every negative still matches (a
negative never hides the person themselves, who are by definition closer to their own faces). A
negative applies to the face it was matched to and, where that face belongs to a user, to every face of
that user. Negatives of another embedder are never compared. They are deleted with the collection and,
like identifications, purged after the collection's ``retention_days``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from keeneye.analysis.similarity import calibration_for, cosine
from keeneye.core.types import FloatArray
from keeneye.store.db import Store
from keeneye.store.tables import ReviewNegativeRow


class _FaceLike(Protocol):
    @property
    def face_id(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...


class MatchLike(Protocol):
    """What the filter reads of a match: keeneye.store.collections.FaceMatch."""

    @property
    def similarity(self) -> float: ...

    @property
    def face(self) -> _FaceLike: ...


M = TypeVar("M", bound=MatchLike)


def vector_bytes(embedding: FloatArray) -> bytes:
    """An embedding as stored: (D,) little-endian float32."""
    return np.asarray(embedding, dtype="<f4").reshape(-1).tobytes()


def vector_of(raw: bytes) -> FloatArray:
    out: FloatArray = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return out


def negative_similarity(
    session: Session,
    collection_id: str,
    face_id: str,
    user_id: str | None,
    embedding: FloatArray,
    embedder_id: str,
) -> float | None:
    """The highest Similarity (0-100) of ``embedding`` to the negatives of that face / user; None when
    it has none (of this embedder)."""
    negatives = _negatives(session, collection_id, embedder_id)
    vectors = [v for f, u, v in negatives if f == face_id or (user_id is not None and u == user_id)]
    return _best(vectors, embedding, embedder_id)


def filter_matches(
    store: Store, collection_id: str, embedding: FloatArray, embedder_id: str, matches: Sequence[M]
) -> list[M]:
    """``matches`` without those the rule of this module suppresses (order kept)."""
    if not matches:
        return []
    with store.sessions() as session:
        negatives = _negatives(session, collection_id, embedder_id)
    if not negatives:
        return list(matches)
    out = []
    for m in matches:
        face_id, user_id = m.face.face_id, m.face.user_id
        vectors = [v for f, u, v in negatives if f == face_id or (user_id is not None and u == user_id)]
        best = _best(vectors, embedding, embedder_id)
        if best is None or best <= m.similarity:
            out.append(m)
    return out


def _negatives(
    session: Session, collection_id: str, embedder_id: str
) -> list[tuple[str, str | None, FloatArray]]:
    rows = session.execute(
        select(ReviewNegativeRow.face_id, ReviewNegativeRow.user_id, ReviewNegativeRow.embedding).where(
            ReviewNegativeRow.collection_id == collection_id, ReviewNegativeRow.embedder_id == embedder_id
        )
    )
    return [(f, u, vector_of(e)) for f, u, e in rows]


def _best(vectors: Sequence[FloatArray], embedding: FloatArray, embedder_id: str) -> float | None:
    probe = np.asarray(embedding, np.float32).reshape(-1)
    same = [v for v in vectors if v.shape == probe.shape]
    if not same:
        return None
    cos = cosine(probe[None, :], np.stack(same))[0]
    return float(np.max(calibration_for(embedder_id).similarity(cos)))
