"""The console's camera pages: registered cameras, stream processors (create, start, stop, lines drawn on
a snapshot) and each running processor's live view, with the rights the Rekognition and native APIs ask
(rekognition:CreateStreamProcessor and the rights its request needs, keeneye:ManageCameras ...)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from keeneye.console import session as sessions
from keeneye.console.web import blocking, collection_names, form_of, guarded, render, see_other, text_of
from keeneye.core import regions
from keeneye.core.errors import BackendUnavailable, InvalidParameter, NotFound

router = APIRouter(prefix=sessions.PATH, include_in_schema=False)

MANAGE_CAMERAS = "keeneye:ManageCameras"
MANAGE_DATA_STREAMS = "keeneye:ManageDataStreams"
ROLE = "arn:aws:iam::000000000000:role/keeneye-console"


def _processors(request: Request) -> Any:
    found = request.app.state.api.services.stream_processors
    if found is None:
        raise BackendUnavailable("stream processors are not available on this server")
    return found


def _key(name: str) -> str:
    return regions.scoped_key(regions.HOME_REGION, name)


def _collection_arn(request: Request) -> Any:
    collections = request.app.state.api.services.collections
    return lambda cid: collections.arn(cid) if collections is not None else "*"


@router.get("/processors", response_class=HTMLResponse)
async def processors_page(request: Request) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        processors = _processors(request)
        viewer.require("rekognition:ListStreamProcessors", "*", "list stream processors")
        listed, _ = await blocking(lambda: processors.list_processors(1000, None, region=regions.HOME_REGION))
        cameras = await blocking(processors.cameras.list_cameras) if viewer.can(MANAGE_CAMERAS) else None
        managed = viewer.can(MANAGE_DATA_STREAMS)
        streams = await blocking(processors.cameras.list_data_streams) if managed else None
        names = await collection_names(request)
        return render(
            request,
            "processors.html",
            viewer,
            processors=listed,
            cameras=cameras,
            data_streams=streams,
            can_streams=viewer.can(MANAGE_DATA_STREAMS),
            collection_names=names,
            can_create=viewer.can("rekognition:CreateStreamProcessor"),
            can_cameras=viewer.can(MANAGE_CAMERAS),
        )

    return await guarded(request, page)


@router.post("/cameras", response_class=HTMLResponse)
async def register_camera(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        processors = _processors(request)
        name, url = text_of(form, "camera_name"), text_of(form, "camera_url")
        viewer.require(MANAGE_CAMERAS, processors.cameras.camera_arn(name), "register a camera")
        await blocking(lambda: processors.cameras.put_camera(name, url))
        viewer.audit("PutCamera", {"name": name, "via": "console"})
        return see_other("/processors")

    return await guarded(request, act)


@router.post("/data-streams", response_class=HTMLResponse)
async def register_data_stream(request: Request) -> Response:
    """A data stream (where a processor's records go): a webhook, an MQTT topic or a JSON Lines file."""

    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        processors = _processors(request)
        name, kind = text_of(form, "stream_name"), text_of(form, "sink_kind")
        target = text_of(form, "sink_target")
        if kind == "webhook":
            spec: dict[str, Any] = {"webhook": {"url": target}}
        elif kind == "mqtt":
            host, _, topic = target.partition("/")
            address, _, port = host.partition(":")
            spec = {
                "mqtt": {"host": address, "topic": topic, **({"port": int(port)} if port.isdigit() else {})}
            }
        elif kind == "jsonl":
            spec = {"jsonl": {"name": target if target.endswith(".jsonl") else f"{target}.jsonl"}}
        else:
            raise InvalidParameter("choose a webhook, an MQTT topic or a JSON Lines file")
        viewer.require(
            MANAGE_DATA_STREAMS, processors.cameras.data_stream_arn(name), "register a data stream"
        )
        await blocking(lambda: processors.cameras.put_data_stream(name, spec))
        viewer.audit("PutDataStream", {"name": name, "kind": kind, "via": "console"})
        return see_other("/processors")

    return await guarded(request, act)


def _request(form: Any, processors: Any, name: str) -> dict[str, Any]:
    """The CreateStreamProcessor request the form describes."""
    camera, url = text_of(form, "camera"), text_of(form, "input_url")
    if camera:
        source = processors.cameras.camera_arn(camera)
    elif url:
        source = url
    else:
        raise InvalidParameter("choose a registered camera or give a camera URL")
    collection = text_of(form, "collection")
    if collection:
        threshold = float(text_of(form, "threshold", "80") or "80")
        settings: dict[str, Any] = {
            "FaceSearch": {"CollectionId": collection, "FaceMatchThreshold": threshold}
        }
    else:
        settings = {"ConnectedHome": {"Labels": ["PERSON"], "MinConfidence": 50.0}}
    return {
        "Name": name,
        "Input": {"KinesisVideoStream": {"Arn": source}},
        "Output": {"KinesisDataStream": {"Arn": _output(form, processors, name)}},
        "Settings": settings,
        "RoleArn": ROLE,
    }


def _output(form: Any, processors: Any, name: str) -> str:
    """Where the records go: a registered data stream, else the file ``notifications/NAME.jsonl``."""
    stream = text_of(form, "data_stream")
    return processors.cameras.data_stream_arn(stream) if stream else f"file://{name}.jsonl"


@router.post("/processors", response_class=HTMLResponse)
async def create_processor(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        processors = _processors(request)
        name = text_of(form, "name")
        key = _key(name)
        body = _request(form, processors, name)
        viewer.require("rekognition:CreateStreamProcessor", processors.arn(key), "create a stream processor")
        for right in processors.rights(body, collection_arn=_collection_arn(request)):
            viewer.require(right.action, right.resource, "create a stream processor")
        await blocking(lambda: processors.create(key, body))
        face = body["Settings"].get("FaceSearch")
        viewer.audit(
            "CreateStreamProcessor",
            {"name": key, "via": "console"},
            face["CollectionId"] if face else None,
        )
        return see_other(f"/processors/{name}")

    return await guarded(request, act)


@router.get("/processors/{name}", response_class=HTMLResponse)
async def processor_page(request: Request, name: str) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        processors = _processors(request)
        key = _key(name)
        arn = processors.arn(key)
        viewer.require("rekognition:DescribeStreamProcessor", arn, "describe a stream processor")
        info = await blocking(lambda: processors.describe(key))
        return render(
            request,
            "processor.html",
            viewer,
            info=info,
            name=name,
            lines_json=json.dumps(info.options.get("lines", [])),
            zones_json=json.dumps(info.options.get("zones", [])),
            can_start=viewer.can("rekognition:StartStreamProcessor", arn),
            can_stop=viewer.can("rekognition:StopStreamProcessor", arn),
            can_update=viewer.can("rekognition:UpdateStreamProcessor", arn),
        )

    return await guarded(request, page)


@router.post("/processors/{name}/start", response_class=HTMLResponse)
async def start_processor(request: Request, name: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        await form_of(request, viewer)
        processors = _processors(request)
        key = _key(name)
        viewer.require("rekognition:StartStreamProcessor", processors.arn(key), "start a stream processor")
        for right in processors.stored_rights(key):
            viewer.require(right.action, right.resource, "start a stream processor")
        session = await blocking(lambda: processors.start(key, access_key=viewer.access_key_id))
        viewer.audit("StartStreamProcessor", {"name": key, "session_id": session, "via": "console"})
        return see_other(f"/processors/{name}")

    return await guarded(request, act)


@router.post("/processors/{name}/stop", response_class=HTMLResponse)
async def stop_processor(request: Request, name: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        await form_of(request, viewer)
        processors = _processors(request)
        key = _key(name)
        viewer.require("rekognition:StopStreamProcessor", processors.arn(key), "stop a stream processor")
        await blocking(lambda: processors.stop(key))
        viewer.audit("StopStreamProcessor", {"name": key, "via": "console"})
        return see_other(f"/processors/{name}")

    return await guarded(request, act)


@router.post("/processors/{name}/lines", response_class=HTMLResponse)
async def set_lines(request: Request, name: str) -> Response:
    """Lines and zones drawn on the snapshot (ratio coordinates, JSON lists from the page's script)."""

    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        processors = _processors(request)
        key = _key(name)
        viewer.require("rekognition:UpdateStreamProcessor", processors.arn(key), "draw lines")
        # What UpdateStreamProcessor (and PUT .../options) checks: the rights its stored request needs.
        for right in processors.stored_rights(key):
            viewer.require(right.action, right.resource, "draw lines")
        try:
            lines = json.loads(text_of(form, "lines", "[]") or "[]")
            zones = json.loads(text_of(form, "zones", "[]") or "[]")
        except ValueError:
            raise InvalidParameter("lines and zones must be JSON lists") from None
        current = await blocking(lambda: processors.describe(key))
        options = {**current.options, "lines": lines, "zones": zones}
        await blocking(lambda: processors.set_options(key, options))
        viewer.audit(
            "SetStreamProcessorOptions",
            {"name": key, "lines": len(lines), "zones": len(zones), "via": "console"},
        )
        return see_other(f"/processors/{name}")

    return await guarded(request, act)


def _live(request: Request, viewer: sessions.Viewer, name: str) -> Any:
    processors = _processors(request)
    key = _key(name)
    viewer.require("rekognition:DescribeStreamProcessor", processors.arn(key), "live view")
    live = processors.live_view(key)
    if live is None:
        raise NotFound(
            f"stream processor {name} has no live view: it is not running, or has seen no frame yet"
        )
    return live


@router.get("/processors/{name}/live.jpg")
async def live_jpeg(request: Request, name: str) -> Response:
    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        live = await blocking(lambda: _live(request, viewer, name))
        return Response(live.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return await guarded(request, get)


@router.get("/processors/{name}/live.json")
async def live_json(request: Request, name: str) -> Response:
    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        live = await blocking(lambda: _live(request, viewer, name))
        status = (await blocking(lambda: _processors(request).describe(_key(name)))).status
        return JSONResponse(
            {
                "status": status,
                "captured_at": live.captured_at,
                "pts_ms": live.pts_ms,
                "counts": live.counts,
                "tracks": live.tracks,
            },
            headers={"Cache-Control": "no-store"},
        )

    return await guarded(request, get)


@router.get("/processors/{name}/snapshot.jpg")
async def snapshot(request: Request, name: str) -> Response:
    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        processors = _processors(request)
        key = _key(name)
        viewer.require("rekognition:DescribeStreamProcessor", processors.arn(key), "snapshot")
        # The input's rights, as Start checks them, running or not (GET .../snapshot, docs/security.md).
        for right in await blocking(lambda: processors.input_rights(key)):
            viewer.require(right.action, right.resource, "snapshot")
        jpeg = await blocking(lambda: processors.snapshot(key))
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return await guarded(request, get)


@router.get("/events", response_class=HTMLResponse)
async def events_page(request: Request) -> Response:
    """One timeline, newest first: identifications (stream processors, video jobs, uploads; from the
    review queue) and the stream processors' line crossings and zone visits, each shown only to a key
    that may see its collection or processor."""

    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        services = request.app.state.api.services
        items: list[dict[str, Any]] = []
        review, processors, collections = services.review, services.stream_processors, services.collections
        if review is not None and viewer.can("keeneye:ListIdentifications"):
            for i in await blocking(lambda: review.list(limit=200)):
                arn = collections.arn(i.collection_id) if collections is not None and i.collection_id else "*"
                if viewer.can("keeneye:ListIdentifications", arn):
                    items.append({"at": i.created_at, "kind": "identification", "item": i})
        if processors is not None:
            for e in await blocking(lambda: processors.events.list(limit=200)):
                if viewer.can("rekognition:DescribeStreamProcessor", processors.arn(e.processor)):
                    items.append({"at": e.created_at, "kind": e.kind, "item": e})
        items.sort(key=lambda x: x["at"], reverse=True)
        return render(request, "events.html", viewer, items=items[:300])

    return await guarded(request, page)
