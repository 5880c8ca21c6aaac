"""The server's ASGI app: Rekognition's JSON 1.1 API on ``POST /`` and a small native API under /v1.

``create_app(settings, services=..., keys=...)`` is the composition root of the server: it wires the
services (face pipeline, collections, audit log), the access keys and the image loader. Every request
to ``POST /`` goes through the same steps, in this order, so that nothing is done for a caller who is
not authenticated and nothing is half-done for a bad request:

1. refuse a body over ``server.max_body_bytes`` (from ``Content-Length`` before reading, else while
   reading the stream): ``RequestEntityTooLargeException`` (HTTP 413), or one not received within
   ``server.body_timeout_s``: ``RequestTimeoutException`` (HTTP 408); both for every route
   (keeneye.aws.body_limits; the connection is then closed);
2. verify the SigV4 signature (keeneye.auth.sigv4) over the raw body, with the bootstrap key or an
   enabled key of the database (keeneye.auth.keyring.KeyRing), and take a token from the key's
   rate-limit bucket (``server.rate_limit_per_s``; else ``ThrottlingException``);
3. resolve ``X-Amz-Target`` to a supported operation and check the content type;
4. parse and validate the JSON body against the service model (keeneye.aws.model), then authorize
   ``rekognition:<Operation>`` on its resource with the key's policy
   (keeneye.service.governance.policies; else
   ``AccessDeniedException``, logged; see docs/security.md);
5. admit at most ``server.max_inflight`` operations at once (else ``ThrottlingException``) and run the
   handler in a worker thread (models are CPU-bound);
6. map any error in one place (keeneye.aws.errors); an unexpected one is logged with its traceback
   and answered ``InternalServerError`` without details.

Native API (FastAPI, OpenAPI at ``/openapi.json``): ``GET /v1/health`` (open), ``GET /v1/metrics``
(Prometheus text, open: counts only), ``GET /v1/audit`` (authenticated: a SigV4-signed request for
service ``rekognition``, or ``Authorization: Bearer <secret access key>``), and, authenticated the
same way, ``/v1/jobs`` (list, one, cancel), ``/v1/notification-channels`` (SNS topic ARN -> webhook,
MQTT or JSONL sink) and ``/v1/notifications`` (the delivery outbox); see docs/notifications.md.
``GET /v1/audit/verify`` checks the audit hash chain and ``PUT /v1/collections/{id}/retention`` sets a
collection's face retention (docs/accountability.md); the app's lifespan runs the retention purge
thread when ``services.retention`` is set. Each native route is one ``keeneye:<Action>`` of the key's
policy (403 AccessDenied) and takes a token from the same per-key bucket (429 Throttling).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from keeneye import __version__
from keeneye.auth import sigv4
from keeneye.auth.errors import AuthError
from keeneye.auth.keyring import KeyRing, Principal
from keeneye.auth.ratelimit import RateLimiter, retry_after_s
from keeneye.aws import errors as aws_errors
from keeneye.aws import model, shapes
from keeneye.aws.body_limits import BodyLimitMiddleware
from keeneye.aws.errors import AwsError
from keeneye.aws.handlers import OPERATIONS, STREAM_OPERATIONS, VIDEO_OPERATIONS, Context, Services
from keeneye.aws.images import ImageLoader
from keeneye.aws.openapi import document_native_errors
from keeneye.config import Settings
from keeneye.core import regions
from keeneye.core.errors import AccessDenied, BackendUnavailable, InvalidParameter, KeeneyeError
from keeneye.service.faces.analysis import AnalyzedImage, FaceService
from keeneye.service.governance.policies import resource_for

if TYPE_CHECKING:
    from keeneye.core.types import Face
    from keeneye.service.faces.collections import FaceCollections
    from keeneye.service.governance.audit import AuditLog
    from keeneye.service.governance.retention import RetentionService
    from keeneye.service.streams.processors import StreamProcessors
    from keeneye.service.uploads.service import UploadService
    from keeneye.service.video.jobs import VideoJobs
    from keeneye.service.video.notifications import NotificationService

log = logging.getLogger("keeneye.aws")

CONTENT_TYPE = "application/x-amz-json-1.1"
_ACCEPTED_TYPES = ("application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json")


@dataclass
class Metrics:
    """Request counters by operation and HTTP status (thread-safe), rendered as Prometheus text."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, operation: str, status: int, elapsed_s: float) -> None:
        with self._lock:
            self.requests[(operation, status)] += 1
            self.seconds[operation] = self.seconds.get(operation, 0.0) + elapsed_s

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP keeneye_requests_total Rekognition API requests by operation and HTTP status.",
                "# TYPE keeneye_requests_total counter",
            ]
            for (op, status), n in sorted(self.requests.items()):
                lines.append(f'keeneye_requests_total{{operation="{op}",status="{status}"}} {n}')
            lines += [
                "# HELP keeneye_request_seconds_total Time spent answering, by operation.",
                "# TYPE keeneye_request_seconds_total counter",
            ]
            for op, s in sorted(self.seconds.items()):
                lines.append(f'keeneye_request_seconds_total{{operation="{op}"}} {s:.6f}')
        return "\n".join(lines) + "\n"


def build_services(settings: Settings) -> Services:
    """The production services: the configured face pipeline, collections on the data directory, audit."""
    from keeneye.models.registry import build_face_analyzer

    analyzer = build_face_analyzer(settings, with_embedder=True)
    faces = FaceService(analyzer, settings.images)
    images = ImageLoader(
        dict(settings.server.buckets),
        settings.server.s3_endpoint,
        max_video_bytes=settings.video_jobs.max_bytes,
        min_image_px=settings.images.min_side_px,
    )
    collections, audit = build_collection_services(settings, faces)
    jobs = build_video_jobs(settings, images, faces, collections=collections, audit=audit)
    retention = build_retention(settings, collections, audit)
    processors = build_stream_processors(settings, collections, audit, jobs)
    return Services(
        faces=faces,
        images=images,
        collections=collections,
        audit=audit,
        video_jobs=jobs,
        retention=retention,
        stream_processors=processors,
    )


