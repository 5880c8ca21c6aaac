"""Native API of live streams: cameras, data streams, stream-processor options and live counters.

* ``/v1/cameras/{name}`` (``keeneye:ManageCameras``, on the camera's Kinesis Video ARN): a camera's URL,
  and whether keeneye pulls from it or listens for it to push; what ``Input.KinesisVideoStream.Arn``
  ``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1`` names. Passwords in URLs are shown redacted.
* ``/v1/data-streams/{name}`` (``keeneye:ManageDataStreams``, on the data stream's ARN): a sink (webhook,
  mqtt, jsonl; the shape of notification channels), what ``Output.KinesisDataStream.Arn``
  ``arn:aws:kinesis:<region>:<account>:stream/<name>`` names.
* ``/v1/stream-processors/{name}/options`` (GET: ``rekognition:DescribeStreamProcessor``, PUT:
  ``rekognition:UpdateStreamProcessor``): keeneye's own lines, zones, record interval and fps.
* ``/v1/stream-processors/{name}/stats`` (``rekognition:DescribeStreamProcessor``): the running
  processor's counters (frames analysed and dropped, records, capture-to-record latency p50/p95, camera
  reconnects, each sink's queue on disk); the same numbers are in ``/v1/metrics``.

Errors are ``{"error": {"code", "message"}}`` with 400/401/403/404/409/429/503, like the other native
routes; every change is audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from keeneye.core import regions
from keeneye.core.errors import BackendUnavailable, InvalidParameter

if TYPE_CHECKING:
    from keeneye.auth.keyring import KeyRing
    from keeneye.auth.ratelimit import RateLimiter
    from keeneye.aws.handlers import Services
    from keeneye.service.streams.processors import StreamProcessors

MANAGE_CAMERAS = "keeneye:ManageCameras"
RegionQuery = Annotated[
    str, Query(description="The processor's region (stream processors are regional, as on AWS)")
]
MANAGE_DATA_STREAMS = "keeneye:ManageDataStreams"


def json_object(body: bytes, example: str) -> dict[str, Any]:
    try:
        value = json.loads(body or b"null")
    except (ValueError, RecursionError):  # RecursionError: [[[[... nested past the parser's depth
        raise InvalidParameter("the body is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameter(f"the body must be a JSON object such as {example}")
    return value


def add_stream_routes(
    app: FastAPI,
    svc: Services,
    keys: KeyRing,
    clock: Callable[[], datetime],
    limiter: RateLimiter,
) -> None:
    from keeneye.aws.app import _audit_change, native_runner

    def processors() -> StreamProcessors:
        if svc.stream_processors is None:
            raise BackendUnavailable("stream processors are not available on this server")
        return svc.stream_processors

    native = native_runner(keys, clock, limiter)

    def camera_arn(name: str) -> str:
        return processors().camera_arn(name)

    def stream_arn(name: str) -> str:
        return processors().data_stream_arn(name)

    # -- cameras ---------------------------------------------------------------------------------------

    @app.get("/v1/cameras", summary="Registered cameras (URL passwords redacted)")
    async def list_cameras(request: Request) -> Response:
        return await native(request, lambda _: {"cameras": processors().list_cameras()}, MANAGE_CAMERAS)

    @app.get("/v1/cameras/{name}", summary="One registered camera")
    async def get_camera(request: Request, name: str) -> Response:
        return await native(
            request, lambda _: processors().get_camera(name), MANAGE_CAMERAS, camera_arn(name)
        )

    @app.put(
        "/v1/cameras/{name}",
        summary="Register a camera: its URL, and whether it pushes to keeneye",
        description='Body: {"url": "rtsp://user:pass@10.0.0.5/stream1"} for a camera keeneye reads, or '
        '{"url": "rtsp://0.0.0.0:8554/door", "listen": true} for one that pushes (RTSP ANNOUNCE/RECORD '
        "or RTMP publish) to that address. Stream processors name it as "
        "arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1.",
    )
    async def put_camera(request: Request, name: str) -> Response:
        def call(body: bytes) -> dict[str, Any]:
            raw = json_object(body, '{"url": "rtsp://camera/stream"}')
            url, listen = raw.get("url"), raw.get("listen", False)
            if not isinstance(url, str) or not isinstance(listen, bool) or set(raw) - {"url", "listen"}:
                raise InvalidParameter(
                    'a camera is {"url": "<rtsp|rtsps|rtmp|http|https URL>", "listen": false}'
                )
            camera = processors().put_camera(name, url, listen=listen)
            _audit_change(svc, request, "PutCamera", {"camera": name, "listen": listen})
            return camera

        return await native(request, call, MANAGE_CAMERAS, camera_arn(name))

    @app.delete("/v1/cameras/{name}", status_code=204, summary="Forget a camera")
    async def delete_camera(request: Request, name: str) -> Response:
        def call(_: bytes) -> None:
            processors().delete_camera(name)
            _audit_change(svc, request, "DeleteCamera", {"camera": name})

        return await native(request, call, MANAGE_CAMERAS, camera_arn(name))

    # -- data streams ----------------------------------------------------------------------------------

    @app.get("/v1/data-streams", summary="Registered data streams (record sinks), secrets redacted")
    async def list_streams(request: Request) -> Response:
        return await native(
            request, lambda _: {"data_streams": processors().list_data_streams()}, MANAGE_DATA_STREAMS
        )

    @app.put(
        "/v1/data-streams/{name}",
        summary="Register a data stream: where a processor's records go",
        description='Body: one sink, exactly one of {"webhook": {"url": ...}}, {"mqtt": {"host", "port", '
        '"topic"}}, {"jsonl": {"file": "NAME.jsonl"}} (as notification channels), or {"sinks": [sink, ...]} '
        "for several that each get every record. Stream processors name it as "
        "arn:aws:kinesis:<region>:<account>:stream/<name>.",
    )
    async def put_stream(request: Request, name: str) -> Response:
        def call(body: bytes) -> dict[str, Any]:
            raw = json_object(body, '{"webhook": {"url": "https://example.org/hook"}}')
            stream = processors().put_data_stream(name, raw)
            _audit_change(svc, request, "PutDataStream", {"data_stream": name})
            return stream

        return await native(request, call, MANAGE_DATA_STREAMS, stream_arn(name))

    @app.delete("/v1/data-streams/{name}", status_code=204, summary="Forget a data stream")
    async def delete_stream(request: Request, name: str) -> Response:
        def call(_: bytes) -> None:
            processors().delete_data_stream(name)
            _audit_change(svc, request, "DeleteDataStream", {"data_stream": name})

        return await native(request, call, MANAGE_DATA_STREAMS, stream_arn(name))

    # -- processors: options and counters --------------------------------------------------------------

    def processor_key(name: str, region: str) -> str:
        """The store key of a processor named ``name`` in ``region`` (processors are regional, as on AWS)."""
        if not regions.is_region(region):
            raise InvalidParameter("region must be a region name such as us-east-1")
        return regions.scoped_key(region, name)

    @app.get("/v1/stream-processors/{name}/options", summary="A processor's lines, zones and intervals")
    async def get_options(request: Request, name: str, region: RegionQuery = regions.HOME_REGION) -> Response:
        p = processors()
        try:
            name = processor_key(name, region)
        except InvalidParameter as err:
            return JSONResponse({"error": {"code": err.code, "message": err.message}}, status_code=400)
        return await native(
            request, lambda _: p.describe(name).options, "rekognition:DescribeStreamProcessor", p.arn(name)
        )

    @app.put(
        "/v1/stream-processors/{name}/options",
        summary="Set a stopped processor's lines, zones and intervals (keeneye's extension)",
        description='Body: {"lines": [{"name": "door", "p1": [0.1, 0.6], "p2": [0.9, 0.6]}], "zones": '
        '[{"name": "lobby", "polygon": [[0, 0], [0.5, 0], [0.5, 1]]}], "record_interval_s": 10, '
        '"target_fps": 10}; ratio coordinates; a track crossing a line from the side where cross(p2 - p1, '
        "q - p1) < 0 to > 0 is 'in'. Lines and zones apply to ConnectedHome PERSON tracks.",
    )
    async def put_options(request: Request, name: str, region: RegionQuery = regions.HOME_REGION) -> Response:
        p = processors()
        try:
            name = processor_key(name, region)
        except InvalidParameter as err:
            return JSONResponse({"error": {"code": err.code, "message": err.message}}, status_code=400)

        def call(body: bytes) -> dict[str, Any]:
            options = p.set_options(name, json_object(body, '{"lines": [...]}'))
            _audit_change(svc, request, "PutStreamProcessorOptions", {"name": name})
            return options

        return await native(request, call, "rekognition:UpdateStreamProcessor", p.arn(name))

    @app.get(
        "/v1/stream-processors/{name}/stats",
        summary="A processor's live counters: frames, drops, records, latency, reconnects, sink queues",
    )
    async def get_stats(request: Request, name: str, region: RegionQuery = regions.HOME_REGION) -> Response:
        p = processors()
        try:
            name = processor_key(name, region)
        except InvalidParameter as err:
            return JSONResponse({"error": {"code": err.code, "message": err.message}}, status_code=400)

        def call(_: bytes) -> dict[str, Any]:
            info = p.describe(name)
            return {
                "name": regions.name_of(name),
                "status": info.status,
                "status_message": info.status_message,
                **p.stats(name),
            }

        return await native(request, call, "rekognition:DescribeStreamProcessor", p.arn(name))


def render_metrics(stats: dict[str, dict[str, Any]]) -> str:
    """Prometheus text for the running processors' latest counters."""
    series: list[tuple[str, str, str, list[tuple[str, Any]]]] = [
        ("keeneye_stream_frames_total", "counter", "Frames a stream processor analysed", []),
        ("keeneye_stream_frames_dropped_total", "counter", "Frames dropped because analysis fell behind", []),
        ("keeneye_stream_records_total", "counter", "Records a stream processor emitted", []),
        ("keeneye_stream_latency_seconds", "gauge", "Capture-to-record latency over recent records", []),
        ("keeneye_stream_reconnects_total", "counter", "Camera reconnects", []),
        ("keeneye_stream_sink_queued", "gauge", "Records waiting on disk for a sink", []),
        (
            "keeneye_stream_sink_dropped_total",
            "counter",
            "Records dropped because a sink's spool was full",
            [],
        ),
    ]
    by_name = {s[0]: s[3] for s in series}
    for name, st in sorted(stats.items()):
        if not st:
            continue
        label = f'processor="{name}"'
        by_name["keeneye_stream_frames_total"].append((label, st.get("frames_processed", 0)))
        by_name["keeneye_stream_frames_dropped_total"].append((label, st.get("frames_dropped", 0)))
        by_name["keeneye_stream_records_total"].append((label, st.get("records", 0)))
        for q in ("p50", "p95"):
            value = st.get(f"latency_{q}_s")
            if value is not None:
                quantile = "0.5" if q == "p50" else "0.95"
                by_name["keeneye_stream_latency_seconds"].append((f'{label},quantile="{quantile}"', value))
        by_name["keeneye_stream_reconnects_total"].append(
            (label, (st.get("capture") or {}).get("reconnects", 0))
        )
        for sink in st.get("sinks", []):
            sink_label = f'{label},sink="{sink.get("name")}"'
            by_name["keeneye_stream_sink_queued"].append((sink_label, sink.get("queued", 0)))
            by_name["keeneye_stream_sink_dropped_total"].append((sink_label, sink.get("dropped", 0)))
    lines: list[str] = []
    for metric, kind, help_text, values in series:
        lines += [f"# HELP {metric} {help_text}.", f"# TYPE {metric} {kind}"]
        lines += [f"{metric}{{{label}}} {value}" for label, value in values]
    return "\n".join(lines) + "\n"
