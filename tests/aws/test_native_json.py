"""Native routes refuse NaN and Infinity in JSON bodies (issue 13, item 9): Python's parser takes them,
a NaN passes every range check (every comparison with it is false), and a stored NaN setting made every
later response that showed it fail (500). Each body is answered 400 and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from keeneye.service.container import Services
from keeneye.store.tables import StreamProcessorRow
from tests.aws.conftest import Client
from tests.aws.signing import SECRET
from tests.fuzz.apps import fuzz_app

AUTH = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
TOPIC = "arn:aws:sns:us-east-1:123456789012:jobs"
NOT_NUMBERS = ("NaN", "Infinity", "-Infinity")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with fuzz_app(tmp_path) as app:
        services: Services = app.state.api.services
        assert services.stream_processors is not None
        # A stopped processor, stored as Create leaves one (its input is never opened here).
        with services.stream_processors._store.transaction() as s:
            now = datetime.now(UTC)
            s.add(
                StreamProcessorRow(
                    name="door",
                    status="STOPPED",
                    desired="stopped",
                    request={"Settings": {"ConnectedHome": {"Labels": ["PERSON"]}}},
                    options={},
                    created_at=now,
                    updated_at=now,
                )
            )
        yield Client(app)


def _refused(r: httpx.Response, body: str) -> None:
    assert r.status_code == 400, (body, r.status_code, r.text)
    assert r.json()["error"] == {"code": "InvalidParameter", "message": "the body is not JSON"}, body


@pytest.mark.parametrize("constant", NOT_NUMBERS)
def test_a_nan_retention_is_refused_and_not_stored(client: Client, constant: str) -> None:
    body = f'{{"days": {constant}}}'
    _refused(client.request("PUT", "/v1/collections/c/retention", headers=AUTH, content=body), body)
    services: Services = client.app.state.api.services
    assert services.collections is not None
    assert services.collections.describe_collection("c").retention_days is None
    assert client.get("/v1/audit", headers=AUTH).json()["records"] == []


@pytest.mark.parametrize("constant", NOT_NUMBERS)
def test_nan_processor_options_are_refused_and_not_stored(client: Client, constant: str) -> None:
    before = client.get("/v1/stream-processors/door/options", headers=AUTH)
    assert before.status_code == 200
    for body in (
        f'{{"record_interval_s": {constant}}}',
        f'{{"target_fps": {constant}}}',
        f'{{"lines": [{{"name": "door", "p1": [0.1, {constant}], "p2": [0.9, 0.6]}}]}}',
    ):
        r = client.request("PUT", "/v1/stream-processors/door/options", headers=AUTH, content=body)
        _refused(r, body)
    after = client.get("/v1/stream-processors/door/options", headers=AUTH)
    assert after.status_code == 200 and after.json() == before.json()


@pytest.mark.parametrize("constant", NOT_NUMBERS)
def test_a_nan_channel_is_refused_and_not_stored(client: Client, constant: str) -> None:
    for body in (
        f'{{"mqtt": {{"host": "127.0.0.1", "topic": "t", "qos": {constant}}}}}',
        f'{{"jsonl": {{"name": "x.jsonl"}}, "x": {constant}}}',
    ):
        r = client.request("PUT", f"/v1/notification-channels/{TOPIC}", headers=AUTH, content=body)
        _refused(r, body)
    assert client.get("/v1/notification-channels", headers=AUTH).json() == {"channels": []}
    assert client.get(f"/v1/notification-channels/{TOPIC}", headers=AUTH).status_code == 404


def test_nan_inside_a_data_stream_or_camera_body_is_refused(client: Client) -> None:
    for path, body in (
        ("/v1/data-streams/s", '{"mqtt": {"host": "127.0.0.1", "topic": "t", "port": NaN}}'),
        ("/v1/cameras/cam", '{"url": "rtsp://127.0.0.1/x", "listen": NaN}'),
    ):
        _refused(client.request("PUT", path, headers=AUTH, content=body), body)
    assert client.get("/v1/data-streams", headers=AUTH).json()["data_streams"] == []
    assert client.get("/v1/cameras/cam", headers=AUTH).status_code == 404
