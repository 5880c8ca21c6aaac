"""Stream processors: Rekognition's stream-processor API over live cameras, each run in its own process.

A stream processor (CreateStreamProcessor) names an input, an output and what to look for:

* ``Input.KinesisVideoStream.Arn``: a camera registered by name (``PUT /v1/cameras/{name}``;
  ``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<anything>``), or a URL directly:
  ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://`` (MJPEG, HLS), or ``file://`` for a video inside a
  folder the server serves as a bucket (``--bucket NAME=FOLDER``; no other local path is readable).
* ``Output.KinesisDataStream.Arn``: a data stream registered by name (``PUT /v1/data-streams/{name}``;
  ``arn:aws:kinesis:<region>:<account>:stream/<name>``) or a sink URL: ``http(s)://`` (POST per record),
  ``mqtt://host:port/topic``, ``file://NAME.jsonl`` (a file in the server's notifications folder).
  ``Output.S3Destination`` writes each record as an object to a bucket the server is configured with.
* ``Settings.FaceSearch`` {CollectionId, FaceMatchThreshold} and/or ``Settings.ConnectedHome``
  {Labels: [PERSON], MinConfidence}; ``RegionsOfInterest`` (boxes and polygons, ratio coordinates):
  only faces whose centre / persons whose feet are inside one are analysed.
* keeneye's options (native API ``PUT /v1/stream-processors/{name}/options``): directed ``lines`` and
  ``zones`` for ConnectedHome person tracks, ``record_interval_s``, ``target_fps``.

Runs: StartStreamProcessor spawns a worker *process* (:func:`_worker_main`, ``spawn`` start method) that
loads its own models and runs :class:`~keeneye.streams.runtime.StreamProcessorRuntime` with its
sinks wrapped in :class:`~keeneye.streams.spool.SpooledSink` (records wait on disk while a sink is down).
The worker reports its counters every ``streams.status_interval_s`` over a pipe; a monitor thread in the
server keeps the latest (``stats()``, Prometheus metrics), writes state changes to the database
(Status, StatusMessage: reconnects, camera errors, sink outages), appends an audit record for every
identification the worker reports, and when the worker exits marks the processor STOPPED (asked to
stop, or StopSelector's MaxDurationInSeconds reached) or FAILED with the reason: a processor never dies
silently. Why a process per processor: a camera's decode and models then use their own interpreter (no
GIL shared with the API or other cameras), and one crashing camera or model cannot take the server down.

States: STOPPED -> (Start) STARTING -> RUNNING -> (Stop) STOPPING -> STOPPED; FAILED when the worker
dies or cannot start (UpdateStreamProcessor applies at once to a stopped processor: no UPDATING). A
processor that was running when the server stopped is started again when it starts (``desired`` =
running); one that cannot be (its camera or collection gone) is FAILED with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from keeneye.config import Settings
from keeneye.core import regions
from keeneye.core.errors import InvalidParameter, KeeneyeError, LimitExceeded, NotFound, ResourceInUse
from keeneye.core.events import Event, FaceIdentified
from keeneye.store.db import Store
from keeneye.store.tables import CameraRow, DataStreamRow, StreamProcessorRow
from keeneye.streams.runtime import RecordEncoder
from keeneye.streams.sinks import redacted_url

if TYPE_CHECKING:
    from keeneye.service.governance.audit import AuditLog

log = logging.getLogger(__name__)

STATUSES = ("STOPPED", "STARTING", "RUNNING", "FAILED", "STOPPING", "UPDATING")
ACTIVE = frozenset({"STARTING", "RUNNING", "STOPPING"})
NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,128}")
CAMERA_ARN = re.compile(r"arn:[a-z\d-]+:kinesisvideo:([a-z\d-]+):(\d{12}):stream/([^/]+)(?:/.*)?")
DATA_STREAM_ARN = re.compile(r"arn:[a-z\d-]+:kinesis:([a-z\d-]+):(\d{12}):stream/([^/]+)")
CAMERA_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
SUPPORTED_LABELS = ("PERSON",)
MAX_LIST = 1000


def _now() -> datetime:
    return datetime.now(UTC)


# -- what a processor is -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessorInfo:
    """A processor as DescribeStreamProcessor shows it (the request's AWS shapes kept as given)."""

    name: str
    arn: str
    status: str
    status_message: str | None
    created_at: datetime
    updated_at: datetime
    request: dict[str, Any]
    options: dict[str, Any]
    session_id: str | None


@dataclass(frozen=True)
class ProcessorOptions:
    """keeneye's own options of a processor (native API), validated."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    record_interval_s: float | None = None
    target_fps: float | None = None

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> ProcessorOptions:
        """``{"lines": [{"name", "p1": [x, y], "p2": [x, y], "hysteresis"?}], "zones": [{"name", "polygon":
        [[x, y], ...]}], "record_interval_s": s, "target_fps": n}`` (all optional, ratio coordinates)."""
        from keeneye.tracking.lines import Line
        from keeneye.tracking.zones import Zone

        unknown = set(raw) - {"lines", "zones", "record_interval_s", "target_fps"}
        if unknown:
            raise InvalidParameter(
                f"unknown options {sorted(unknown)}: lines, zones, record_interval_s, target_fps"
            )
        lines, zones = list(raw.get("lines") or []), list(raw.get("zones") or [])
        try:
            for line in lines:
                _line(line, Line)
            for zone in zones:
                _zone(zone, Zone)
        except (TypeError, ValueError, KeyError) as err:
            raise InvalidParameter(
                f"bad line or zone ({err}): a line is {{'name': 'door', 'p1': [0.1, 0.5], "
                "'p2': [0.9, 0.5]}, a zone {'name': 'lobby', 'polygon': [[x, y], ...]} "
                "in 0-1 ratio coordinates"
            ) from None
        names = [x["name"] for x in lines + zones]
        if len(set(names)) != len(names):
            raise InvalidParameter("line and zone names must be unique")
        interval, fps = raw.get("record_interval_s"), raw.get("target_fps")
        for value, what in ((interval, "record_interval_s"), (fps, "target_fps")):
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise InvalidParameter(f"{what} must be a number > 0")
        return ProcessorOptions(lines, zones, interval, fps)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lines": self.lines, "zones": self.zones}
        if self.record_interval_s is not None:
            out["record_interval_s"] = self.record_interval_s
        if self.target_fps is not None:
            out["target_fps"] = self.target_fps
        return out


def _point(value: Any) -> tuple[float, float]:
    x, y = value
    if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in (x, y)):
        raise ValueError(f"{value!r} is not a ratio point in 0-1")
    return (float(x), float(y))


def _line(raw: Mapping[str, Any], cls: Any) -> Any:
    return cls(str(raw["name"]), _point(raw["p1"]), _point(raw["p2"]), float(raw.get("hysteresis", 0.01)))


def _zone(raw: Mapping[str, Any], cls: Any) -> Any:
    return cls(str(raw["name"]), tuple(_point(p) for p in raw["polygon"]), float(raw.get("hysteresis", 0.01)))


def regions_of_interest(rois: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[float, float], ...]]:
    """RegionsOfInterest (each a BoundingBox or a Polygon of 3+ points, ratio coordinates) as polygons."""
    out: list[tuple[tuple[float, float], ...]] = []
    for i, roi in enumerate(rois):
        box, polygon = roi.get("BoundingBox"), roi.get("Polygon")
        if (box is None) == (polygon is None):
            raise InvalidParameter(f"RegionsOfInterest[{i}] needs exactly one of BoundingBox or Polygon")
        if box is not None:
            left, top = float(box.get("Left", 0)), float(box.get("Top", 0))
            width, height = float(box.get("Width", 0)), float(box.get("Height", 0))
            if width <= 0 or height <= 0:
                raise InvalidParameter(f"RegionsOfInterest[{i}].BoundingBox needs Width and Height > 0")
            out.append(((left, top), (left + width, top), (left + width, top + height), (left, top + height)))
        else:
            points = tuple((float(p.get("X", 0)), float(p.get("Y", 0))) for p in polygon or ())
            if len(points) < 3:
                raise InvalidParameter(f"RegionsOfInterest[{i}].Polygon needs at least 3 points")
            out.append(points)
    return out


# -- the worker process ----------------------------------------------------------------------------------


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
    face_search: tuple[str, float] | None  # collection id, FaceMatchThreshold
    connected_home: tuple[list[str], float] | None
    regions: list[tuple[tuple[float, float], ...]]
    options: dict[str, Any]
    sinks: list[dict[str, Any]]  # {"spec": SinkSpec as JSON}
    stop_after_s: float | None
    encode: RecordEncoder  # event -> record (a module-level function: pickled by reference)


def _worker_main(config: WorkerConfig, conn: Any) -> None:
    """A worker process: build the runtime, report status every interval, stop when told (or when
    StopSelector's duration is reached), exit 0 when stopped and 1 when the runtime failed."""
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s processor {config.name}: %(message)s")
    conn = _LockedConnection(conn)
    try:
        code = _work(config, conn)
    except BaseException as err:  # reported to the server before dying: never silently
        with contextlib.suppress(OSError, ValueError):
            conn.send(("failed", f"{type(err).__name__}: {err}"))
        raise
    raise SystemExit(code)


class _LockedConnection:
    """The worker's end of the pipe: the processing thread (identifications) and the main thread (status)
    both send, and a Connection's send is not safe from two threads at once."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self._lock:
            self._conn.send(message)

    def poll(self, timeout_s: float) -> bool:
        return bool(self._conn.poll(timeout_s))

    def recv(self) -> Any:
        return self._conn.recv()


def _work(config: WorkerConfig, conn: Any) -> int:
    from keeneye.streams.capture import CaptureSettings
    from keeneye.streams.runtime import StreamProcessorRuntime
    from keeneye.tracking.lines import Line
    from keeneye.tracking.zones import Zone

    settings = Settings.model_validate_json(config.settings_json)
    streams = settings.streams
    options = config.options
    sinks = _worker_sinks(config, settings)
    face_search = None
    analyzer = None
    if config.face_search is not None:
        from keeneye.models.registry import build_face_analyzer
        from keeneye.service.faces.collections import FaceCollections

        collection_id, threshold = config.face_search
        analyzer = build_face_analyzer(settings, with_embedder=True)
        collections = FaceCollections(Store.open(settings.data_dir, settings.database_url), analyzer)

        def search(embedding: Any, embedder_id: str, threshold: float) -> Any:
            return collections.search_faces_by_vector(collection_id, embedding, embedder_id, threshold)

        face_search = (search, threshold)

    def on_event(event: Event) -> None:
        payload = event.payload
        if isinstance(payload, FaceIdentified) and payload.matches:
            # Every identification is audited (by the server: one writer for the chain).
            matched = [{"FaceId": m.face.face_id, "Similarity": float(m.similarity)} for m in payload.matches]
            conn.send(("identified", {"matches": matched, "track_id": event.track_id}))

    capture = CaptureSettings(
        target_fps=options.get("target_fps") or streams.target_fps,
        queue_size=streams.queue_frames,
        **({"listen": True} if config.listen else {}),
    )
    runtime = StreamProcessorRuntime(
        config.source_url,
        settings,
        face_search=face_search,
        connected_home=config.connected_home,
        lines=[_line(x, Line) for x in options.get("lines", [])],
        zones=[_zone(x, Zone) for x in options.get("zones", [])],
        regions=config.regions,
        sinks=sinks,
        record_interval_s=options.get("record_interval_s") or streams.record_interval_s,
        capture=capture,
        stream_arn=config.stream_arn,
        analyzer=analyzer,
        on_event=on_event,
        encode=config.encode,
    )
    deadline = None if config.stop_after_s is None else time.monotonic() + config.stop_after_s
    runtime.start()
    reason = "stopped"
    try:
        while True:
            conn.send(("status", _stats_dict(runtime, sinks)))
            if runtime.stats().state == "failed":
                reason = "failed"
                break
            if deadline is not None and time.monotonic() >= deadline:
                reason = "duration"
                break
            if conn.poll(streams.status_interval_s) and conn.recv() == "stop":
                break
    finally:
        runtime.stop()  # closes the sinks: spooled records get until stop_timeout_s to go out
    stats = runtime.stats()
    conn.send(("status", _stats_dict(runtime, sinks)))
    if reason == "failed":
        conn.send(("failed", stats.error or "the processor stopped"))
        return 1
    conn.send(("stopped", reason))
    return 0


def _worker_sinks(config: WorkerConfig, settings: Settings) -> list[Any]:
    from keeneye.streams.sinks import SinkSpec, build_sink
    from keeneye.streams.spool import SpooledSink

    out = []
    put = s3_put_object(settings)
    for i, raw in enumerate(config.sinks):
        sink = build_sink(
            SinkSpec.model_validate(raw["spec"]),
            jsonl_dir=settings.data_dir / "notifications",
            timeout_s=settings.notifications.timeout_s,
            put_object=put,
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
            import boto3

            client.append(boto3.client("s3", endpoint_url=endpoint))
        client[0].put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    return put


def _stats_dict(runtime: Any, sinks: Sequence[Any]) -> dict[str, Any]:
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


def _sink_stats(sink: Any) -> dict[str, Any]:
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


# -- the service -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    """A processor's input and outputs as they resolve now: URL to read, listen or pull, sinks as JSON."""

    url: str
    listen: bool
    sinks: list[dict[str, Any]]


@dataclass
class _Running:
    process: Any
    conn: Any
    session_id: str
    access_key: str | None = None
    collection_id: str | None = None
    threshold: float | None = None
    stop_requested: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    outcome: tuple[str, str] | None = None  # ("stopped", why) | ("failed", why) from the worker
    monitor: threading.Thread | None = None


class StreamProcessors:
    """The stream-processor store and the supervisor of their worker processes.

    audit: where identifications a worker reports and session ends are recorded (with the access key
    that started the processor); notify: ``(topic_arn, message)`` for a processor's NotificationChannel;
    check_collection: raises NotFound for a missing collection; region/account: for ARNs; encode: a
    pipeline event -> the record sinks get (keeneye.aws.stream_records.encode, from the composition root).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        audit: AuditLog | None = None,
        notify: Callable[[str, dict[str, Any]], object] | None = None,
        check_notification_topic: Callable[[str], None] | None = None,
        check_collection: Callable[[str], object] | None = None,
        region: str = "us-east-1",
        account: str = "000000000000",
        encode: RecordEncoder,
    ) -> None:
        self._store = store
        self._encode = encode
        self._settings = settings
        self._audit = audit
        self._notify = notify
        self._check_topic = check_notification_topic
        self._check_collection = check_collection
        self.region, self.account = region, account
        self._lock = threading.RLock()
        self._running: dict[str, _Running] = {}
        self._closing = False
        self._mp = multiprocessing.get_context("spawn")

    def arn(self, name: str) -> str:
        """A processor's ARN; ``name`` is its store key (REGION/name outside us-east-1, as collections:
        keeneye.core.regions), and the ARN carries that region."""
        region, plain = regions.split_key(name)
        return f"arn:aws:rekognition:{region}:{self.account}:streamprocessor/{plain}"

    def camera_arn(self, name: str) -> str:
        """What Input.KinesisVideoStream.Arn names a registered camera by."""
        return f"arn:aws:kinesisvideo:{self.region}:{self.account}:stream/{name}/1"

    def data_stream_arn(self, name: str) -> str:
        """What Output.KinesisDataStream.Arn names a registered data stream by."""
        return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{name}"

    # -- cameras and data streams (native API) -----------------------------------------------------------

    def put_camera(self, name: str, url: str, *, listen: bool = False) -> dict[str, Any]:
        _check_name(name, "camera")
        scheme = urlsplit(url).scheme.lower()
        if scheme not in CAMERA_SCHEMES:
            raise InvalidParameter(
                f"a camera URL must be one of {', '.join(s + '://' for s in CAMERA_SCHEMES)}"
            )
        if listen and scheme not in ("rtsp", "rtmp"):
            raise InvalidParameter(
                "a camera that pushes (listen) needs an rtsp:// or rtmp:// URL to listen on"
            )
        now = _now()
        with self._store.transaction() as s:
            row = s.get(CameraRow, name)
            if row is None:
                row = CameraRow(name=name, url=url, listen=listen, created_at=now, updated_at=now)
                s.add(row)
            else:
                row.url, row.listen, row.updated_at = url, listen, now
            return self._camera_dict(row)

    def _camera_dict(self, row: CameraRow) -> dict[str, Any]:
        return {
            "name": row.name,
            "url": redacted_url(row.url),
            "listen": row.listen,
            "arn": self.camera_arn(row.name),
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }

    def list_cameras(self) -> list[dict[str, Any]]:
        with self._store.transaction() as s:
            return [self._camera_dict(r) for r in s.scalars(select(CameraRow).order_by(CameraRow.name))]

    def get_camera(self, name: str) -> dict[str, Any]:
        with self._store.transaction() as s:
            return self._camera_dict(_registered(s, CameraRow, name, NotFound))

    def delete_camera(self, name: str) -> None:
        with self._store.transaction() as s:
            s.delete(_registered(s, CameraRow, name, NotFound))

    def put_data_stream(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Register a data stream: one sink (``{"webhook": ...}``, ``{"mqtt": ...}``, ``{"jsonl": ...}``) or
        several that each get every record (``{"sinks": [{"webhook": ...}, {"mqtt": ...}]}``)."""
        from keeneye.streams.sinks import SinkSpec

        _check_name(name, "data stream")
        raw = spec.get("sinks") if set(spec) == {"sinks"} else [spec]
        if not isinstance(raw, list) or not 1 <= len(raw) <= 8:
            raise InvalidParameter('"sinks" must be a list of 1 to 8 sinks')
        try:
            parsed = [SinkSpec.model_validate(x) for x in raw]
        except ValueError as err:
            raise InvalidParameter(f"bad sink: {err}") from None
        body = {"sinks": [x.model_dump(mode="json", exclude_none=True) for x in parsed]}
        now = _now()
        with self._store.transaction() as s:
            row = s.get(DataStreamRow, name)
            if row is None:
                row = DataStreamRow(name=name, sink=body, created_at=now, updated_at=now)
                s.add(row)
            else:
                row.sink, row.updated_at = body, now
            return self._stream_dict(row)

    def _stream_dict(self, row: DataStreamRow) -> dict[str, Any]:
        from keeneye.streams.sinks import SinkSpec, redacted

        return {
            "name": row.name,
            "sinks": [redacted(SinkSpec.model_validate(x)) for x in row.sink["sinks"]],
            "arn": self.data_stream_arn(row.name),
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }

    def list_data_streams(self) -> list[dict[str, Any]]:
        with self._store.transaction() as s:
            return [
                self._stream_dict(r) for r in s.scalars(select(DataStreamRow).order_by(DataStreamRow.name))
            ]

    def delete_data_stream(self, name: str) -> None:
        with self._store.transaction() as s:
            s.delete(_registered(s, DataStreamRow, name, NotFound))

    # -- resolution ----------------------------------------------------------------------------------------

    def _resolve_input(self, arn: str) -> tuple[str, bool]:
        """Input.KinesisVideoStream.Arn -> (URL to read, listen)."""
        m = CAMERA_ARN.fullmatch(arn)
        if m is not None:
            with self._store.transaction() as s:
                camera = _registered(s, CameraRow, m.group(3), InvalidParameter)
                return camera.url, camera.listen
        scheme = urlsplit(arn).scheme.lower()
        if scheme in CAMERA_SCHEMES:
            return arn, False
        if scheme == "file":
            path = Path(unquote(urlsplit(arn).path)).resolve()
            roots = [Path(f).resolve() for f in self._settings.server.buckets.values()]
            if not any(path.is_relative_to(r) for r in roots):
                raise InvalidParameter(
                    "a file:// input must be inside a folder this server serves as a bucket "
                    "(--bucket NAME=FOLDER)"
                )
            if not path.is_file():
                raise InvalidParameter(f"no such video file: {path.name}")
            return f"file://{path}", False
        raise InvalidParameter(
            "Input.KinesisVideoStream.Arn must be a camera registered on this server "
            "(arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1) or a URL: rtsp://, rtsps://, rtmp://, "
            "http(s):// or file://"
        )

    def _resolve_outputs(self, output: Mapping[str, Any]) -> list[dict[str, Any]]:
        from keeneye.streams.sinks import S3Target, sink_spec_from_url

        sinks: list[dict[str, Any]] = []
        kinesis = output.get("KinesisDataStream")
        if kinesis is not None:
            arn = str(kinesis.get("Arn", ""))
            m = DATA_STREAM_ARN.fullmatch(arn)
            if m is not None:
                with self._store.transaction() as s:
                    stream = _registered(s, DataStreamRow, m.group(3), InvalidParameter)
                    sinks += [{"spec": dict(x)} for x in stream.sink["sinks"]]
            else:
                spec = sink_spec_from_url(arn)
                sinks.append({"spec": spec.model_dump(mode="json", exclude_none=True)})
        s3 = output.get("S3Destination")
        if s3 is not None:
            try:
                target = S3Target(bucket=str(s3.get("Bucket", "")), prefix=str(s3.get("KeyPrefix", "")))
            except ValueError as err:
                raise InvalidParameter(f"S3Destination: {err}") from None
            sinks.append({"spec": {"s3": target.model_dump(mode="json")}})
        for sink in sinks:
            bucket = (sink["spec"].get("s3") or {}).get("bucket")
            if (
                bucket is not None
                and bucket not in self._settings.server.buckets
                and not self._settings.server.s3_endpoint
            ):
                raise InvalidParameter(
                    f"bucket {bucket!r} is not served by this server (--bucket NAME=FOLDER or --s3-endpoint)"
                )
        if not sinks:
            raise InvalidParameter("Output needs KinesisDataStream or S3Destination")
        return sinks

    def _validate(self, request: Mapping[str, Any], name: str) -> _Resolved:
        """Everything Create checks that can be checked before a run: input, outputs, settings; what the
        input and outputs resolve to now (Start runs the worker on exactly that). ``name``: the
        processor's key, whose region is the FaceSearch collection's."""
        url, listen = self._resolve_input(str(request["Input"]["KinesisVideoStream"]["Arn"]))
        resolved = _Resolved(url, listen, self._resolve_outputs(request["Output"]))
        settings = request.get("Settings") or {}
        face, home = settings.get("FaceSearch"), settings.get("ConnectedHome")
        if face is None and home is None:
            raise InvalidParameter("Settings needs FaceSearch or ConnectedHome")
        if face is not None:
            if not face.get("CollectionId"):
                raise InvalidParameter("Settings.FaceSearch.CollectionId is required")
            threshold = face.get("FaceMatchThreshold", 80.0)
            if not 0 <= threshold <= 100:
                raise InvalidParameter("FaceMatchThreshold must be in 0-100")
            if self._check_collection is not None:
                try:
                    self._check_collection(_collection_key(name, str(face["CollectionId"])))
                except NotFound as err:
                    raise InvalidParameter(f"Settings.FaceSearch: {err.message}") from None
        if home is not None:
            _check_connected_home(home.get("Labels") or [], home.get("MinConfidence"))
        regions_of_interest(request.get("RegionsOfInterest") or [])
        channel = request.get("NotificationChannel")
        if channel is not None and self._check_topic is not None:
            self._check_topic(str(channel["SNSTopicArn"]))
        return resolved

    # -- the API -------------------------------------------------------------------------------------------

    def create(self, name: str, request: Mapping[str, Any]) -> str:
        """CreateStreamProcessor: validate and store (STOPPED); the ARN. ResourceInUse for a taken name."""
        _check_name(regions.name_of(name), "stream processor")
        body = {k: request[k] for k in _REQUEST_KEYS if k in request}
        self._validate(body, name)
        now = _now()
        with self._store.transaction() as s:
            if s.get(StreamProcessorRow, name) is not None:  # Rekognition: ResourceInUseException
                raise ResourceInUse(f"a stream processor named {name!r} already exists")
            s.add(
                StreamProcessorRow(
                    name=name,
                    status="STOPPED",
                    status_message=None,
                    desired="stopped",
                    request=body,
                    options={},
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.arn(name)

    def _row(self, s: Any, name: str) -> StreamProcessorRow:
        row = s.get(StreamProcessorRow, name)
        if row is None:
            raise NotFound(f"stream processor {name!r} does not exist")
        return row  # type: ignore[no-any-return]

    def _info(self, row: StreamProcessorRow) -> ProcessorInfo:
        return ProcessorInfo(
            row.name,
            self.arn(row.name),
            row.status,
            row.status_message,
            row.created_at,
            row.updated_at,
            dict(row.request),
            dict(row.options or {}),
            row.session_id,
        )

    def describe(self, name: str) -> ProcessorInfo:
        with self._store.transaction() as s:
            return self._info(self._row(s, name))

    def list_processors(
        self, max_results: int = MAX_LIST, after: str | None = None, region: str | None = None
    ) -> tuple[list[ProcessorInfo], str | None]:
        """Processors by key after ``after`` (of one region, if given); the page and the last key when
        more follow."""
        limit = max(1, min(max_results, MAX_LIST))
        with self._store.transaction() as s:
            q = select(StreamProcessorRow).order_by(StreamProcessorRow.name)
            if region == regions.HOME_REGION:
                q = q.where(~StreamProcessorRow.name.contains(regions.SEPARATOR, autoescape=True))
            elif region is not None:
                prefix = regions.check_region(region) + regions.SEPARATOR
                q = q.where(StreamProcessorRow.name.startswith(prefix, autoescape=True))
            if after is not None:
                q = q.where(StreamProcessorRow.name > after)
            rows = list(s.scalars(q.limit(limit + 1)))
        page = [self._info(r) for r in rows[:limit]]
        return page, (page[-1].name if len(rows) > limit else None)

    def update(
        self,
        name: str,
        *,
        connected_home: Mapping[str, Any] | None = None,
        regions: Sequence[Mapping[str, Any]] | None = None,
        data_sharing: Mapping[str, Any] | None = None,
        delete: Sequence[str] = (),
    ) -> None:
        """UpdateStreamProcessor: ConnectedHome labels / MinConfidence, RegionsOfInterest, DataSharing;
        only while stopped (ResourceInUse otherwise: stop it, update, start it)."""
        with self._store.transaction() as s:
            row = self._row(s, name)
            if row.status not in ("STOPPED", "FAILED"):
                raise ResourceInUse(f"stream processor {name!r} is {row.status}: stop it before updating it")
            request = dict(row.request)
            home = dict((request.get("Settings") or {}).get("ConnectedHome") or {})
            if connected_home is not None:
                if not home:
                    raise InvalidParameter(
                        "ConnectedHomeForUpdate: this processor has no ConnectedHome settings"
                    )
                home.update({k: v for k, v in connected_home.items() if v is not None})
            if "ConnectedHomeMinConfidence" in delete:
                home.pop("MinConfidence", None)
            if home:
                _check_connected_home(home.get("Labels") or [], home.get("MinConfidence"))
                request["Settings"] = {**request.get("Settings", {}), "ConnectedHome": home}
            if regions is not None:
                regions_of_interest(regions)
                request["RegionsOfInterest"] = list(regions)
            if "RegionsOfInterest" in delete:
                request.pop("RegionsOfInterest", None)
            if data_sharing is not None:
                request["DataSharingPreference"] = dict(data_sharing)
            row.request = request
            row.updated_at = _now()

    def set_options(self, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """keeneye's options (lines, zones, intervals); only while stopped, like Update."""
        options = ProcessorOptions.parse(raw).to_dict()
        with self._store.transaction() as s:
            row = self._row(s, name)
            if row.status not in ("STOPPED", "FAILED"):
                raise ResourceInUse(
                    f"stream processor {name!r} is {row.status}: stop it before changing its options"
                )
            row.options = options
            row.updated_at = _now()
        return options

    def delete(self, name: str) -> None:
        with self._store.transaction() as s:
            row = self._row(s, name)
            if row.status in ACTIVE:
                raise ResourceInUse(f"stream processor {name!r} is {row.status}: stop it before deleting it")
            s.delete(row)

    def start(self, name: str, *, max_duration_s: float | None = None, access_key: str | None = None) -> str:
        """StartStreamProcessor: spawn its worker; the SessionId. ResourceInUse when it is already running."""
        if max_duration_s is not None and max_duration_s <= 0:
            raise InvalidParameter("StopSelector.MaxDurationInSeconds must be > 0")
        with self._lock:
            if self._closing:
                raise ResourceInUse("the server is stopping")
            active = sum(1 for r in self._running.values() if r.process.is_alive())
            if name not in self._running and active >= self._settings.streams.max_processors:
                raise LimitExceeded(
                    f"{active} stream processors are running, the most this server runs at once "
                    f"(streams.max_processors); stop one first"
                )
            session_id = str(uuid.uuid4())
            now = _now()
            with self._store.transaction() as s:
                row = self._row(s, name)
                if row.status in ACTIVE or name in self._running:
                    raise ResourceInUse(f"stream processor {name!r} is {row.status}")
                request = dict(row.request)
            # What Create checked may have changed since (a camera, a data stream or the collection gone):
            # refused now, with what to fix, rather than a worker that fails.
            resolved = self._validate(request, name)
            with self._store.transaction() as s:
                row = self._row(s, name)
                row.status, row.status_message, row.desired = "STARTING", None, "running"
                row.session_id = session_id
                row.stop_at = None if max_duration_s is None else now + timedelta(seconds=max_duration_s)
                row.updated_at = now
                request, options = dict(row.request), dict(row.options or {})
            try:
                self._spawn(name, request, resolved, options, session_id, max_duration_s, access_key)
            except Exception as err:
                self._finish(name, session_id, "FAILED", f"could not start: {err}", access_key=access_key)
                raise
            return session_id

    def _spawn(
        self,
        name: str,
        request: Mapping[str, Any],
        resolved: _Resolved,
        options: Mapping[str, Any],
        session_id: str,
        stop_after_s: float | None,
        access_key: str | None,
    ) -> None:
        input_arn = str(request["Input"]["KinesisVideoStream"]["Arn"])
        settings = request.get("Settings") or {}
        face = settings.get("FaceSearch")
        home = settings.get("ConnectedHome")
        config = WorkerConfig(
            name=name,
            arn=self.arn(name),
            session_id=session_id,
            settings_json=self._settings.model_dump_json(),
            source_url=resolved.url,
            listen=resolved.listen,
            stream_arn=input_arn if CAMERA_ARN.fullmatch(input_arn) else redacted_url(input_arn),
            face_search=None
            if face is None
            else (
                _collection_key(name, str(face["CollectionId"])),
                float(face.get("FaceMatchThreshold", 80.0)),
            ),
            connected_home=None
            if home is None
            else (_labels(home.get("Labels") or []), float(home.get("MinConfidence", 50.0))),
            regions=regions_of_interest(request.get("RegionsOfInterest") or []),
            options=dict(options),
            sinks=resolved.sinks,
            stop_after_s=stop_after_s,
            encode=self._encode,
        )
        parent, child = self._mp.Pipe()
        process = self._mp.Process(
            target=_worker_main, args=(config, child), name=f"keeneye-processor-{name}", daemon=True
        )
        process.start()
        child.close()
        running = _Running(process, parent, session_id, access_key)
        if config.face_search is not None:
            running.collection_id, running.threshold = config.face_search
        self._running[name] = running
        running.monitor = threading.Thread(
            target=self._monitor, args=(name, running), name=f"keeneye-monitor-{name}", daemon=True
        )
        running.monitor.start()

    def _monitor(self, name: str, running: _Running) -> None:
        """Follow one worker until it exits; write its state changes; audit its identifications."""
        last: tuple[str, str | None] | None = None
        while True:
            try:
                if not running.conn.poll(0.5):
                    if not running.process.is_alive():
                        break
                    continue
                kind, payload = running.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "status":
                running.stats = payload
                status = "STOPPING" if running.stop_requested else "RUNNING"
                if payload.get("state") == "starting":
                    status = "STARTING"
                message = status_message(payload)
                if (status, message) != last:
                    last = (status, message)
                    self._set_status(name, running.session_id, status, message)
            elif kind == "identified" and self._audit is not None:
                self._audit.append(
                    "StreamProcessorMatch",
                    access_key=running.access_key,
                    collection_id=running.collection_id,
                    request_faces=1,
                    matches=payload["matches"],
                    threshold=running.threshold,
                    details={
                        "stream_processor": name,
                        "session_id": running.session_id,
                        "track_id": payload.get("track_id"),
                    },
                )
            elif kind in ("stopped", "failed"):
                running.outcome = (kind, str(payload))
        running.process.join(5)
        if running.outcome is not None and running.outcome[0] == "stopped":
            status, message = "STOPPED", None
            if running.outcome[1] == "duration":
                message = "stopped after StopSelector.MaxDurationInSeconds"
        elif running.stop_requested:
            status, message = "STOPPED", None
        else:
            why = (
                running.outcome[1]
                if running.outcome
                else f"worker exited with code {running.process.exitcode}"
            )
            status, message = "FAILED", f"the processor failed: {why}"
            log.error("stream processor %s failed: %s", name, why)
        with self._lock:
            if self._running.get(name) is running:
                del self._running[name]
            closing = self._closing
        keep_desired = closing  # a server shutdown: started again at the next start
        self._finish(
            name,
            running.session_id,
            status,
            message,
            keep_desired=keep_desired,
            access_key=running.access_key,
        )

    def _set_status(self, name: str, session_id: str, status: str, message: str | None) -> None:
        with self._store.transaction() as s:
            row = s.get(StreamProcessorRow, name)
            if row is None or row.session_id != session_id:
                return
            row.status, row.status_message, row.updated_at = status, message, _now()

    def _finish(
        self,
        name: str,
        session_id: str,
        status: str,
        message: str | None,
        *,
        keep_desired: bool = False,
        access_key: str | None = None,
    ) -> None:
        topic = None
        with self._store.transaction() as s:
            row = s.get(StreamProcessorRow, name)
            if row is None or row.session_id != session_id:
                return
            row.status, row.status_message, row.updated_at = status, message, _now()
            if not keep_desired:
                row.desired = "stopped"
            channel = row.request.get("NotificationChannel")
            topic = None if channel is None else str(channel["SNSTopicArn"])
        if self._audit is not None:
            self._audit.append(
                "StreamProcessorEnded",
                access_key=access_key,
                details={
                    "stream_processor": name,
                    "session_id": session_id,
                    "status": status,
                    "message": message,
                },
            )
        if topic is not None and self._notify is not None and not keep_desired:
            self._notify(topic, end_message(self.arn(name), session_id, status, message))

    def stop(self, name: str) -> None:
        """StopStreamProcessor: ask the worker to stop (it delivers what it has and exits; killed after
        ``streams.stop_timeout_s``). ResourceInUse when it is not running."""
        with self._lock:
            running = self._running.get(name)
            with self._store.transaction() as s:
                row = self._row(s, name)
                if running is None or row.status not in ACTIVE:
                    raise ResourceInUse(f"stream processor {name!r} is {row.status}, not running")
                row.status, row.desired, row.updated_at = "STOPPING", "stopped", _now()
            running.stop_requested = True
        self._stop_worker(running)

    def _stop_worker(self, running: _Running) -> None:
        with contextlib.suppress(OSError, ValueError):
            running.conn.send("stop")
        threading.Thread(target=self._reap, args=(running,), daemon=True).start()

    def _reap(self, running: _Running) -> None:
        running.process.join(self._settings.streams.stop_timeout_s)
        if running.process.is_alive():
            log.warning("stream processor worker %s did not stop in time: killed", running.process.name)
            running.process.kill()

    def stats(self, name: str) -> dict[str, Any]:
        """The latest counters a running processor reported (empty when it is not running)."""
        with self._lock:
            running = self._running.get(name)
            if running is None:
                return {}
            return {**running.stats, "worker_pid": running.process.pid}

    def all_stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: dict(r.stats) for name, r in self._running.items()}

    def wait_stopped(self, name: str, timeout_s: float) -> bool:
        """Tests and shutdown: whether the processor's monitor ended within ``timeout_s``."""
        with self._lock:
            running = self._running.get(name)
        if running is None or running.monitor is None:
            return True
        running.monitor.join(timeout_s)
        return not running.monitor.is_alive()

    def resume(self) -> list[str]:
        """Server start: processors that were running (or starting) when it stopped run again; a
        processor left STOPPING is STOPPED. The names started."""
        started = []
        with self._store.transaction() as s:
            rows = list(s.scalars(select(StreamProcessorRow)))
            again = [r.name for r in rows if r.desired == "running"]
            for r in rows:
                if r.status in ACTIVE and r.desired != "running":
                    r.status, r.updated_at = "STOPPED", _now()
                elif r.status in ACTIVE:
                    r.status = "STOPPED"  # start() below moves it on
        for name in again:
            try:
                self.start(name)
                started.append(name)
            except Exception as err:  # one bad processor must not keep the others down; its row says why
                log.error("stream processor %s could not be resumed: %s", name, err)
                message = err.message if isinstance(err, KeeneyeError) else f"{type(err).__name__}: {err}"
                with self._store.transaction() as s:
                    row = s.get(StreamProcessorRow, name)
                    if row is not None and row.status not in ACTIVE:
                        row.status, row.desired, row.updated_at = "FAILED", "stopped", _now()
                        row.status_message = f"could not be started again after a server restart: {message}"[
                            :1024
                        ]
        return started

    def close(self) -> None:
        """Server shutdown: stop every worker (they stay desired-running and resume at the next start)."""
        with self._lock:
            self._closing = True
            running = list(self._running.items())
        for _, r in running:
            r.stop_requested = True
            with contextlib.suppress(OSError, ValueError):
                r.conn.send("stop")
        deadline = time.monotonic() + self._settings.streams.stop_timeout_s
        for _, r in running:
            r.process.join(max(0.1, deadline - time.monotonic()))
            if r.process.is_alive():
                r.process.kill()
                r.process.join(2)
            if r.monitor is not None:
                r.monitor.join(5)


_REQUEST_KEYS = (
    "Input",
    "Output",
    "Settings",
    "RoleArn",
    "Tags",
    "NotificationChannel",
    "KmsKeyId",
    "RegionsOfInterest",
    "DataSharingPreference",
)


_REGISTRATION = {
    CameraRow: ("camera", 'PUT /v1/cameras/{name} {{"url": "rtsp://..."}}, or give the URL as the Arn'),
    DataStreamRow: ("data stream", "PUT /v1/data-streams/{name}, or give a sink URL as the Arn"),
}


def _registered(s: Any, table: type[Any], name: str, error: type[KeeneyeError]) -> Any:
    """The camera / data stream row called ``name``; ``error`` (NotFound for the native API,
    InvalidParameter where a processor names it) saying how to register one when there is none."""
    row = s.get(table, name)
    if row is None:
        what, how = _REGISTRATION[table]
        if error is NotFound:
            raise NotFound(f"no {what} named {name!r}")
        raise error(f"no {what} named {name!r} on this server: register it with {how.format(name=name)}")
    return row


def _collection_key(processor: str, collection_id: str) -> str:
    """The store key of a FaceSearch collection: the one of the processor's region."""
    return regions.scoped_key(regions.split_key(processor)[0], collection_id)


def _check_name(name: str, what: str) -> None:
    if not NAME.fullmatch(name):
        raise InvalidParameter(f"a {what} name is 1-128 characters of a-z, A-Z, 0-9, _, . and -")


def _labels(labels: Sequence[str]) -> list[str]:
    return ["PERSON" if label == "ALL" else label for label in labels]


def _check_connected_home(labels: Sequence[str], min_confidence: float | None) -> None:
    if not labels:
        raise InvalidParameter("Settings.ConnectedHome.Labels needs at least one label: PERSON")
    unsupported = sorted(set(_labels(labels)) - set(SUPPORTED_LABELS))
    if unsupported:
        raise InvalidParameter(
            f"ConnectedHome labels {unsupported} are not supported: keeneye detects PERSON only "
            "(ALL means PERSON here)"
        )
    if min_confidence is not None and not 0 <= min_confidence <= 100:
        raise InvalidParameter("ConnectedHome.MinConfidence must be in 0-100")


def end_message(arn: str, session_id: str, status: str, message: str | None) -> dict[str, Any]:
    """What a NotificationChannel gets when a session ends (keeneye's shape, modelled on Rekognition's
    connected-home STREAM_PROCESSING_COMPLETE event; docs/streams.md)."""
    return {
        "eventNamespace": {"type": "STREAM_PROCESSING_COMPLETE"},
        "streamProcessorArn": arn,
        "sessionId": session_id,
        "status": status,
        "statusMessage": message,
        "timestamp": int(time.time() * 1000),
    }
