"""Real receivers for the notification tests, on 127.0.0.1 only, with bounded waits.

* :class:`WebhookReceiver`: an ``http.server`` in a thread that records every POST (path, headers,
  JSON body) and answers ``status`` (200 unless a test wants failures).
* :class:`MosquittoBroker`: a real ``mosquitto -c <conf>`` process listening on a free port of
  127.0.0.1 (no persistence), stopped (terminate, then kill) when the test ends.
* :class:`MqttSubscriber`: a paho-mqtt client that collects what is published to a topic.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.system import install_hint

WAIT_S = 15.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (nothing listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout_s: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.02)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.time)  # wall clock when it arrived


class WebhookReceiver:
    """An HTTP server on 127.0.0.1:``port`` (0: a free one) recording POSTed JSON."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        self.status = status
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver._lock:
                    status = receiver.status
                    if 200 <= status < 300:
                        receiver.received.append(
                            Received(
                                self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)
                            )
                        )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, n: int, timeout_s: float = WAIT_S) -> list[Received]:
        wait_until(lambda: len(self.messages()) >= n, timeout_s, f"{n} webhook message(s)")
        return self.messages()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def webhook_receiver(port: int = 0, status: int = 200) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(port, status)
    try:
        yield receiver
    finally:
        receiver.stop()


class MosquittoBroker:
    """``mosquitto`` on 127.0.0.1:``port``; ``passwords``: user -> password (then anonymous is refused)."""

    def __init__(
        self, folder: Path, port: int | None = None, passwords: dict[str, str] | None = None
    ) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        assert Path(exe).is_file(), f"mosquitto is not installed: {install_hint('mosquitto')}"
        self.port = port or free_port()
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr"]
        if os.geteuid() == 0:  # as root, mosquitto would switch to its own user, who cannot read tmp_path
            lines.append("user root")
        if passwords:
            pw_file = folder / "passwords"
            pw_file.write_text("")
            for user, password in passwords.items():
                subprocess.run(
                    [
                        shutil.which("mosquitto_passwd") or "mosquitto_passwd",
                        "-b",
                        str(pw_file),
                        user,
                        password,
                    ],
                    check=True,
                    timeout=10,
                    capture_output=True,
                )
            pw_file.chmod(0o644)
            lines += ["allow_anonymous false", f"password_file {pw_file}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=self._log_file, stderr=subprocess.STDOUT
        )
        try:
            wait_until(self._accepts, 10.0, f"mosquitto on port {self.port}")
        except AssertionError:
            self.stop()
            raise AssertionError(f"mosquitto did not start: {self.log.read_text()[-2000:]}") from None

    def _accepts(self) -> bool:
        assert self.process.poll() is None, f"mosquitto exited: {self.log.read_text()[-2000:]}"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log_file.close()


@contextmanager
def mosquitto_broker(
    folder: Path, port: int | None = None, passwords: dict[str, str] | None = None
) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(folder, port, passwords)
    try:
        yield broker
    finally:
        broker.stop()


class MqttSubscriber:
    """A paho client subscribed to ``topic`` on the broker, collecting JSON payloads."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.payloads: list[Any] = []
        self.arrivals: list[float] = []  # wall clock of each payload's arrival
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}"
        )

        def on_connect(client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_subscribe(*_: Any) -> None:
            subscribed.set()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with self._lock:
                self.payloads.append(json.loads(msg.payload))
                self.arrivals.append(time.time())

        self._client.on_connect = on_connect
        self._client.on_subscribe = on_subscribe
        self._client.on_message = on_message
        self._client.connect("127.0.0.1", port, keepalive=30)
        self._client.loop_start()
        assert subscribed.wait(10), "the test subscriber could not subscribe"

    def wait_for(self, n: int, timeout_s: float = WAIT_S) -> list[Any]:
        def got() -> bool:
            with self._lock:
                return len(self.payloads) >= n

        wait_until(got, timeout_s, f"{n} MQTT message(s)")
        with self._lock:
            return list(self.payloads)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def mqtt_subscriber(port: int, topic: str) -> Iterator[MqttSubscriber]:
    sub = MqttSubscriber(port, topic)
    try:
        yield sub
    finally:
        sub.stop()
