"""Search records held for review: a search rule of a collection that requires review
(``review_required``) does not send a record with matches at once; it is kept in ``upload_holds``
with its identification and the event waits in state ``held`` (docs/uploads.md, "Review").

In the database, not in memory, so a restart loses nothing: whatever process runs the event's source
reads the decisions from the ``identifications`` table (:meth:`UploadHolds.settle`), so a decision
taken while it was down, or in the server for a ``keeneye watch-folder`` event, counts. The sending
and dropping is keeneye/service/uploads/service.py (``_release``); this module is the table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from keeneye.service.review.queue import Identification
from keeneye.store.db import Store
from keeneye.store.tables import IdentificationRow, UploadEventRow, UploadHoldRow
from keeneye.streams.review import review_field

UNSENT_ERROR = "not sent: its identification was deleted (collection deleted or retention) before a review"
# Upload identifications' ids: one per event, the same when an event runs again (a retry, a restart).
_IDENTIFICATIONS = uuid.UUID("6f0c1f8e-4c55-4d55-9a53-3a1b7e0d2c11")


def identification_id_of(event_id: str) -> str:
    """The id of an upload event's identification (a UUID derived from the event's id)."""
    return str(uuid.uuid5(_IDENTIFICATIONS, event_id))


def review_of(identification_id: str, status: str, by: str | None, at: datetime | None) -> dict[str, Any]:
    """``Keeneye.Review`` as stream records carry it (keeneye.streams.review.review_field)."""
    return review_field(identification_id, status, by, None if at is None else at.isoformat())


def review_of_identification(identification: Identification) -> dict[str, Any]:
    return review_of(
        identification.identification_id,
        identification.status,
        identification.decided_by,
        identification.decided_at,
    )


@dataclass(frozen=True)
class Held:
    """A held record (the sink message as it will be sent) and its identification's review as it
    stands (``Keeneye.Review``)."""

    identification_id: str
    record: dict[str, Any]
    review: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.review["Status"])


class UploadHolds:
    """The ``upload_holds`` table and the ``held`` state of ``upload_events``; each call is one
    transaction."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def hold(
        self, event_id: str, identification_id: str, record: dict[str, Any], result: dict[str, Any]
    ) -> None:
        """Keep ``record`` until the identification is decided; the event ``held`` with ``result``. An
        event run again (a restart) keeps the hold it has."""
        with self._store.transaction() as s:
            if s.get(UploadHoldRow, identification_id) is None:
                s.add(
                    UploadHoldRow(
                        identification_id=identification_id,
                        event_id=event_id,
                        record=record,
                        created_at=self._clock(),
                    )
                )
            self._set_held(s, event_id, result)

    def wait(self, event_id: str, result: dict[str, Any]) -> None:
        """The event back to ``held`` (its identification is not decided after all)."""
        with self._store.transaction() as s:
            self._set_held(s, event_id, result)

    @staticmethod
    def _set_held(s: Session, event_id: str, result: dict[str, Any]) -> None:
        s.execute(
            update(UploadEventRow)
            .where(UploadEventRow.event_id == event_id)
            .values(state="held", result=result, last_error=None)
        )

    def of(self, event_id: str) -> Held | None:
        """The event's held record, None when it has none."""
        with self._store.sessions() as s:
            found = s.execute(
                select(UploadHoldRow, IdentificationRow)
                .join(IdentificationRow, IdentificationRow.id == UploadHoldRow.identification_id)
                .where(UploadHoldRow.event_id == event_id)
            ).first()
            if found is None:
                return None
            hold, row = found
            review = review_of(row.id, row.status, row.decided_by, row.decided_at)
            return Held(hold.identification_id, dict(hold.record), review)

    def drop(self, identification_id: str) -> None:
        with self._store.transaction() as s:
            hold = s.get(UploadHoldRow, identification_id)
            if hold is not None:
                s.delete(hold)

    def settle(self, source: str) -> None:
        """Held events of ``source`` whose identification was decided (CONFIRMED or REJECTED) go back to
        the queue, to be sent or dropped; one whose hold went with its identification (the collection
        deleted, its retention passed) fails unsent."""
        now = self._clock()
        with self._store.transaction() as s:
            rows = s.execute(
                select(UploadEventRow, IdentificationRow.status)
                .outerjoin(UploadHoldRow, UploadHoldRow.event_id == UploadEventRow.event_id)
                .outerjoin(IdentificationRow, IdentificationRow.id == UploadHoldRow.identification_id)
                .where(
                    UploadEventRow.state == "held",
                    UploadEventRow.source == source,
                    UploadHoldRow.identification_id.is_(None)
                    | IdentificationRow.status.in_(("CONFIRMED", "REJECTED")),
                )
            ).all()
            for event, status in rows:
                if status is None:
                    event.state, event.last_error, event.finished_at = "failed", UNSENT_ERROR, now
                else:
                    event.state, event.next_attempt_at = "queued", now
