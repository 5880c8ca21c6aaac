"""Peak server memory under worst-case images and unauthenticated bodies (issue 13, item 6).

One ``keeneye serve`` subprocess on 127.0.0.1 (bench/live_server.py: temporary data directory, the
installed models, the configured pipeline); its resident memory (RSS, with any child processes) is
sampled with psutil every ``--sample-ms`` while:

1. **images**: ``--clients`` (8) clients at once send, in ``--waves`` waves, each one request with an
   image that is small to send and large to decode, all within the documented limits (at most 40
   megapixels, ``Image.Bytes`` at most 5 MB): a 6300x6300 one-bit PNG (about 5 KB; 24x larger as
   RGB than as Pillow's one byte per pixel), a 6300x6300 paletted PNG with a transparent colour
   (decoded through RGBA), a 6300x6300 RGBA PNG, a 7900x5000 JPEG (39.5 megapixels). The requests are
   DetectFaces, CompareFaces (two such images in one request), SearchFacesByImage and ``POST
   /v1/redact`` (SigV4-signed), so every analysing route is in the mix. A throttled request
   (ThrottlingException, HTTP 429) is retried after 0.1-0.5 s, as an SDK would, and counted;
2. **unauthenticated bodies**: ``--connections`` (30) raw connections at once each declare a body of
   ``server.max_body_bytes`` (20 MiB) and send it as fast as the server takes it, with an Authorization
   header that names an unknown access key (``POST /``), a known key with a wrong signature (``POST
   /``: only the signature over the body can tell), a wrong Bearer token (``POST /v1/redact``); each
   case reports the peak RSS over the idle server and how many body bytes the clients got to send
   (what the kernel accepted: loopback socket buffers hold a few MB per connection).

Each phase runs on a fresh server (freed heap stays with the allocator, so one phase would hide the
next), after one ordinary DetectFaces and one redaction (redaction's models load at its first call).
Reported: each server's RSS once ready, the peak of each phase, outcomes and latencies per case, and
the machine. ``--skip`` names phases to leave out.

Usage: python bench/memory.py [--clients 8] [--waves 4] [--connections 30] [--skip bodies]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime as dt
import io
import json
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from common import SHARED, emit, settings
from live_server import LiveServer, exit_on_sigterm
from PIL import Image

COLLECTION = "memory"
BODY_BYTES = 20 * 1024 * 1024
CHUNK = 256 * 1024
MAX_ATTEMPTS = 60  # a throttled request is retried at most this often (0.1-0.5 s apart)


def log(message: str) -> None:
    print(f"[memory] {message}", file=sys.stderr, flush=True)


# -- images -------------------------------------------------------------------------------------------


def _png(img: Image.Image, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, **params)
    return buf.getvalue()


def worst_images() -> dict[str, bytes]:
    """Images within the API's limits (<= 40 MP, <= 5 MB) that are large once decoded."""
    side = 6300  # 39.7 megapixels
    one_bit = Image.new("1", (side, side), 0)
    one_bit.paste(1, (side // 4, side // 4, side // 2, side // 2))
    paletted = Image.new("P", (side, side), 0)
    paletted.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    paletted.paste(5, (side // 3, side // 3, 2 * side // 3, 2 * side // 3))
    rgba = Image.new("RGBA", (side, side), (90, 120, 150, 200))
    # A JPEG of 7900x5000 (39.5 MP): a smooth gradient keeps it far below 5 MB.
    ramp = np.linspace(0, 255, 7900, dtype=np.float32)
    jpeg_pixels = np.empty((5000, 7900, 3), np.uint8)
    jpeg_pixels[:] = ramp.astype(np.uint8)[None, :, None]
    buf = io.BytesIO()
    Image.fromarray(jpeg_pixels).save(buf, "JPEG", quality=80)
    return {
        "png_1bit_6300": _png(one_bit),
        "png_palette_trns_6300": _png(paletted, transparency=0),
        "png_rgba_6300": _png(rgba),
        "jpeg_7900x5000": buf.getvalue(),
    }


# -- the server's memory -------------------------------------------------------------------------------


class RssSampler:
    """The server's RSS (with its children), sampled in a thread; ``peak()`` since the last ``reset()``."""

    def __init__(self, pid: int, interval_s: float) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.rss()
            with self._lock:
                self._peak = max(self._peak, value)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self._peak = self.rss()

    def peak(self) -> int:
        with self._lock:
            return self._peak


def mb(n: int) -> float:
    return round(n / 2**20, 1)


# -- requests --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: str
    result: str  # ok, or the error's code
    attempts: int
    throttled: int
    seconds: float


@dataclass
class Caller:
    """How the bench calls the server: boto3 for the AWS API, SigV4-signed httpx for ``/v1``."""

    server: LiveServer
    secret: str
    clients: list[Any] = field(default_factory=list)

    def native_post(self, path: str, body: bytes, params: str = "") -> httpx.Response:
        url = f"{self.server.url}{path}" + (f"?{params}" if params else "")
        request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "image/png"})
        SigV4Auth(Credentials(self.server.access_key_id, self.secret), "rekognition", "us-east-1").add_auth(
            request
        )
        return httpx.post(url, content=body, headers=dict(request.headers.items()), timeout=300)


Call = Callable[[Caller, int], str]
"""One request by client ``i``: ``ok``, ``Throttled`` or an error code."""


def aws_call(method: str, **params: Any) -> Call:
    def call(caller: Caller, i: int) -> str:
        try:
            getattr(caller.clients[i], method)(**params)
        except ClientError as exc:
            code = str(exc.response["Error"]["Code"])
            if code == "InvalidParameterException" and "no face" in str(exc).lower():
                return "ok (no face)"  # analysed in full: the images hold no face
            return "Throttled" if code == "ThrottlingException" else code
        return "ok"

    return call


def redact_call(image: bytes) -> Call:
    def call(caller: Caller, i: int) -> str:
        r = caller.native_post("/v1/redact", image)
        if r.status_code == 429:
            return "Throttled"
        return "ok" if r.status_code == 200 else f"HTTP {r.status_code} {r.json()['error']['code']}"

    return call


def cases(images: dict[str, bytes]) -> dict[str, Call]:
    """Every analysing route with the worst-case images."""
    one_bit, jpeg = images["png_1bit_6300"], images["jpeg_7900x5000"]
    out: dict[str, Call] = {}
    for name, data in images.items():
        out[f"DetectFaces {name}"] = aws_call("detect_faces", Image={"Bytes": data})
    out["CompareFaces png_1bit_6300 + jpeg_7900x5000"] = aws_call(
        "compare_faces", SourceImage={"Bytes": jpeg}, TargetImage={"Bytes": one_bit}
    )
    out["SearchFacesByImage png_palette_trns_6300"] = aws_call(
        "search_faces_by_image", CollectionId=COLLECTION, Image={"Bytes": images["png_palette_trns_6300"]}
    )
    out["POST /v1/redact png_1bit_6300"] = redact_call(one_bit)
    out["POST /v1/redact jpeg_7900x5000"] = redact_call(jpeg)
    return out


def retrying(call: Call, caller: Caller, i: int, case: str, rnd: random.Random) -> Outcome:
    started = time.perf_counter()
    throttled = 0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        result = call(caller, i)
        if result != "Throttled":
            return Outcome(case, result, attempt, throttled, time.perf_counter() - started)
        throttled += 1
        time.sleep(rnd.uniform(0.1, 0.5))
    return Outcome(case, "Throttled", MAX_ATTEMPTS, throttled, time.perf_counter() - started)


def images_phase(caller: Caller, sampler: RssSampler, n_clients: int, waves: int) -> dict[str, Any]:
    """``waves`` times, ``n_clients`` requests at once (client i of wave w: case i + w), each retried
    while throttled."""
    all_cases = cases(worst_images())
    names = list(all_cases)
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    rows = []
    for wave in range(waves):
        sampler.reset()
        before = sampler.rss()
        barrier = threading.Barrier(n_clients)

        def client(i: int, wave: int = wave, barrier: threading.Barrier = barrier) -> None:
            name = names[(i + wave * n_clients) % len(names)]
            rnd = random.Random(wave * 100 + i)
            barrier.wait()
            outcome = retrying(all_cases[name], caller, i, name, rnd)
            with lock:
                outcomes.append(outcome)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=900)
        peak = sampler.peak()
        rows.append(
            {
                "wave": wave,
                "cases": [names[(i + wave * n_clients) % len(names)] for i in range(n_clients)],
                "rss_before_mb": mb(before),
                "peak_rss_mb": mb(peak),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        log(f"wave {wave}: peak {mb(peak)} MB (before {mb(before)} MB)")
    by_case: dict[str, Any] = {}
    for name in names:
        mine = [o for o in outcomes if o.case == name]
        if mine:
            by_case[name] = {
                "results": dict(Counter(o.result for o in mine)),
                "throttled_answers": sum(o.throttled for o in mine),
                "seconds_max": round(max(o.seconds for o in mine), 2),
            }
    return {
        "clients": n_clients,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        "waves": rows,
        "by_case": by_case,
        "throttled_answers": sum(o.throttled for o in outcomes),
        "requests": len(outcomes),
        "answered_ok": sum(o.result.startswith("ok") for o in outcomes),
    }


# -- unauthenticated bodies --------------------------------------------------------------------------------


def _sigv4_header(access_key_id: str) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{access_key_id}/{amz_date[:8]}/us-east-1/rekognition/aws4_request"
    return {
        "X-Amz-Date": amz_date,
        "X-Amz-Target": "RekognitionService.DetectFaces",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
    }


def send_body(port: int, path: str, headers: dict[str, str], deadline_s: float) -> tuple[int, str]:
    """Declare ``BODY_BYTES`` and send as much of it as the server takes; (bytes sent, status line)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {BODY_BYTES}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    chunk = b"{" + b" " * (CHUNK - 1)
    sent = 0
    status = "no answer"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode())
        sock.settimeout(2)
        stop_at = time.monotonic() + deadline_s
        while sent < BODY_BYTES and time.monotonic() < stop_at:
            try:
                n = sock.send(chunk[: min(CHUNK, BODY_BYTES - sent)])
            except TimeoutError:
                continue  # the server is not reading: its buffers are full
            except OSError:
                break  # answered and closed
            sent += n
        response = b""
        try:
            sock.settimeout(10)
            while len(response) < 65536 and (chunk := sock.recv(65536)):  # until the server closes
                response += chunk
        except OSError as exc:
            status = type(exc).__name__
        if response:
            status = _answer(response)
    return sent, status


def _answer(response: bytes) -> str:
    """``HTTP <status> <error code>`` of a raw response (``closed`` if there is none)."""
    if not response:
        return "closed"
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ", 2)
    try:
        error = json.loads(body)
        code = error.get("__type") or error.get("error", {}).get("code", "")
    except (ValueError, AttributeError):
        code = ""
    return f"HTTP {status[1].decode(errors='replace') if len(status) > 1 else '?'} {code}".strip()


BODY_VARIANTS: dict[str, tuple[str, str]] = {
    "POST / unknown access key": ("/", "unknown"),
    "POST / known key, wrong signature": ("/", "known"),
    "POST /v1/redact wrong Bearer token": ("/v1/redact", "bearer"),
    "POST /v1/redact known key, wrong signature": ("/v1/redact", "known"),
}


def body_variant(
    server: LiveServer, sampler: RssSampler, name: str, connections: int, deadline_s: float
) -> dict[str, Any]:
    """``connections`` connections at once, each declaring a 20 MiB body that no key signed."""
    path, auth = BODY_VARIANTS[name]
    headers = (
        {"Authorization": "Bearer not-a-token"}
        if auth == "bearer"
        else _sigv4_header("AKIAUNKNOWNKEY000000" if auth == "unknown" else server.access_key_id)
    )
    time.sleep(1)
    sampler.reset()
    before = sampler.rss()
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one() -> None:
        result = send_body(server.port, path, headers, deadline_s)
        with lock:
            results.append(result)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=deadline_s + 60)
    time.sleep(1)
    peak = sampler.peak()
    sent = [s for s, _ in results]
    log(f"{name}: +{mb(peak - before)} MB, answers {dict(Counter(a for _, a in results))}")
    return {
        "connections": connections,
        "declared_bytes_each": BODY_BYTES,
        "rss_before_mb": mb(before),
        "peak_rss_mb": mb(peak),
        "peak_added_mb": mb(peak - before),
        "client_sent_mb_median": mb(int(np.median(sent))) if sent else None,
        "client_sent_mb_max": mb(max(sent)) if sent else None,
        "answers": dict(Counter(status for _, status in results)),
        "seconds": round(time.perf_counter() - started, 1),
    }


def started_server(
    tmp: Path, name: str, clients: int, sample_ms: float
) -> tuple[LiveServer, RssSampler, Caller]:
    """A fresh server for one phase (freed heap is kept by the allocator, so each phase starts from a
    server that has done only one ordinary request), its sampler and clients."""
    server = LiveServer(tmp / name / "data")
    server.start()
    assert server.pid is not None
    sampler = RssSampler(server.pid, sample_ms / 1000)
    sampler.start()
    caller = Caller(server, server._secret, [server.client() for _ in range(clients)])
    caller.clients[0].create_collection(CollectionId=COLLECTION)
    photo = SHARED / "faces" / "face_recognition" / "two_people.jpg"
    if photo.is_file():  # the models (redaction's load at its first call), as in a server that has worked
        caller.clients[0].detect_faces(Image={"Bytes": photo.read_bytes()})
        caller.native_post("/v1/redact", photo.read_bytes())
    log(f"{name}: server up in {server.startup_s:.1f} s, {mb(sampler.rss())} MB")
    return server, sampler, caller


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="image requests at once")
    parser.add_argument("--waves", type=int, default=4, help="rounds of --clients requests")
    parser.add_argument("--connections", type=int, default=30, help="unauthenticated connections at once")
    parser.add_argument("--body-deadline", type=float, default=20.0, help="seconds a connection sends")
    parser.add_argument("--sample-ms", type=float, default=10.0, help="RSS sampling interval")
    parser.add_argument("--skip", default="", help="phases to leave out: images, bodies (comma-separated)")
    args = parser.parse_args()
    exit_on_sigterm()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "memory",
        "settings": {
            "server": json.loads(settings().server.model_dump_json(include=_SERVER_FIELDS)),
            "images": settings().images.model_dump(),
        },
    }
    phases: list[tuple[str, Callable[[LiveServer, RssSampler, Caller], Any]]] = []
    if "images" not in skip:
        phases.append(("images", lambda s, r, c: images_phase(c, r, args.clients, args.waves)))
    if "bodies" not in skip:
        for variant in BODY_VARIANTS:
            phases.append(
                (
                    variant,
                    lambda s, r, c, v=variant: body_variant(s, r, v, args.connections, args.body_deadline),
                )
            )
    with tempfile.TemporaryDirectory(prefix="keeneye-memory-") as tmp:
        for name, phase in phases:
            server, sampler, caller = started_server(
                Path(tmp), name.replace(" ", "_").replace("/", ""), args.clients, args.sample_ms
            )
            try:
                ready = sampler.rss()
                out = phase(server, sampler, caller)
                out["server"] = {"startup_s": round(server.startup_s, 1), "rss_ready_mb": mb(ready)}
                if name == "images":
                    result["images"] = out
                else:
                    result.setdefault("unauthenticated_bodies", {})[name] = out
            finally:
                sampler.stop()
                server.stop()
    result["note"] = (
        f"client and server share this machine's {os.cpu_count()} cores; RSS of the server process "
        f"(and children), sampled every {args.sample_ms:g} ms; a fresh server for each phase, after one "
        "ordinary DetectFaces and POST /v1/redact"
    )
    result["total_s"] = round(time.perf_counter() - started, 1)
    emit(result)


_SERVER_FIELDS = {
    name
    for name in (
        "max_body_bytes",
        "max_inflight",
        "max_pixels_inflight",
        "max_unauthenticated_body_bytes",
    )
    if name in type(settings().server).model_fields
}


if __name__ == "__main__":
    main()
