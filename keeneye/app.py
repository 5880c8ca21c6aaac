"""The composition root: every service of a server built once from settings, one ordered start, and the
two adapters mounted on one ASGI app.

* :func:`build_services` builds the face pipeline, one :class:`~keeneye.store.db.Store` for the
  process, collections, audit, stored-video jobs, retention, stream processors, request tokens and
  analysis on upload (constructors connect nothing and start no work);
* :func:`lifecycle` lists what runs in the background, in start order: the retention purge, the
  upload worker, the stream processors that were running when the server stopped; :class:`Lifecycle`
  starts them in that order and stops them in reverse (then the video jobs and the collections' index
  files);
* :func:`create_app` mounts Rekognition's API (keeneye.aws.endpoint, ``POST /``) and the native API
  (keeneye.api, ``/v1``), both behind the body limits (keeneye.aws.body_limits) and the same gate
  (keeneye.auth.gate: SigV4 or Bearer, rate limits, policies).

``keeneye serve`` (keeneye/cli/serve.py) runs :func:`create_app` under uvicorn; tests build their own
:class:`~keeneye.service.container.Services` and pass them in.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from keeneye import __version__, console
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.api import ROUTERS
from keeneye.api.deps import ApiState
from keeneye.api.errors import install_error_handlers
from keeneye.api.openapi import document_native_errors
from keeneye.auth.failures import FailureLimiter
from keeneye.auth.gate import Gate
from keeneye.auth.keyring import KeyRing
from keeneye.auth.ratelimit import RateLimiter
from keeneye.aws import shapes, stream_records
from keeneye.aws.body_limits import BodyLimitMiddleware
from keeneye.aws.endpoint import AwsEndpoint
from keeneye.aws.errors import AwsError
from keeneye.aws.handlers import OPERATIONS, STREAM_OPERATIONS, VIDEO_OPERATIONS
from keeneye.aws.images import ImageLoader
from keeneye.config import ServerSettings, Settings
from keeneye.core.budget import Budget
from keeneye.core.errors import AccessDenied, BackendUnavailable, InvalidParameter
from keeneye.service.builder import ServiceBuilder
from keeneye.service.container import ImageSource, Services
from keeneye.service.faces.analysis import FaceService
from keeneye.service.faces.collections import FaceCollections, FaceMatch
from keeneye.service.faces.request_tokens import RequestTokens
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.keys import LazyAccessKeys
from keeneye.service.governance.redaction import build_redaction_analyzer
from keeneye.service.governance.retention import PurgeThread, RetentionService
from keeneye.service.governance.sealing import SecretBox, seal_stored
from keeneye.service.metrics import RequestMetrics
from keeneye.service.review.negatives import filter_matches
from keeneye.service.review.queue import ReviewQueue
from keeneye.service.streams.processors import ResumeCheck, StreamProcessors, open_collection_search
from keeneye.service.uploads.service import UploadService, UploadWorker, is_transient
from keeneye.service.video.face_search import face_search_runner
from keeneye.service.video.jobs import JobOutput, JobRunner, VideoJobs, VideoRef, header_checked
from keeneye.service.video.notifications import NotificationService
from keeneye.service.video.ray_jobs import ray_runners
from keeneye.service.video.runners import face_detection_runner, person_tracking_runner, redaction_runner
from keeneye.store.db import Store
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.ray_supervisor import supervisor_for

log = logging.getLogger("keeneye.app")

# -- services ------------------------------------------------------------------------------------------


def open_store(settings: Settings) -> Store:
    """The process's one store (database and data directory), migrated to the latest schema."""
    return Store.open(settings.data_dir, settings.database_url)


def build_images(settings: Settings) -> ImageLoader:
    """Request images and videos from the served buckets (``server.buckets``, ``--s3-endpoint``)."""
    return ImageLoader(
        dict(settings.server.buckets),
        settings.server.s3_endpoint,
        max_video_bytes=settings.video_jobs.max_bytes,
        min_image_px=settings.images.min_side_px,
    )


