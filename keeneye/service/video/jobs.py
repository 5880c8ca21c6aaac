"""Stored-video jobs (Rekognition's Start*/Get* operations): a durable queue in the database and a
small worker pool that runs it.

``VideoJobs.start`` records a job (IN_PROGRESS) and queues it; a worker runs the job's kind with a
``JobRunner`` and records SUCCEEDED with the video's metadata and the result items, or FAILED with
the error's message (an undecodable video is ``InvalidVideo``: FAILED with its message as the
StatusMessage). ``get`` pages the items. The database is the queue, shared by every server on it
(docs/deployment.md): a worker *claims* the oldest IN_PROGRESS job that no live worker holds, with a
lease (``lease_owner``, ``lease_expires_at``: ``video_jobs.lease_s``) that it renews while the job
runs. The claim is one conditional UPDATE (the lease free or expired), after a ``SELECT ... FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so two workers, in one server or in two, never both run a job. A job
whose server died (its lease expired, or at once on the same host: keeneye/store/leases.py) is claimed
by another worker and restarts from the beginning (a job's result is written in one transaction at its
end, so a half-run job leaves nothing behind; only the lease holder can write it). Idle workers look
for jobs every ``video_jobs.poll_interval_s``; a job started through this server wakes one at once.
``close`` stops the workers, abandoning a running job at its next frame; its lease is released, so it
runs again at the next start of any server.

``cancel`` ends a job FAILED with the StatusMessage "cancelled by the operator" (Rekognition's
JobStatus has no CANCELLED) at once, in the database; a queued job then never runs and a running
one stops at its next frame checkpoint, its output discarded. A job's end is recorded only once
(compare-and-set on IN_PROGRESS), so a cancel and a finishing worker cannot both win.

A job started with a ``notification_topic`` (NotificationChannel.SNSTopicArn) publishes
Rekognition's completion message (JobId, Status, API, JobTag, Timestamp, Video) to it through
keeneye.service.video.notifications when it ends, SUCCEEDED, FAILED or cancelled: the message enters the
outbox in the same transaction as the job's end, and its delivery never changes the job.

Items are kept in the service's units (pixels, milliseconds); the AWS adapter turns them into its
shapes. NextToken is the offset of the next item, opaque to callers.

One module of ~720 lines, on purpose: :class:`VideoJobs` is the queue's one writer, and its start (with
the per-key request tokens), claim, lease renewal, cancel and one-time end are compare-and-set steps on
the same rows whose correctness is read together; what stands alone is elsewhere (runners.py: what a
job of each kind runs; notifications.py: the outbox; results.py: the items).
"""

from __future__ import annotations

import base64
import logging
import queue
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, or_, select, update

from keeneye.core import regions
from keeneye.core.errors import (
    IdempotentParameterMismatch,
    InvalidPaginationToken,
    InvalidParameter,
    KeeneyeError,
    NotFound,
)
from keeneye.store import leases
from keeneye.store.db import Store
from keeneye.store.tables import VideoJobRow
from keeneye.video.sources import open_video

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keeneye.service.video.notifications import Delivery, NotificationService

log = logging.getLogger("keeneye.jobs")

JobStatus = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED"]
JobState = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]
SortBy = Literal["INDEX", "TIMESTAMP"]
CANCELLED_MESSAGE = "cancelled by the operator"
MAX_LIST = 1000


class JobStopped(Exception):
    """Raised inside a running job when the pool shuts down (the job stays IN_PROGRESS)."""


class JobCancelled(Exception):
    """Raised inside a running job that the operator cancelled (the job is already FAILED), or whose
    lease this worker lost (another server's worker runs it now)."""


class JobFinished(KeeneyeError):
    """The job has already ended: it cannot be cancelled (HTTP 409 in the native API)."""

    code = "Conflict"


@dataclass(frozen=True)
class VideoRef:
    """The video a job reads: an S3Object in a served bucket."""

    bucket: str
    name: str
    version: str | None = None


@dataclass(frozen=True)
class JobOutput:
    """What a runner produced: the container's metadata (keeneye.video.sources.VideoMetadata as a dict)
    and the items, each with ``pts_ms`` and ``index`` (the sort keys) plus kind-specific fields."""

    metadata: dict[str, Any]
    items: list[dict[str, Any]]


