"""SpooledSink against real receivers on 127.0.0.1 (an HTTP server, a mosquitto broker, files): down
sinks, failing sinks, overflow, close and reopen. Backoffs are short so that each test takes ~1 s."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from keeneye.streams.sinks import (
    MqttSink,
    MqttTarget,
    S3Sink,
    S3Target,
    Sink,
    SinkError,
    WebhookSink,
    WebhookTarget,
)
from keeneye.streams.spool import SpooledSink, SpoolStats
from tests.factories import loopback_egress
from tests.receivers import free_port, mosquitto_broker, mqtt_subscriber, wait_until, webhook_receiver

FAST: dict[str, Any] = {"initial_backoff_s": 0.05, "max_backoff_s": 0.2}


def records(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"n": n, "text": "café"} for n in range(start, stop)]


def webhook(port: int, timeout_s: float = 2.0) -> WebhookSink:
    return WebhookSink(
        WebhookTarget(url=f"http://127.0.0.1:{port}/hook"), timeout_s=timeout_s, egress=loopback_egress()
    )


def wait_stats(spool: SpooledSink, ok: Any, what: str) -> SpoolStats:
    wait_until(lambda: ok(spool.stats()), what=what)
    return spool.stats()


class DownSink:
    """A sink that is always down (counts its attempts)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.closed = False

    def send(self, message: Mapping[str, Any]) -> None:
        self.attempts += 1
        raise SinkError("down for the test")

    def close(self) -> None:
        self.closed = True


