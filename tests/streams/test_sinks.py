"""The sinks against real receivers on 127.0.0.1: an HTTP server, a mosquitto broker, files."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from keeneye.streams.sinks import (
    JsonlSink,
    MqttSink,
    MqttTarget,
    SinkError,
    SinkSpec,
    WebhookSink,
    WebhookTarget,
    build_sink,
    redacted,
)
from tests.receivers import free_port, mosquitto_broker, mqtt_subscriber, webhook_receiver

MESSAGE = {"Type": "Notification", "Message": '{"JobId":"j1"}', "unicode": "café"}


def test_webhook_posts_json_with_headers() -> None:
    with webhook_receiver() as hook:
        sink = WebhookSink(
            WebhookTarget(url=hook.url, headers={"Authorization": "Bearer s3cret"}),
            timeout_s=5,
            extra_headers={"x-amz-sns-message-type": "Notification"},
        )
        sink.send(MESSAGE)
        sink.send({"n": 2})
        sink.close()
        got = hook.wait_for(2)
    assert got[0].path == "/hook" and got[0].body == MESSAGE and got[1].body == {"n": 2}
    assert got[0].headers["authorization"] == "Bearer s3cret"
    assert got[0].headers["content-type"] == "application/json"
    assert got[0].headers["x-amz-sns-message-type"] == "Notification"


def test_webhook_errors_name_the_problem_not_the_secret() -> None:
    with webhook_receiver(status=500) as hook:
        sink = WebhookSink(WebhookTarget(url=hook.url.replace("//", "//u:pw@")), timeout_s=5)
        with pytest.raises(SinkError, match="HTTP 500") as failed:
            sink.send(MESSAGE)
        assert "pw" not in failed.value.message
        sink.close()
    down = WebhookSink(WebhookTarget(url=f"http://127.0.0.1:{free_port()}/x"), timeout_s=5)
    with pytest.raises(SinkError, match="webhook"):
        down.send(MESSAGE)
    down.close()


def test_webhook_that_never_answers_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts connections, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        sink = WebhookSink(WebhookTarget(url=f"http://127.0.0.1:{silent.getsockname()[1]}/"), timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(SinkError, match="no answer in time"):
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
    sink = MqttSink(MqttTarget(host="127.0.0.1", port=port, topic="keeneye/jobs"), timeout_s=5)
    with pytest.raises(SinkError, match="cannot connect"):  # no broker yet
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
def test_mqtt_credentials(tmp_path: Path) -> None:
    with mosquitto_broker(tmp_path, passwords={"keeneye": "right"}) as broker:
        good = MqttSink(
            MqttTarget(host="127.0.0.1", port=broker.port, topic="t", username="keeneye", password="right"),
            timeout_s=5,
        )
        good.send(MESSAGE)
        good.close()
        bad = MqttSink(
            MqttTarget(host="127.0.0.1", port=broker.port, topic="t", username="keeneye", password="wrong"),
            timeout_s=5,
        )
        with pytest.raises(SinkError, match="refused") as refused:
            bad.send(MESSAGE)
        assert "wrong" not in refused.value.message
        bad.close()