JobRunner = Callable[[Path, Mapping[str, Any], Callable[[], None]], JobOutput]
"""Runs one job: (video file, the job's params plus ``job_id``, a checkpoint that raises JobStopped
when the pool is stopping; call it once per frame) -> output. Raises KeeneyeError for a job that fails."""

VideoResolver = Callable[[VideoRef], Path]
"""The local file of a job's video (raises a KeeneyeError, or the adapter's error, when it cannot)."""


@dataclass(frozen=True)
class JobInfo:
    """A job's state for the native API: ``state`` tells a queued job from a running one."""

    job_id: str
    kind: str
    status: JobStatus
    state: JobState
    status_message: str | None
    video: VideoRef
    job_tag: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    items: int
    notification_topic: str | None
    notification: Delivery | None

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")

        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "status": self.status,
            "state": self.state,
            "status_message": self.status_message,
            "video": {"bucket": self.video.bucket, "name": self.video.name, "version": self.video.version},
            "job_tag": self.job_tag,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "items": self.items,
            "notification_topic": self.notification_topic,
            "notification": None if self.notification is None else self.notification.to_dict(),
        }


@dataclass(frozen=True)
class JobPage:
    """One page of a job: its state, and (once SUCCEEDED) the metadata and up to max_results items."""

    job_id: str
    kind: str
    status: JobStatus
    status_message: str | None
    video: VideoRef
    job_tag: str | None
    metadata: dict[str, Any] | None
    items: list[dict[str, Any]]
    next_token: str | None
    request: dict[str, Any] = field(
        default_factory=dict
    )  # the job's parameters (e.g. FaceDetection's extras)


def _now() -> datetime:
    return datetime.now(UTC)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("o:"):
            raise ValueError(text)
        offset = int(text[2:])
    except ValueError:
        raise InvalidPaginationToken("NextToken is not a valid pagination token") from None
    if offset < 0:
        raise InvalidPaginationToken("NextToken is not a valid pagination token")
    return offset


