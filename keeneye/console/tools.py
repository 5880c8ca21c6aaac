"""The console's video and redaction pages: stored-video jobs (start person tracking or a face search on a
video in a served bucket, follow their progress) and redacting a photo in the browser, with the rights
the APIs ask (rekognition:StartPersonTracking and s3:GetObject on the video, keeneye:RedactImage)."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import cv2
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from keeneye.api.deps import analysing
from keeneye.console import session as sessions
from keeneye.console.web import (
    blocking,
    collection_names,
    files_of,
    form_of,
    guarded,
    render,
    see_other,
    text_of,
)
from keeneye.core import regions
from keeneye.core.errors import AlreadyExists, BackendUnavailable, InvalidParameter, NotFound
from keeneye.service.governance.policies import s3_object_arn
from keeneye.service.governance.redaction import redact_image
from keeneye.service.streams.spec import ProcessorOptions
from keeneye.service.video.jobs import VideoRef
from keeneye.service.video.runners import REDACTED_DIR
from keeneye.video.sources import open_video

router = APIRouter(prefix=sessions.PATH, include_in_schema=False)

LIST_JOBS = "keeneye:ListJobs"
KINDS = {"PersonTracking": "rekognition:StartPersonTracking", "FaceSearch": "rekognition:StartFaceSearch"}
REDACT_VIDEO = "keeneye:RedactVideo"


def _jobs(request: Request) -> Any:
    found = request.app.state.api.services.video_jobs
    if found is None:
        raise BackendUnavailable("stored-video jobs are not available on this server")
    return found


@router.get("/video", response_class=HTMLResponse)
async def video_page(request: Request) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        jobs = _jobs(request)
        listed = await blocking(lambda: jobs.list_jobs(limit=100)) if viewer.can(LIST_JOBS) else None
        names = await collection_names(request)
        return render(
            request,
            "video.html",
            viewer,
            jobs=listed,
            buckets=sorted(viewer.state.settings.server.buckets),
            collection_names=names,
            can_start=any(viewer.can(a) for a in KINDS.values()),
        )

    return await guarded(request, page)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _upload_key(filename: str) -> str:
    """The key an uploaded video gets in its bucket: ``console-uploads/<its file name>``, reduced to
    letters, digits, ``.``, ``_`` and ``-`` (no folder of the caller's, no dot files)."""
    base = _SAFE_NAME.sub("_", Path(filename).name).lstrip("._")[:120]
    if not base:
        raise InvalidParameter("the file needs a name such as clip.mp4")
    return f"console-uploads/{base}"


def _store_upload(folder: Path, key: str, chunks: Any) -> None:
    """Write the upload to ``folder/key`` (created atomically; an existing video is never replaced)."""
    target = folder.resolve() / key
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        with tmp.open("xb") as f:
            for chunk in chunks:
                f.write(chunk)
        try:
            os.link(tmp, target)  # fails if a video of that name is there: nothing is overwritten
        except FileExistsError:
            raise AlreadyExists(f"{key} is already in the bucket: rename the file, or pick it") from None
    finally:
        tmp.unlink(missing_ok=True)


@router.post("/video/upload", response_class=HTMLResponse)
async def upload_video(request: Request) -> Response:
    """A video into a served bucket (``s3:PutObject`` on it), then the page to start a job on it."""

    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        settings = viewer.state.settings
        form = await form_of(request, viewer, max_files=1, max_bytes=settings.video_jobs.max_bytes)
        bucket = text_of(form, "bucket")
        folder = settings.server.buckets.get(bucket)
        if folder is None:
            raise InvalidParameter(f"this server serves no bucket named {bucket!r}")
        files = files_of(form, "video_file")
        if not files:
            raise InvalidParameter("choose a video file")
        key = _upload_key(files[0].filename or "")
        viewer.require("s3:PutObject", s3_object_arn(bucket, key), "upload a video")
        upload = files[0].file

        def chunks() -> Any:
            upload.seek(0)
            while chunk := upload.read(1 << 20):
                yield chunk

        await blocking(lambda: _store_upload(Path(folder), key, chunks()))
        viewer.audit("UploadVideo", {"bucket": bucket, "key": key, "via": "console"})
        return see_other(f"/video/new?{urlencode({'bucket': bucket, 'video': key})}")

    return await guarded(request, act)


@router.get("/video/new", response_class=HTMLResponse)
async def new_job_page(request: Request) -> Response:
    """The second step of starting a job: the video's first frame, to draw lines on, and the start form."""

    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        bucket, name = request.query_params.get("bucket", ""), request.query_params.get("video", "")
        viewer.require("s3:GetObject", s3_object_arn(bucket, name), "read the video")
        await blocking(
            lambda: request.app.state.api.services.images.check_video({"Bucket": bucket, "Name": name})
        )
        names = await collection_names(request)
        return render(
            request,
            "video_new.html",
            viewer,
            bucket=bucket,
            video=name,
            frame=f"{sessions.PATH}/video/frame.jpg?{urlencode({'bucket': bucket, 'video': name})}",
            collection_names=names,
        )

    return await guarded(request, page)


def _video_file(request: Request, bucket: str, name: str) -> Path:
    images = request.app.state.api.services.images
    if not hasattr(images, "video_path"):
        raise BackendUnavailable("this server reads videos only from the buckets it serves")
    path: Path = images.video_path({"Bucket": bucket, "Name": name})
    return path


def _first_frame_jpeg(path: Path, max_pixels: int | None) -> bytes:
    with open_video(path, max_pixels=max_pixels) as video:
        for frame in video.frames(None):
            image: Any = frame.image
            scale = min(1.0, 960 / image.shape[1])
            if scale < 1.0:
                image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
            ok, jpeg = cv2.imencode(
                ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
            )
            if ok:
                return bytes(jpeg.tobytes())
    raise InvalidParameter("the video has no frame to show")


@router.get("/video/frame.jpg")
async def first_frame(request: Request) -> Response:
    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        bucket, name = request.query_params.get("bucket", ""), request.query_params.get("video", "")
        viewer.require("s3:GetObject", s3_object_arn(bucket, name), "read the video")
        max_pixels = viewer.state.settings.video_jobs.max_pixels
        jpeg = await blocking(lambda: _first_frame_jpeg(_video_file(request, bucket, name), max_pixels))
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return await guarded(request, get)


def _job(request: Request, viewer: sessions.Viewer, job_id: str) -> Any:
    viewer.require(LIST_JOBS, "*", "a video job")
    jobs = _jobs(request)
    info = jobs.info(job_id)
    known = info.kind in KINDS or info.kind == "Redaction"
    page = jobs.get(job_id, info.kind, max_results=100_000) if known else None
    return info, page


def _plot(
    events: list[dict[str, Any]], names: list[str], duration_ms: float, width: int = 640, height: int = 160
) -> dict[str, Any]:
    """In / out counts per line over time as SVG polylines (cumulative steps), in a width x height box."""
    names_all = sorted({str(e["line"]) for e in events} | set(names))
    crossings = {
        (line, direction): sorted(
            float(e["pts_ms"]) for e in events if e["line"] == line and e["direction"] == direction
        )
        for line in names_all
        for direction in ("in", "out")
    }
    peak = max([1] + [len(times) for times in crossings.values()])
    end = max([duration_ms] + [t for times in crossings.values() for t in times]) or 1.0
    series: list[dict[str, Any]] = []
    for (line, direction), times in crossings.items():
        points: list[tuple[float, int]] = [(0.0, 0)]
        for count, t in enumerate(times):
            points += [(t, count), (t, count + 1)]
        points.append((end, len(times)))
        drawn = " ".join(f"{t / end * width:.1f},{height - c / peak * (height - 10):.1f}" for t, c in points)
        series.append({"line": line, "direction": direction, "points": drawn, "total": len(times)})
    return {"series": series, "width": width, "height": height, "peak": peak, "end_s": end / 1000}


def _duration_ms(meta: dict[str, Any], found: Any) -> float:
    """The video's length (its container's, else the last analysed frame's time)."""
    if meta.get("duration_ms"):
        return float(meta["duration_ms"])
    return max((float(it["pts_ms"]) for it in (found.items if found is not None else [])), default=0.0)


@router.get("/video/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        info, found = await blocking(lambda: _job(request, viewer, job_id))
        meta = (found.metadata if found is not None else None) or {}
        events = list(meta.get("line_events") or [])
        can_play = (
            info.kind == "PersonTracking"
            and info.status == "SUCCEEDED"
            and viewer.can("s3:GetObject", s3_object_arn(info.video.bucket, info.video.name))
        )
        return render(
            request,
            "video_job.html",
            viewer,
            job=info,
            meta=meta,
            items=found.items if found is not None and info.kind == "FaceSearch" else [],
            plot=_plot(events, list(meta.get("line_counts") or {}), _duration_ms(meta, found))
            if events or meta.get("line_counts")
            else None,
            line_counts=meta.get("line_counts") or {},
            can_play=can_play,
            redacted=f"{sessions.PATH}/video/{job_id}/redacted"
            if info.kind == "Redaction" and info.status == "SUCCEEDED"
            else None,
        )

    return await guarded(request, page)


@router.get("/video/{job_id}/tracks.json")
async def job_tracks(request: Request, job_id: str) -> Response:
    """The job's person boxes as ratios of the frame, for the player's overlay."""

    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        info, found = await blocking(lambda: _job(request, viewer, job_id))
        meta = (found.metadata if found is not None else None) or {}
        if info.kind != "PersonTracking" or not meta:
            raise InvalidParameter("only a finished person-tracking job has tracks to draw")
        w, h = float(meta["width"]), float(meta["height"])
        boxes = [
            [round(it["pts_ms"]), it["index"]]
            + [round(v / d, 4) for v, d in zip(it["xyxy"], (w, h, w, h), strict=True)]
            for it in found.items
        ]
        return JSONResponse(
            {"boxes": boxes, "events": meta.get("line_events") or []}, headers={"Cache-Control": "no-store"}
        )

    return await guarded(request, get)


@router.get("/video/{job_id}/file")
async def job_video(request: Request, job_id: str) -> Response:
    """The job's video (ranges served, so the player can seek), with the right to read it."""

    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        info, _ = await blocking(lambda: _job(request, viewer, job_id))
        viewer.require("s3:GetObject", s3_object_arn(info.video.bucket, info.video.name), "play the video")
        path = await blocking(lambda: _video_file(request, info.video.bucket, info.video.name))
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "no-store"})

    return await guarded(request, get)