def test_webhook_down_then_up_gets_every_record_in_order(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: connections are refused
    spool = SpooledSink(webhook(port), tmp_path / "spool", **FAST)
    for message in records(0, 20):
        spool.send(message)
    down = wait_stats(spool, lambda s: s.failures >= 2, "failed attempts")
    assert down.state == "retrying" and down.queued == 20 and down.delivered == 0
    assert down.last_error is not None and "webhook" in down.last_error
    with webhook_receiver(port=port) as hook:
        spool.send({"n": 20, "text": "café"})
        got = hook.wait_for(21)
        up = wait_stats(spool, lambda s: s.queued == 0, "an empty spool")
        spool.close()
    assert [r.body for r in got] == records(0, 21)
    assert (up.delivered, up.dropped, up.state) == (21, 0, "ok")
    assert spool.stats().state == "closed"


def test_receiver_answering_500_then_200(tmp_path: Path) -> None:
    with webhook_receiver(status=500) as hook:
        spool = SpooledSink(webhook(hook.port), tmp_path, **FAST)
        for message in records(0, 5):
            spool.send(message)
        failing = wait_stats(spool, lambda s: s.failures >= 3, "failed attempts")
        assert failing.last_error is not None and "did not accept" in failing.last_error
        hook.status = 200
        got = hook.wait_for(5)
        wait_stats(spool, lambda s: s.queued == 0, "an empty spool")
        spool.close()
    assert [r.body for r in got] == records(0, 5)  # the receiver records only what it accepted: no gaps
    assert spool.stats().delivered == 5


def test_send_returns_at_once_while_the_sink_hangs(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts connections, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        spool = SpooledSink(webhook(silent.getsockname()[1], timeout_s=0.5), tmp_path, **FAST)
        started = time.monotonic()
        for message in records(0, 200):
            spool.send(message)
        assert time.monotonic() - started < 1.0
        closing = time.monotonic()
        spool.close(timeout_s=0)  # waits only for the send in progress (bounded by the sink's 0.5 s)
        assert time.monotonic() - closing < 3.0
    assert spool.stats().queued == 200 and spool.stats().state == "closed"


def test_delivery_is_prompt_when_the_sink_is_up(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        # A long backoff: delivery must come from send waking the thread, not from polling.
        spool = SpooledSink(webhook(hook.port), tmp_path, initial_backoff_s=10, max_backoff_s=10)
        time.sleep(0.05)  # the thread is idle, waiting for work
        for n in range(3):
            sent = time.monotonic()
            spool.send({"n": n})
            hook.wait_for(n + 1, timeout_s=1.0)
            assert time.monotonic() - sent < 0.5
        spool.close()


@pytest.mark.mosquitto
def test_mqtt_broker_stopped_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    gate = threading.Event()  # see GatedSink
    gate.set()
    mqtt = MqttSink(
        MqttTarget(host="127.0.0.1", port=port, topic="keeneye/stream"), timeout_s=2, egress=loopback_egress()
    )
    spool = SpooledSink(GatedSink(mqtt, gate), tmp_path / "spool", **FAST)
    with (
        mosquitto_broker(tmp_path / "one", port=port) as broker,
        mqtt_subscriber(broker.port, "keeneye/stream") as sub,
    ):
        for message in records(0, 3):
            spool.send(message)
        assert sub.wait_for(3) == records(0, 3)
    for message in records(3, 8):  # the broker is gone
        spool.send(message)
    down = wait_stats(spool, lambda s: s.failures >= 1, "a failed publish")
    assert down.last_error is not None and down.last_error.startswith("mqtt://127.0.0.1")
    assert down.queued == 5
    gate.clear()
    with (
        mosquitto_broker(tmp_path / "two", port=port) as broker,
        mqtt_subscriber(broker.port, "keeneye/stream") as sub,
    ):
        gate.set()
        assert sub.wait_for(5) == records(3, 8)
        wait_stats(spool, lambda s: s.queued == 0, "an empty spool")
    spool.close()
    assert spool.stats().delivered == 8


class GatedSink:
    """Passes sends to ``sink`` while ``gate`` is set, else fails them. The broker keeps no messages
    for a subscriber that is not there yet, so the test holds delivery while its subscriber connects to
    the restarted broker; the failures that matter (broker gone) come from the real MqttSink."""

    def __init__(self, sink: Sink, gate: threading.Event) -> None:
        self._sink = sink
        self._gate = gate

    def send(self, message: Mapping[str, Any]) -> None:
        if not self._gate.is_set():
            raise SinkError("gate closed by the test")
        self._sink.send(message)

    def close(self) -> None:
        self._sink.close()


def test_overflow_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    port = free_port()
    spool = SpooledSink(webhook(port), tmp_path, max_records=5, initial_backoff_s=30, max_backoff_s=30)
    spool.send({"n": 0})
    wait_stats(spool, lambda s: s.failures == 1, "a failed attempt")  # now waiting: nothing in flight
    for message in records(1, 12):
        spool.send({"n": message["n"]})
    full = spool.stats()
    assert (full.queued, full.dropped, full.delivered) == (5, 7, 0)
    with webhook_receiver(port=port) as hook:
        spool.close(timeout_s=10)  # close cuts the 30 s backoff short and delivers what is left
        assert [r.body for r in hook.messages()] == [{"n": n} for n in range(7, 12)]
    assert spool.stats().queued == 0


def test_byte_bound_keeps_the_newest_records(tmp_path: Path) -> None:
    down = DownSink()
    spool = SpooledSink(down, tmp_path, max_bytes=1000, initial_backoff_s=30, max_backoff_s=30, name="cam/0")
    assert spool.name == "cam/0"
    padded = [{"n": n, "pad": "x" * 80} for n in range(40)]  # ~100 bytes each
    spool.send(padded[0])
    wait_stats(spool, lambda s: s.failures == 1, "a failed attempt")
    for message in padded[1:]:
        spool.send(message)
    size = len(json.dumps(padded[10], separators=(",", ":")))
    stats = spool.stats()
    assert stats.queued == 1000 // size and stats.dropped == 40 - stats.queued
    spool.send({"huge": "y" * 2000})  # can never fit: dropped itself, the others stay
    assert down.attempts == 1
    assert spool.stats().queued == stats.queued and spool.stats().dropped == stats.dropped + 1
    spool.close(timeout_s=0)
    assert down.closed


def test_close_and_reopen_delivers_what_was_left(tmp_path: Path) -> None:
    port = free_port()
    down_sink = webhook(port)
    first = SpooledSink(down_sink, tmp_path / "spool", **FAST)
    for message in records(0, 5):
        first.send(message)
    with pytest.raises(SinkError, match="in use"):  # one spool per folder at a time
        SpooledSink(DownSink(), tmp_path / "spool")
    first.close(timeout_s=0.3)
    assert first.stats() == SpoolStats(
        queued=5,
        delivered=0,
        dropped=0,
        failures=first.stats().failures,
        last_error=first.stats().last_error,
        state="closed",
    )
    assert first.stats().failures >= 1
    with pytest.raises(SinkError, match="closed"):
        first.send({"n": 99})
    with webhook_receiver(port=port) as hook:
        second = SpooledSink(webhook(port), tmp_path / "spool", **FAST)
        for message in records(5, 7):
            second.send(message)
        got = hook.wait_for(7)
        second.close()
    assert [r.body for r in got] == records(0, 7)
    assert second.stats().delivered == 7 and second.stats().queued == 0


def test_s3_sink_behind_a_spool_retries_a_failing_writer(tmp_path: Path) -> None:
    failures = [OSError(28, "disk full"), OSError(28, "disk full")]

    def put_object(bucket: str, key: str, body: bytes) -> None:
        if failures:
            raise failures.pop()
        path = tmp_path / "buckets" / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    spool = SpooledSink(S3Sink(S3Target(bucket="events", prefix="cam1"), put_object), tmp_path / "s", **FAST)
    for message in records(0, 4):
        spool.send(message)
    wait_stats(spool, lambda s: s.delivered == 4, "4 objects")
    spool.close()
    stats = spool.stats()
    assert stats.failures == 2 and stats.last_error is not None and "OSError: disk full" in stats.last_error
    objects = sorted((tmp_path / "buckets" / "events" / "cam1").rglob("*.json"))
    assert [json.loads(p.read_bytes()) for p in objects] == records(0, 4)


def test_bad_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bound"):
        SpooledSink(DownSink(), tmp_path, max_bytes=None, max_records=None)
    with pytest.raises(ValueError, match="backoff"):
        SpooledSink(DownSink(), tmp_path, initial_backoff_s=5, max_backoff_s=1)
