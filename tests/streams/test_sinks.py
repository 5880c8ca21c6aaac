"""The sinks against real receivers on 127.0.0.1: an HTTP server, a mosquitto broker, files."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from keeneye.core.errors import InvalidParameter
from keeneye.streams.sink_urls import build_local_sink, local_sink_target, sink_spec_from_url
from keeneye.streams.sinks import (
    JsonlSink,
    MqttSink,
    MqttTarget,
    S3Sink,
    S3Target,
    SinkError,
    SinkSpec,
    WebhookSink,
    WebhookTarget,
    build_sink,
    redacted,
)
from tests.factories import loopback_egress
from tests.receivers import free_port, mosquitto_broker, mqtt_subscriber, webhook_receiver

MESSAGE = {"Type": "Notification", "Message": '{"JobId":"j1"}', "unicode": "café"}


def test_webhook_posts_json_with_headers() -> None:
    with webhook_receiver() as hook:
        sink = WebhookSink(
            WebhookTarget(url=hook.url, headers={"Authorization": "Bearer s3cret"}),
            timeout_s=5,
            extra_headers={"x-amz-sns-message-type": "Notification"},
            egress=loopback_egress(),
        )
        sink.send(MESSAGE)
        sink.send({"n": 2})
        sink.close()
        got = hook.wait_for(2)
    assert got[0].path == "/hook" and got[0].body == MESSAGE and got[1].body == {"n": 2}
    assert got[0].headers["authorization"] == "Bearer s3cret"
    assert got[0].headers["content-type"] == "application/json"
    assert got[0].headers["x-amz-sns-message-type"] == "Notification"


def test_webhook_errors_are_one_neutral_text_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    """An HTTP status and a closed port read the same (a sink URL is not a port scanner); the log has
    the detail."""
    with webhook_receiver(status=500) as hook:
        sink = WebhookSink(
            WebhookTarget(url=hook.url.replace("//", "//u:pw@")), timeout_s=5, egress=loopback_egress()
        )
        with pytest.raises(SinkError, match="did not accept the message") as answered:
            sink.send(MESSAGE)
        assert "pw" not in answered.value.message and "500" not in answered.value.message
        sink.close()
    down = WebhookSink(
        WebhookTarget(url=f"http://127.0.0.1:{free_port()}/x"), timeout_s=5, egress=loopback_egress()
    )
    with pytest.raises(SinkError, match="did not accept the message") as closed:
        down.send(MESSAGE)
    down.close()
    shown = [answered.value.message, closed.value.message]
    assert [re.sub(r"127\.0\.0\.1:\d+/\w+", "HOST", m) for m in shown] == [
        "webhook http://u:***@HOST: the sink did not accept the message (the server log has the details)",
        "webhook http://HOST: the sink did not accept the message (the server log has the details)",
    ]
    assert "answered HTTP 500" in caplog.text and "ConnectError" in caplog.text


def test_webhook_that_never_answers_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts connections, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        sink = WebhookSink(
            WebhookTarget(url=f"http://127.0.0.1:{silent.getsockname()[1]}/"),
            timeout_s=0.5,
            egress=loopback_egress(),
        )
        started = time.monotonic()
        with pytest.raises(SinkError, match="did not accept the message"):
            sink.send(MESSAGE)
        assert time.monotonic() - started < 5
        sink.close()


def test_jsonl_appends_one_line_per_message(tmp_path: Path) -> None:
    sink = build_sink(
        SinkSpec.model_validate({"jsonl": {"name": "jobs.jsonl"}}), jsonl_dir=tmp_path / "n", timeout_s=1
    )
    sink.send(MESSAGE)
    sink.send({"n": 2})
    lines = (tmp_path / "n" / "jobs.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [MESSAGE, {"n": 2}]


def test_jsonl_refuses_a_link_out_of_its_folder(tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    outside = tmp_path / "outside.jsonl"
    outside.write_text("")
    os.symlink(outside, tmp_path / "n" / "evil.jsonl")
    with pytest.raises(SinkError, match=r"evil\.jsonl"):
        JsonlSink(tmp_path / "n" / "evil.jsonl").send(MESSAGE)
    assert outside.read_text() == ""


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"webhook": {"url": "http://h/"}, "jsonl": {"name": "a.jsonl"}},
        {"webhook": {"url": "file:///etc/passwd"}},
        {"webhook": {"url": "http://h/", "headers": {"X": "a\r\nInjected: 1"}}},
        {"jsonl": {"name": "../escape.jsonl"}},
        {"jsonl": {"name": "sub/dir.jsonl"}},
        {"jsonl": {"name": "/etc/x.jsonl"}},
        {"jsonl": {"name": "notjsonl.txt"}},
        {"mqtt": {"host": "h", "topic": "a/#"}},
        {"mqtt": {"host": "h", "topic": "a", "port": 0}},
        {"sns": {"arn": "x"}},
        {"s3": {"bucket": "../b"}},
        {"s3": {"bucket": "b/c"}},
        {"s3": {"bucket": "b", "prefix": "a/../c"}},
        {"s3": {"bucket": "b", "prefix": "a//c"}},
        {"s3": {"bucket": "b", "prefix": "a\\c"}},
        {"s3": {"bucket": "b"}, "jsonl": {"name": "a.jsonl"}},
    ],
)
def test_bad_specs_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SinkSpec.model_validate(spec)


def test_redacted_hides_secrets() -> None:
    spec = SinkSpec.model_validate(
        {"webhook": {"url": "https://user:pw@example.org:8443/h?x=1", "headers": {"Authorization": "t0ken"}}}
    )
    shown = json.dumps(redacted(spec))
    assert "t0ken" not in shown and "pw@" not in shown
    assert redacted(spec)["webhook"] == {
        "url": "https://user:***@example.org:8443/h?x=1",
        "headers": {"Authorization": "***"},
    }
    mqtt = SinkSpec.model_validate({"mqtt": {"host": "b", "topic": "t", "username": "u", "password": "p"}})
    assert redacted(mqtt)["mqtt"]["password"] == "***" and redacted(mqtt)["mqtt"]["username"] == "u"


@pytest.mark.mosquitto
def test_mqtt_publishes_and_reconnects_after_the_broker_returns(tmp_path: Path) -> None:
    port = free_port()
    sink = MqttSink(
        MqttTarget(host="127.0.0.1", port=port, topic="keeneye/jobs"), timeout_s=5, egress=loopback_egress()
    )
    with pytest.raises(SinkError, match="did not accept the message"):  # no broker yet
        sink.send(MESSAGE)
    with (
        mosquitto_broker(tmp_path / "one", port=port) as broker,
        mqtt_subscriber(broker.port, "keeneye/jobs") as sub,
    ):
        sink.send(MESSAGE)
        assert sub.wait_for(1) == [MESSAGE]
    with pytest.raises(SinkError):  # the broker went away
        sink.send(MESSAGE)
    with (
        mosquitto_broker(tmp_path / "two", port=port) as broker,
        mqtt_subscriber(broker.port, "keeneye/jobs") as sub,
    ):
        sink.send({"n": 2})
        assert sub.wait_for(1) == [{"n": 2}]
    sink.close()


@pytest.mark.mosquitto
def test_mqtt_credentials(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with mosquitto_broker(tmp_path, passwords={"keeneye": "right"}) as broker:
        good = MqttSink(
            MqttTarget(host="127.0.0.1", port=broker.port, topic="t", username="keeneye", password="right"),
            timeout_s=5,
            egress=loopback_egress(),
        )
        good.send(MESSAGE)
        good.close()
        bad = MqttSink(
            MqttTarget(host="127.0.0.1", port=broker.port, topic="t", username="keeneye", password="wrong"),
            timeout_s=5,
            egress=loopback_egress(),
        )
        with pytest.raises(SinkError, match="did not accept the message") as refused:
            bad.send(MESSAGE)
        assert "wrong" not in refused.value.message and "wrong" not in caplog.text
        assert "the broker refused the connection" in caplog.text
        bad.close()


# -- URLs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.org/x?token=1", {"webhook": {"url": "https://hooks.example.org/x?token=1"}}),
        ("http://127.0.0.1:8080/", {"webhook": {"url": "http://127.0.0.1:8080/"}}),
        ("mqtt://broker/keeneye/cam1", {"mqtt": {"host": "broker", "port": 1883, "topic": "keeneye/cam1"}}),
        (
            "mqtt://user:p%40ss@10.0.0.5:1884/a/b%20c",
            {
                "mqtt": {
                    "host": "10.0.0.5",
                    "port": 1884,
                    "topic": "a/b c",
                    "username": "user",
                    "password": "p@ss",
                }
            },
        ),
        ("mqtts://broker/t", {"mqtt": {"host": "broker", "port": 8883, "topic": "t", "tls": True}}),
        ("file://events.jsonl", {"jsonl": {"name": "events.jsonl"}}),
        ("  s3://events/cams/front/  ", {"s3": {"bucket": "events", "prefix": "cams/front"}}),
        ("s3://events", {"s3": {"bucket": "events"}}),
    ],
)
def test_sink_urls(url: str, expected: dict[str, Any]) -> None:
    assert sink_spec_from_url(url) == SinkSpec.model_validate(expected)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "not a sink URL"),
        ("events.jsonl", "not a sink URL"),
        ("ftp://h/x", "not a sink URL"),
        ("http:///nohost", "with a host"),
        ("mqtt://broker", "needs a topic"),
        ("mqtt://broker/", "needs a topic"),
        ("mqtt://broker/a/#", "no '\\?query' or '#fragment'"),
        ("mqtt://broker/a/+/b", "cannot hold"),
        ("mqtt://broker:99999/t", "Port out of range"),
        ("mqtt:///t", "needs a host"),
        ("s3://", "needs a bucket"),
        ("s3://b/a/../c", "'..'"),
        ("s3://key:secret@b/p", "not a user"),
        ("s3://b:9000/p", "not a user or a port"),
        ("file://", "needs a file name"),
        ("file:///etc/cron.d/x.jsonl", "not a path"),
        ("file://../escape.jsonl", "not a path"),
        ("file://sub/dir.jsonl", "not a path"),
        ("file://notjsonl.txt", "not a path"),
    ],
)
def test_bad_sink_urls_say_what_is_accepted(url: str, why: str) -> None:
    with pytest.raises(InvalidParameter, match=why) as refused:
        sink_spec_from_url(url)
    assert (
        "accepted forms: http(s)://" in refused.value.message
        and "s3://bucket/prefix" in refused.value.message
    )


def test_bad_url_errors_hide_passwords() -> None:
    for url in ("mqtt://u:hunter2@h:99999/t", "s3://u:hunter2@b/p", "mqtt://u:hunter2@h"):
        with pytest.raises(InvalidParameter) as refused:
            sink_spec_from_url(url)
        assert "hunter2" not in refused.value.message and "u:***@" in refused.value.message


def test_local_urls_take_any_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local_sink_target("file:///var/log/x.jsonl") == Path("/var/log/x.jsonl")
    assert local_sink_target("file://out.jsonl") == Path("out.jsonl")
    assert local_sink_target("file://runs/a%20b.txt") == Path("runs/a b.txt")
    assert local_sink_target("mqtt://b/t") == sink_spec_from_url("mqtt://b/t")
    with pytest.raises(InvalidParameter, match="accepted forms"):
        local_sink_target("/tmp/x.jsonl")
    sink = build_local_sink(f"file://{tmp_path}/deep/er/out.jsonl", timeout_s=1)
    sink.send(MESSAGE)
    sink.close()
    assert json.loads((tmp_path / "deep/er/out.jsonl").read_text()) == MESSAGE
    monkeypatch.chdir(tmp_path)
    relative = build_local_sink("file://rel.jsonl", timeout_s=1)
    relative.send({"n": 1})
    assert json.loads((tmp_path / "rel.jsonl").read_text()) == {"n": 1}
    with pytest.raises(InvalidParameter, match="s3:// sinks are not available"):
        build_local_sink("s3://b/p", timeout_s=1)


# -- S3 ------------------------------------------------------------------------------------------------

KEY = re.compile(r"^cams/front/2026/03/04/05/(\d{13})-(\d{6})-[0-9a-f]{32}\.json$")


def folder_writer(root: Path) -> Any:
    """A put_object writing ``root/bucket/key`` (what the server does for a bucket mapped to a folder)."""

    def put_object(bucket: str, key: str, body: bytes) -> None:
        path = root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    return put_object


def test_s3_sink_writes_one_sortable_object_per_message(tmp_path: Path) -> None:
    at = 1772600706.5  # 2026-03-04 05:05:06.5 UTC; the clock stands still: the sequence keeps the order
    sink = S3Sink(S3Target(bucket="events", prefix="/cams/front/"), folder_writer(tmp_path), clock=lambda: at)
    for n in range(12):
        sink.send({"n": n, "text": "café"})
    sink.close()
    keys = sorted(str(p.relative_to(tmp_path / "events")) for p in (tmp_path / "events").rglob("*.json"))
    assert len(keys) == 12
    for key in keys:
        match = KEY.fullmatch(key)
        assert match is not None, key
        assert match.group(1) == "1772600706500"
    bodies = [json.loads((tmp_path / "events" / key).read_bytes()) for key in keys]
    assert bodies == [{"n": n, "text": "café"} for n in range(12)]


def test_s3_sink_from_a_spec_and_its_errors(tmp_path: Path) -> None:
    spec = sink_spec_from_url("s3://events")
    assert spec.kind == "s3" and redacted(spec) == {"s3": {"bucket": "events", "prefix": ""}}
    with pytest.raises(SinkError, match="not available"):
        build_sink(spec, jsonl_dir=tmp_path, timeout_s=1)
    sink = build_sink(spec, jsonl_dir=tmp_path, timeout_s=1, put_object=folder_writer(tmp_path))
    sink.send({"n": 1})
    (written,) = (tmp_path / "events").rglob("*.json")
    assert re.fullmatch(
        r"\d{4}/\d\d/\d\d/\d\d/\d{13}-000000-[0-9a-f]{32}\.json",
        str(written.relative_to(tmp_path / "events")),
    )

    def refusing(bucket: str, key: str, body: bytes) -> None:
        raise PermissionError(13, "Permission denied", "/srv/secret/path")

    with pytest.raises(
        SinkError, match=r"s3://events/: cannot write .*: PermissionError: Permission denied$"
    ) as failed:
        S3Sink(S3Target(bucket="events"), refusing).send({"n": 1})
    assert "/srv/secret" not in failed.value.message

    def unknown(bucket: str, key: str, body: bytes) -> None:
        raise InvalidParameter(f"bucket {bucket!r} is not served by this server")

    with pytest.raises(SinkError, match="InvalidParameter: bucket 'events' is not served"):
        S3Sink(S3Target(bucket="events"), unknown).send({"n": 1})

    def odd(bucket: str, key: str, body: bytes) -> None:
        raise RuntimeError("text from a client library, token=abc")

    with pytest.raises(SinkError, match=r"RuntimeError$"):
        S3Sink(S3Target(bucket="events"), odd).send({"n": 1})

    def down(bucket: str, key: str, body: bytes) -> None:
        raise SinkError("s3 endpoint: no answer in time")

    with pytest.raises(SinkError, match=r"^s3 endpoint: no answer in time$"):
        S3Sink(S3Target(bucket="events"), down).send({"n": 1})
