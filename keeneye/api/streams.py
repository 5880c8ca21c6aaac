"""Live streams (docs/streams.md): cameras, data streams, stream-processor options and live counters.

* ``/v1/cameras/{name}`` (``keeneye:ManageCameras``, on the camera's Kinesis Video ARN): a camera's URL,
  and whether keeneye pulls from it or listens for it to push; what ``Input.KinesisVideoStream.Arn``
  ``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1`` names. Passwords in URLs are shown redacted.
* ``/v1/data-streams/{name}`` (``keeneye:ManageDataStreams``, on the data stream's ARN): a sink (webhook,
  mqtt, jsonl; the shape of notification channels), what ``Output.KinesisDataStream.Arn``
  ``arn:aws:kinesis:<region>:<account>:stream/<name>`` names.
* ``/v1/stream-processors/{name}/options`` (GET: ``rekognition:DescribeStreamProcessor``, PUT:
  ``rekognition:UpdateStreamProcessor`` and, as UpdateStreamProcessor, the rights the stored request
  needs: keeneye.service.streams.rights): keeneye's own lines, zones, record interval and fps.
* ``/v1/stream-processors/{name}/stats`` (``rekognition:DescribeStreamProcessor``): the running
  processor's counters (frames analysed and dropped, records, capture-to-record latency p50/p95, camera
  reconnects, each sink's queue on disk); the same numbers are in ``/v1/metrics``.
* ``/v1/stream-processors/{name}/live`` and ``/live.json`` (``rekognition:DescribeStreamProcessor``): the
  running processor's latest annotated frame (JPEG, metadata in ``X-Keeneye-*`` headers) and its metadata
  (capture time, line counts, the boxes drawn); ``/snapshot`` (also the rights reading its input needs,
  as Start checks them: ``keeneye:UseCamera``, ``keeneye:UseUrl`` or ``s3:GetObject``): its input's
  current frame, un-annotated (also for a stopped processor: read from its camera then).
  ``/v1/cameras/{name}/snapshot`` (``keeneye:ManageCameras``): a registered camera's current frame.

Stream processors are regional, as on AWS: ``?region=`` names the region (default us-east-1).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from keeneye.api.deps import ApiState, Caller, allowed, need
from keeneye.core import regions
from keeneye.core.errors import BackendUnavailable, InvalidParameter, ResourceInUse
from keeneye.service.container import Services
from keeneye.service.streams.cameras import Cameras, data_stream_sinks
from keeneye.service.streams.processors import LiveView, StreamProcessors
from keeneye.service.streams.rights import sink_rights

router = APIRouter()

MANAGE_CAMERAS = "keeneye:ManageCameras"
MANAGE_DATA_STREAMS = "keeneye:ManageDataStreams"
NO_STORE = {"Cache-Control": "no-store"}
RegionQuery = Annotated[
    str, Query(description="The processor's region (stream processors are regional, as on AWS)")
]


def processors(services: Services) -> StreamProcessors:
    result: StreamProcessors = need(services.stream_processors, "stream processors")
    return result


def cameras(services: Services) -> Cameras:
    """The registered cameras and data streams (kept by the stream processors)."""
    return processors(services).cameras


def camera_arn(request: Request, state: ApiState) -> str:
    return cameras(state.services).camera_arn(str(request.path_params["name"]))


def stream_arn(request: Request, state: ApiState) -> str:
    return cameras(state.services).data_stream_arn(str(request.path_params["name"]))


def processor_key(request: Request) -> str:
    """The store key of the path's processor in the query's region (keeneye.core.regions)."""
    region = request.query_params.get("region", regions.HOME_REGION)
    if not regions.is_region(region):
        raise InvalidParameter("region must be a region name such as us-east-1")
    return regions.scoped_key(region, str(request.path_params["name"]))


def processor_arn(request: Request, state: ApiState) -> str:
    return processors(state.services).arn(processor_key(request))


# -- cameras -------------------------------------------------------------------------------------------


@router.get("/v1/cameras", summary="Registered cameras (URL passwords redacted)")
def list_cameras(caller: Caller = allowed(MANAGE_CAMERAS)) -> dict[str, Any]:
    return {"cameras": cameras(caller.services).list_cameras()}


@router.get("/v1/cameras/{name}", summary="One registered camera")
def get_camera(name: str, caller: Caller = allowed(MANAGE_CAMERAS, camera_arn)) -> dict[str, Any]:
    return cameras(caller.services).get_camera(name)


@router.put(
    "/v1/cameras/{name}",
    summary="Register a camera: its URL, and whether it pushes to keeneye",
    description='Body: {"url": "rtsp://user:pass@10.0.0.5/stream1"} for a camera keeneye reads, or '
    '{"url": "rtsp://0.0.0.0:8554/door", "listen": true} for one that pushes (RTSP ANNOUNCE/RECORD '
    "or RTMP publish) to that address. Stream processors name it as "
    "arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1.",
)
def put_camera(name: str, caller: Caller = allowed(MANAGE_CAMERAS, camera_arn)) -> dict[str, Any]:
    raw = caller.json('{"url": "rtsp://camera/stream"}')
    url, listen = raw.get("url"), raw.get("listen", False)
    if not isinstance(url, str) or not isinstance(listen, bool) or set(raw) - {"url", "listen"}:
        raise InvalidParameter('a camera is {"url": "<rtsp|rtsps|rtmp|http|https URL>", "listen": false}')
    camera = cameras(caller.services).put_camera(name, url, listen=listen)
    caller.audit("PutCamera", {"camera": name, "listen": listen})
    return camera


@router.get(
    "/v1/cameras/{name}/snapshot",
    summary="A JPEG of the camera's current frame (for drawing lines and zones on)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def camera_snapshot(name: str, caller: Caller = allowed(MANAGE_CAMERAS, camera_arn)) -> Response:
    jpeg = processors(caller.services).camera_snapshot(name)
    return Response(jpeg, media_type="image/jpeg", headers=NO_STORE)


@router.delete("/v1/cameras/{name}", status_code=204, response_class=Response, summary="Forget a camera")
def delete_camera(name: str, caller: Caller = allowed(MANAGE_CAMERAS, camera_arn)) -> Response:
    cameras(caller.services).delete_camera(name)
    caller.audit("DeleteCamera", {"camera": name})
    return Response(status_code=204)


# -- data streams --------------------------------------------------------------------------------------


@router.get("/v1/data-streams", summary="Registered data streams (record sinks), secrets redacted")
def list_streams(caller: Caller = allowed(MANAGE_DATA_STREAMS)) -> dict[str, Any]:
    return {"data_streams": cameras(caller.services).list_data_streams()}


@router.put(
    "/v1/data-streams/{name}",
    summary="Register a data stream: where a processor's records go",
    description='Body: one sink, exactly one of {"webhook": {"url": ...}}, {"mqtt": {"host", "port", '
    '"topic"}}, {"jsonl": {"file": "NAME.jsonl"}} (as notification channels), or {"sinks": [sink, ...]} '
    "for several that each get every record; each sink also needs keeneye:WriteFile (jsonl), s3:PutObject "
    "(s3) or keeneye:UseUrl (webhook, mqtt) on its destination. Stream processors name it as "
    "arn:aws:kinesis:<region>:<account>:stream/<name>.",
)
def put_stream(name: str, caller: Caller = allowed(MANAGE_DATA_STREAMS, stream_arn)) -> dict[str, Any]:
    raw = caller.json('{"webhook": {"url": "https://example.org/hook"}}')
    # Each sink needs the right a processor's Output naming it directly would (a file, a bucket, a URL):
    # a data stream must not launder a destination its registrant may not use.
    for sink in data_stream_sinks(raw):
        caller.require(sink_rights(sink), where=f"PUT /v1/data-streams/{name}")
    stream = cameras(caller.services).put_data_stream(name, raw)
    caller.audit("PutDataStream", {"data_stream": name})
    return stream


@router.delete(
    "/v1/data-streams/{name}", status_code=204, response_class=Response, summary="Forget a data stream"
)
def delete_stream(name: str, caller: Caller = allowed(MANAGE_DATA_STREAMS, stream_arn)) -> Response:
    cameras(caller.services).delete_data_stream(name)
    caller.audit("DeleteDataStream", {"data_stream": name})
    return Response(status_code=204)


# -- processors: options and counters ------------------------------------------------------------------


@router.get("/v1/stream-processors/{name}/options", summary="A processor's lines, zones and intervals")
def get_options(
    request: Request,
    name: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("rekognition:DescribeStreamProcessor", processor_arn),
) -> dict[str, Any]:
    return processors(caller.services).describe(processor_key(request)).options


@router.put(
    "/v1/stream-processors/{name}/options",
    summary="Set a stopped processor's lines, zones and intervals (keeneye's extension)",
    description='Body: {"lines": [{"name": "door", "p1": [0.1, 0.6], "p2": [0.9, 0.6]}], "zones": '
    '[{"name": "lobby", "polygon": [[0, 0], [0.5, 0], [0.5, 1]]}], "record_interval_s": 10, '
    '"target_fps": 10}; ratio coordinates; a track crossing a line from the side where cross(p2 - p1, '
    "q - p1) < 0 to > 0 is 'in'. Lines and zones apply to ConnectedHome PERSON tracks.",
)
def put_options(
    request: Request,
    name: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("rekognition:UpdateStreamProcessor", processor_arn),
) -> dict[str, Any]:
    key = processor_key(request)
    service = processors(caller.services)
    # What UpdateStreamProcessor checks: the stored request's camera, outputs, collection and channel,
    # under the caller's policy (a key allowed Update on someone else's processor must also be allowed
    # what it uses).
    caller.require(service.stored_rights(key), where=f"PUT /v1/stream-processors/{name}/options")
    options = service.set_options(key, caller.json('{"lines": [...]}'))
    caller.audit("PutStreamProcessorOptions", {"name": key})
    return options


@router.get(
    "/v1/stream-processors/{name}/stats",
    summary="A processor's live counters: frames, drops, records, latency, reconnects, sink queues",
)
def get_stats(
    request: Request,
    name: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("rekognition:DescribeStreamProcessor", processor_arn),
) -> dict[str, Any]:
    key = processor_key(request)
    service = processors(caller.services)
    info = service.describe(key)
    return {
        "name": regions.name_of(key),
        "status": info.status,
        "status_message": info.status_message,
        **service.stats(key),
    }


def _live_view(request: Request, caller: Caller) -> LiveView:
    """The path's processor's live view; NotFound, ResourceInUse when it is not running, BackendUnavailable
    while it has none (its camera is not sending: its status says why)."""
    key = processor_key(request)
    service = processors(caller.services)
    service.describe(key)  # NotFound before anything else
    view = service.live_view(key)
    if view is None:
        info = service.describe(key)
        if info.status not in ("STARTING", "RUNNING"):
            raise ResourceInUse(f"stream processor {regions.name_of(key)!r} is {info.status}: no live view")
        why = f": {info.status_message}" if info.status_message else ""
        raise BackendUnavailable(f"stream processor {regions.name_of(key)!r} has no live view yet{why}")
    return view


@router.get(
    "/v1/stream-processors/{name}/live",
    summary="A running processor's latest frame with boxes, names, lines and counts drawn (JPEG)",
    description="Headers: X-Keeneye-Captured-At (epoch seconds the frame was captured), X-Keeneye-Pts-Ms, "
    'X-Keeneye-Counts ({"line": {"in": n, "out": m}} as JSON). Asking starts the processor\'s views (4 a '
    "second while someone asks at least every 30 s); poll it, or /live.json for the metadata alone.",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_live(
    request: Request,
    name: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("rekognition:DescribeStreamProcessor", processor_arn),
) -> Response:
    view = _live_view(request, caller)
    headers = {
        **NO_STORE,
        "X-Keeneye-Captured-At": f"{view.captured_at:.3f}",
        "X-Keeneye-Pts-Ms": str(view.pts_ms),
        "X-Keeneye-Counts": json.dumps(view.counts, separators=(",", ":")),
    }
    return Response(view.jpeg, media_type="image/jpeg", headers=headers)


@router.get(
    "/v1/stream-processors/{name}/live.json",
    summary="The metadata of a running processor's latest live view: capture time, line counts, boxes",
)
def get_live_json(
    request: Request,
    name: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("rekognition:DescribeStreamProcessor", processor_arn),
) -> dict[str, Any]:
    view = _live_view(request, caller)
    return {
        "name": name,
        "captured_at": view.captured_at,
        "pts_ms": view.pts_ms,
        "counts": view.counts,
        "tracks": view.tracks,
        "jpeg_bytes": len(view.jpeg),
    }


@router.get(
    "/v1/stream-processors/{name}/snapshot",
    summary="A JPEG of the processor's input now, un-annotated (for drawing lines and zones on)",
    description="A running processor's latest frame; a stopped one's camera is read (a few seconds at "
    "most; 503 when it gives no frame). Needs, besides rekognition:DescribeStreamProcessor, the rights "
    "Start checks on the processor's input (keeneye:UseCamera on its camera, keeneye:UseUrl on its URL, "
    "s3:GetObject on a served file), whether it runs or not.",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_snapshot(
    request: Request,
    name: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("rekognition:DescribeStreamProcessor", processor_arn),
) -> Response:
    key = processor_key(request)
    service = processors(caller.services)
    # The frame is the input's (the camera's), and a stopped processor's is read from the camera with
    # its stored password: the input's rights, as Start checks them. Asked of a running processor too,
    # so the answer does not depend on whether it stopped a moment ago (docs/security.md).
    caller.require(service.input_rights(key), where=f"GET /v1/stream-processors/{name}/snapshot")
    jpeg = service.snapshot(key)
    return Response(jpeg, media_type="image/jpeg", headers=NO_STORE)
