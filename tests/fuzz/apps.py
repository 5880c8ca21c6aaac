"""The in-process server the fuzz tests hit: the real ASGI app, a real store, stand-in models.

Stand-ins keep every request fast (keeneye.models.fake: a face in the middle of any bright image, the
first pixels as its vector; a job runner that returns at once), so the fuzzers spend their time on the
protocol, the validation and the services, which are the real code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from keeneye.app import create_app
from keeneye.aws import stream_records
from keeneye.aws.images import ImageLoader
from keeneye.config import (
    CameraEgress,
    EgressSettings,
    ImageLimits,
    NotificationSettings,
    ServerSettings,
    Settings,
    SinkEgress,
)
from keeneye.service.container import Services
from keeneye.service.faces.analysis import FaceService
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.governance.audit import AuditLog
from keeneye.service.streams.processors import StreamProcessors
from keeneye.service.video.jobs import JobOutput, VideoJobs
from keeneye.service.video.notifications import NotificationService
from keeneye.store.db import Store
from keeneye.streams.egress import EgressPolicy
from tests.aws.signing import KEYS
from tests.factories import encode, fake_analyzer, gradient

PHOTO = encode(gradient(120, 160), "JPEG")


def _done_at_once(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    checkpoint()
    return JobOutput({"width": 4, "height": 3}, [])


@contextmanager
def fuzz_app(root: Path) -> Iterator[FastAPI]:
    """The app on a store in ``root`` with collection ``c``, bucket ``bkt`` (photo.jpg, clip.mp4) and
    stored-video jobs; per-key rate limiting (where the server has it) is off, as the fuzzers send
    hundreds of requests a second with one key."""
    bucket = root / "bucket"
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / "photo.jpg").write_bytes(PHOTO)
    (bucket / "clip.mp4").write_bytes(b"not decoded: the runner is a stand-in")
    store = Store.open(root / "data")
    analyzer = fake_analyzer()
    collections = FaceCollections(store, analyzer, ImageLimits())
    collections.create_collection("c")
    fast = NotificationSettings(timeout_s=1.0, retry_initial_s=0.2, retry_max_s=0.4, poll_s=0.2)
    # Nothing a fuzzer registers may be connected to: no network at all (only jsonl sinks deliver).
    nowhere = EgressSettings(
        cameras=CameraEgress(public=False, private=False), sinks=SinkEgress(public=False, private=False)
    )
    jobs = VideoJobs(
        store,
        {kind: _done_at_once for kind in ("PersonTracking", "FaceDetection", "FaceSearch")},
        lambda ref: bucket / ref.name,
        notifications=NotificationService(store, fast, root / "data", egress=EgressPolicy(nowhere)),
    )
    jobs.start_workers()
    server = {"rate_limit_per_s": 0} if "rate_limit_per_s" in ServerSettings.model_fields else {}
    settings = Settings(data_dir=root / "data", server=ServerSettings(**server), egress=nowhere)
    # The real stream-processor service (its create/describe/options/cameras code); nothing the fuzzers
    # send makes a valid camera and processor to start, so no worker process runs.
    processors = StreamProcessors(
        store,
        settings,
        audit=AuditLog(store),
        check_collection=collections.describe_collection,
        encode=stream_records.encode,
    )
    services = Services(
        FaceService(analyzer),
        ImageLoader({"bkt": bucket}),
        collections,
        AuditLog(store),
        jobs,
        redaction_analyzer=analyzer,
        stream_processors=processors,
    )
    try:
        yield create_app(settings, services=services, keys=KEYS)
    finally:
        processors.close()
        jobs.close()
        store.close()
