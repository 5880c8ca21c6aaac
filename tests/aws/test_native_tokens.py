"""The native API's short-lived tokens, and the limit on failed attempts on both APIs (issue 13, item 9):
the Bearer token was the signing secret itself, on every request, and nothing slowed guessing it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from keeneye.app import create_app
from keeneye.config import ServerSettings, Settings
from keeneye.service.governance.keys import AccessKeys
from keeneye.store.db import Store
from keeneye.store.tables import ApiTokenRow
from tests.aws.signing import AKID, KEYS, SECRET, rekognition_request, sign
from tests.factories import fake_services

ADMIN = {"Authorization": f"Bearer {SECRET}"}
AUDIT = "http://testserver/v1/audit"
TOKENS = "http://testserver/v1/tokens"


class Server:
    """The app in-process; each request from the client address given (default 127.0.0.1)."""

    def __init__(self, tmp_path: Path, **server: Any) -> None:
        self.data = tmp_path / "data"
        self.settings = Settings(data_dir=self.data, server=ServerSettings(**server))
        self.app = create_app(self.settings, services=fake_services(), keys=KEYS)

    def request(self, method: str, url: str, *, source: str = "127.0.0.1", **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False, client=(source, 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def token(self, headers: dict[str, str] = ADMIN, **kwargs: Any) -> str:
        r = self.request("POST", TOKENS, headers=headers, **kwargs)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_from_the_secret_once_or_from_sigv4(tmp_path: Path) -> None:
    server = Server(tmp_path)
    r = server.request("POST", TOKENS, headers=ADMIN)
    assert r.status_code == 200
    answer = r.json()
    assert answer["token"].startswith("ket_") and answer["token_type"] == "Bearer"
    assert answer["access_key_id"] == AKID and answer["expires_in_s"] == 900
    expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=890) < expires - datetime.now(UTC) <= timedelta(seconds=900)
    assert server.request("GET", AUDIT, headers=bearer(answer["token"])).status_code == 200
    signed = sign(b"", {}, url=TOKENS)  # SigV4: nothing secret travels at all
    token = server.token(signed)
    assert server.request("GET", AUDIT, headers=bearer(token)).status_code == 200
    body = b'{"duration_s": 3600}'
    longer = server.request("POST", TOKENS, headers=sign(body, {}, url=TOKENS), content=body).json()
    assert longer["expires_in_s"] == 3600
    assert answer["token"].encode() not in b"".join(p.read_bytes() for p in server.data.glob("keeneye.db*"))


def test_a_token_cannot_get_another_and_bad_durations_are_refused(tmp_path: Path) -> None:
    server = Server(tmp_path, token_max_ttl_s=7200)
    token = server.token()
    r = server.request("POST", TOKENS, headers=bearer(token))
    assert r.status_code == 403 and "cannot be used to get another" in r.json()["error"]["message"]
    for body in (
        b'{"duration_s": 59}',
        b'{"duration_s": 7201}',
        b'{"duration_s": "600"}',
        b'{"duration_s": true}',
        b'{"duration_s": NaN}',
        b'{"ttl": 600}',
        b"[]",
    ):
        r = server.request("POST", TOKENS, headers=ADMIN, content=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter", body


def test_expired_ended_and_revoked_tokens_are_refused(tmp_path: Path) -> None:
    server = Server(tmp_path)
    store = Store.open(server.data)
    keys = AccessKeys(store, server.data)
    _, app_key = keys.create(
        "app",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "keeneye:ReadAudit", "Resource": "*"}],
        },
        actor="cli",
    )
    app_token = server.token(bearer(app_key.secret_access_key))
    assert server.request("GET", AUDIT, headers=bearer(app_token)).status_code == 200
    keys.set_enabled("app", False, actor="cli")  # the key is disabled: its tokens go with it
    r = server.request("GET", AUDIT, headers=bearer(app_token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "UnrecognizedClientException"
    expiring = server.token()
    with store.transaction() as s:
        s.execute(update(ApiTokenRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    r = server.request("GET", AUDIT, headers=bearer(expiring))
    assert r.status_code == 401 and "unknown or expired token" in r.json()["error"]["message"]
    ended = server.token()
    assert server.request("DELETE", TOKENS, headers=bearer(ended)).status_code == 204
    assert server.request("GET", AUDIT, headers=bearer(ended)).status_code == 401
    assert server.request("DELETE", TOKENS, headers=ADMIN).status_code == 400  # no token shown
    store.close()


def test_the_secret_as_bearer_can_be_turned_off(tmp_path: Path) -> None:
    server = Server(tmp_path, bearer_secret=False)
    r = server.request("GET", AUDIT, headers=ADMIN)
    assert r.status_code == 401 and "POST /v1/tokens" in r.json()["error"]["message"]
    assert server.request("POST", TOKENS, headers=ADMIN).status_code == 401
    token = server.token(sign(b"", {}, url=TOKENS))
    assert server.request("GET", AUDIT, headers=bearer(token)).status_code == 200
    assert server.request("GET", AUDIT, headers=sign(b"", {}, url=AUDIT, method="GET")).status_code == 200


def test_failed_attempts_are_limited_per_address(tmp_path: Path) -> None:
    server = Server(tmp_path, auth_failures_burst=5, auth_failures_per_min=6)
    token = server.token()
    for guess in range(5):
        r = server.request("GET", AUDIT, headers=bearer(f"ket_guess{guess}"), source="203.0.113.7")
        assert r.status_code == 401
    r = server.request("GET", AUDIT, headers=bearer("ket_guess5"), source="203.0.113.7")
    assert r.status_code == 429 and r.json()["error"]["code"] == "Throttling"
    assert r.headers["Retry-After"] == "10"
    # The right token from that address waits too (nothing is checked); from another it works.
    assert server.request("GET", AUDIT, headers=bearer(token), source="203.0.113.7").status_code == 429
    assert server.request("GET", AUDIT, headers=bearer(token), source="203.0.113.8").status_code == 200
    for _ in range(5):  # wrong secrets and bad signatures count alike
        server.request("GET", AUDIT, headers={"Authorization": "Bearer nope"}, source="198.51.100.1")
    assert server.request("GET", AUDIT, headers=ADMIN, source="198.51.100.1").status_code == 429


def test_failed_signatures_are_limited_per_key_id(tmp_path: Path) -> None:
    server = Server(
        tmp_path, auth_failures_burst=100, auth_key_failures_burst=3, auth_key_failures_per_min=60
    )
    for i in range(3):
        forged = sign(b"", {}, url=AUDIT, method="GET", secret="not-the-secret")
        assert server.request("GET", AUDIT, headers=forged, source=f"192.0.2.{i}").status_code == 401
    good = sign(b"", {}, url=AUDIT, method="GET")
    r = server.request("GET", AUDIT, headers=good, source="192.0.2.200")
    assert r.status_code == 429 and AKID in r.json()["error"]["message"]
    assert server.request("GET", AUDIT, headers=ADMIN, source="192.0.2.200").status_code == 200  # no key id


@pytest.mark.parametrize("path", ["/v1/tokens"])
def test_openapi_documents_the_token_routes(tmp_path: Path, path: str) -> None:
    paths = Server(tmp_path).request("GET", "/openapi.json").json()["paths"]
    assert {"post", "delete"} <= set(paths[path])


def test_failed_signatures_on_the_rekognition_api_are_limited_too(tmp_path: Path) -> None:
    server = Server(tmp_path, auth_failures_burst=3)
    params = {"Image": {"Bytes": "aGVsbG8="}}
    for _ in range(3):
        body, headers = rekognition_request("DetectFaces", params, secret="not-the-secret")
        r = server.request("POST", "/", content=body, headers=headers, source="203.0.113.50")
        assert r.status_code == 400 and r.json()["__type"] == "InvalidSignatureException"
    body, headers = rekognition_request("DetectFaces", params)
    r = server.request("POST", "/", content=body, headers=headers, source="203.0.113.50")
    assert r.status_code == 400 and r.json()["__type"] == "ThrottlingException"  # boto3 retries it
    r = server.request("POST", "/", content=body, headers=headers, source="203.0.113.51")
    assert r.json().get("__type") != "ThrottlingException"
