"""Stored-video jobs (Rekognition's Start*/Get* operations): a durable queue in the database and a
small worker pool that runs it.

``VideoJobs.start`` records a job (IN_PROGRESS) and queues it; a worker runs the job's kind with a
``JobRunner`` and records SUCCEEDED with the video's metadata and the result items, or FAILED with
the error's message (an undecodable video is ``InvalidVideo``: FAILED with its message as the
StatusMessage). ``get`` pages the items. The database is the queue: on construction every job still
IN_PROGRESS is queued again in creation order, so queued jobs resume and jobs that were running when
the server stopped restart from the beginning (a job's result is written in one transaction at its
end, so a half-run job leaves nothing behind). ``close`` stops the workers, abandoning a running job
at its next frame; it stays IN_PROGRESS and runs again at the next start.

Items are kept in the service's units (pixels, milliseconds); the AWS adapter turns them into its
shapes. NextToken is the offset of the next item, opaque to callers.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from keeneye.core.errors import InvalidParameter, KeeneyeError, NotFound
from keeneye.store.db import Store
from keeneye.store.tables import VideoJobRow

log = logging.getLogger("keeneye.jobs")

JobStatus = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED"]
SortBy = Literal["INDEX", "TIMESTAMP"]


class JobStopped(Exception):
    """Raised inside a running job when the pool shuts down (the job stays IN_PROGRESS)."""


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
"""Runs one job: (video file, the job's params, a checkpoint that raises JobStopped when the pool is
stopping; call it once per frame) -> output. Raises KeeneyeError for a job that fails."""

VideoResolver = Callable[[VideoRef], Path]
"""The local file of a job's video (raises a KeeneyeError, or the adapter's error, when it cannot)."""


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
        raise InvalidParameter("invalid NextToken") from None
    if offset < 0:
        raise InvalidParameter("invalid NextToken")
    return offset


class VideoJobs:
    """The job store and its worker pool (``workers`` threads; 0 queues without running)."""

    def __init__(
        self,
        store: Store,
        runners: Mapping[str, JobRunner],
        resolve: VideoResolver,
        *,
        workers: int = 1,
    ) -> None:
        self._store = store
        self._runners = dict(runners)
        self._resolve = resolve
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"keeneye-job-{i}", daemon=True) for i in range(workers)
        ]
        for job_id in self._unfinished():
            self._queue.put(job_id)
        for t in self._threads:
            t.start()

    # -- requests ---------------------------------------------------------------------------------

    def start(
        self,
        kind: str,
        video: VideoRef,
        job_tag: str | None = None,
        client_request_token: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Record and queue a job; the JobId. The same ``client_request_token`` (per kind) returns the
        JobId of the job it started first, whatever the other arguments."""
        if kind not in self._runners:
            raise InvalidParameter(f"unknown video job kind {kind!r}")
        with self._start_lock, self._store.transaction() as s:
            if client_request_token:
                existing = s.scalars(
                    select(VideoJobRow.job_id).where(
                        VideoJobRow.kind == kind, VideoJobRow.client_request_token == client_request_token
                    )
                ).first()
                if existing is not None:
                    return existing
            job_id = uuid.uuid4().hex
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
                    request=dict(params or {}),
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
    ) -> JobPage:
        """The job's state and one page of its items, sorted by ``pts_ms`` (TIMESTAMP) or by ``index``
        then ``pts_ms`` (INDEX). Raises NotFound for an unknown job (or one of another kind)."""
        if max_results < 1:
            raise InvalidParameter("MaxResults must be at least 1")
        offset = _decode_token(next_token) if next_token else 0
        with self._store.transaction() as s:
            row = s.get(VideoJobRow, job_id)
            if row is None or row.kind != kind:
                raise NotFound(f"job {job_id!r} not found")
            items = list(row.results or []) if row.status == "SUCCEEDED" else []
            status: JobStatus = row.status  # type: ignore[assignment]
            video = VideoRef(row.bucket, row.name, row.version)
            page_meta = row.video_metadata if row.status == "SUCCEEDED" else None
            message, tag = row.status_message, row.job_tag
        if sort_by == "INDEX":
            items.sort(key=lambda it: (it["index"], it["pts_ms"]))
        else:
            items.sort(key=lambda it: (it["pts_ms"], it["index"]))
        page = items[offset : offset + max_results]
        end = offset + len(page)
        token = _encode_token(end) if end < len(items) else None
        return JobPage(job_id, kind, status, message, video, tag, page_meta, page, token)

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop the workers (a running job is abandoned at its next frame and stays IN_PROGRESS)."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=timeout_s)

    # -- workers -----------------------------------------------------------------------------------

    def _unfinished(self) -> list[str]:
        with self._store.transaction() as s:
            unfinished = VideoJobRow.status == "IN_PROGRESS"
            rows = s.scalars(select(VideoJobRow).where(unfinished).order_by(VideoJobRow.created_at)).all()
            for row in rows:  # a job that was running restarts from the beginning
                row.started_at = None
            return [row.job_id for row in rows]

    def _checkpoint(self) -> None:
        if self._stop.is_set():
            raise JobStopped

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except JobStopped:
                log.info("job %s stopped with the server; it runs again at the next start", job_id)
                return

    def _run(self, job_id: str) -> None:
        with self._store.transaction() as s:
            row = s.get(VideoJobRow, job_id)
            if row is None or row.status != "IN_PROGRESS":
                return
            row.started_at = _now()
            kind, ref, params = row.kind, VideoRef(row.bucket, row.name, row.version), dict(row.request)
        path: Path | None = None
        try:
            path = self._resolve(ref)
            output = self._runners[kind](path, params, self._checkpoint)
        except JobStopped:
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
            row = s.get(VideoJobRow, job_id)
            if row is None:
                return
            row.status = status
            row.status_message = message[:1024] if message else None
            row.video_metadata = metadata
            row.results = items
            row.finished_at = _now()


