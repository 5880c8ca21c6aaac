"""What runs in a stream processor's worker process (one per running processor).

Each running stream processor is a worker *process* (``spawn`` start method) that loads its own models
and runs :class:`~keeneye.streams.runtime.StreamProcessorRuntime` with its sinks wrapped in
:class:`~keeneye.streams.spool.SpooledSink` (records wait on disk while a sink is down). Why a process
per processor: a camera's decode and models then use their own interpreter (no GIL shared with the API
or other cameras), and one crashing camera or model cannot take the server down.

The worker reports over a pipe: its counters every ``streams.status_interval_s`` (``status``), each
identification (``identified``), each line crossing and zone visit (``event``), and how it ended
(``stopped`` with the reason, or ``failed`` with the error; also sent when the worker dies of an
exception), and, while someone watches (the server sends ``"view"``), its live view at most 4 times a
second (``view``: an annotated JPEG of at most 640 px and 256 kB, keeneye.streams.live), and the latest
frame when asked (``("snapshot", id)`` -> ``snapshot``). The server side that starts workers and follows
what they say is keeneye.streams.supervisor (a process per worker) or keeneye.streams.ray_supervisor (a
Ray actor per worker, which runs :func:`work` in the actor).

This module knows nothing of the database or of Rekognition's requests (keeneye.service.streams does):
the worker gets everything in one picklable :class:`WorkerConfig`, including two module-level functions
that are pickled by reference: the record encoder and, for face search, the opener of the collection
search (the worker builds its own store and collections with it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cv2

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter
from keeneye.core.events import Event, LineCrossed, ZoneVisit
from keeneye.streams.capture import CaptureSettings
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.live import LiveFrame, LivePublisher
from keeneye.streams.review import ReviewGate
from keeneye.streams.runtime import CollectionSearch, RecordEncoder, StreamProcessorRuntime
from keeneye.streams.sinks import SinkSpec, build_sink
from keeneye.streams.spool import SpooledSink
from keeneye.tracking.lines import Line
from keeneye.tracking.zones import Zone

log = logging.getLogger(__name__)

SearchOpener = Callable[[Settings, FaceAnalyzer, str], CollectionSearch]
"""(settings, the worker's face analyzer, collection key) -> the collection's search, called once in the
worker process. A module-level function: the config carrying it is pickled."""


# -- the process ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs, picklable: resolved input URL, sinks, settings as JSON."""

    name: str
    arn: str
    session_id: str
    settings_json: str
    source_url: str
    listen: bool
    stream_arn: str
    face_search: tuple[str, float] | None  # collection key, FaceMatchThreshold
    connected_home: tuple[list[str], float] | None
    regions: list[tuple[tuple[float, float], ...]]
    options: dict[str, Any]
    sinks: list[dict[str, Any]]  # {"spec": SinkSpec as JSON}
    stop_after_s: float | None
    encode: RecordEncoder  # event -> record (a module-level function: pickled by reference)
    open_search: SearchOpener | None = None  # needed with face_search (pickled by reference)
    # The collection's review_required at start: matches' records wait for CONFIRMED (streams/review.py).
    review_required: bool = False

    def __post_init__(self) -> None:
        if self.face_search is not None and self.open_search is None:
            raise ValueError("a face-search worker needs open_search")


def line_of(raw: Mapping[str, Any]) -> Line:
    """A line of a processor's options: ``{"name", "p1": [x, y], "p2": [x, y], "hysteresis"?}`` (ratios).
    ValueError, TypeError or KeyError when it is not one."""
    return Line(str(raw["name"]), _point(raw["p1"]), _point(raw["p2"]), float(raw.get("hysteresis", 0.01)))


def zone_of(raw: Mapping[str, Any]) -> Zone:
    """A zone of a processor's options: ``{"name", "polygon": [[x, y], ...], "hysteresis"?}`` (ratios)."""
    return Zone(
        str(raw["name"]), tuple(_point(p) for p in raw["polygon"]), float(raw.get("hysteresis", 0.01))
    )


def _point(value: Any) -> tuple[float, float]:
    x, y = value
    if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in (x, y)):
        raise ValueError(f"{value!r} is not a ratio point in 0-1")
    return (float(x), float(y))


def worker_main(config: WorkerConfig, conn: Connection) -> None:
    """A worker process: build the runtime, report status every interval, stop when told (or when
    StopSelector's duration is reached), exit 0 when stopped and 1 when the runtime failed."""
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s processor {config.name}: %(message)s")
    locked = LockedConnection(conn)
    try:
        code = work(config, locked)
    except BaseException as err:  # reported to the server before dying: never silently
        with contextlib.suppress(OSError, ValueError):
            locked.send(("failed", f"{type(err).__name__}: {err}"))
        raise
    raise SystemExit(code)


