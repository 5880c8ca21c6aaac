"""The audit log of identity operations: append-only, readable by time and collection.

Every IndexFaces, SearchFaces*, SearchUsers*, CompareFaces, DeleteFaces, DeleteUser and
DeleteCollection call appends one record (the adapter does, as only it knows the caller's access
key): time, access key id, operation, collection, number of faces in the request, matched FaceIds /
UserIds with their similarities, and the threshold. Records whose threshold is below 99 are flagged:
AWS recommends a threshold of at least 99 % for public-safety uses of face search. There is no
method to change or remove a record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from keeneye.store.db import Store
from keeneye.store.tables import AuditRow

PUBLIC_SAFETY_THRESHOLD = 99.0
FLAG_NOTE = "below the level AWS recommends for public-safety use (99)"
MAX_READ = 10_000


class AuditLog:
    """Append and read audit records in the store's ``audit`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def append(
        self,
        operation: str,
        *,
        access_key: str | None,
        collection_id: str | None = None,
        request_faces: int = 0,
        matches: Sequence[dict[str, Any]] = (),
        threshold: float | None = None,
        time: datetime | None = None,
    ) -> int:
        """Write one record (committed before returning) and return its id.

        matches: e.g. ``[{"FaceId": ..., "Similarity": 99.1}]`` or ``[{"UserId": ..., "Similarity": ...}]``
        (plain JSON values). threshold: the FaceMatchThreshold / UserMatchThreshold /
        SimilarityThreshold in force (0-100), None for operations without one.
        """
        when = time or datetime.now(UTC)
        if when.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        row = AuditRow(
            time=when,
            access_key=access_key,
            operation=operation,
            collection_id=collection_id,
            request_faces=int(request_faces),
            matches=[dict(m) for m in matches],
            threshold=None if threshold is None else float(threshold),
            flagged_below_99=threshold is not None and float(threshold) < PUBLIC_SAFETY_THRESHOLD,
        )
        with self._store.transaction() as session:
            session.add(row)
            session.flush()
            return row.id

    def read(
        self, since: datetime | None = None, collection_id: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Records in the order they were written, at or after ``since``, of one collection if given."""
        if not 1 <= limit <= MAX_READ:
            raise ValueError(f"limit must be between 1 and {MAX_READ}")
        stmt = select(AuditRow).order_by(AuditRow.id).limit(limit)
        if since is not None:
            aware = since if since.tzinfo else since.replace(tzinfo=UTC)  # naive means UTC
            stmt = stmt.where(AuditRow.time >= aware.astimezone(UTC))
        if collection_id is not None:
            stmt = stmt.where(AuditRow.collection_id == collection_id)
        with self._store.sessions() as session:
            return [_as_dict(r) for r in session.scalars(stmt)]


def _as_dict(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": row.time.isoformat(),
        "access_key": row.access_key,
        "operation": row.operation,
        "collection_id": row.collection_id,
        "request_faces": row.request_faces,
        "matches": row.matches,
        "threshold": row.threshold,
        "flagged_below_99": bool(row.flagged_below_99),
        "flag": FLAG_NOTE if row.flagged_below_99 else None,
    }
