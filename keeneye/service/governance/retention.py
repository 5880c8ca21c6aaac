"""Retention: faces, job results and delivered notifications deleted once they are old enough.

What goes (docs/accountability.md):

* faces indexed longer ago than their collection's ``retention_days`` (``keeneye collections
  set-retention``), through the collections' use cases (keeneye/service/faces/catalog.py: no face
  model is needed) so their vectors leave the in-memory index, the index files and the database
  (secure_delete, write-ahead log truncated) in the same step as the rows; faces associated with a
  user go too (the user stays);
* stored-video jobs that ended longer ago than ``retention.job_results_days``: the whole job row
  (request, metadata, results) — Get* then answers that the job does not exist;
* notification-outbox messages delivered longer ago than ``retention.notifications_days``
  (undelivered messages are never purged);
* identifications of the review queue (their face crops and probe vectors) and review negatives older
  than their collection's ``retention_days`` (keeneye/service/review/queue.py).

Every purge that is not a dry run appends one audit record, operation ``Purge``, with counts only.
``keeneye purge`` runs one now; ``keeneye serve`` runs :class:`PurgeThread` every
``retention.purge_interval_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from keeneye.config import RetentionSettings
from keeneye.core.errors import KeeneyeError
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.review.queue import purge_expired as purge_identifications
from keeneye.service.streams.events import StreamEvents
from keeneye.store.db import Store
from keeneye.store.tables import NotificationOutboxRow, VideoJobRow

if TYPE_CHECKING:
    from keeneye.service.governance.audit import AuditLog

log = logging.getLogger("keeneye.retention")

DELETE_CHUNK = 500


@dataclass
class PurgeReport:
    """What a purge deleted (or, with ``dry_run``, would delete): counts, never contents."""

    dry_run: bool
    time: str
    faces: dict[str, int] = field(default_factory=dict)  # collection id -> faces
    job_results: int = 0  # stored-video jobs (with their results)
    notifications: int = 0  # delivered outbox messages
    identifications: dict[str, int] = field(default_factory=dict)  # collection id -> review queue items
    stream_events: int = 0  # stream processors' line and zone events (the console's timeline)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return (
            sum(self.faces.values())
            + self.job_results
            + self.notifications
            + sum(self.identifications.values())
            + self.stream_events
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "faces_total": sum(self.faces.values())}


class ExpiringFaces(Protocol):
    """What the purge needs of the collections (FaceCollections, or FaceCatalog alone: no face model)."""

    def expired_faces(self, now: datetime) -> dict[str, list[str]]: ...

    def purge_faces(self, collection_id: str, face_ids: Sequence[str]) -> int: ...


class RetentionService:
    """Runs purges over the store. ``collections``: None when faces are not managed here."""

    def __init__(
        self,
        store: Store,
        settings: RetentionSettings,
        *,
        collections: ExpiringFaces | None = None,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._settings = settings
        self._collections = collections
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()  # one purge at a time in this process

    def purge(self, *, dry_run: bool = False, access_key: str | None = None) -> PurgeReport:
        """Delete everything past its retention now (or only count it, ``dry_run``)."""
        with self._lock:
            now = self._clock()
            report = PurgeReport(
                dry_run=dry_run,
                time=now.isoformat(),
                settings={
                    "job_results_days": self._settings.job_results_days,
                    "notifications_days": self._settings.notifications_days,
                },
            )
            if self._collections is not None:
                for collection_id, face_ids in self._collections.expired_faces(now).items():
                    n = len(face_ids) if dry_run else self._collections.purge_faces(collection_id, face_ids)
                    if n:
                        report.faces[collection_id] = n
            report.identifications = purge_identifications(self._store, now, dry_run=dry_run)
            report.stream_events = StreamEvents(self._store).purge(
                now, self._settings.stream_events_days, dry_run=dry_run
            )
            if self._settings.job_results_days is not None:
                cutoff = now - timedelta(days=self._settings.job_results_days)
                report.job_results = self._delete(
                    VideoJobRow.job_id,
                    VideoJobRow.status != "IN_PROGRESS",
                    VideoJobRow.finished_at.is_not(None),
                    VideoJobRow.finished_at < cutoff,
                    dry_run=dry_run,
                )
            if self._settings.notifications_days is not None:
                cutoff = now - timedelta(days=self._settings.notifications_days)
                report.notifications = self._delete(
                    NotificationOutboxRow.id,
                    NotificationOutboxRow.delivered_at.is_not(None),
                    NotificationOutboxRow.delivered_at < cutoff,
                    dry_run=dry_run,
                )
            if not dry_run:
                if report.job_results or report.notifications or report.identifications:
                    self._store.scrub()  # faces were scrubbed by FaceCollections
                if self._audit is not None:
                    details: dict[str, Any] = {
                        "faces": dict(report.faces),
                        "job_results": report.job_results,
                        "notifications": report.notifications,
                    }
                    if report.identifications:
                        details["identifications"] = dict(report.identifications)
                    if report.stream_events:
                        details["stream_events"] = report.stream_events
                    self._audit.append(
                        "Purge",
                        access_key=access_key,
                        request_faces=sum(report.faces.values()),
                        details=details,
                    )
            if report.total:
                log.info(
                    "retention purge%s: %d faces, %d jobs, %d notifications",
                    " (dry run)" if dry_run else "",
                    sum(report.faces.values()),
                    report.job_results,
                    report.notifications,
                )
            return report

    def _delete(self, key: Any, *where: Any, dry_run: bool) -> int:
        """Delete the rows of ``key``'s table matching ``where`` in chunks; how many (or would be)."""
        with self._store.sessions() as s:
            ids = list(s.scalars(select(key).where(*where)))
        if dry_run:
            return len(ids)
        for start in range(0, len(ids), DELETE_CHUNK):
            with self._store.transaction() as s:
                s.execute(delete(key.class_).where(key.in_(ids[start : start + DELETE_CHUNK]), *where))
        return len(ids)


class PurgeThread:
    """Runs ``service.purge()`` at start and then every ``interval_s`` seconds until :meth:`stop`.

    A failing purge (database unreachable, a full disk) is logged and tried again next time.
    """

    def __init__(self, service: RetentionService, interval_s: float) -> None:
        self._service = service
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="keeneye-purge", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._service.purge()
            except (SQLAlchemyError, KeeneyeError, OSError):
                log.exception("retention purge failed; it runs again in %.0f s", self._interval_s)
            self._stop.wait(self._interval_s)


def stored_collections(store: Store) -> FaceCollections:
    """FaceCollections for commands that change stored faces only (retention, purge): no face model is
    loaded, and none is needed (what would need one fails as it does without an embedder)."""
    return FaceCollections(store)
