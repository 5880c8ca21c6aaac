"""Memory within the limits (issue 13, item 6), each finding reproduced as an attack and shown bounded:

* pixels in flight: a server-wide budget of decoded pixels that every analysing route shares (the
  Rekognition operations, POST /v1/redact, analysis on upload), ThrottlingException / 429 when spent;
* POST /v1/redact under ``server.max_inflight``, as POST / is;
* no body read before the headers authenticate as far as they can (SigV4: form, date, a known key;
  Bearer: in full), and the bodies of callers not yet verified under one server-wide budget; against a
  real uvicorn, a 20 MiB body from an unknown key is answered before the client could send it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from keeneye.app import create_app
from keeneye.config import ServerSettings, Settings
from keeneye.core.budget import Budget
from keeneye.core.errors import ServerBusy
from keeneye.service.builder import ServiceBuilder
from keeneye.service.container import Services
from keeneye.service.governance.keys import StoredKey
from tests.aws.conftest import Client, make_client
from tests.aws.signing import AKID, KEYS, SECRET, rekognition_request, sign
from tests.aws.test_protocol import assert_error, call
from tests.factories import encode, fake_analyzer, fake_services, gradient

JPEG = encode(gradient(120, 160), "JPEG")
REDACT_URL = "http://testserver/v1/redact"


def redact(c: Client, image: bytes = JPEG) -> Any:
    """POST /v1/redact signed with SigV4 (the bootstrap key)."""
    return c.post("/v1/redact", content=image, headers=sign(image, {}, url=REDACT_URL))


class OneKeyWithoutPolicy:
    """A key database holding one enabled key that no policy allows anything (keeneye.auth.keyring)."""

    key = StoredKey("AKIANOPOLICY00000000", "nobody", "nobody/secret/0123456789", None)

    def lookup(self, access_key_id: str) -> StoredKey | None:
        return self.key if access_key_id == self.key.access_key_id else None

    def find_by_secret(self, secret: str) -> StoredKey | None:
        return self.key if secret == self.key.secret_access_key else None

    def touch(self, access_key_id: str, now: datetime | None = None) -> None:
        return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def budgeted_services(pixels: int = 1_000_000) -> tuple[Services, Budget]:
    """Fake services whose face analysis and redaction share a pixel budget, as a server's do."""
    services = fake_services()
    budget = Budget(pixels, "pixels")
    services.faces.budget = budget
    services.redaction_analyzer = fake_analyzer(embedder_id=None)
    return services, budget


# -- pixels in flight ------------------------------------------------------------------------------------


def test_detect_faces_is_throttled_while_the_pixel_budget_is_spent(tmp_path: Path) -> None:
    services, budget = budgeted_services()
    with make_client(tmp_path, services) as c:
        assert budget.take(budget.capacity)  # other requests' images hold every pixel
        message = assert_error(call(c, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}}), "ThrottlingException")
        assert "megapixels at once" in message
        budget.give(budget.capacity)
        assert call(c, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}})[0] == 200
        assert budget.in_use == 0  # the request's image was freed with the request


def test_redact_is_throttled_while_the_pixel_budget_is_spent(tmp_path: Path) -> None:
    services, budget = budgeted_services()
    with make_client(tmp_path, services) as c:
        assert budget.take(budget.capacity)
        r = redact(c)
        assert r.status_code == 429 and r.json()["error"]["code"] == "Throttling"
        assert r.headers["retry-after"] == "1"
        budget.give(budget.capacity)
        assert redact(c).status_code == 200
        assert budget.in_use == 0


