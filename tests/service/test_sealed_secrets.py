"""Camera, sink, channel, processor and upload-rule credentials are sealed at rest (issue 13, item 8):
the database file's bytes hold none of them, while keeneye still uses each one in clear; rows an older
keeneye stored in clear stay readable and are sealed at the server's start.

No connection is made: hosts are under ``.invalid`` (RFC 6761), whose names this test's resolver refuses
at once, and nothing here sends."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keeneye.aws import stream_records
from keeneye.config import NotificationSettings, Settings, UploadSettings
from keeneye.service.governance.sealing import (
    PREFIX,
    SecretBox,
    SecretUnreadable,
    seal_stored,
    url_has_secret,
)
from keeneye.service.streams.processors import StreamProcessors
from keeneye.service.uploads.events import ObjectRef, UploadRule
from keeneye.service.uploads.service import UploadService
from keeneye.service.video.notifications import NotificationService
from keeneye.store.db import Store
from keeneye.streams.sinks import SinkSpec
from tests.factories import fake_collections

TOPIC = "arn:aws:sns:us-east-1:123456789012:jobs"
CAMERA = "rtsp://admin:hunter2-camera@door.invalid:554/stream1"
QUERY_CAMERA = "http://lobby.invalid/video.cgi?user=admin&pwd=hunter2-query"
HOOK = {
    "url": "https://u:hunter2-hook@hooks.invalid/in",
    "headers": {"Authorization": "Bearer hunter2-header"},
}
BROKER = {"host": "broker.invalid", "topic": "t", "username": "keeneye", "password": "hunter2-mqtt"}
RULE = {
    "task": "search-faces",
    "collection_id": "staff",
    "sink": {"webhook": {"url": "https://hooks.invalid/x", "headers": {"X-Token": "hunter2-rule"}}},
}
PROCESSOR = {
    "Input": {"KinesisVideoStream": {"Arn": "rtsp://admin:hunter2-input@cam.invalid/x"}},
    "Output": {"KinesisDataStream": {"Arn": "mqtt://keeneye:hunter2-output@broker.invalid/t"}},
    "Settings": {"ConnectedHome": {"Labels": ["PERSON"]}},
    "RoleArn": "arn:aws:iam::123456789012:role/r",
}


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names under .invalid do not resolve (without asking a DNS server)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str | bytes) and str(host).rstrip(".'").endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class Server:
    """The services that store credentials, on one data directory."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.store = Store.open(data)
        settings = Settings(data_dir=data)
        collections = fake_collections(self.store)
        collections.create_collection("staff")
        self.processors = StreamProcessors(self.store, settings, encode=stream_records.encode)
        self.cameras = self.processors.cameras
        self.notifications = NotificationService(self.store, NotificationSettings(), data, deliver=False)
        self.uploads = UploadService(self.store, collections, UploadSettings())

    def close(self) -> None:
        self.processors.close()
        self.store.close()

    def database_bytes(self) -> bytes:
        self.store.scrub()
        self.store.close()  # the last connection checkpoints the write-ahead log into the file
        return b"".join(p.read_bytes() for p in sorted(self.data.glob("keeneye.db*")))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data")
    yield s
    s.close()


def _configure(server: Server) -> str:
    """Every kind of stored credential, through the services; the upload event's id."""
    server.cameras.put_camera("door", CAMERA)
    server.cameras.put_camera("lobby", QUERY_CAMERA)
    server.cameras.put_data_stream("events", {"sinks": [{"webhook": HOOK}, {"mqtt": BROKER}]})
    server.notifications.put_channel(TOPIC, {"mqtt": {**BROKER, "password": "hunter2-channel"}})
    rule = server.uploads.put_rule("photos", RULE)
    ref = ObjectRef("photos", "a.jpg", None, "e1", "0001", 10, "ObjectCreated:Put")
    event_id, _ = server.uploads.record(ref, rule, "AK")
    server.processors.create("p1", PROCESSOR)
    return event_id


def _uses_them_in_clear(server: Server) -> None:
    cameras = server.cameras
    assert cameras.resolve_input(cameras.camera_arn("door")) == (CAMERA, False)
    assert cameras.resolve_input(cameras.camera_arn("lobby"))[0] == QUERY_CAMERA
    assert cameras.get_camera("door")["url"] == "rtsp://admin:***@door.invalid:554/stream1"
    outputs = cameras.resolve_outputs({"KinesisDataStream": {"Arn": cameras.data_stream_arn("events")}})
    expected = [SinkSpec.model_validate({"webhook": HOOK}), SinkSpec.model_validate({"mqtt": BROKER})]
    assert [SinkSpec.model_validate(o["spec"]) for o in outputs] == expected
    shown = cameras.list_data_streams()[0]["sinks"]
    assert (
        shown[0]["webhook"]["headers"] == {"Authorization": "***"} and shown[1]["mqtt"]["password"] == "***"
    )
    channel = server.notifications.get_channel(TOPIC)
    assert channel.spec.mqtt is not None and channel.spec.mqtt.password == "hunter2-channel"
    assert channel.to_dict()["sink"]["mqtt"]["password"] == "***"
    rule = server.uploads.get_rule("photos")
    assert rule.sink is not None and rule.sink.webhook is not None
    assert rule.sink.webhook.headers == {"X-Token": "hunter2-rule"}
    request = server.processors.describe("p1").request
    assert request["Input"] == PROCESSOR["Input"] and request["Output"] == PROCESSOR["Output"]