def build_stream_processors(
    settings: Settings, collections: FaceCollections, audit: AuditLog, jobs: VideoJobs | None
) -> StreamProcessors:
    """Stream processors on the store in ``settings.data_dir``; NotificationChannel through the video
    jobs' notification service (one outbox). Nothing runs until the app starts (``resume``)."""
    from keeneye.service.streams.processors import StreamProcessors
    from keeneye.store.db import Store

    notifications = jobs.notifications if jobs is not None else None
    return StreamProcessors(
        Store.open(settings.data_dir, settings.database_url),
        settings,
        audit=audit,
        notify=None if notifications is None else notifications.publish,
        check_notification_topic=None if jobs is None else jobs.check_notification_topic,
        check_collection=collections.describe_collection,
        region=collections.region,
        account=collections.account,
    )


def build_retention(settings: Settings, collections: FaceCollections, audit: AuditLog) -> RetentionService:
    """The retention purge over the store in ``settings.data_dir`` (faces through ``collections``)."""
    from keeneye.service.governance.retention import RetentionService
    from keeneye.store.db import Store

    store = Store.open(settings.data_dir, settings.database_url)
    return RetentionService(store, settings.retention, collections=collections, audit=audit)


def build_uploads(
    settings: Settings, images: ImageLoader, collections: FaceCollections, audit: AuditLog | None
) -> UploadService:
    """Analysis on upload (keeneye/service/uploads/service.py, docs/uploads.md) on the store in
    ``settings.data_dir``; objects are read with a copy of ``images`` whose S3 client does not retry by
    itself (the upload worker retries with its own backoff, and botocore's retries would hold it)."""
    from keeneye.service.uploads.service import UploadService, is_transient
    from keeneye.store.db import Store

    loader = images
    if images.s3_endpoint:
        import dataclasses

        import botocore.session
        from botocore.config import Config

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

    store = Store.open(settings.data_dir, settings.database_url)
    return UploadService(
        store,
        collections,
        settings.uploads,
        read=read,
        audit=audit,
        jsonl_dir=settings.data_dir / "notifications",
    )


def build_video_jobs(
    settings: Settings,
    images: ImageLoader,
    faces: FaceService,
    *,
    collections: FaceCollections | None = None,
    audit: AuditLog | None = None,
) -> VideoJobs:
    """Stored-video jobs on the store in ``settings.data_dir``, videos read from the mapped buckets;
    queued and interrupted jobs start running now (``settings.video_jobs.workers`` threads). FaceSearch
    jobs need ``collections`` (their identifications are written to ``audit``)."""
    from keeneye.service.video.jobs import (
        JobOutput,
        JobRunner,
        VideoJobs,
        VideoRef,
        face_detection_runner,
        header_checked,
        person_tracking_runner,
    )
    from keeneye.service.video.notifications import NotificationService
    from keeneye.store.db import Store

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

    store = Store.open(settings.data_dir, settings.database_url)
    runners = {
        "PersonTracking": person_tracking_runner(settings),
        # FaceDetection items keep Rekognition's FaceDetail: the adapter formats them as they are found,
        # so that the job store stays free of face objects (and the attributes asked for are applied).
        "FaceDetection": face_detection_runner(settings, faces, _face_details),
    }
    if collections is not None:
        runners["FaceSearch"] = _face_search_runner(settings, faces, collections, audit)
    # The frame size is checked from the stream header before a runner decodes anything.
    max_pixels = settings.video_jobs.max_pixels
    runners = {kind: deleting_downloads(header_checked(r, max_pixels)) for kind, r in runners.items()}
    notifications = NotificationService(store, settings.notifications, settings.data_dir)
    return VideoJobs(
        store, runners, resolve, workers=settings.video_jobs.workers, notifications=notifications
    )


def build_collection_services(settings: Settings, faces: FaceService) -> tuple[FaceCollections, AuditLog]:
    """FaceCollections and AuditLog on the store in ``settings.data_dir`` (sharing the face pipeline)."""
    from keeneye.service.faces.collections import FaceCollections
    from keeneye.service.governance.audit import AuditLog
    from keeneye.store.db import Store

    store = Store.open(settings.data_dir, settings.database_url)
    return FaceCollections(store, faces.analyzer, settings.images), AuditLog(store)


def _face_search_runner(
    settings: Settings, faces: FaceService, collections: FaceCollections, audit: AuditLog | None
) -> Any:
    from keeneye.service.video.face_search import face_search_runner

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

    def detail(face: Face, width: int, height: int) -> dict[str, Any]:
        return shapes.face_detail(face, width, height)

    return face_search_runner(
        settings, faces.analyzer, collections.search_faces_by_vector, detail, shapes.face_match, record
    )


def _face_details(found: AnalyzedImage, extras: frozenset[str]) -> list[dict[str, Any]]:
    return [shapes.face_detail(f, found.width, found.height, extras) for f in found.faces]