def test_the_servers_analysing_services_share_one_pixel_budget(tmp_path: Path) -> None:
    """The services the server is built from (keeneye.service.builder) decode under one budget: images
    of DetectFaces (faces) and of IndexFaces / searches (collections) count together."""
    built = ServiceBuilder(Settings(data_dir=tmp_path), analyzer=fake_analyzer())
    budget = built.pixel_budget
    assert budget.capacity == ServerSettings().max_pixels_inflight
    assert built.faces.budget is budget
    built.collections.create_collection("c")
    assert budget.take(budget.capacity)
    with pytest.raises(ServerBusy):
        built.collections.index_faces("c", JPEG)
    with pytest.raises(ServerBusy):
        built.faces.detect_faces(JPEG)
    budget.give(budget.capacity)
    assert built.collections.index_faces("c", JPEG).image_width == 160  # decoded and analysed
    built.store.close()


# -- requests in flight ------------------------------------------------------------------------------------


def test_redact_is_under_the_inflight_cap_of_post_root(tmp_path: Path) -> None:
    services, _ = budgeted_services()
    with make_client(tmp_path, services, max_inflight=1) as c:
        slots = c.app.state.inflight  # the one semaphore POST / admits its operations with
        assert slots.acquire(blocking=False)
        try:
            r = redact(c)
            assert r.status_code == 429 and r.json()["error"]["code"] == "Throttling"
            assert "in flight" in r.json()["error"]["message"]
        finally:
            slots.release()
        assert redact(c).status_code == 200
        assert slots.acquire(blocking=False)  # given back
        slots.release()


# -- authenticated before the body is read ---------------------------------------------------------------


def _asgi(app: Any, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], int]:
    """One request straight through the ASGI app: (status, JSON answer, body messages the app asked for)."""
    asked: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        asked.append(1)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    all_headers = {"Host": "testserver", "Content-Length": str(len(body)), **headers}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload) if payload.startswith(b"{") else {}, len(asked)


def _aws_headers(**sign_kwargs: Any) -> tuple[bytes, dict[str, str]]:
    return rekognition_request("DetectFaces", {"Image": {"Bytes": b64(JPEG)}}, **sign_kwargs)


def _with_auth(headers: dict[str, str], authorization: str | None) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k != "Authorization"}
    return out if authorization is None else {**out, "Authorization": authorization}


def _unknown_key(headers: dict[str, str]) -> dict[str, str]:
    return _with_auth(headers, headers["Authorization"].replace(AKID, "AKIANOSUCHKEY0000000"))


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("no Authorization", "MissingAuthenticationTokenException"),
        ("not SigV4", "IncompleteSignatureException"),
        ("unknown key", "UnrecognizedClientException"),
        ("signed an hour ago", "InvalidSignatureException"),
        ("an unsigned x-amz header", "InvalidSignatureException"),
    ],
)
def test_aws_headers_that_cannot_authenticate_are_refused_before_the_body_is_read(
    tmp_path: Path, case: str, code: str
) -> None:
    app = create_app(Settings(data_dir=tmp_path), services=fake_services(), keys=KEYS)
    body, headers = _aws_headers(when=datetime.now(UTC) - timedelta(hours=1) if "hour" in case else None)
    changes: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {
        "no Authorization": lambda h: _with_auth(h, None),
        "not SigV4": lambda h: _with_auth(h, "Basic dXNlcjpwYXNz"),
        "unknown key": _unknown_key,
        "signed an hour ago": lambda h: h,
        "an unsigned x-amz header": lambda h: {**h, "X-Amz-Security-Token": "FwoGZXIvYXdzE"},
    }
    headers = changes[case](headers)
    status, answer, reads = _asgi(app, "/", body, headers)
    assert (status, answer["__type"], reads) == (400, code, 0)


@pytest.mark.parametrize("authorization", ["Bearer wrong", "unknown SigV4 key"])
def test_native_callers_that_cannot_authenticate_are_refused_before_the_body_is_read(
    tmp_path: Path, authorization: str
) -> None:
    app = create_app(Settings(data_dir=tmp_path), services=fake_services(), keys=KEYS)
    headers = (
        {"Authorization": authorization}
        if authorization.startswith("Bearer")
        else _unknown_key(sign(JPEG, {}, url=REDACT_URL))
    )
    status, answer, reads = _asgi(app, "/v1/redact", JPEG, headers)
    assert (status, answer["error"]["code"], reads) == (401, "UnrecognizedClientException", 0)