class LockedConnection:
    """The worker's end of the pipe: the processing thread (identifications) and the main thread (status)
    both send, and a Connection's send is not safe from two threads at once."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self._lock:
            self._conn.send(message)

    def poll(self, timeout_s: float) -> bool:
        return bool(self._conn.poll(timeout_s))

    def recv(self) -> Any:
        return self._conn.recv()


def work(config: WorkerConfig, conn: LockedConnection) -> int:
    settings = Settings.model_validate_json(config.settings_json)
    # Processors run side by side, one process each: each computes on streams.worker_threads threads
    # (ONNX Runtime and OpenCV) rather than on every core: threads of 10 workers fighting over 2 cores
    # cost more than they gain (bench/stream_latency.py, docs/streams.md).
    threads = settings.streams.worker_threads
    settings = settings.model_copy(update={"threads": threads})
    cv2.setNumThreads(threads)
    egress = EgressPolicy.from_settings(settings)  # the server's policy: checked at every connection
    sinks = _worker_sinks(config, settings, egress)
    live = LivePublisher(
        conn.send,
        lines=[line_of(x) for x in config.options.get("lines", [])],
        zones=[zone_of(x) for x in config.options.get("zones", [])],
    )
    # Identifications go to the server's review queue through the gate (keeneye.streams.review).
    review = ReviewGate(
        session_id=config.session_id,
        report=lambda report: conn.send(("identified", report)),
        encode=config.encode,
        review_required=config.review_required,
    )
    runtime = _runtime(config, settings, sinks, conn, egress, on_frame=live.offer, review=review)
    deadline = None if config.stop_after_s is None else time.monotonic() + config.stop_after_s
    runtime.start()
    live.start()
    reason = "stopped"
    try:
        while True:
            conn.send(("status", stats_dict(runtime, sinks)))
            if runtime.stats().state == "failed":
                reason = "failed"
                break
            if deadline is not None and time.monotonic() >= deadline:
                reason = "duration"
                break
            if serve(conn, live, settings.streams.status_interval_s, review=(review, sinks)):
                break
    finally:
        runtime.stop()  # closes the sinks: spooled records get until stop_timeout_s to go out
        live.stop()
    stats = runtime.stats()
    conn.send(("status", stats_dict(runtime, sinks)))
    if reason == "failed":
        conn.send(("failed", stats.error or "the processor stopped"))
        return 1
    conn.send(("stopped", reason))
    return 0


def serve(
    conn: LockedConnection,
    live: LivePublisher,
    interval_s: float,
    *,
    review: tuple[ReviewGate, Sequence[SpooledSink]] | None = None,
) -> bool:
    """Wait ``interval_s`` for what the server says: True at ``"stop"``; ``"view"`` (someone watches)
    and ``("snapshot", id)`` go to the live view, which answers in its own thread; ``("review", {...})``
    (a reviewer's decision) to the review gate, which sends the records it held to the sinks."""
    until = time.monotonic() + interval_s
    while (remaining := until - time.monotonic()) > 0:
        if not conn.poll(remaining):
            return False
        message = conn.recv()
        if message == "stop":
            return True
        if message == "view":
            live.want()
        elif isinstance(message, tuple) and len(message) == 2 and message[0] == "snapshot":
            live.request_snapshot(int(message[1]))
        elif isinstance(message, tuple) and len(message) == 2 and message[0] == "review" and review:
            review[0].release(message[1], review[1])
    return False


def _runtime(
    config: WorkerConfig,
    settings: Settings,
    sinks: Sequence[SpooledSink],
    conn: LockedConnection,
    egress: EgressPolicy,
    *,
    on_frame: Callable[[LiveFrame], None] | None = None,
    review: ReviewGate | None = None,
) -> StreamProcessorRuntime:
    """The worker's runtime: its models (the face analyzer, when searching, shared with the search);
    ``on_frame``: the live view's (keeneye.streams.live); ``review``: reports every identification to
    the server (audited and queued there: one writer for the audit chain), holds or suppresses it
    (keeneye.streams.review)."""
    streams, options = settings.streams, config.options
    face_search = None
    analyzer = None
    if config.face_search is not None:
        assert config.open_search is not None  # WorkerConfig checks it
        collection_id, threshold = config.face_search
        analyzer = build_face_analyzer(settings, with_embedder=True, live_frames=True)
        face_search = (config.open_search(settings, analyzer, collection_id), threshold)

    capture = CaptureSettings(
        target_fps=options.get("target_fps") or streams.target_fps,
        queue_size=streams.queue_frames,
        **({"listen": True} if config.listen else {}),
    )
    return StreamProcessorRuntime(
        config.source_url,
        settings,
        face_search=face_search,
        connected_home=config.connected_home,
        lines=[line_of(x) for x in options.get("lines", [])],
        zones=[zone_of(x) for x in options.get("zones", [])],
        regions=config.regions,
        sinks=sinks,
        record_interval_s=options.get("record_interval_s") or streams.record_interval_s,
        capture=capture,
        stream_arn=config.stream_arn,
        analyzer=analyzer,
        encode=config.encode if review is None else review.encode,
        egress=egress,
        on_frame=on_frame,
        admit=None if review is None else review.admit,
        on_event=lambda event: report_event(conn, event),
    )


def report_event(conn: LockedConnection, event: Event) -> None:
    """Tell the server about a line crossing or zone visit (its timeline); other events are not sent."""
    payload = event.payload
    direction: str
    if isinstance(payload, LineCrossed):
        kind, name, direction = "line", payload.line, payload.direction
    elif isinstance(payload, ZoneVisit):
        kind, name, direction = "zone", payload.zone, "enter" if event.kind == "zone_entered" else "exit"
    else:
        return
    conn.send(
        (
            "event",
            {
                "kind": kind,
                "name": name,
                "direction": direction,
                "track_id": event.track_id,
                "pts_ms": float(event.pts_ms),
                "identity": payload.identity,
            },
        )
    )


def _worker_sinks(config: WorkerConfig, settings: Settings, egress: EgressPolicy) -> list[SpooledSink]:
    out = []
    put = s3_put_object(settings)
    for i, raw in enumerate(config.sinks):
        sink = build_sink(
            SinkSpec.model_validate(raw["spec"]),
            jsonl_dir=settings.data_dir / "notifications",
            timeout_s=settings.notifications.timeout_s,
            put_object=put,
            egress=egress,
        )
        folder = settings.data_dir / "stream-spool" / config.name / f"sink-{i}"
        out.append(
            SpooledSink(
                sink,
                folder,
                max_bytes=settings.streams.spool_max_bytes,
                name=f"{config.name}/{i}",
            )
        )
    return out


def s3_put_object(settings: Settings) -> Callable[[str, str, bytes], None]:
    """Writes ``(bucket, key, body)`` to a bucket mapped to a folder (``server.buckets``) or else through
    ``server.s3_endpoint``; InvalidParameter for a bucket the server does not know."""
    buckets = dict(settings.server.buckets)
    endpoint = settings.server.s3_endpoint
    client: list[Any] = []

    def put(bucket: str, key: str, body: bytes) -> None:
        folder = buckets.get(bucket)
        if folder is not None:
            path = (Path(folder) / key).resolve()
            if not path.is_relative_to(Path(folder).resolve()):
                raise InvalidParameter(f"S3 key {key!r} leaves the bucket's folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(body)
            tmp.replace(path)
            return
        if endpoint is None:
            raise InvalidParameter(f"bucket {bucket!r} is not served by this server")
        if not client:
            # Local: boto3 is not one of keeneye's dependencies (moto, the test S3, brings it); only a
            # sink that writes through --s3-endpoint needs it.
            import boto3

            client.append(boto3.client("s3", endpoint_url=endpoint))
        client[0].put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    return put


# -- what a worker reports ---------------------------------------------------------------------------------


def stats_dict(runtime: StreamProcessorRuntime, sinks: Sequence[SpooledSink]) -> dict[str, Any]:
    """A runtime's counters and its sinks' as the worker reports them (JSON-able)."""
    s = runtime.stats()
    c = s.capture
    return {
        "state": s.state,
        "error": s.error,
        "frames_processed": s.frames_processed,
        "frames_dropped": s.frames_dropped,
        "records": s.records,
        "latency_p50_s": s.latency_p50_s,
        "latency_p95_s": s.latency_p95_s,
        "capture": {
            "state": c.state,
            "last_error": c.last_error,
            "frames_read": c.frames_read,
            "frames_dropped": c.frames_dropped,
            "reconnects": c.reconnects,
        },
        "sinks": [_sink_stats(x) for x in sinks],
    }


def _sink_stats(sink: SpooledSink) -> dict[str, Any]:
    st = sink.stats()
    return {
        "name": sink.name,
        "state": st.state,
        "queued": st.queued,
        "delivered": st.delivered,
        "dropped": st.dropped,
        "failures": st.failures,
        "last_error": st.last_error,
    }


def status_message(stats: Mapping[str, Any]) -> str | None:
    """What an operator should know about a running processor, or None when all is well."""
    problems = []
    capture = stats.get("capture") or {}
    if capture.get("state") == "reconnecting":
        problems.append(f"camera unavailable, reconnecting with backoff: {capture.get('last_error')}")
    elif capture.get("state") == "listening":
        problems.append("waiting for the camera to push")
    for sink in stats.get("sinks", []):
        if sink.get("state") == "retrying":
            problems.append(
                f"sink {sink.get('name')} down ({sink.get('last_error')}); {sink.get('queued')} records "
                "buffered on disk"
            )
    return "; ".join(problems)[:1024] or None