def test_no_password_is_in_the_database_file(server: Server) -> None:
    event_id = _configure(server)
    _uses_them_in_clear(server)
    assert server.uploads._rule_of(event_id).sink == UploadRule.model_validate(RULE).sink
    with server.store.engine.connect() as conn:  # sealed values, not hashes: still "fernet:..." text
        assert str(conn.execute(text("SELECT url FROM cameras WHERE name = 'door'")).scalar()).startswith(
            PREFIX
        )
        assert conn.execute(text("SELECT url FROM cameras WHERE name = 'lobby'")).scalar() != QUERY_CAMERA
    found = server.database_bytes()
    assert b"hunter2" not in found
    assert b"door.invalid" not in found and b"broker.invalid" in found  # what holds no secret stays readable


def test_rows_stored_in_clear_are_read_then_sealed_at_start(server: Server) -> None:
    """An older keeneye stored them as given: they keep working, and seal_stored (the server's start)
    seals them in place, leaving no clear copy in the file."""
    event_id = _configure(server)
    box = SecretBox(server.data)
    clear = {
        "UPDATE cameras SET url = :v WHERE name = 'door'": CAMERA,
        "UPDATE cameras SET url = :v WHERE name = 'lobby'": QUERY_CAMERA,
        "UPDATE data_streams SET sink = :v": json.dumps({"sinks": [{"webhook": HOOK}, {"mqtt": BROKER}]}),
        "UPDATE notification_channels SET config = :v": json.dumps(
            {"mqtt": {**BROKER, "password": "hunter2-channel"}}
        ),
        "UPDATE upload_rules SET rule = :v": json.dumps(RULE),
        "UPDATE upload_events SET rule = :v": json.dumps(RULE),
        "UPDATE stream_processors SET request = :v": json.dumps(PROCESSOR),
    }
    with server.store.engine.begin() as conn:
        for statement, value in clear.items():
            conn.execute(text(statement), {"v": value})
    _uses_them_in_clear(server)
    assert seal_stored(server.store, box) == 7  # 2 cameras, stream, channel, processor, rule, event
    assert seal_stored(server.store, box) == 0  # idempotent
    _uses_them_in_clear(server)
    assert server.uploads._rule_of(event_id).sink == UploadRule.model_validate(RULE).sink
    assert b"hunter2" not in server.database_bytes()


def test_secret_box(tmp_path: Path) -> None:
    box = SecretBox(tmp_path)
    sealed = box.seal("s3cret")
    assert sealed.startswith(PREFIX) and box.seal(sealed) == sealed and box.open(sealed) == "s3cret"
    assert box.seal("s3cret") != sealed  # a fresh IV each time
    assert box.open("as given") == "as given"  # a clear value from before
    for url, secret in [
        ("rtsp://cam.invalid/x", False),
        ("mqtt://broker.invalid:1883/t", False),
        ("rtsp://admin:pw@cam.invalid/x", True),
        ("rtsp://token@cam.invalid/x", True),
        ("http://cam.invalid/v.cgi?pwd=x", True),
        ("arn:aws:kinesis:us-east-1:123456789012:stream/events", False),
    ]:
        assert url_has_secret(url) is secret, url
        assert box.seal_url(url).startswith(PREFIX) is secret
        assert box.open(box.seal_url(url)) == url
    other = SecretBox(tmp_path / "elsewhere")  # another data directory's key
    with pytest.raises(SecretUnreadable) as caught:
        other.open(sealed)
    assert "s3cret" not in caught.value.message and "keys.secret" in caught.value.message
    assert other.shown_url(box.seal_url("rtsp://a:pw@cam.invalid/x")).startswith("<sealed")
    assert other.shown_sink(box.seal_sink({"webhook": HOOK}))["webhook"]["headers"] == {
        "Authorization": "***"
    }
    assert (
        box.shown_sink(box.seal_sink({"webhook": HOOK}))["webhook"]["url"] == "https://u:***@hooks.invalid/in"
    )