class VideoJobs:
    """The job store and its worker pool (``workers`` threads, started by :meth:`start_workers`; 0 queues
    without running).

    ``notifications``: where jobs started with a ``notification_topic`` publish their end (None: such
    jobs are refused). ``close()`` closes it too. ``lease_s``: how long a claim holds unrenewed;
    ``poll_interval_s``: how often idle workers look for jobs in the database; ``owner``: this server's
    lease owner name (keeneye.store.leases.new_owner() when not given).
    """

    def __init__(
        self,
        store: Store,
        runners: Mapping[str, JobRunner],
        resolve: VideoResolver,
        *,
        workers: int = 1,
        notifications: NotificationService | None = None,
        lease_s: float = 30.0,
        poll_interval_s: float = 2.0,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._lease_s = lease_s
        self._poll_s = poll_interval_s
        self.owner = owner or leases.new_owner()
        self._runners = dict(runners)
        self._resolve = resolve
        self._notifications = notifications
        self._queue: queue.Queue[str | None] = queue.Queue()  # wakes an idle worker (None: stop)
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._running: set[str] = set()  # jobs a worker holds
        self._cancelled: set[str] = set()  # of those, the ones to stop at their next checkpoint
        self._lost: set[str] = set()  # of those, the ones whose lease was lost (another worker runs it)
        self._cancel_lock = threading.Lock()
        self._workers = workers
        self._threads: list[threading.Thread] = []

    def start_workers(self) -> None:
        """Start the worker threads (which claim the jobs left queued or interrupted, in creation
        order), their lease renewal and the notification delivery (once). The constructor starts
        nothing: the composition root's lifecycle does, with the server."""
        if self._threads or self._stop.is_set():
            return
        if self._notifications is not None:
            self._notifications.start()
        self._threads = [
            threading.Thread(target=self._work, name=f"keeneye-job-{i}", daemon=True)
            for i in range(self._workers)
        ]
        if self._workers:
            self._threads.append(threading.Thread(target=self._renew, name="keeneye-job-lease", daemon=True))
        for t in self._threads:
            t.start()

    # -- requests ---------------------------------------------------------------------------------

    @property
    def notifications(self) -> NotificationService | None:
        return self._notifications

    def check_notification_topic(self, topic_arn: str) -> None:
        """Raise InvalidParameter (saying how to fix it) unless ``topic_arn`` has a notification channel."""
        if self._notifications is None:
            raise InvalidParameter("NotificationChannel is not available on this server")
        self._notifications.require_channel(topic_arn)

    def replay(
        self, kind: str, client_request_token: str | None, *, owner: str | None, region: str, fingerprint: str
    ) -> str | None:
        """The JobId an earlier Start* with this ClientRequestToken got, or None.

        A token belongs to the access key (``owner``) and region that used it: another key re-using it
        starts its own job and never learns the first one's JobId. The same token with other arguments
        (``fingerprint`` differs) raises IdempotentParameterMismatch, as Rekognition does."""
        if not client_request_token:
            return None
        with self._store.sessions() as s:
            return self._replay(s, kind, client_request_token, owner, region, fingerprint)

    def _replay(
        self, s: Any, kind: str, token: str, owner: str | None, region: str, fingerprint: str
    ) -> str | None:
        rows = s.execute(
            select(VideoJobRow.job_id, VideoJobRow.request)
            .where(VideoJobRow.kind == kind, VideoJobRow.client_request_token == token)
            .order_by(VideoJobRow.created_at)
        ).all()
        for job_id, request in rows:
            request = request or {}
            if request.get("access_key") != owner or request.get("region", regions.HOME_REGION) != region:
                continue
            if request.get("request_fingerprint") != fingerprint:
                raise IdempotentParameterMismatch(
                    "ClientRequestToken was already used with other parameters; use a new token for a "
                    "different request"
                )
            return str(job_id)
        return None

    def start(
        self,
        kind: str,
        video: VideoRef,
        job_tag: str | None = None,
        client_request_token: str | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        notification_topic: str | None = None,
        owner: str | None = None,
        region: str = regions.HOME_REGION,
        fingerprint: str = "",
    ) -> str:
        """Record and queue a job; the JobId (64 hex digits, as Rekognition's). The same
        ``client_request_token`` from the same ``owner`` (access key) and ``region`` returns the JobId
        of the job it started first (see :meth:`replay`). ``notification_topic``: an SNS topic ARN with
        a configured channel, told when the job ends. The job's params record ``access_key`` (the
        owner), ``region`` and ``request_fingerprint``."""
        if kind not in self._runners:
            raise InvalidParameter(f"unknown video job kind {kind!r}")
        if notification_topic is not None:
            self.check_notification_topic(notification_topic)
        request = dict(params or {}) | {
            "access_key": owner,
            "region": region,
            "request_fingerprint": fingerprint,
        }
        with self._start_lock, self._store.transaction() as s:
            if client_request_token:
                existing = self._replay(s, kind, client_request_token, owner, region, fingerprint)
                if existing is not None:
                    return existing
            job_id = secrets.token_hex(32)
            s.add(
                VideoJobRow(
                    job_id=job_id,
                    kind=kind,
                    status="IN_PROGRESS",
                    bucket=video.bucket,
                    name=video.name,
                    version=video.version,
                    job_tag=job_tag,
                    client_request_token=client_request_token,
                    request=request,
                    notification_topic=notification_topic,
                    created_at=_now(),
                )
            )
        self._queue.put(job_id)
        return job_id

    def get(
        self,
        job_id: str,
        kind: str,
        max_results: int = 1000,
        next_token: str | None = None,
        sort_by: SortBy = "TIMESTAMP",
        region: str | None = None,
    ) -> JobPage:
        """The job's state and one page of its items, sorted by ``pts_ms`` (TIMESTAMP) or by ``index``
        then ``pts_ms`` (INDEX). Raises NotFound for an unknown job (or one of another kind, or, with
        ``region``, one started in another region)."""
        if max_results < 1:
            raise InvalidParameter("MaxResults must be at least 1")
        offset = _decode_token(next_token) if next_token else 0
        with self._store.transaction() as s:
            row = s.get(VideoJobRow, job_id)
            job_region = (row.request or {}).get("region", regions.HOME_REGION) if row is not None else None
            if row is None or row.kind != kind or (region is not None and job_region != region):
                raise NotFound(f"job {job_id!r} not found")
            items = list(row.results or []) if row.status == "SUCCEEDED" else []
            status: JobStatus = row.status  # type: ignore[assignment]
            video = VideoRef(row.bucket, row.name, row.version)
            page_meta = row.video_metadata if row.status == "SUCCEEDED" else None
            message, tag = row.status_message, row.job_tag
            request = dict(row.request or {})
        if sort_by == "INDEX":
            items.sort(key=lambda it: (it["index"], it["pts_ms"]))
        else:
            items.sort(key=lambda it: (it["pts_ms"], it["index"]))
        page = items[offset : offset + max_results]
        end = offset + len(page)
        token = _encode_token(end) if end < len(items) else None
        return JobPage(job_id, kind, status, message, video, tag, page_meta, page, token, request)

    def info(self, job_id: str) -> JobInfo:
        """A job of any kind, with its notification's delivery state. Raises NotFound."""
        with self._store.transaction() as s:
            row = s.get(VideoJobRow, job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            info = _info(row)
        return self._with_deliveries([info])[0]

    def list_jobs(
        self, *, status: JobStatus | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobInfo]:
        """Jobs, newest first, optionally of one status and kind (at most ``limit``, <= 1000)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidParameter(f"limit must be between 1 and {MAX_LIST}")
        q = select(VideoJobRow).order_by(VideoJobRow.created_at.desc(), VideoJobRow.job_id).limit(limit)
        if status is not None:
            q = q.where(VideoJobRow.status == status)
        if kind is not None:
            q = q.where(VideoJobRow.kind == kind)
        with self._store.transaction() as s:
            infos = [_info(row) for row in s.scalars(q).all()]
        return self._with_deliveries(infos)

    def cancel(self, job_id: str) -> JobInfo:
        """End a queued or running job FAILED ("cancelled by the operator") and send its notification.
        A running job stops at its next frame. Raises NotFound, or JobFinished for an ended job."""
        with self._store.transaction() as s:
            row = s.get(VideoJobRow, job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            if row.status != "IN_PROGRESS":
                raise JobFinished(
                    f"job {job_id} has already ended ({row.status}); "
                    "only queued or running jobs can be cancelled"
                )
            ended = self._end(s, job_id, "FAILED", CANCELLED_MESSAGE, None, None)
        if not ended:  # the job ended between the read and the update
            raise JobFinished(f"job {job_id} has already ended; only queued or running jobs can be cancelled")
        # The database says FAILED now: a worker that has not read the job yet skips it, and one that
        # holds it (registered before it read the job) is told to stop.
        with self._cancel_lock:
            if job_id in self._running:
                self._cancelled.add(job_id)
        log.info("job %s cancelled by the operator", job_id)
        self._wake_notifications()
        return self.info(job_id)

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop the workers (a running job is abandoned at its next frame, stays IN_PROGRESS and its
        lease is released), then the notification service given to the constructor."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=timeout_s)
        if self._notifications is not None:
            self._notifications.close(timeout_s)

    def _with_deliveries(self, infos: list[JobInfo]) -> list[JobInfo]:
        if self._notifications is None:
            return infos
        ids = [i.job_id for i in infos if i.notification_topic]
        if not ids:
            return infos
        by_job: dict[str, Delivery] = {}
        for d in self._notifications.deliveries(job_ids=ids, limit=len(ids) * 4):
            if d.job_id is not None:
                by_job.setdefault(d.job_id, d)  # newest first: the latest message of the job
        return [replace(i, notification=by_job.get(i.job_id)) for i in infos]

    # -- workers -----------------------------------------------------------------------------------

    def _free(self, now: datetime) -> ColumnElement[bool]:
        """A job no live worker holds: never claimed, released, or its lease expired."""
        return or_(VideoJobRow.lease_expires_at.is_(None), VideoJobRow.lease_expires_at < now)

    def _claim(self) -> str | None:
        """Claim the oldest job no live worker holds; its id, or None when there is none.

        On PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED`` (rows another worker is
        claiming are skipped, not waited for); on every backend the claim itself is one UPDATE that
        succeeds only while the lease is still free, so one worker wins each job."""
        self._void_dead_leases()
        now = _now()
        pending = VideoJobRow.status == "IN_PROGRESS"
        with self._store.transaction() as s:
            candidates = s.scalars(
                select(VideoJobRow.job_id)
                .where(pending, self._free(now))
                .order_by(VideoJobRow.created_at, VideoJobRow.job_id)
                .limit(8)
                .with_for_update(skip_locked=True)
            ).all()
            for job_id in candidates:
                claimed = s.execute(
                    update(VideoJobRow)
                    .where(VideoJobRow.job_id == job_id, pending, self._free(now))
                    .values(
                        lease_owner=self.owner,
                        lease_expires_at=now + timedelta(seconds=self._lease_s),
                        started_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return str(job_id)
        return None

    def _void_dead_leases(self) -> None:
        """Expire at once the leases of this host's servers that have exited (keeneye.store.leases)."""
        now = _now()
        with self._store.transaction() as s:
            owners = s.scalars(
                select(VideoJobRow.lease_owner)
                .where(VideoJobRow.status == "IN_PROGRESS", VideoJobRow.lease_expires_at >= now)
                .distinct()
            ).all()
            for owner in owners:
                if owner is not None and leases.dead_here(owner):
                    log.info("jobs of %s, which exited, are free to run again", owner)
                    s.execute(
                        update(VideoJobRow)
                        .where(VideoJobRow.lease_owner == owner, VideoJobRow.status == "IN_PROGRESS")
                        .values(lease_expires_at=None)
                        .execution_options(synchronize_session=False)
                    )

    def _renew(self) -> None:
        """Every third of the lease: extend the leases of the jobs this server runs; a job whose lease is
        gone (taken over after a stall, or cancelled through another server) is stopped here."""
        while not self._stop.wait(self._lease_s / 3):
            with self._cancel_lock:
                held = set(self._running)
            if not held:
                continue
            now = _now()
            mine = (
                VideoJobRow.job_id.in_(held),
                VideoJobRow.status == "IN_PROGRESS",
                VideoJobRow.lease_owner == self.owner,
            )
            with self._store.transaction() as s:
                s.execute(
                    update(VideoJobRow)
                    .where(*mine)
                    .values(lease_expires_at=now + timedelta(seconds=self._lease_s))
                    .execution_options(synchronize_session=False)
                )
                kept = set(s.scalars(select(VideoJobRow.job_id).where(*mine)).all())
            with self._cancel_lock:
                lost = (held - kept) & self._running
                self._lost |= lost
            for job_id in lost:
                log.warning("job %s: its lease is gone (ended or run by another server); stopping it", job_id)

    def _release(self, job_id: str) -> None:
        """Give a job back (server shutdown): any worker may claim it at once; it restarts from the start."""
        with self._store.transaction() as s:
            s.execute(
                update(VideoJobRow)
                .where(VideoJobRow.job_id == job_id, VideoJobRow.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None, started_at=None)
                .execution_options(synchronize_session=False)
            )

    def _checkpoint(self, job_id: str) -> Callable[[], None]:
        def check() -> None:
            if self._stop.is_set():
                raise JobStopped
            if job_id in self._cancelled or job_id in self._lost:
                raise JobCancelled

        return check

    def _idle(self) -> bool:
        """Wait for a job started here, at most ``poll_interval_s``; False when the server stops."""
        try:
            return self._queue.get(timeout=self._poll_s) is not None
        except queue.Empty:
            return True

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._claim()
            if job_id is None:
                if not self._idle():
                    return
                continue
            with self._cancel_lock:
                self._running.add(job_id)
            try:
                self._run(job_id)
            except JobStopped:
                self._release(job_id)
                log.info("job %s stopped with the server; it runs again at the next start", job_id)
                return
            except JobCancelled:  # cancel() has already recorded the job's end, or another worker has it
                log.info("job %s stopped: cancelled by the operator or run by another server", job_id)
            finally:
                with self._cancel_lock:
                    self._running.discard(job_id)
                    self._cancelled.discard(job_id)
                    self._lost.discard(job_id)

    def _run(self, job_id: str) -> None:
        with self._store.transaction() as s:
            row = s.get(VideoJobRow, job_id)
            if row is None or row.status != "IN_PROGRESS" or row.lease_owner != self.owner:
                return
            kind, ref, params = row.kind, VideoRef(row.bucket, row.name, row.version), dict(row.request)
        params["job_id"] = job_id  # runners name the job in what they record (audit)
        path: Path | None = None
        try:
            path = self._resolve(ref)
            output = self._runners[kind](path, params, self._checkpoint(job_id))
        except (JobStopped, JobCancelled):
            raise
        except KeeneyeError as exc:  # the caller sees the object's name, never the server's path
            message = exc.message if path is None else exc.message.replace(str(path), ref.name)
            self._finish(job_id, "FAILED", message, None, None)
            return
        except Exception as exc:  # the job fails; the worker goes on with the next one
            log.error("job %s failed", job_id, exc_info=exc)
            message = getattr(exc, "message", None) or "internal error while running the job"
            self._finish(job_id, "FAILED", str(message), None, None)
            return
        self._finish(job_id, "SUCCEEDED", None, output.metadata, output.items)

    def _finish(
        self,
        job_id: str,
        status: JobStatus,
        message: str | None,
        metadata: dict[str, Any] | None,
        items: list[dict[str, Any]] | None,
    ) -> None:
        with self._store.transaction() as s:
            ended = self._end(s, job_id, status, message, metadata, items, owner=self.owner)
        if ended:
            self._wake_notifications()
        else:
            log.warning("job %s: its result was not recorded (cancelled, or run by another server)", job_id)

    def _end(
        self,
        s: Session,
        job_id: str,
        status: JobStatus,
        message: str | None,
        metadata: dict[str, Any] | None,
        items: list[dict[str, Any]] | None,
        *,
        owner: str | None = None,
    ) -> bool:
        """Record a job's end and queue its notification, in the caller's transaction; False (nothing
        written) when the job has already ended, or (``owner`` given: a worker's result) when ``owner``
        no longer holds its lease. One conditional UPDATE decides, so a cancel and a finishing worker,
        or two workers, cannot both end a job (a read, then a write, would let both through)."""
        now = _now()
        where = [VideoJobRow.job_id == job_id, VideoJobRow.status == "IN_PROGRESS"]
        if owner is not None:
            where.append(VideoJobRow.lease_owner == owner)
        ended = s.execute(
            update(VideoJobRow)
            .where(*where)
            .values(
                status=status,
                status_message=message[:1024] if message else None,
                video_metadata=metadata,
                results=items,
                finished_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            return False
        row = s.get(VideoJobRow, job_id, populate_existing=True)
        if row is None or row.notification_topic is None:
            return True
        if self._notifications is None:  # the server lost its notification service since Start
            log.error("job %s ended but notifications are off: %s not told", job_id, row.notification_topic)
            return True
        self._notifications.enqueue(s, row.notification_topic, completion_message(row, now), job_id=job_id)
        return True

    def _wake_notifications(self) -> None:
        if self._notifications is not None:
            self._notifications.wake()


def completion_message(row: VideoJobRow, finished_at: datetime) -> dict[str, Any]:
    """Rekognition's completion notification of a job (the SNS Message): JobId, Status, API (the Start
    operation), JobTag (when given), Timestamp (ms since the epoch) and Video."""
    message: dict[str, Any] = {"JobId": row.job_id, "Status": row.status, "API": f"Start{row.kind}"}
    if row.job_tag:
        message["JobTag"] = row.job_tag
    message["Timestamp"] = int(finished_at.timestamp() * 1000)
    message["Video"] = {"S3ObjectName": row.name, "S3Bucket": row.bucket}
    return message


def _info(row: VideoJobRow) -> JobInfo:
    status: JobStatus = row.status  # type: ignore[assignment]
    held = row.lease_expires_at is not None and row.lease_expires_at >= _now()
    state: JobState = status if status != "IN_PROGRESS" else ("RUNNING" if held else "QUEUED")
    return JobInfo(
        job_id=row.job_id,
        kind=row.kind,
        status=status,
        state=state,
        status_message=row.status_message,
        video=VideoRef(row.bucket, row.name, row.version),
        job_tag=row.job_tag,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        items=len(row.results or []),
        notification_topic=row.notification_topic,
        notification=None,
    )


def header_checked(runner: JobRunner, max_pixels: int | None) -> JobRunner:
    """``runner`` behind a look at the video's stream header: a video whose frames are over
    ``max_pixels`` (width x height; ``video_jobs.max_pixels``) or that is not a video at all fails its
    job (LimitExceeded / InvalidVideo, with the reason as StatusMessage) before a frame is decoded or a
    model is loaded. Opening reads only the header (milliseconds)."""
    if max_pixels is None:
        return runner

    def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:

        with open_video(video, max_pixels=max_pixels):  # messages name the path; _run shows the S3 name
            pass
        return runner(video, params, checkpoint)

    return run