def build_services(settings: Settings, *, analyzer: FaceAnalyzer | None = None) -> Services:
    """The production services: the configured face pipeline (loaded now), everything on one store
    (keeneye.service.builder, as the CLI builds its own), plus the server's parts: images from the
    served buckets, video jobs, stream processors, analysis on upload, request metrics."""
    built = ServiceBuilder(settings, analyzer=analyzer)
    faces, store, collections, audit = built.faces, built.store, built.collections, built.audit
    images = build_images(settings)
    review = ReviewQueue(store, audit=audit)
    jobs = build_video_jobs(
        settings, images, faces, collections=collections, audit=audit, store=store, review=review
    )
    return Services(
        faces=faces,
        images=images,
        collections=collections,
        audit=audit,
        video_jobs=jobs,
        retention=built.retention,
        stream_processors=build_stream_processors(
            settings, collections, audit, jobs, store=store, review=review
        ),
        request_tokens=built.request_tokens,
        uploads=build_uploads(settings, images, collections, audit, store=store, review=review),
        metrics=RequestMetrics(),
        review=review,
    )


def build_collection_services(
    settings: Settings, faces: FaceService, *, store: Store | None = None
) -> tuple[FaceCollections, AuditLog]:
    """FaceCollections and AuditLog on ``store`` (sharing the face pipeline and its pixel budget)."""
    store = store or open_store(settings)
    collections = FaceCollections(
        store, faces.analyzer, settings.images, budget=faces.budget, vector_index=settings.vector_index
    )
    return collections, AuditLog(store)


def build_stream_processors(
    settings: Settings,
    collections: FaceCollections,
    audit: AuditLog,
    jobs: VideoJobs | None,
    *,
    store: Store | None = None,
    review: ReviewQueue | None = None,
) -> StreamProcessors:
    """Stream processors, each run a worker process of one supervisor (keeneye/streams/supervisor.py) that
    searches collections with :func:`open_collection_search`; NotificationChannel through the video
    jobs' notification service (one outbox). Nothing runs until the app starts (``resume``).
    Identifications go to ``review`` (a review queue on the same store is made when not given)."""
    notifications = jobs.notifications if jobs is not None else None
    store = store or open_store(settings)
    return StreamProcessors(
        store,
        settings,
        audit=audit,
        notify=None if notifications is None else notifications.publish,
        check_notification_topic=None if jobs is None else jobs.check_notification_topic,
        check_collection=collections.describe_collection,
        region=collections.region,
        account=collections.account,
        encode=stream_records.encode,
        open_search=open_collection_search,
        supervisor=supervisor_for(settings),  # worker processes here, or Ray actors (streams.ray_address)
        review=review or ReviewQueue(store, audit=audit),
    )


def build_retention(
    settings: Settings, collections: FaceCollections, audit: AuditLog, *, store: Store | None = None
) -> RetentionService:
    """The retention purge (faces through ``collections``)."""
    return RetentionService(
        store or open_store(settings), settings.retention, collections=collections, audit=audit
    )


def build_uploads(
    settings: Settings,
    images: ImageSource,
    collections: FaceCollections,
    audit: AuditLog | None,
    *,
    store: Store | None = None,
    review: ReviewQueue | None = None,
) -> UploadService:
    """Analysis on upload (keeneye/service/uploads/service.py, docs/uploads.md); objects are read with a
    copy of ``images`` whose S3 client does not retry by itself (the upload worker retries with its own
    backoff, and botocore's retries would hold it)."""
    loader = images
    if isinstance(images, ImageLoader) and images.s3_endpoint:
        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=images.s3_endpoint,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )
        loader = dataclasses.replace(images, _s3=client)

    def read(bucket: str, key: str, version: str | None) -> bytes:
        s3 = {"Bucket": bucket, "Name": key} | ({"Version": version} if version else {})
        try:
            return loader.load({"S3Object": s3})
        except AwsError as exc:  # the service layer knows keeneye errors, not AWS ones
            message = f"{exc.type_name}: {exc.message}"
            if is_transient(exc):
                raise BackendUnavailable(message) from exc
            raise InvalidParameter(message) from exc

    return UploadService(
        store or open_store(settings),
        collections,
        settings.uploads,
        read=read,
        audit=audit,
        jsonl_dir=settings.data_dir / "notifications",
        egress=EgressPolicy.from_settings(settings),
        review=review,
    )