def test_a_bearer_caller_is_authorized_before_its_body_is_read(tmp_path: Path) -> None:
    """A Bearer token needs no body: authenticated, rate-limited and authorized on the headers alone, so
    a key that may not redact is refused without its body read; the body is read once allowed."""
    services, _ = budgeted_services()
    keys = KEYS.with_database(OneKeyWithoutPolicy())
    app = create_app(Settings(data_dir=tmp_path), services=services, keys=keys)
    nobody = {"Authorization": f"Bearer {OneKeyWithoutPolicy.key.secret_access_key}"}
    status, answer, reads = _asgi(app, "/v1/redact", JPEG, nobody)
    assert (status, answer["error"]["code"], reads) == (403, "AccessDenied", 0)
    status, _, reads = _asgi(app, "/v1/redact", JPEG, {"Authorization": f"Bearer {SECRET}"})
    assert (status, reads) == (200, 1)


def test_a_known_key_with_a_wrong_signature_is_read_under_the_budget_and_gives_it_back(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path), services=fake_services(), keys=KEYS)
    bodies = app.state.api.gate.bodies
    body, headers = _aws_headers(secret="not-the-secret")
    status, answer, reads = _asgi(app, "/", body, headers)
    assert (status, answer["__type"], reads) == (400, "InvalidSignatureException", 1)
    assert bodies.in_use == 0
    body, headers = _aws_headers()
    assert _asgi(app, "/", body, headers)[0] == 200 and bodies.in_use == 0


@pytest.mark.parametrize("path", ["/", "/v1/redact"])
def test_bodies_of_unverified_callers_are_bounded_server_wide(tmp_path: Path, path: str) -> None:
    """While other callers' unverified bodies hold server.max_unauthenticated_body_bytes, a signed
    request with a known key is refused (retry) before its body is read."""
    settings = Settings(data_dir=tmp_path, server=ServerSettings(max_unauthenticated_body_bytes=1024 * 1024))
    app = create_app(settings, services=fake_services(), keys=KEYS)
    bodies = app.state.api.gate.bodies
    assert bodies.capacity == 1024 * 1024
    if path == "/":
        body, headers = _aws_headers()
    else:
        body, headers = JPEG, sign(JPEG, {}, url=REDACT_URL)
    assert bodies.take(bodies.capacity - len(body) // 2)
    status, answer, reads = _asgi(app, path, body, headers)
    assert reads == 0 and bodies.in_use == bodies.capacity - len(body) // 2
    if path == "/":
        assert (status, answer["__type"]) == (400, "ThrottlingException")
    else:
        assert (status, answer["error"]["code"]) == (429, "Throttling")
    assert "not yet authenticated" in json.dumps(answer)


# -- against uvicorn: a 20 MiB body from an unknown key -------------------------------------------------


@pytest.fixture
def live_port(tmp_path: Path) -> Iterator[int]:
    app = create_app(Settings(data_dir=tmp_path), services=fake_services(), keys=KEYS)
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


@pytest.mark.parametrize("path", ["/", "/v1/redact"])
def test_20_mib_from_an_unknown_key_is_refused_before_it_is_sent(live_port: int, path: str) -> None:
    """The client declares 20 MiB and sends the first 64 KiB: the answer (and the connection's close)
    comes without the rest, which the server never waits for."""
    size = 20 * 1024 * 1024
    _, headers = _aws_headers()
    headers = _unknown_key(headers)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n{head}\r\n"
    answer = b""
    with socket.create_connection(("127.0.0.1", live_port), timeout=5) as conn:
        conn.sendall(request.encode() + b"{" * 65536)
        try:
            while chunk := conn.recv(65536):  # until the server closes the connection
                answer += chunk
        except ConnectionResetError:  # closed with the client's unread bytes in its buffer
            pass
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 401 Unauthorized")
    assert b"UnrecognizedClientException" in answer and b"connection: close" in answer.lower()
