"""The services one server process holds, built once by the composition root (keeneye.app).

Both adapters (keeneye.aws, keeneye.api) take this container; a field is None when the server was built
without that part (a server without a store serves only DetectFaces and CompareFaces).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keeneye.analysis.faces import FaceAnalyzer
    from keeneye.service.faces.analysis import FaceService
    from keeneye.service.faces.collections import FaceCollections
    from keeneye.service.faces.request_tokens import RequestTokens
    from keeneye.service.governance.audit import AuditLog
    from keeneye.service.governance.retention import RetentionService
    from keeneye.service.metrics import RequestMetrics
    from keeneye.service.review.queue import ReviewQueue
    from keeneye.service.streams.processors import StreamProcessors
    from keeneye.service.uploads.service import UploadService
    from keeneye.service.video.jobs import VideoJobs


class ImageSource(Protocol):
    """Where request images and videos come from: Rekognition's ``Image`` ({Bytes} or {S3Object}) and
    ``Video.S3Object``, read from the buckets the server serves (keeneye.aws.images.ImageLoader)."""

    def load(self, image: Mapping[str, Any] | None) -> bytes: ...

    def check_video(self, s3: Mapping[str, Any] | None) -> None: ...

    def fetch_video(self, s3: Mapping[str, Any], folder: Path) -> tuple[Path, bool]: ...


@dataclass
class Services:
    """What the adapters call. ``collections``/``audit`` are None when the store is not configured."""

    faces: FaceService
    images: ImageSource
    collections: FaceCollections | None = None
    audit: AuditLog | None = None
    video_jobs: VideoJobs | None = None
    retention: RetentionService | None = None  # the background purge (service/governance/retention.py)
    # POST /v1/redact's face pipeline (a lower detector threshold); None: built from the settings at
    # the first call (keeneye.service.governance.redaction.build_redaction_analyzer).
    redaction_analyzer: FaceAnalyzer | None = None
    stream_processors: StreamProcessors | None = None  # live cameras (service/streams/processors.py)
    # ClientRequestToken replay of the user operations (service/faces/request_tokens.py); None: the
    # token is not remembered (keeneye.app builds it for every server with collections).
    request_tokens: RequestTokens | None = None
    uploads: UploadService | None = None  # analysis on upload (service/uploads/service.py)
    metrics: RequestMetrics | None = None  # request counters of both APIs (GET /v1/metrics)
    # The human review queue of identifications (service/review/queue.py); built with every store.
    review: ReviewQueue | None = None