def _error_response(err: AwsError, request_id: str) -> Response:
    return Response(
        json.dumps(err.body()),
        status_code=err.status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = AwsError("RequestEntityTooLargeException", f"the request body is larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large
        except ValueError:
            raise AwsError("SerializationException", "invalid Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _signed_request(request: Request, body: bytes) -> sigv4.SignedRequest:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():  # repeated headers joined, as SigV4 canonicalises them
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    return sigv4.SignedRequest(
        method=request.method,
        path=raw_path.decode("latin-1"),
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=body,
    )


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    keys: KeyRing,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """The ASGI app. ``services`` defaults to :func:`build_services` (loads the models now)."""
    svc = services if services is not None else build_services(settings)
    limit = settings.server.max_body_bytes
    inflight = threading.BoundedSemaphore(settings.server.max_inflight)
    limiter = RateLimiter(settings.server.rate_limit_per_s, settings.server.rate_limit_burst)
    if keys.database is None:  # keys made with `keeneye keys create`, in this server's database
        from keeneye.service.governance.keys import LazyAccessKeys

        keys = keys.with_database(LazyAccessKeys(settings))

    def arns_in(region: str) -> Callable[[str], str]:
        """Collection ARNs as a caller signing for ``region`` names them (collections are regional)."""
        if svc.collections is None:
            return lambda collection_id: _collection_arn(collection_id, region)
        return svc.collections.in_region(region).arn

    supported = (
        frozenset(OPERATIONS) if svc.collections is not None else frozenset({"DetectFaces", "CompareFaces"})
    )
    implemented = frozenset(OPERATIONS)
    if svc.video_jobs is None:
        supported -= frozenset(VIDEO_OPERATIONS)
    if svc.stream_processors is None:
        supported -= frozenset(STREAM_OPERATIONS)
    metrics = Metrics()
    if svc.request_tokens is None and svc.collections is not None:  # ClientRequestToken replay
        from keeneye.service.faces.request_tokens import RequestTokens
        from keeneye.store.db import Store

        svc.request_tokens = RequestTokens(Store.open(settings.data_dir, settings.database_url))
    # Analysis on upload (docs/uploads.md): built here rather than in build_services so that every
    # server with collections has it, however its Services were made.
    uploads = (
        build_uploads(settings, svc.images, svc.collections, svc.audit)
        if svc.collections is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        purger = None
        if svc.retention is not None:  # the retention purge, now and every purge_interval_s
            from keeneye.service.governance.retention import PurgeThread

            purger = PurgeThread(svc.retention, settings.retention.purge_interval_s)
            purger.start()
        upload_worker = None
        if uploads is not None:  # queued upload events (interrupted ones too), then as they arrive
            from keeneye.service.uploads.service import UploadWorker

            upload_worker = UploadWorker(uploads)
            await run_in_threadpool(upload_worker.start)
        if svc.stream_processors is not None:  # processors running when the server stopped run again
            await run_in_threadpool(svc.stream_processors.resume)
        yield
        if svc.stream_processors is not None:  # they deliver what they have and resume at the next start
            await run_in_threadpool(svc.stream_processors.close)
        if purger is not None:
            await run_in_threadpool(purger.stop)
        if upload_worker is not None:  # a running event finishes; a queued one waits for the next start
            await run_in_threadpool(upload_worker.stop)
        if svc.video_jobs is not None:  # a running job stops at its next frame and reruns at next start
            await run_in_threadpool(svc.video_jobs.close)
        if svc.collections is not None:  # write changed vector indexes (the database has everything)
            await run_in_threadpool(svc.collections.close)

    app = FastAPI(
        lifespan=lifespan,
        title="keeneye",
        version=__version__,
        description="Native API of keeneye. The Rekognition-compatible API is `POST /` (AWS JSON 1.1, "
        "SigV4); see docs/rekognition-coverage.md.",
    )
    # Every route's body: at most server.max_body_bytes, all of it within server.body_timeout_s.
    app.add_middleware(BodyLimitMiddleware, max_bytes=limit, timeout_s=settings.server.body_timeout_s)
    document_native_errors(app)  # /openapi.json: the {"error": ...} answers, not FastAPI's 422
    app.state.services = svc
    app.state.metrics = metrics
    app.state.inflight = inflight
    app.state.uploads = uploads

    def dispatch(signed: sigv4.SignedRequest, request_id: str, seen: list[str]) -> dict[str, Any]:
        """Authenticate, resolve, validate and run one call (in a worker thread: hashing and parsing a
        20 MB body, and the models, would otherwise stall the event loop)."""
        principal, region = _verify_caller(signed, keys, clock())
        wait_s = limiter.acquire(principal.access_key_id)
        if wait_s:
            raise AwsError("ThrottlingException", _rate_message(principal, limiter, wait_s))
        operation = model.operation_for_target(signed.headers.get("x-amz-target"), supported, implemented)
        seen.append(operation.name)
        ctype = signed.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in _ACCEPTED_TYPES:
            raise AwsError("SerializationException", f"Content-Type must be {CONTENT_TYPE}")
        params = model.parse_input(operation, signed.body)
        _authorize_aws(principal, operation.name, params, arns_in(region), request_id)
        keys.touch(principal)
        if not inflight.acquire(blocking=False):
            raise AwsError("ThrottlingException", "Rate exceeded: too many requests in flight; retry")
        try:
            ctx = Context(svc, principal.access_key_id, request_id, principal.decide, region)
            return OPERATIONS[operation.name](ctx, params)
        finally:
            inflight.release()

    async def rekognition(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        seen: list[str] = []  # the operation, once the target is resolved (for logs and metrics)
        try:
            body = await _read_body(request, limit)
            result = await run_in_threadpool(dispatch, _signed_request(request, body), request_id, seen)
            response: Response = Response(
                json.dumps(result), media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": request_id}
            )
        except ClientDisconnect:
            log.info("%s client went away before sending its request", request_id)
            return Response(status_code=400)
        except Exception as exc:  # the one top-level handler: every failure becomes an AWS error
            err = aws_errors.from_exception(exc)
            if err.type_name == "InternalServerError":
                log.error("request %s (%s) failed", request_id, seen[0] if seen else "unknown", exc_info=exc)
            response = _error_response(err, request_id)
        elapsed = time.perf_counter() - started
        op_name = seen[0] if seen else "unknown"
        metrics.observe(op_name, response.status_code, elapsed)
        log.info("%s %s %d %.1f ms", request_id, op_name, response.status_code, elapsed * 1000)
        return response

    app.add_api_route("/", rekognition, methods=["POST"], include_in_schema=False)

    @app.get("/v1/health", summary="Liveness and what this server offers")
    def health() -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok", "version": __version__, "operations": sorted(supported)}
        if svc.collections is not None:  # what FaceModelVersion stands for on this server
            embedder_id = svc.collections.embedder_id
            out["face_model"] = {
                "face_model_version": shapes.face_model_version(embedder_id),
                "embedder_id": embedder_id,
                "versions": dict(sorted((v, e) for e, v in shapes.FACE_MODEL_VERSIONS.items())),
            }
        return out

    @app.get("/v1/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def metrics_text() -> str:
        text = metrics.render()
        if svc.stream_processors is not None:
            from keeneye.aws.stream_routes import render_metrics

            text += render_metrics(svc.stream_processors.all_stats())
        return text

    @app.get("/v1/audit", summary="Audit records of identity operations (authenticated)")
    async def audit(
        request: Request,
        since: Annotated[datetime | None, Query(description="Only records at or after this ISO time")] = None,
        collection: Annotated[str | None, Query(description="Only records of this collection")] = None,
    ) -> Response:
        refused = _gate_native(request, await request.body(), keys, clock(), limiter, "keeneye:ReadAudit")
        if isinstance(refused, Response):
            return refused
        if svc.audit is None:
            return JSONResponse({"records": []})
        records = await run_in_threadpool(_read_audit, svc.audit, since, collection)
        return JSONResponse({"records": records})

    _add_job_routes(app, svc, keys, clock, limiter)
    _add_accountability_routes(app, svc, keys, clock, limiter)
    _add_redaction_route(app, svc, settings, keys, clock, limiter)
    _add_upload_routes(app, svc, uploads, keys, clock, limiter)
    from keeneye.aws.stream_routes import add_stream_routes

    add_stream_routes(app, svc, keys, clock, limiter)
    return app


# -- native API: jobs and notifications ------------------------------------------------------------

_MANAGE_CHANNELS = "keeneye:ManageNotificationChannels"
# keeneye error code -> HTTP status of the native API (anything else: 400).
_NATIVE_STATUS = {
    "NotFound": 404,
    "InvalidParameter": 400,
    "Conflict": 409,
    "BackendUnavailable": 503,
    "AccessDenied": 403,
}
_JOB_STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED")
_DELIVERY_STATES = ("pending", "delivered")


def _native_error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined (for an operation's openapi_extra)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


def _channel_schema() -> dict[str, Any]:
    """A notification channel's body: a SinkSpec without ``s3`` (a channel is a webhook, MQTT or JSONL)."""
    from keeneye.streams.sinks import SinkSpec

    schema = _inline_schema(SinkSpec)
    schema.get("properties", {}).pop("s3", None)
    return schema


NativeCall = Callable[..., Awaitable[Response]]


def native_runner(keys: KeyRing, clock: Callable[[], datetime], limiter: RateLimiter) -> NativeCall:
    """``native(request, call, action, resource="*")``: authenticate, authorize ``action`` on
    ``resource``, run ``call(body)`` in a worker thread and answer its JSON (None: 204); keeneye errors
    become ``{"error": {"code", "message"}}`` with their HTTP status."""

    async def native(
        request: Request, call: Callable[[bytes], Any], action: str, resource: str = "*"
    ) -> Response:
        body = await request.body()
        refused = _gate_native(request, body, keys, clock(), limiter, action, resource)
        if isinstance(refused, Response):
            return refused
        request.state.access_key = refused.access_key_id  # for the audit records of changes
        try:
            result = await run_in_threadpool(call, body)
        except KeeneyeError as err:
            return _native_error(err.code, err.message, _NATIVE_STATUS.get(err.code, 400))
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result)

    return native


def _add_job_routes(
    app: FastAPI, svc: Services, keys: KeyRing, clock: Callable[[], datetime], limiter: RateLimiter
) -> None:
    """``/v1/jobs`` (list, one, cancel), ``/v1/notification-channels`` (list, one, put, delete) and
    ``/v1/notifications`` (the outbox), authenticated and authorized like ``/v1/audit``; errors are
    ``{"error": {"code", "message"}}`` with 400/401/403/404/409/429/503."""
    from fastapi.exception_handlers import request_validation_exception_handler
    from fastapi.exceptions import RequestValidationError

    native = native_runner(keys, clock, limiter)

    def jobs() -> VideoJobs:
        if svc.video_jobs is None:
            raise BackendUnavailable("stored-video jobs are not available on this server")
        return svc.video_jobs

    def notifications() -> NotificationService:
        service = jobs().notifications
        if service is None:
            raise BackendUnavailable("notifications are not available on this server")
        return service

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await request_validation_exception_handler(request, exc)
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _native_error("InvalidParameter", "; ".join(problems), 400)

    @app.get(
        "/v1/jobs",
        summary="Stored-video jobs, newest first (authenticated)",
        description="Each job: job_id, kind, status (Rekognition's JobStatus), state (QUEUED, RUNNING, "
        "SUCCEEDED, FAILED), status_message, video, job_tag, created_at/started_at/finished_at, items, "
        "notification_topic and notification (its delivery state).",
    )
    async def list_jobs(
        request: Request,
        status: Annotated[str | None, Query(description="IN_PROGRESS, SUCCEEDED or FAILED")] = None,
        kind: Annotated[str | None, Query(description="PersonTracking, FaceDetection, FaceSearch")] = None,
        limit: Annotated[int, Query(description="At most this many jobs (1-1000)")] = 100,
    ) -> Response:
        def call(_: bytes) -> dict[str, Any]:
            if status is not None and status not in _JOB_STATUSES:
                raise InvalidParameter(f"status must be one of {', '.join(_JOB_STATUSES)}")
            found = jobs().list_jobs(status=status, kind=kind, limit=limit)  # type: ignore[arg-type]
            return {"jobs": [j.to_dict() for j in found]}

        return await native(request, call, "keeneye:ListJobs")

    @app.get("/v1/jobs/{job_id}", summary="One stored-video job: state, video, times, notification delivery")
    async def get_job(request: Request, job_id: str) -> Response:
        return await native(request, lambda _: jobs().info(job_id).to_dict(), "keeneye:ListJobs")

    @app.post(
        "/v1/jobs/{job_id}/cancel",
        summary="Cancel a queued or running job",
        description="A queued job never runs; a running job stops at its next frame. The job ends FAILED "
        'with StatusMessage "cancelled by the operator" and its notification is sent. A job that has '
        "already ended: 409.",
    )
    async def cancel_job(request: Request, job_id: str) -> Response:
        def call(_: bytes) -> dict[str, Any]:
            info = jobs().cancel(job_id)
            _audit_change(svc, request, "CancelJob", {"job_id": job_id, "kind": info.kind})
            return info.to_dict()

        return await native(request, call, "keeneye:CancelJob")

    @app.get("/v1/notification-channels", summary="Notification channels (SNS topic ARN -> sink), redacted")
    async def list_channels(request: Request) -> Response:
        return await native(
            request,
            lambda _: {"channels": [c.to_dict() for c in notifications().list_channels()]},
            _MANAGE_CHANNELS,
        )

    @app.get("/v1/notification-channels/{topic_arn}", summary="One notification channel, redacted")
    async def get_channel(request: Request, topic_arn: str) -> Response:
        return await native(
            request, lambda _: notifications().get_channel(topic_arn).to_dict(), _MANAGE_CHANNELS, topic_arn
        )

    @app.put(
        "/v1/notification-channels/{topic_arn}",
        summary="Map an SNS topic ARN to a webhook, an MQTT topic or a JSONL file",
        description="Body: exactly one of webhook, mqtt, jsonl. Replaces the topic's channel; messages "
        "waiting for the topic are sent to the new sink at once. Answers the channel, secrets redacted.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _channel_schema()}},
            }
        },
    )
    async def put_channel(request: Request, topic_arn: str) -> Response:
        def call(body: bytes) -> dict[str, Any]:
            try:
                spec = json.loads(body or b"null")
            except (ValueError, RecursionError):  # RecursionError: [[[[... nested past the parser's depth
                raise InvalidParameter("the body is not JSON") from None
            if not isinstance(spec, dict):
                raise InvalidParameter('the body must be a JSON object such as {"webhook": {"url": ...}}')
            channel = notifications().put_channel(topic_arn, spec)
            # What changed, not the sink's settings (they may hold secrets).
            _audit_change(
                svc, request, "PutNotificationChannel", {"topic_arn": topic_arn, "kind": channel.spec.kind}
            )
            return channel.to_dict()

        return await native(request, call, _MANAGE_CHANNELS, topic_arn)

    @app.delete(
        "/v1/notification-channels/{topic_arn}",
        status_code=204,
        summary="Remove a notification channel (its undelivered messages wait for a new one)",
    )
    async def delete_channel(request: Request, topic_arn: str) -> Response:
        def call(_: bytes) -> None:
            notifications().delete_channel(topic_arn)
            _audit_change(svc, request, "DeleteNotificationChannel", {"topic_arn": topic_arn})

        return await native(request, call, _MANAGE_CHANNELS, topic_arn)

    @app.get(
        "/v1/notifications",
        summary="The notification outbox, newest first: messages and their delivery state",
        description="Each message: message_id, topic_arn, job_id, state (pending, delivered), attempts, "
        "last_error, created_at, last_attempt_at, next_attempt_at, delivered_at and the SNS envelope.",
    )
    async def list_notifications(
        request: Request,
        state: Annotated[str | None, Query(description="pending or delivered")] = None,
        topic_arn: Annotated[str | None, Query(description="Only messages to this topic")] = None,
        job_id: Annotated[str | None, Query(description="Only messages about this job")] = None,
        limit: Annotated[int, Query(description="At most this many messages (1-1000)")] = 100,
    ) -> Response:
        def call(_: bytes) -> dict[str, Any]:
            if state is not None and state not in _DELIVERY_STATES:
                raise InvalidParameter("state must be pending or delivered")
            if not 1 <= limit <= 1000:
                raise InvalidParameter("limit must be between 1 and 1000")
            found = notifications().deliveries(
                state=state,  # type: ignore[arg-type]
                topic_arn=topic_arn,
                job_ids=None if job_id is None else [job_id],
                limit=limit,
            )
            return {"notifications": [d.to_dict(with_message=True) for d in found]}

        return await native(request, call, "keeneye:ReadNotifications", topic_arn or "*")


def _audit_change(
    svc: Services,
    request: Request,
    operation: str,
    details: dict[str, Any],
    collection_id: str | None = None,
) -> None:
    """Audit a change made through the native API, under the caller's access key."""
    if svc.audit is not None:
        svc.audit.append(
            operation,
            access_key=getattr(request.state, "access_key", None),
            collection_id=collection_id,
            details=details,
        )


def _add_accountability_routes(
    app: FastAPI, svc: Services, keys: KeyRing, clock: Callable[[], datetime], limiter: RateLimiter
) -> None:
    """``GET /v1/audit/verify`` (the hash chain, like ``keeneye audit verify``) and
    ``PUT /v1/collections/{id}/retention``; authenticated like ``/v1/audit`` (docs/accountability.md)."""

    @app.get(
        "/v1/audit/verify",
        summary="Verify the audit log's hash chain (authenticated)",
        description="Walks every record: its hash, its link to the one before, and the head anchor. "
        "Answers ok, records, first_id, last_id, last_hash, first_bad_id, problem, anchor and warnings; "
        "HTTP 200 either way (ok false names the first bad record).",
    )
    async def verify_audit(request: Request) -> Response:
        refused = _gate_native(request, await request.body(), keys, clock(), limiter, "keeneye:ReadAudit")
        if isinstance(refused, Response):
            return refused
        if svc.audit is None:
            return _native_error("BackendUnavailable", "there is no audit log on this server", 503)
        report = await run_in_threadpool(svc.audit.verify)
        return JSONResponse(report.to_dict())

    @app.put(
        "/v1/collections/{collection_id}/retention",
        summary="Set how many days a collection keeps its faces (authenticated)",
        description='Body: {"days": N} (1-36500) or {"days": null} (keep until deleted). Faces indexed '
        "longer ago are deleted by the retention purge. Answers the collection id, retention and face "
        "count; audited.",
    )
    async def set_retention(
        request: Request,
        collection_id: str,
        region: Annotated[
            str, Query(description="The collection's region (collections are regional, as on AWS)")
        ] = regions.HOME_REGION,
    ) -> Response:
        body = await request.body()
        if not regions.is_region(region):
            return _native_error("InvalidParameter", "region must be a region name such as us-east-1", 400)
        if regions.SEPARATOR not in collection_id:  # the store key: "demo", or "ap-southeast-2/demo"
            collection_id = regions.scoped_key(region, collection_id)
        arn = svc.collections.arn(collection_id) if svc.collections is not None else "*"
        gate = _gate_native(request, body, keys, clock(), limiter, "keeneye:SetCollectionRetention", arn)
        if isinstance(gate, Response):
            return gate

        def call() -> dict[str, Any]:
            if svc.collections is None:
                raise BackendUnavailable("collections are not available on this server")
            try:
                spec = json.loads(body or b"null")
            except (ValueError, RecursionError):  # RecursionError: [[[[... nested past the parser's depth
                raise InvalidParameter("the body is not JSON") from None
            if not isinstance(spec, dict) or set(spec) != {"days"}:
                raise InvalidParameter('the body must be {"days": N} or {"days": null}')
            info = svc.collections.set_retention(collection_id, spec["days"])
            if svc.audit is not None:
                svc.audit.append(
                    "SetCollectionRetention",
                    access_key=gate.access_key_id,
                    collection_id=collection_id,
                    details={"days": info.retention_days},
                )
            return {
                "collection_id": info.collection_id,
                "retention_days": info.retention_days,
                "face_count": info.face_count,
            }

        try:
            return JSONResponse(await run_in_threadpool(call))
        except KeeneyeError as err:
            return _native_error(err.code, err.message, _NATIVE_STATUS.get(err.code, 400))


def _add_redaction_route(
    app: FastAPI,
    svc: Services,
    settings: Settings,
    keys: KeyRing,
    clock: Callable[[], datetime],
    limiter: RateLimiter,
) -> None:
    """``POST /v1/redact``: bystander redaction of one image (keeneye.service.governance.redaction;
    docs/redaction.md).
    The redaction pipeline (a lower detector threshold than DetectFaces') is built at the first call."""
    built: list[Any] = []
    lock = threading.Lock()

    def analyzer() -> Any:
        from keeneye.service.governance.redaction import build_redaction_analyzer

        if svc.redaction_analyzer is not None:
            return svc.redaction_analyzer
        with lock:
            if not built:
                built.append(build_redaction_analyzer(settings, with_embedder=True))
            return built[0]

    @app.post(
        "/v1/redact",
        summary="Obscure every face of an image, except those of a collection if asked (authenticated)",
        description="Body: the image bytes (JPEG or PNG). Answers the redacted image (same format, no "
        "metadata) with headers X-Keeneye-Faces-Redacted and X-Keeneye-Faces-Kept. keep_collection keeps "
        "faces matching that collection visible (needs rekognition:SearchFacesByImage on it; audited as "
        "an identification).",
        response_class=Response,
    )
    async def redact(
        request: Request,
        mode: Annotated[
            Literal["blur", "pixelate", "box"], Query(description="How faces are obscured")
        ] = "blur",
        keep_collection: Annotated[
            str | None, Query(description="Keep faces matching this collection visible")
        ] = None,
        face_match_threshold: Annotated[
            float, Query(ge=0, le=100, description="Least Similarity to keep a face (with keep_collection)")
        ] = 80.0,
    ) -> Response:
        body = await request.body()
        gate = _gate_native(request, body, keys, clock(), limiter, "keeneye:RedactImage")
        if isinstance(gate, Response):
            return gate
        collections = svc.collections
        if keep_collection is not None:
            arn = collections.arn(keep_collection) if collections is not None else "*"
            decision = gate.decide("rekognition:SearchFacesByImage", arn)
            if not decision:
                reason = _denied_message(gate, "rekognition:SearchFacesByImage", arn, decision.reason)
                return _native_error("AccessDenied", reason, 403)

        def call() -> Response:
            from keeneye.service.governance.redaction import redact_image

            search = None
            if keep_collection is not None:
                if collections is None:
                    raise BackendUnavailable("collections are not available on this server")
                collections.describe_collection(keep_collection)  # NotFound before any work

                def search(embedding: Any, embedder_id: str) -> Any:
                    return collections.search_faces_by_vector(
                        keep_collection, embedding, embedder_id, face_match_threshold
                    )

            result = redact_image(body, analyzer(), mode=mode, search=search, limits=settings.images)
            kept = [f for f in result.faces if f.kept]
            if keep_collection is not None and svc.audit is not None:
                svc.audit.append(
                    "RedactImage",
                    access_key=gate.access_key_id,
                    collection_id=keep_collection,
                    request_faces=len(result.faces),
                    matches=[{"Identity": f.identity, "Similarity": f.similarity} for f in kept],
                    threshold=face_match_threshold,
                )
            return Response(
                result.image,
                media_type="image/jpeg" if result.format == "JPEG" else "image/png",
                headers={
                    "X-Keeneye-Faces-Redacted": str(len(result.faces) - len(kept)),
                    "X-Keeneye-Faces-Kept": str(len(kept)),
                },
            )

        try:
            response: Response = await run_in_threadpool(call)
        except KeeneyeError as err:
            return _native_error(err.code, err.message, _NATIVE_STATUS.get(err.code, 400))
        return response


_MANAGE_UPLOAD_RULES = "keeneye:ManageUploadRules"
_RULE_ACTIONS = {"index-faces": "rekognition:IndexFaces", "search-faces": "rekognition:SearchFacesByImage"}


def _add_upload_routes(
    app: FastAPI,
    svc: Services,
    uploads: UploadService | None,
    keys: KeyRing,
    clock: Callable[[], datetime],
    limiter: RateLimiter,
) -> None:
    """Analysis on upload (docs/uploads.md): ``POST /v1/upload-events`` (S3/MinIO notifications,
    ``keeneye:PostUploadEvent``), ``GET /v1/upload-events`` and ``/v1/upload-rules/{bucket}``
    (``keeneye:ManageUploadRules``, on ``arn:aws:s3:::<bucket>`` for one bucket's rule)."""

    async def native(
        request: Request,
        call: Callable[[Principal, bytes, UploadService], Any],
        action: str,
        resource: str = "*",
        status: int = 200,
    ) -> Response:
        body = await request.body()
        gate = _gate_native(request, body, keys, clock(), limiter, action, resource)
        if isinstance(gate, Response):
            return gate
        if uploads is None:
            return _native_error("BackendUnavailable", "collections are not available on this server", 503)
        try:
            result = await run_in_threadpool(call, gate, body, uploads)
        except KeeneyeError as err:
            return _native_error(err.code, err.message, _NATIVE_STATUS.get(err.code, 400))
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result, status_code=status)

    def json_body(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested past the parser's depth
            raise InvalidParameter("the body is not JSON") from None

    @app.post(
        "/v1/upload-events",
        status_code=202,
        summary="S3 / MinIO object-created notifications: analyse the new images (authenticated)",
        description='Body: an S3 event notification {"Records": [...]} (MinIO\'s extra top-level Key and '
        "EventName are accepted). Each ObjectCreated record of a bucket with an upload rule is queued "
        "once per object version (accepted), or found already recorded (duplicate); other records are "
        "ignored with a reason. Answers 202 with the counts and one entry per record.",
    )
    async def post_upload_events(request: Request) -> Response:
        def call(principal: Principal, body: bytes, service: UploadService) -> dict[str, Any]:
            return service.submit(json_body(body), principal.access_key_id)

        return await native(request, call, "keeneye:PostUploadEvent", status=202)

    @app.get(
        "/v1/upload-events",
        summary="Upload events, newest first: state, attempts, last error, result (authenticated)",
    )
    async def list_upload_events(
        request: Request,
        state: Annotated[str | None, Query(description="queued, running, succeeded or failed")] = None,
        limit: Annotated[int, Query(description="At most this many events (1-1000)")] = 100,
    ) -> Response:
        def call(_: Principal, __: bytes, service: UploadService) -> dict[str, Any]:
            return {"events": [e.to_dict() for e in service.list_events(state, limit)]}

        return await native(request, call, _MANAGE_UPLOAD_RULES)

    @app.get("/v1/upload-events/{event_id}", summary="One upload event (authenticated)")
    async def get_upload_event(request: Request, event_id: str) -> Response:
        return await native(request, lambda _, __, s: s.info(event_id).to_dict(), _MANAGE_UPLOAD_RULES)

    @app.get("/v1/upload-rules", summary="Every bucket's upload rule, sinks redacted (authenticated)")
    async def list_upload_rules(request: Request) -> Response:
        def call(_: Principal, __: bytes, service: UploadService) -> dict[str, Any]:
            return {"rules": {b: r.public() for b, r in service.list_rules().items()}}

        return await native(request, call, _MANAGE_UPLOAD_RULES)

    @app.get("/v1/upload-rules/{bucket}", summary="A bucket's upload rule, sink redacted (authenticated)")
    async def get_upload_rule(request: Request, bucket: str) -> Response:
        def call(_: Principal, __: bytes, service: UploadService) -> dict[str, Any]:
            return {"bucket": bucket, "rule": service.get_rule(bucket).public()}

        return await native(request, call, _MANAGE_UPLOAD_RULES, f"arn:aws:s3:::{bucket}")

    @app.put(
        "/v1/upload-rules/{bucket}",
        summary="Set what is done with a bucket's new images (authenticated)",
        description='Body: {"task": "index-faces", "collection_id", "external_image_id": "key"|"basename", '
        '"max_faces", "quality_filter"} or {"task": "search-faces", "collection_id", "threshold", "sink": '
        "<webhook|mqtt|jsonl>}. The caller's key must also be allowed rekognition:IndexFaces or "
        "rekognition:SearchFacesByImage on the collection. Audited.",
    )
    async def put_upload_rule(request: Request, bucket: str) -> Response:
        def call(principal: Principal, body: bytes, service: UploadService) -> dict[str, Any]:
            doc = json_body(body)
            if not isinstance(doc, dict):
                raise InvalidParameter('the body must be a JSON object such as {"task": "index-faces", ...}')
            task, collection_id = doc.get("task"), doc.get("collection_id")
            if isinstance(task, str) and task in _RULE_ACTIONS and isinstance(collection_id, str):
                arn = svc.collections.arn(collection_id) if svc.collections is not None else "*"
                decision = principal.decide(_RULE_ACTIONS[task], arn)
                if not decision:
                    raise AccessDenied(_denied_message(principal, _RULE_ACTIONS[task], arn, decision.reason))
            rule = service.put_rule(bucket, doc)
            if svc.audit is not None:
                svc.audit.append(
                    "PutUploadRule",
                    access_key=principal.access_key_id,
                    collection_id=rule.collection_id,
                    details={"bucket": bucket, "task": rule.task},
                )
            return {"bucket": bucket, "rule": rule.public()}

        return await native(request, call, _MANAGE_UPLOAD_RULES, f"arn:aws:s3:::{bucket}")

    @app.delete("/v1/upload-rules/{bucket}", status_code=204, summary="Remove a bucket's upload rule")
    async def delete_upload_rule(request: Request, bucket: str) -> Response:
        def call(principal: Principal, _: bytes, service: UploadService) -> None:
            service.delete_rule(bucket)
            if svc.audit is not None:
                svc.audit.append(
                    "DeleteUploadRule", access_key=principal.access_key_id, details={"bucket": bucket}
                )

        return await native(request, call, _MANAGE_UPLOAD_RULES, f"arn:aws:s3:::{bucket}")


def _read_audit(audit: Any, since: datetime | None, collection: str | None) -> list[dict[str, Any]]:
    return [
        r.to_dict() if hasattr(r, "to_dict") else dict(r)
        for r in audit.read(since=since, collection_id=collection)
    ]


def _collection_arn(collection_id: str, region: str = "us-east-1") -> str:
    """A collection's ARN on a server without collections (FaceCollections.arn's default form)."""
    return f"arn:aws:rekognition:{region}:000000000000:collection/{collection_id}"


def _verify(signed: sigv4.SignedRequest, keys: KeyRing, now: datetime) -> Principal:
    """The principal who signed ``signed`` (SigV4), or the AWS error a client expects."""
    return _verify_caller(signed, keys, now)[0]


def _verify_caller(signed: sigv4.SignedRequest, keys: KeyRing, now: datetime) -> tuple[Principal, str]:
    """The principal who signed ``signed`` (SigV4) and the region it signed for."""
    found: list[Principal] = []

    def secret_for(access_key_id: str) -> str | None:
        resolved = keys.resolve(access_key_id)
        if resolved is None:
            return None
        found.append(resolved[1])
        return resolved[0]

    caller = sigv4.verify(signed, secret_for, now=now)
    return found[-1], caller.region


def _rate_message(principal: Principal, limiter: RateLimiter, wait_s: float) -> str:
    return (
        f"Rate exceeded for access key {principal.access_key_id}: {limiter.rate_per_s:g} requests/s "
        f"(bursts of {limiter.burst}); retry in {wait_s:.2f} s"
    )


def _denied_message(principal: Principal, action: str, resource: str, reason: str) -> str:
    why = (
        "with an explicit deny in its policy"
        if reason == "explicit deny"
        else f"because no statement of its policy allows the {action} action"
    )
    return (
        f"access key {principal.access_key_id} ({principal.name}) is not authorized to perform: "
        f"{action} on resource: {resource} {why}"
    )


def _authorize_aws(
    principal: Principal,
    operation: str,
    params: Mapping[str, Any],
    arn_of: Callable[[str], str],
    request_id: str,
) -> None:
    """Raise AccessDeniedException unless ``principal`` may run ``operation`` on its resource.

    ListCollections is allowed when the policy allows it on any collection; the handler then lists
    only the collections it allows (Context.authorize)."""
    action = f"rekognition:{operation}"
    if operation == "ListCollections":
        if principal.may_ever(action):
            return
        resource, reason = arn_of("*"), "no matching allow"
    else:
        resource = resource_for(params, arn_of)
        decision = principal.decide(action, resource)
        if decision:
            return
        reason = decision.reason
    log.warning(
        "%s access denied: key %s (%s) %s on %s (%s)",
        request_id,
        principal.access_key_id,
        principal.name,
        action,
        resource,
        reason,
    )
    raise AwsError("AccessDeniedException", _denied_message(principal, action, resource, reason))


def _gate_native(
    request: Request,
    body: bytes,
    keys: KeyRing,
    now: datetime,
    limiter: RateLimiter,
    action: str,
    resource: str = "*",
) -> Principal | Response:
    """Authenticate (401), rate-limit (429) and authorize ``action`` on ``resource`` (403) a native API
    request: the principal, or the error response to send."""
    try:
        principal = _authenticate_native(request, body, keys, now)
    except AuthError as err:
        return _native_error(err.type_name, err.message, 401)
    wait_s = limiter.acquire(principal.access_key_id)
    if wait_s:
        response = _native_error("Throttling", _rate_message(principal, limiter, wait_s), 429)
        response.headers["Retry-After"] = str(retry_after_s(wait_s))
        return response
    decision = principal.decide(action, resource)
    if not decision:
        log.warning(
            "access denied: key %s (%s) %s on %s (%s) at %s %s",
            principal.access_key_id,
            principal.name,
            action,
            resource,
            decision.reason,
            request.method,
            request.url.path,
        )
        return _native_error(
            "AccessDenied", _denied_message(principal, action, resource, decision.reason), 403
        )
    keys.touch(principal)
    return principal


def _authenticate_native(request: Request, body: bytes, keys: KeyRing, now: datetime) -> Principal:
    """The native API caller: ``Bearer <secret access key>`` or a SigV4 signature."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        principal = keys.principal_for_secret(auth[7:].strip())
        if principal is None:
            raise AuthError("UnrecognizedClientException", "unknown bearer token")
        return principal
    return _verify(_signed_request(request, body), keys, now)
