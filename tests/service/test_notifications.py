"""NotificationService against real sinks: the SNS envelope, retries with backoff, restart resume,
channels (redacted), and the same envelope on every sink kind."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keeneye.config import NotificationSettings
from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.service.video.notifications import NotificationService, sns_envelope
from keeneye.store.db import Store
from tests.factories import loopback_egress
from tests.receivers import free_port, mosquitto_broker, mqtt_subscriber, wait_until, webhook_receiver

TOPIC = "arn:aws:sns:us-east-1:123456789012:AmazonRekognitionJobs"
OTHER = "arn:aws:sns:eu-west-1:123456789012:other"
FAST = NotificationSettings(timeout_s=2.0, retry_initial_s=0.2, retry_max_s=0.4, poll_s=0.2)
PAYLOAD = {"JobId": "j1", "Status": "SUCCEEDED"}


def _service(
    store: Store, tmp_path: Path, settings: NotificationSettings = FAST, **kw: Any
) -> NotificationService:
    service = NotificationService(store, settings, tmp_path, **{"egress": loopback_egress(), **kw})
    service.start()  # the delivery thread (none with deliver=False)
    return service


def _delivered(service: NotificationService, message_id: str) -> bool:
    return any(d.message_id == message_id and d.state == "delivered" for d in service.deliveries())


def test_envelope_is_an_sns_notification() -> None:
    now = datetime(2026, 11, 27, 7, 30, 1, 234567, tzinfo=UTC)
    env = sns_envelope(TOPIC, PAYLOAD, now=now, subject="done")
    assert list(env) == ["Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp"]
    assert env["Type"] == "Notification" and env["TopicArn"] == TOPIC and env["Subject"] == "done"
    assert json.loads(env["Message"]) == PAYLOAD
    assert env["Timestamp"] == "2026-11-27T07:30:01.234Z"
    assert re.fullmatch(r"[0-9a-f-]{36}", env["MessageId"])
    assert "Subject" not in sns_envelope(TOPIC, PAYLOAD, now=now)


def test_webhook_delivery_and_channel_crud(store: Store, tmp_path: Path) -> None:
    service = _service(store, tmp_path)
    with webhook_receiver() as hook:
        channel = service.put_channel(
            TOPIC, {"webhook": {"url": hook.url, "headers": {"Authorization": "k3y"}}}
        )
        assert channel.to_dict()["sink"] == {
            "webhook": {"url": hook.url, "headers": {"Authorization": "***"}}
        }
        message_id = service.publish(TOPIC, PAYLOAD)
        got = hook.wait_for(1)[0]
        wait_until(lambda: _delivered(service, message_id), what="delivered_at")
    assert got.body["MessageId"] == message_id and json.loads(got.body["Message"]) == PAYLOAD
    assert got.headers["authorization"] == "k3y"
    assert got.headers["x-amz-sns-message-type"] == "Notification"
    assert got.headers["x-amz-sns-topic-arn"] == TOPIC
    assert [c.topic_arn for c in service.list_channels()] == [TOPIC]
    assert service.get_channel(TOPIC).pending == 0
    service.delete_channel(TOPIC)
    with pytest.raises(NotFound):
        service.get_channel(TOPIC)
    with pytest.raises(NotFound):
        service.delete_channel(TOPIC)
    service.close()


def test_unknown_topic_and_bad_specs_are_invalid(store: Store, tmp_path: Path) -> None:
    service = _service(store, tmp_path, deliver=False)
    with pytest.raises(InvalidParameter, match=r"PUT /v1/notification-channels/arn:aws:sns"):
        service.require_channel(TOPIC)
    for bad_arn in ("arn:aws:sqs:us-east-1:123456789012:q", "topic", "arn:aws:sns:r:123:short"):
        with pytest.raises(InvalidParameter, match="not an SNS topic ARN"):
            service.put_channel(bad_arn, {"jsonl": {"name": "a.jsonl"}})
    with pytest.raises(InvalidParameter, match=r"invalid notification channel: jsonl\.name"):
        service.put_channel(TOPIC, {"jsonl": {"name": "../../etc/cron.d/x.jsonl"}})
    with pytest.raises(InvalidParameter, match="exactly one"):
        service.put_channel(TOPIC, {})
    service.close()


def test_retries_with_backoff_until_the_receiver_comes_up(store: Store, tmp_path: Path) -> None:
    port = free_port()
    service = _service(store, tmp_path)
    service.put_channel(TOPIC, {"webhook": {"url": f"http://127.0.0.1:{port}/hook"}})
    message_id = service.publish(TOPIC, PAYLOAD)
    wait_until(lambda: service.deliveries()[0].attempts >= 2, what="two failed attempts")
    failed = service.deliveries()[0]
    assert failed.state == "pending" and failed.last_error and "webhook" in failed.last_error
    assert failed.next_attempt_at is not None and failed.last_attempt_at is not None
    assert service.get_channel(TOPIC).pending == 1
    assert service.get_channel(TOPIC).last_error == failed.last_error
    with webhook_receiver(port) as hook:
        got = hook.wait_for(1)
        wait_until(lambda: _delivered(service, message_id), what="delivered_at")
    assert got[0].body["MessageId"] == message_id
    done = service.deliveries(state="delivered")[0]
    assert done.attempts >= 3 and done.delivered_at is not None and done.next_attempt_at is None
    service.close()


def test_backoff_doubles_up_to_the_cap(store: Store, tmp_path: Path) -> None:
    service = _service(
        store, tmp_path, NotificationSettings(retry_initial_s=1.5, retry_max_s=10.0), deliver=False
    )
    assert [service._backoff(n) for n in (1, 2, 3, 4, 5, 200)] == [1.5, 3.0, 6.0, 10.0, 10.0, 10.0]
    service.close()


def test_undelivered_message_is_sent_after_a_restart(store: Store, tmp_path: Path) -> None:
    port = free_port()
    first = _service(store, tmp_path)
    first.put_channel(TOPIC, {"webhook": {"url": f"http://127.0.0.1:{port}/hook"}})
    message_id = first.publish(TOPIC, PAYLOAD)
    wait_until(lambda: first.deliveries()[0].attempts >= 1, what="a failed attempt")
    first.close()
    with webhook_receiver(port) as hook:
        again = _service(store, tmp_path)
        got = hook.wait_for(1)
        wait_until(lambda: _delivered(again, message_id), what="delivered_at")
        again.close()
    assert [m.body["MessageId"] for m in got] == [message_id]


def test_message_without_a_channel_waits_for_one(store: Store, tmp_path: Path) -> None:
    service = _service(store, tmp_path)
    message_id = service.publish(TOPIC, PAYLOAD)
    wait_until(lambda: service.deliveries()[0].attempts >= 1, what="a failed attempt")
    assert "PUT /v1/notification-channels/" in (service.deliveries()[0].last_error or "")
    service.put_channel(TOPIC, {"jsonl": {"name": "late.jsonl"}})
    wait_until(lambda: _delivered(service, message_id), what="delivered_at")
    line = json.loads((tmp_path / "notifications" / "late.jsonl").read_text())
    assert line["MessageId"] == message_id
    service.close()


def test_a_failing_topic_does_not_hold_up_the_others(store: Store, tmp_path: Path) -> None:
    service = _service(store, tmp_path, NotificationSettings(timeout_s=2.0, retry_initial_s=30, poll_s=0.2))
    service.put_channel(TOPIC, {"webhook": {"url": f"http://127.0.0.1:{free_port()}/down"}})
    service.put_channel(OTHER, {"jsonl": {"name": "ok.jsonl"}})
    stuck = [service.publish(TOPIC, {"n": i}) for i in range(3)]
    fine = service.publish(OTHER, PAYLOAD)
    wait_until(lambda: _delivered(service, fine), what="the other topic's message")
    by_id = {d.message_id: d for d in service.deliveries()}
    # one attempt for the topic's first message; the others wait for its retry instead of failing too
    assert [by_id[m].attempts for m in stuck] == [1, 0, 0]
    assert len({by_id[m].next_attempt_at for m in stuck}) == 1
    service.close()


@pytest.mark.mosquitto
def test_every_sink_gets_the_same_envelope(store: Store, tmp_path: Path) -> None:
    service = _service(store, tmp_path)
    topics = {kind: f"arn:aws:sns:us-east-1:123456789012:{kind}" for kind in ("webhook", "mqtt", "jsonl")}
    with (
        webhook_receiver() as hook,
        mosquitto_broker(tmp_path / "broker") as broker,
        mqtt_subscriber(broker.port, "rekognition/jobs") as sub,
    ):
        service.put_channel(topics["webhook"], {"webhook": {"url": hook.url}})
        service.put_channel(
            topics["mqtt"], {"mqtt": {"host": "127.0.0.1", "port": broker.port, "topic": "rekognition/jobs"}}
        )
        service.put_channel(topics["jsonl"], {"jsonl": {"name": "jobs.jsonl"}})
        ids = {kind: service.publish(arn, PAYLOAD) for kind, arn in topics.items()}
        received = {"webhook": hook.wait_for(1)[0].body, "mqtt": sub.wait_for(1)[0]}
        wait_until(lambda: all(_delivered(service, m) for m in ids.values()), what="three deliveries")
        service.close()  # disconnects the MQTT sink before the broker stops
    received["jsonl"] = json.loads((tmp_path / "notifications" / "jobs.jsonl").read_text())
    for kind, envelope in received.items():
        assert set(envelope) == {"Type", "MessageId", "TopicArn", "Message", "Timestamp"}, kind
        assert envelope["MessageId"] == ids[kind] and envelope["TopicArn"] == topics[kind]
        assert json.loads(envelope["Message"]) == PAYLOAD


def test_putting_the_channel_again_retries_at_once(store: Store, tmp_path: Path) -> None:
    port = free_port()
    service = _service(store, tmp_path, NotificationSettings(timeout_s=2.0, retry_initial_s=60, poll_s=0.2))
    spec = {"webhook": {"url": f"http://127.0.0.1:{port}/hook"}}
    service.put_channel(TOPIC, spec)
    message_id = service.publish(TOPIC, PAYLOAD)
    wait_until(lambda: service.deliveries()[0].attempts == 1, what="a failed attempt")
    with webhook_receiver(port) as hook:
        service.put_channel(TOPIC, spec)  # the same sink: its next try would be a minute away
        assert hook.wait_for(1, timeout_s=5)[0].body["MessageId"] == message_id
    service.close()
