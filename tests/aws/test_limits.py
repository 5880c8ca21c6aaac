"""Limits, each refused with the error a Rekognition client expects, before the work is done.

Image size (Bytes 5 MB, S3 15 MB, at least 80 px a side, a pixel count read from the header), video
size and frame size for stored-video jobs, request bodies (size, and a deadline that stops slow-loris
uploads, in process and against a real uvicorn).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn

from keeneye.app import create_app
from keeneye.aws.body_limits import BodyLimitMiddleware
from keeneye.aws.errors import AwsError
from keeneye.aws.images import ImageLoader
from keeneye.config import ImageLimits, ServerSettings, Settings
from keeneye.core.errors import LimitExceeded
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.video.jobs import JobOutput, VideoJobs, VideoRef, header_checked
from keeneye.store.db import Store
from tests.aws.conftest import Client, make_client
from tests.aws.signing import KEYS, SECRET, rekognition_request
from tests.aws.test_protocol import assert_error, call
from tests.factories import encode, fake_services, gradient, write_video
from tests.fuzz.test_image_decoder import bomb_png


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(79, 200), (200, 79), (1, 1)])
def test_images_under_80_pixels_are_invalid_parameter(client: Client, height: int, width: int) -> None:
    """Rekognition answers InvalidParameterException ("Request has invalid parameters") for images under
    80 px in height or width (boto/botocore#1366), read from the header."""
    image = encode(gradient(height, width), "PNG")
    message = assert_error(
        call(client, "DetectFaces", {"Image": {"Bytes": b64(image)}}), "InvalidParameterException"
    )
    assert f"{width}x{height}" in message and "80 pixels" in message


def test_80_pixels_is_enough(client: Client) -> None:
    assert call(client, "DetectFaces", {"Image": {"Bytes": b64(encode(gradient(80, 80), "JPEG"))}})[0] == 200


def test_minimum_applies_to_s3_objects_and_is_configurable(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "small.png").write_bytes(encode(gradient(60, 90), "PNG"))
    s3 = {"Image": {"S3Object": {"Bucket": "photos", "Name": "small.png"}}}
    with make_client(tmp_path, fake_services({"photos": bucket})) as c:
        assert_error(call(c, "DetectFaces", s3), "InvalidParameterException")
    services = fake_services({"photos": bucket})
    services.images = ImageLoader({"photos": bucket}, min_image_px=32)
    with make_client(tmp_path, services) as c:
        assert call(c, "DetectFaces", s3)[0] == 200


def test_pixel_bomb_refused_fast_through_the_api(client: Client) -> None:
    """A 30000 x 30000 PNG of a few KB: ImageTooLargeException in milliseconds, nothing decoded."""
    started = time.perf_counter()
    assert_error(
        call(client, "DetectFaces", {"Image": {"Bytes": b64(bomb_png(30_000, 30_000))}}),
        "ImageTooLargeException",
    )
    assert time.perf_counter() - started < 1.0


def test_compare_faces_checks_both_images(client: Client) -> None:
    good, small = encode(gradient(120, 160), "JPEG"), encode(gradient(40, 40), "JPEG")
    params = {"SourceImage": {"Bytes": b64(good)}, "TargetImage": {"Bytes": b64(small)}}
    assert "40x40" in assert_error(call(client, "CompareFaces", params), "InvalidParameterException")


# -- videos ------------------------------------------------------------------------------------------


def _video(folder: Path, width: int = 64, height: int = 48) -> Path:
    """Half a second (5 frames at 10 fps) of flat grey getting lighter."""
    return write_video(folder / "clip.mp4", [np.full((height, width, 3), 40 * i, np.uint8) for i in range(5)])


def test_video_over_max_bytes_refused_at_start_and_at_run(tmp_path: Path) -> None:
    path = _video(tmp_path)
    s3 = {"Bucket": "v", "Name": path.name}
    loader = ImageLoader({"v": tmp_path}, max_video_bytes=path.stat().st_size - 1)
    for check in (loader.check_video, lambda s: loader.fetch_video(s, tmp_path / "downloads")):
        with pytest.raises(AwsError) as info:
            check(s3)
        assert info.value.type_name == "VideoTooLargeException"
    ImageLoader({"v": tmp_path}, max_video_bytes=path.stat().st_size).check_video(s3)


def test_start_refused_with_video_too_large(tmp_path: Path) -> None:
    """Through the API: Start* answers VideoTooLargeException, no job is created."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    path = _video(bucket)
    store = Store.open(tmp_path / "data")
    jobs = VideoJobs(store, {"PersonTracking": _no_run}, lambda ref: path, workers=0)
    services = fake_services()
    services.images = ImageLoader({"videos": path.parent}, max_video_bytes=100)
    services.video_jobs = jobs
    services.collections = FaceCollections(store, services.faces.analyzer, ImageLimits())
    client = Client(create_app(Settings(data_dir=tmp_path / "data"), services=services, keys=KEYS))
    params = {"Video": {"S3Object": {"Bucket": "videos", "Name": path.name}}}
    assert_error(call(client, "StartPersonTracking", params), "VideoTooLargeException")
    assert jobs.list_jobs() == []
    jobs.close()
    store.close()


def _no_run(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    raise AssertionError("the runner must not run")


def test_frame_size_checked_from_the_header_before_the_runner(tmp_path: Path) -> None:
    path = _video(tmp_path, 64, 48)
    with pytest.raises(LimitExceeded, match="64x48 frames, over the limit of 3000 pixels"):
        header_checked(_no_run, 3000)(path, {}, lambda: None)
    ok = header_checked(lambda p, params, c: JobOutput({}, []), 64 * 48)
    assert ok(path, {}, lambda: None) == JobOutput({}, [])


def test_job_over_the_frame_limit_fails_with_a_clear_message(tmp_path: Path) -> None:
    path = _video(tmp_path, 64, 48)
    store = Store.open(tmp_path / "data")
    jobs = VideoJobs(store, {"T": header_checked(_no_run, 1000)}, lambda ref: path)
    jobs.start_workers()
    job_id = jobs.start("T", VideoRef("videos", "hall.mp4"))
    deadline = time.monotonic() + 10
    while (page := jobs.get(job_id, "T")).status == "IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert page.status == "FAILED"
    assert page.status_message == "video 'hall.mp4' has 64x48 frames, over the limit of 1000 pixels"
    jobs.close()
    store.close()


# -- request bodies ------------------------------------------------------------------------------------


def _drip(body: bytes, every_s: float) -> Callable[[], Any]:
    """An ASGI receive that sends ``body`` one byte at a time, ``every_s`` apart (a slow-loris client)."""
    chunks = [body[i : i + 1] for i in range(len(body))]

    async def receive() -> dict[str, Any]:
        if not chunks:
            await asyncio.sleep(3600)  # waiting for a disconnect that never comes
        await asyncio.sleep(every_s)
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    return receive


def _asgi_call(
    app: Any, path: str, body: bytes, headers: dict[str, str], every_s: float
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if path == "/" else "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, _drip(body, every_s), send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    out_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return (
        start["status"],
        out_headers,
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )


@pytest.mark.parametrize("route", ["aws", "native"])
def test_slow_body_gets_request_timeout_and_connection_close(tmp_path: Path, route: str) -> None:
    settings = Settings(data_dir=tmp_path, server=ServerSettings(body_timeout_s=0.3))
    app = create_app(settings, services=fake_services(), keys=KEYS)
    if route == "aws":
        path = "/"
        body, headers = rekognition_request("DetectFaces", {"Image": {"Bytes": b64(b"x" * 200)}})
    else:
        path = "/v1/notification-channels/arn:aws:sns:us-east-1:1:t"
        body = json.dumps({"jsonl": {"name": "a.jsonl"}}).encode()
        headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    started = time.perf_counter()
    # Host: every HTTP/1.1 request has one, and the signature's headers are checked before the body is read.
    headers = {"Host": "testserver", **headers, "Content-Length": str(len(body))}
    status, out, payload = _asgi_call(app, path, body, headers, 0.05)
    assert time.perf_counter() - started < 2.0
    assert status == 408 and out["connection"] == "close"
    answer = json.loads(payload)
    code = answer["__type"] if route == "aws" else answer["error"]["code"]
    assert code == "RequestTimeoutException"


def test_native_body_limit(tmp_path: Path) -> None:
    """The native API had no body limit (request.body() read anything): now server.max_body_bytes."""
    with make_client(tmp_path, max_body_bytes=4096) as c:
        r = c.request(
            "PUT",
            "/v1/notification-channels/arn:aws:sns:us-east-1:1:t",
            content=b"{" + b" " * 10_000 + b"}",
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert r.status_code == 413 and r.headers["connection"] == "close"
        assert r.json()["error"]["code"] == "RequestEntityTooLargeException"


def test_streamed_body_over_the_limit_without_content_length(tmp_path: Path) -> None:
    app = BodyLimitMiddleware(_echo, max_bytes=10, timeout_s=5)
    status, out, _ = _asgi_call(app, "/v1/x", b"x" * 20, {}, 0.0)
    assert status == 413 and out["connection"] == "close"


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_fast_body_passes_and_disconnect_wait_is_not_limited() -> None:
    app = BodyLimitMiddleware(_echo, max_bytes=100, timeout_s=1)
    status, _, payload = _asgi_call(app, "/v1/x", b"hello", {}, 0.0)
    assert (status, payload) == (200, b"hello")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[int]:
    """uvicorn (as `keeneye serve` runs it) on a free port, with a 1 s body deadline."""
    settings = Settings(data_dir=tmp_path, server=ServerSettings(body_timeout_s=1.0))
    app = create_app(settings, services=fake_services(), keys=KEYS)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


def test_slow_loris_against_uvicorn(live_server: int) -> None:
    """A client that sends its body a byte every 0.2 s gets 408 after the 1 s deadline and its
    connection is closed, though it would go on sending.

    The server closes with the client's unread bytes in its buffer, so its kernel may answer with a TCP
    reset, and a reset can discard the 408 before the client reads it: a reset after the deadline counts
    as the connection closed (the 408 is checked whenever it arrives)."""
    body, headers = rekognition_request("DetectFaces", {"Image": {"Bytes": b64(b"x" * 300)}})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
    started = time.monotonic()
    reset = False
    with socket.create_connection(("127.0.0.1", live_server), timeout=5) as conn:
        conn.sendall(request)
        answer = b""
        try:
            for byte in body:
                try:
                    conn.sendall(bytes([byte]))
                except BrokenPipeError:  # closed by the server
                    break
                conn.settimeout(0.2)
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                answer += chunk
            conn.settimeout(5)
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            reset = True
    elapsed = time.monotonic() - started
    assert answer or reset, "the server neither answered nor closed the connection"
    if answer:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"RequestTimeoutException" in answer and b"connection: close" in answer.lower()
    assert 0.9 < elapsed < 4.0


def test_route_that_never_reads_its_body_closes_the_connection(live_server: int) -> None:
    """GET /v1/health answers without reading the body the client announced; the server then closes
    the connection at once, where uvicorn would wait for the rest of the body (each byte of it
    restarting its 5 s keep-alive timer, so a client dripping it in kept the connection forever)."""
    request = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nx"
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", live_server), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer.lower()
    assert time.monotonic() - started < 2.0  # closed at once, not after uvicorn's 5 s keep-alive