@router.post("/video", response_class=HTMLResponse)
async def start_job(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        jobs = _jobs(request)
        kind = text_of(form, "kind")
        action = KINDS.get(kind)
        if action is None:
            raise InvalidParameter("choose person tracking or face search")
        bucket, name = text_of(form, "bucket"), text_of(form, "video")
        s3 = {"Bucket": bucket, "Name": name}
        params: dict[str, Any] | None = None
        collection_key = None
        if kind == "FaceSearch":
            collections = request.app.state.api.services.collections
            if collections is None:
                raise BackendUnavailable("collections are not available on this server")
            collection = text_of(form, "collection")
            collection_key = regions.scoped_key(regions.HOME_REGION, collection)
            viewer.require(action, collections.arn(collection_key), "start a face search")
            await blocking(lambda: collections.describe_collection(collection_key))
            params = {"collection_id": collection_key, "threshold": 80.0}
        else:
            viewer.require(action, "*", "start person tracking")
            try:
                lines = json.loads(text_of(form, "lines", "[]") or "[]")
            except ValueError:
                raise InvalidParameter("lines must be a JSON list") from None
            ProcessorOptions.parse({"lines": lines})  # refused now, not when the job runs
            params = {"lines": lines} if lines else None
        viewer.require("s3:GetObject", s3_object_arn(bucket, name), "read the video")
        await blocking(lambda: request.app.state.api.services.images.check_video(s3))
        job_id = await blocking(
            lambda: jobs.start(
                kind, VideoRef(bucket, name, None), "console", None, params, owner=viewer.access_key_id
            )
        )
        viewer.audit(
            f"Start{kind}", {"job_id": job_id, "video": f"{bucket}/{name}", "via": "console"}, collection_key
        )
        return see_other(f"/video/{job_id}")

    return await guarded(request, act)


@router.get("/redact", response_class=HTMLResponse)
async def redact_page(request: Request) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        return render(
            request,
            "redact.html",
            viewer,
            result=None,
            can_redact=viewer.can("keeneye:RedactImage"),
            can_redact_video=viewer.can(REDACT_VIDEO),
            buckets=sorted(viewer.state.settings.server.buckets),
        )

    return await guarded(request, page)


@router.post("/redact/video", response_class=HTMLResponse)
async def redact_video_job(request: Request) -> Response:
    """A Redaction job (keeneye's own kind) on a video of a served bucket: ``keeneye:RedactVideo`` and
    ``s3:GetObject`` on it; the redacted copy is written to the server's data directory."""

    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        jobs = _jobs(request)
        bucket, name, mode = text_of(form, "bucket"), text_of(form, "video"), text_of(form, "mode", "blur")
        if mode not in ("blur", "pixelate", "box"):
            raise InvalidParameter("mode must be blur, pixelate or box")
        viewer.require(REDACT_VIDEO, "*", "redact a video")
        viewer.require("s3:GetObject", s3_object_arn(bucket, name), "read the video")
        s3 = {"Bucket": bucket, "Name": name}
        await blocking(lambda: request.app.state.api.services.images.check_video(s3))
        job_id = await blocking(
            lambda: jobs.start(
                "Redaction",
                VideoRef(bucket, name, None),
                "console",
                None,
                {"mode": mode},
                owner=viewer.access_key_id,
            )
        )
        viewer.audit(
            "StartRedaction", {"job_id": job_id, "video": f"{bucket}/{name}", "mode": mode, "via": "console"}
        )
        return see_other(f"/video/{job_id}")

    return await guarded(request, act)


@router.get("/video/{job_id}/redacted")
async def redacted_video(request: Request, job_id: str) -> Response:
    """A finished Redaction job's video (the same rights as its source: ``s3:GetObject`` on it)."""

    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        info, found = await blocking(lambda: _job(request, viewer, job_id))
        viewer.require(
            "s3:GetObject", s3_object_arn(info.video.bucket, info.video.name), "the redacted video"
        )
        meta = (found.metadata if found is not None else None) or {}
        if info.kind != "Redaction" or not meta.get("output"):
            raise InvalidParameter("only a finished redaction job has a redacted video")
        path = viewer.state.settings.data_dir / REDACTED_DIR / Path(str(meta["output"])).name
        if not path.is_file():
            raise NotFound("the redacted video is no longer kept")
        media = "video/mp4" if path.suffix == ".mp4" else "video/x-msvideo"
        download = f"redacted-{Path(info.video.name).stem}{path.suffix}"
        return FileResponse(path, media_type=media, filename=download, headers={"Cache-Control": "no-store"})

    return await guarded(request, get)


@router.post("/redact", response_class=HTMLResponse)
async def redact(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        state = viewer.state
        form = await form_of(request, viewer, max_files=1, max_bytes=state.settings.server.max_body_bytes)
        viewer.require("keeneye:RedactImage", "*", "redact")
        files = files_of(form, "photo")
        if not files:
            raise InvalidParameter("choose a photo to redact")
        data = await files[0].read()
        mode = text_of(form, "mode", "blur")
        if mode not in ("blur", "pixelate", "box"):
            raise InvalidParameter("mode must be blur, pixelate or box")

        def run() -> Any:
            with analysing(state):
                return redact_image(
                    data,
                    state.redaction_analyzer(),
                    mode=mode,  # type: ignore[arg-type]
                    limits=state.settings.images,
                    budget=state.services.faces.budget,
                )

        result = await blocking(run)
        media = "image/jpeg" if result.format == "JPEG" else "image/png"
        return render(
            request,
            "redact.html",
            viewer,
            can_redact=True,
            result={
                "faces": len(result.faces),
                "src": f"data:{media};base64,{base64.b64encode(result.image).decode()}",
                "name": files[0].filename,
            },
        )

    return await guarded(request, act)