def person_tracking_runner(settings: Any) -> JobRunner:
    """The PersonTracking runner: keeneye.service.tracking.track_video at ``video_jobs.target_fps``
    (at most ``video_jobs.max_duration_s`` of video); items are every box of every confirmed track:
    ``{"pts_ms", "index": track id, "xyxy": pixels}``. The detector is loaded once, at the first job,
    and shared by the jobs (one worker uses it at a time per thread; the ONNX session is thread-safe)."""
    from keeneye.service.tracking import build_tracking_detector, track_video

    built: list[Any] = []
    lock = threading.Lock()

    def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        with lock:
            if not built:
                built.extend(build_tracking_detector(settings))
        detector, tracker_config = built
        max_s = settings.video_jobs.max_duration_s
        result = track_video(
            video,
            settings,
            target_fps=settings.video_jobs.target_fps,
            max_duration_ms=None if max_s is None else max_s * 1000.0,
            detector=detector,
            tracker_config=tracker_config,
            on_progress=lambda _: checkpoint(),
        )
        items = [
            {"pts_ms": float(p.pts_ms), "index": int(t.track_id), "xyxy": [float(v) for v in p.xyxy]}
            for t in result.tracks
            for p in t.history
        ]
        return JobOutput(asdict(result.metadata), items)

    return run


FaceFormatter = Callable[[Any, frozenset[str]], list[dict[str, Any]]]
"""(keeneye.service.faces.AnalyzedImage, extra attribute names) -> one JSON object per face."""


def face_detection_runner(settings: Any, faces: Any, format_faces: FaceFormatter) -> JobRunner:
    """The FaceDetection runner: faces (with DEFAULT attributes, or all with ``params["extras"]``) in
    every frame sampled at ``video_jobs.target_fps``; items are ``{"pts_ms", "index": the face's rank
    in its frame (largest first), "face": format_faces(...)[i]}``."""
    from keeneye.video.sources import open_video

    def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        extras = frozenset(params.get("extras", ()))
        max_s = settings.video_jobs.max_duration_s
        items: list[dict[str, Any]] = []
        with open_video(video) as source:
            for frame in source.frames(settings.video_jobs.target_fps):
                if max_s is not None and frame.pts_ms >= max_s * 1000.0:
                    break
                checkpoint()
                found = faces.detect_faces(frame.image, extras)
                for i, face in enumerate(format_faces(found, extras)):
                    items.append({"pts_ms": float(frame.pts_ms), "index": i, "face": face})
            metadata = asdict(source.metadata)
        return JobOutput(metadata, items)

    return run
