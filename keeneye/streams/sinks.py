"""Sinks: where a JSON message goes (a webhook, an MQTT topic, a JSONL file).

A sink is an object with ``send(message) -> None`` that either delivers the message or raises
:class:`SinkError` with a message fit for an operator (never a secret); ``close()`` frees its
connection. Sinks do not retry, queue or log: the caller owns delivery policy (the notification
outbox in keeneye.service.notifications retries with backoff; the live-stream runtime will reuse the
same sinks for events). A sink is used by one thread at a time.

Targets are described by small pydantic models (:class:`SinkSpec` holds exactly one of
``webhook``, ``mqtt``, ``jsonl``) so that the native API, the database and the settings share one
validated shape. Secrets (webhook header values, URL passwords, the MQTT password) are stored as
given and shown only through :func:`redacted`.

* ``webhook``: ``POST`` of the message as JSON (``Content-Type: application/json``) with the
  configured headers; any 2xx answer is a delivery, anything else (or no answer within the timeout)
  an error. Redirects are not followed.
* ``mqtt``: a persistent MQTT 3.1.1 connection (paho-mqtt); the message is published as JSON with
  QoS 1 by default and counts as delivered when the broker acknowledges it (PUBACK). Any failure
  drops the connection; the next send reconnects.
* ``jsonl``: one line per message appended to a file under a folder the server chooses (the
  notifications folder of the data directory), written and ``fsync``-ed before ``send`` returns.
  The file is named by a plain file name, never a path: a request cannot choose where it writes.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keeneye.core.errors import KeeneyeError

REDACTED = "***"
_JSONL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}\.jsonl$")


class SinkError(KeeneyeError):
    """A message could not be delivered (the target is down, refused it or timed out)."""

    code = "SinkError"


class Sink(Protocol):
    """Delivers one JSON-serialisable message, or raises SinkError."""

    def send(self, message: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


# -- targets ------------------------------------------------------------------------------------------


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookTarget(_Target):
    url: str = Field(description="http:// or https:// URL the message is POSTed to")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (e.g. Authorization); values are secret"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        return url

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                raise ValueError(f"invalid header name {name!r}")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} has a line break in its value")
        return headers


class MqttTarget(_Target):
    host: str = Field(min_length=1, description="Broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port (1883; 8883 is usual with TLS)")
    topic: str = Field(min_length=1, max_length=65535, description="Topic published to (no wildcards)")
    username: str | None = Field(None, description="User name, if the broker wants one")
    password: str | None = Field(None, description="Password (secret: never shown back)")
    tls: bool = Field(False, description="Connect with TLS, verified against the system's CA certificates")
    qos: Literal[0, 1, 2] = Field(1, description="MQTT QoS; 1 or 2: delivered once the broker acknowledges")

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, topic: str) -> str:
        if "+" in topic or "#" in topic or "\x00" in topic:
            raise ValueError("an MQTT topic to publish to cannot hold '+', '#' or NUL")
        return topic


class JsonlTarget(_Target):
    name: str = Field(
        description="File name (letters, digits, '.', '_', '-', ending in .jsonl) in the server's "
        "notifications folder; never a path"
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not _JSONL_NAME.fullmatch(name) or ".." in name:
            raise ValueError(
                "name must be a plain file name ending in .jsonl (letters, digits, '.', '_', '-'; no folders)"
            )
        return name


class SinkSpec(_Target):
    """Exactly one target: ``{"webhook": {...}}``, ``{"mqtt": {...}}`` or ``{"jsonl": {...}}``."""

    webhook: WebhookTarget | None = None
    mqtt: MqttTarget | None = None
    jsonl: JsonlTarget | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SinkSpec:
        given = [k for k in ("webhook", "mqtt", "jsonl") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'webhook', 'mqtt' or 'jsonl'")
        return self

    @property
    def kind(self) -> Literal["webhook", "mqtt", "jsonl"]:
        if self.webhook is not None:
            return "webhook"
        return "mqtt" if self.mqtt is not None else "jsonl"


def redacted(spec: SinkSpec) -> dict[str, Any]:
    """The spec as JSON with its secrets replaced by ``***`` (header values, URL password, MQTT password)."""
    out = spec.model_dump(mode="json", exclude_none=True)
    if spec.webhook is not None:
        hook = out["webhook"]
        hook["headers"] = dict.fromkeys(spec.webhook.headers, REDACTED)
        hook["url"] = _redact_url(spec.webhook.url)
    if spec.mqtt is not None and spec.mqtt.password is not None:
        out["mqtt"]["password"] = REDACTED
    return out


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def build_sink(
    spec: SinkSpec,
    *,
    jsonl_dir: Path,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> Sink:
    """The sink for ``spec``. ``jsonl_dir``: the folder JSONL files live in; ``timeout_s``: bound on
    one send (connect + deliver); ``headers``: fixed extra webhook headers (the caller's, e.g. SNS's)."""
    if spec.webhook is not None:
        return WebhookSink(spec.webhook, timeout_s=timeout_s, extra_headers=headers)
    if spec.mqtt is not None:
        return MqttSink(spec.mqtt, timeout_s=timeout_s)
    assert spec.jsonl is not None
    return JsonlSink(jsonl_dir / spec.jsonl.name)


def _encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


# -- sinks ---------------------------------------------------------------------------------------------


class WebhookSink:
    """POSTs each message as JSON to a URL (httpx, one pooled client per sink)."""

    def __init__(
        self, target: WebhookTarget, *, timeout_s: float, extra_headers: Mapping[str, str] | None = None
    ) -> None:
        import httpx

        self._url = target.url
        self._shown_url = _redact_url(target.url)
        self._headers = {"Content-Type": "application/json", **dict(extra_headers or {}), **target.headers}
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, message: Mapping[str, Any]) -> None:
        import httpx

        try:
            response = self._client.post(self._url, content=_encode(message), headers=self._headers)
        except httpx.TimeoutException:
            raise SinkError(f"webhook {self._shown_url}: no answer in time") from None
        except httpx.HTTPError as exc:
            raise SinkError(f"webhook {self._shown_url}: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise SinkError(f"webhook {self._shown_url} answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class MqttSink:
    """Publishes each message as JSON to one MQTT topic over a persistent connection (paho-mqtt)."""

    def __init__(self, target: MqttTarget, *, timeout_s: float) -> None:
        self._target = target
        self._timeout_s = timeout_s
        self._client: Any = None
        self._connected = threading.Event()
        self._refused: str | None = None
        self._where = f"mqtt://{target.host}:{target.port}/{target.topic}"

    def _connect(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        t = self._target
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"keeneye-{uuid.uuid4().hex[:16]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.connect_timeout = self._timeout_s
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if t.username is not None:
            client.username_pw_set(t.username, t.password)
        if t.tls:
            client.tls_set()
        self._connected.clear()
        self._refused = None

        def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
            if reason.is_failure:
                self._refused = str(reason)
            self._connected.set()

        client.on_connect = on_connect
        try:
            client.connect(t.host, t.port, keepalive=60)
        except (OSError, ValueError) as exc:
            raise SinkError(f"{self._where}: cannot connect: {exc}") from None
        client.loop_start()
        if not self._connected.wait(self._timeout_s):
            self._drop(client)
            raise SinkError(f"{self._where}: the broker did not answer CONNECT in time")
        if self._refused is not None:
            self._drop(client)
            raise SinkError(f"{self._where}: the broker refused the connection: {self._refused}")
        return client

    @staticmethod
    def _drop(client: Any) -> None:
        client.disconnect()
        client.loop_stop()

    def send(self, message: Mapping[str, Any]) -> None:
        if self._client is None or not self._client.is_connected():
            self.close()
            self._client = self._connect()
        try:
            info = self._client.publish(self._target.topic, _encode(message), qos=self._target.qos)
            info.wait_for_publish(self._timeout_s)
            published = info.is_published()
        except (RuntimeError, ValueError) as exc:
            self.close()
            raise SinkError(f"{self._where}: publish failed: {exc}") from None
        if not published:
            self.close()
            raise SinkError(f"{self._where}: the broker did not acknowledge the message in time")

    def close(self) -> None:
        if self._client is not None:
            self._drop(self._client)
            self._client = None


class JsonlSink:
    """Appends each message as one JSON line to a file, ``fsync``-ed before ``send`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, message: Mapping[str, Any]) -> None:
        line = _encode(message) + b"\n"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, flags, 0o640)
                try:
                    written = os.write(fd, line)
                    if written != len(line):
                        raise OSError(f"short write ({written} of {len(line)} bytes)")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise SinkError(f"jsonl {self.path.name}: {exc.strerror or exc}") from None

    def close(self) -> None:
        return None