def build_video_jobs(
    settings: Settings,
    images: ImageSource,
    faces: FaceService,
    *,
    collections: FaceCollections | None = None,
    audit: AuditLog | None = None,
    store: Store | None = None,
    review: ReviewQueue | None = None,
) -> VideoJobs:
    """Stored-video jobs, videos read from the served buckets; queued and interrupted jobs run once the
    lifecycle starts the workers (``settings.video_jobs.workers`` threads). FaceSearch jobs need
    ``collections`` (their identifications are written to ``audit`` and queued for review in ``review``,
    one made on the store when not given)."""
    downloads = settings.data_dir / "video-downloads"
    if downloads.is_dir():  # left by a server that stopped mid-job: that job downloads again
        for stale in downloads.glob("video-*"):
            stale.unlink(missing_ok=True)

    def resolve(ref: VideoRef) -> Path:
        s3 = {"Bucket": ref.bucket, "Name": ref.name, **({"Version": ref.version} if ref.version else {})}
        try:
            return images.fetch_video(s3, downloads)[0]
        except AwsError as err:  # the video went away after Start: the job fails with this message
            raise InvalidParameter(err.message) from None

    def deleting_downloads(runner: JobRunner) -> JobRunner:
        """A video fetched from --s3-endpoint is deleted when its job ends, however it ends."""

        def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
            try:
                return runner(video, params, checkpoint)
            finally:
                if video.parent == downloads:
                    video.unlink(missing_ok=True)

        return run

    store = store or open_store(settings)
    runners = {
        "PersonTracking": person_tracking_runner(settings),
        "FaceDetection": face_detection_runner(settings, faces),
        "Redaction": redaction_runner(settings),  # keeneye's own kind: the console's video redaction
    }
    runners.update(ray_runners(settings))  # Ray tasks instead, with video_jobs.ray_address
    if collections is not None:
        review = review or ReviewQueue(store, audit=audit)
        runners["FaceSearch"] = _face_search_runner(settings, faces, collections, audit, review)
    # The frame size is checked from the stream header before a runner decodes anything.
    max_pixels = settings.video_jobs.max_pixels
    runners = {kind: deleting_downloads(header_checked(r, max_pixels)) for kind, r in runners.items()}
    notifications = NotificationService(
        store, settings.notifications, settings.data_dir, egress=EgressPolicy.from_settings(settings)
    )
    return VideoJobs(
        store,
        runners,
        resolve,
        workers=settings.video_jobs.workers,
        notifications=notifications,
        lease_s=settings.video_jobs.lease_s,
        poll_interval_s=settings.video_jobs.poll_interval_s,
    )


def _face_search_runner(
    settings: Settings,
    faces: FaceService,
    collections: FaceCollections,
    audit: AuditLog | None,
    review: ReviewQueue,
) -> JobRunner:
    def record(params: Mapping[str, Any], matches: list[dict[str, Any]], searched: int) -> None:
        if audit is not None:
            audit.append(  # what the job identified (its request is the StartFaceSearch record)
                "FaceSearchResults",
                access_key=params.get("access_key"),
                collection_id=params.get("collection_id"),
                request_faces=searched,
                matches=matches,
                threshold=params.get("threshold"),
                details={"job_id": params.get("job_id")},
            )

    def queue(params: Mapping[str, Any], identified: list[dict[str, Any]]) -> None:
        job_id = str(params.get("job_id"))
        for item in identified:  # one per matched track (Person.Index), with the face that identified it
            review.record(
                source_kind="video",
                source_name=job_id,
                session_id=job_id,
                collection_id=params.get("collection_id"),
                face_id=item["face_id"],
                user_id=item["user_id"],
                similarity=min(100.0, max(0.0, item["similarity"])),
                track_id=item["index"],
                pts_ms=item["pts_ms"],
                crop_jpeg=item["crop"],
                probe_embedding=item["embedding"],
                embedder_id=item["embedder_id"],
            )

    def search(collection_id: str, embedding: Any, embedder_id: str, threshold: float) -> list[FaceMatch]:
        # A probe closer to a reviewer's rejected probe of a person than to the person is not them.
        found = collections.search_faces_by_vector(collection_id, embedding, embedder_id, threshold)
        return filter_matches(collections.store, collection_id, embedding, embedder_id, found)

    return face_search_runner(settings, faces.analyzer, search, record, queue)


def complete(services: Services, settings: Settings) -> Services:
    """Fill in the parts every server with collections has, when ``services`` was built without them
    (tests build their own): request tokens, the review queue, analysis on upload, metrics."""
    if services.metrics is None:
        services.metrics = RequestMetrics()
    if services.collections is not None:
        store = services.collections.store
        if services.request_tokens is None:
            services.request_tokens = RequestTokens(store)
        if services.review is None:  # the stream processors' queue, so that decisions reach their workers
            processors = services.stream_processors
            review = processors.review if processors is not None else None
            services.review = review or ReviewQueue(store, audit=services.audit)
        if services.uploads is None:
            services.uploads = build_uploads(
                settings,
                services.images,
                services.collections,
                services.audit,
                store=store,
                review=services.review,
            )
    return services


# -- lifecycle ------------------------------------------------------------------------------------------


@dataclass
class Lifecycle:
    """What runs in the background: ``(name, start, stop)`` in start order; stopped in reverse."""

    steps: list[tuple[str, Callable[[], None], Callable[[], None]]] = field(default_factory=list)
    _started: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def add(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        self.steps.append((name, start, stop))

    def start(self) -> None:
        for name, start, stop in self.steps:
            log.debug("starting %s", name)
            start()
            self._started.append((name, stop))

    def stop(self) -> None:
        while self._started:
            name, stop = self._started.pop()
            log.debug("stopping %s", name)
            stop()


def _nothing() -> None:
    return None


def lifecycle(services: Services, settings: Settings, keys: KeyRing | None = None) -> Lifecycle:
    """The server's background work, in start order (stopped in reverse): the retention purge (now, then
    every ``retention.purge_interval_s``), the upload worker (queued and interrupted events, then as
    they arrive), the stream processors that were running when the server stopped; first, credentials
    stored in clear by an older keeneye are sealed (keeneye.service.governance.sealing); with ``keys``, a
    processor resumes only while the key that started it may still start it. Stopping also stops
    the video jobs (a running job stops at its next frame and reruns at the next start) and writes the
    collections' changed index files (the database has everything)."""
    steps = Lifecycle()
    if services.collections is not None:
        # Stopped last: the database's pooled connections are closed once nothing runs on it (the
        # engine stays usable: a later start opens new ones).
        steps.add("database", _nothing, services.collections.store.close)
        if keys is not None and isinstance(keys.database, LazyAccessKeys):
            steps.add("access keys", _nothing, keys.database.close)
        steps.add("collection indexes", _nothing, services.collections.close)
        store = services.collections.store  # credentials an older keeneye stored in clear, sealed first
        steps.add("sealed credentials", lambda: _seal_stored(store), _nothing)
    if services.video_jobs is not None:
        steps.add("video jobs", services.video_jobs.start_workers, services.video_jobs.close)
    if services.retention is not None:
        purger = PurgeThread(services.retention, settings.retention.purge_interval_s)
        steps.add("retention purge", purger.start, purger.stop)
    if services.uploads is not None:
        worker = UploadWorker(services.uploads)
        steps.add("upload worker", worker.start, worker.stop)
    if services.stream_processors is not None:
        processors = services.stream_processors
        check = None if keys is None else _resume_check(keys, services)
        steps.add("stream processors", lambda: _resume(processors, check), processors.close)
    return steps


def _seal_stored(store: Store) -> None:
    seal_stored(store, SecretBox(store.data_dir))


def _resume(processors: StreamProcessors, check: ResumeCheck | None) -> None:
    processors.resume(check)


def _resume_check(keys: KeyRing, services: Services) -> ResumeCheck:
    """What a processor resumed at the server's start is checked for: the key that started it still
    exists, is enabled, and may start it and use what it names (the rights Start checks: keeneye.service.
    streams.rights), under its policy as it is now. A processor started before keeneye kept who started
    it (no key) resumes as before."""
    processors = services.stream_processors
    assert processors is not None

    def may_start(access_key: str | None, name: str) -> None:
        if access_key is None:
            return
        found = keys.resolve(access_key)
        if found is None:
            raise AccessDenied(f"the access key that started it ({access_key}) is disabled or deleted")
        principal = found[1]
        needed = [("rekognition:StartStreamProcessor", processors.arn(name))]
        needed += processors.stored_rights(name)
        for action, resource in needed:
            if not principal.decide(action, resource):
                raise AccessDenied(
                    f"the access key that started it ({access_key}) may no longer use {action} on {resource}"
                )

    return may_start


# -- the app --------------------------------------------------------------------------------------------


def supported_operations(services: Services) -> frozenset[str]:
    """The Rekognition operations a server with these services answers."""
    if services.collections is None:
        return frozenset({"DetectFaces", "CompareFaces"})
    supported = frozenset(OPERATIONS)
    if services.video_jobs is None:
        supported -= frozenset(VIDEO_OPERATIONS)
    if services.stream_processors is None:
        supported -= frozenset(STREAM_OPERATIONS)
    return supported


def _about(services: Services, supported: frozenset[str]) -> Callable[[], dict[str, Any]]:
    """What GET /v1/health says: the version, the operations served, the face model (read when asked)."""

    def about() -> dict[str, Any]:
        out: dict[str, Any] = {"version": __version__, "operations": sorted(supported)}
        collections = services.collections
        if collections is not None and collections.has_embedder:  # what FaceModelVersion stands for
            embedder_id = collections.embedder_id
            out["face_model"] = {
                "face_model_version": shapes.face_model_version(embedder_id),
                "embedder_id": embedder_id,
                "versions": dict(sorted((v, e) for e, v in shapes.FACE_MODEL_VERSIONS.items())),
            }
        return out

    return about


def _lazy_redaction_analyzer(services: Services, settings: Settings) -> Callable[[], FaceAnalyzer]:
    """POST /v1/redact's pipeline (a lower detector threshold than DetectFaces'), built at first use."""
    built: list[FaceAnalyzer] = []
    lock = threading.Lock()

    def analyzer() -> FaceAnalyzer:
        if services.redaction_analyzer is not None:
            return services.redaction_analyzer
        with lock:
            if not built:
                built.append(build_redaction_analyzer(settings, with_embedder=True))
            return built[0]

    return analyzer


def failure_limiter(server: ServerSettings) -> FailureLimiter:
    """Failed authentication attempts per client address and per access key id (keeneye.auth.failures)."""
    return FailureLimiter(
        source_burst=server.auth_failures_burst,
        source_per_min=server.auth_failures_per_min,
        key_burst=server.auth_key_failures_burst,
        key_per_min=server.auth_key_failures_per_min,
    )


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    keys: KeyRing,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """The ASGI app. ``services`` defaults to :func:`build_services` (loads the models now)."""
    svc = complete(services if services is not None else build_services(settings), settings)
    if keys.database is None:  # keys made with `keeneye keys create`, in this server's database
        keys = keys.with_database(LazyAccessKeys(settings))
    limiter = RateLimiter(settings.server.rate_limit_per_s, settings.server.rate_limit_burst)
    unverified = Budget(settings.server.max_unauthenticated_body_bytes, "body bytes")
    gate = Gate(
        keys,
        limiter,
        clock,
        bodies=unverified,
        failures=failure_limiter(settings.server),
        bearer_secrets=settings.server.bearer_secret,
    )
    supported = supported_operations(svc)
    assert svc.metrics is not None
    endpoint = AwsEndpoint(
        svc,
        gate,
        supported=supported,
        max_body_bytes=settings.server.max_body_bytes,
        max_inflight=settings.server.max_inflight,
        metrics=svc.metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        background = lifecycle(svc, settings, keys)  # threads are started once: a new one per app start
        await run_in_threadpool(background.start)
        yield
        await run_in_threadpool(background.stop)

    app = FastAPI(
        lifespan=lifespan,
        title="keeneye",
        version=__version__,
        description="Native API of keeneye. The Rekognition-compatible API is `POST /` (AWS JSON 1.1, "
        "SigV4); see docs/rekognition-coverage.md.",
    )
    # Every route's body: at most server.max_body_bytes, all of it within server.body_timeout_s.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        timeout_s=settings.server.body_timeout_s,
    )
    install_error_handlers(app)
    app.state.api = ApiState(
        svc,
        gate,
        settings,
        _about(svc, supported),
        _lazy_redaction_analyzer(svc, settings),
        inflight=endpoint.inflight,  # POST /v1/redact is analysed under the same cap as POST /
    )
    app.state.services = svc
    app.state.inflight = endpoint.inflight
    app.add_api_route("/", endpoint, methods=["POST"], include_in_schema=False)
    for router in ROUTERS:
        app.include_router(router)
    console.mount(app)  # /console: the web console, on the same state and gate (keeneye/console/)
    document_native_errors(app)  # /openapi.json: the {"error": ...} answers, not FastAPI's 422
    return app
