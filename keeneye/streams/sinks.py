"""Sinks: where a JSON message goes (a webhook, an MQTT topic, a JSONL file, an S3 bucket).

A sink is an object with ``send(message) -> None`` that either delivers the message or raises
:class:`SinkError` with a message fit for an operator (never a secret); ``close()`` frees its
connection. Sinks do not retry or queue: the caller owns delivery policy (the notification
outbox in keeneye.service.video.notifications retries with backoff; the live-stream runtime will reuse the
same sinks for events). A sink is used by one thread at a time.

Targets are described by small pydantic models (:class:`SinkSpec` holds exactly one of
``webhook``, ``mqtt``, ``jsonl``, ``s3``) so that the native API, the database and the settings share one
validated shape. Secrets (webhook header values, URL passwords, the MQTT password) are kept in these
models as given, shown only through :func:`redacted`, and sealed by the services that store them
(keeneye.service.governance.sealing).

Egress: webhooks and MQTT brokers are reached only where the egress policy allows
(keeneye.streams.egress, ``egress``: checked again at every connection, which goes to a checked address);
:func:`check_egress` is the check at registration. Their errors are one neutral text per class of
failure -- refused by the policy (naming the rule), or "the sink did not accept the message" for
everything else (no connection, a timeout, a TLS error, an HTTP status, an MQTT refusal): telling these
apart would make a sink URL a port scanner. The detail goes to the log (logger ``keeneye.sinks``).

* ``webhook``: ``POST`` of the message as JSON (``Content-Type: application/json``) with the
  configured headers; any 2xx answer is a delivery, anything else (or no answer within the timeout)
  an error. Redirects are not followed.
* ``mqtt``: a persistent MQTT 3.1.1 connection (paho-mqtt); the message is published as JSON with
  QoS 1 by default and counts as delivered when the broker acknowledges it (PUBACK). Any failure
  drops the connection; the next send reconnects.
* ``jsonl``: one line per message appended to a file under a folder the server chooses (the
  notifications folder of the data directory), written and ``fsync``-ed before ``send`` returns.
  The file is named by a plain file name, never a path: a request cannot choose where it writes.
  (The local CLI may write anywhere: keeneye.streams.sink_urls.build_local_sink builds a
  :class:`JsonlSink` on any path.)
* ``s3``: each message is one JSON object ``PUT`` into a bucket, under the key
  ``{prefix}/{yyyy}/{mm}/{dd}/{HH}/{unix_ms:013d}-{seq:06d}-{uuid}.json`` (UTC time of delivery; ``seq``
  counts the sink's objects, so keys sort in delivery order even within one millisecond; no
  ``{prefix}/`` when the prefix is empty). The sinks layer knows no S3 client and no bucket mapping:
  :class:`S3Sink` calls a ``put_object(bucket, key, body)`` the caller provides (the server passes one
  that writes to its mapped bucket folders or its S3 endpoint); without one an ``s3`` spec is refused.

URLs (what users type) are read by keeneye.streams.sink_urls.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keeneye.core.errors import KeeneyeError
from keeneye.store.files import PRIVATE_DIR, private_fd
from keeneye.streams.egress import EgressPolicy, EgressRefused, http_transport

log = logging.getLogger("keeneye.sinks")
NOT_ACCEPTED = "the sink did not accept the message (the server log has the details)"

REDACTED = "***"
_JSONL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}\.jsonl$")
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
MAX_S3_PREFIX_CHARS = 512

PutObject = Callable[[str, str, bytes], None]
"""``put_object(bucket, key, body)``: stores one object or raises. A SinkError's or other keeneye error's
message is shown as is (it must be fit for an operator); an OSError by its strerror; anything else by its
type name only."""


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


class S3Target(_Target):
    bucket: str = Field(description="Bucket name (letters, digits, '.', '_', '-'; at most 255 characters)")
    prefix: str = Field(
        "",
        max_length=MAX_S3_PREFIX_CHARS,
        description="Key prefix the objects are written under ('a/b': keys 'a/b/yyyy/mm/dd/HH/...'); "
        "slashes at either end are dropped; no '.', '..' or empty segments",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, bucket: str) -> str:
        if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
            raise ValueError("bucket must be a bucket name (letters, digits, '.', '_', '-'), not a path")
        return bucket

    @field_validator("prefix")
    @classmethod
    def _key_prefix(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        if not prefix:
            return ""
        if "\\" in prefix or any(ord(c) < 32 or ord(c) == 127 for c in prefix):
            raise ValueError("prefix cannot hold a backslash or control characters")
        if any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ValueError("prefix cannot hold '.', '..' or empty ('//') segments")
        return prefix


_KINDS = ("webhook", "mqtt", "jsonl", "s3")


class SinkSpec(_Target):
    """Exactly one target: ``{"webhook": {...}}``, ``{"mqtt": {...}}``, ``{"jsonl": {...}}`` or
    ``{"s3": {...}}``."""

    webhook: WebhookTarget | None = None
    mqtt: MqttTarget | None = None
    jsonl: JsonlTarget | None = None
    s3: S3Target | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SinkSpec:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'webhook', 'mqtt', 'jsonl' or 's3'")
        return self

    @property
    def kind(self) -> Literal["webhook", "mqtt", "jsonl", "s3"]:
        if self.webhook is not None:
            return "webhook"
        if self.mqtt is not None:
            return "mqtt"
        return "jsonl" if self.jsonl is not None else "s3"


def redacted(spec: SinkSpec) -> dict[str, Any]:
    """The spec as JSON with its secrets replaced by ``***`` (header values, URL password, MQTT password)."""
    out = spec.model_dump(mode="json", exclude_none=True)
    if spec.webhook is not None:
        hook = out["webhook"]
        hook["headers"] = dict.fromkeys(spec.webhook.headers, REDACTED)
        hook["url"] = redacted_url(spec.webhook.url)
    if spec.mqtt is not None and spec.mqtt.password is not None:
        out["mqtt"]["password"] = REDACTED
    return out


def redacted_url(url: str) -> str:
    """``url`` with the password of its user info shown as ``***`` (``rtsp://user:***@host:554/s``), else
    as given. Done on the text, as urlsplit splits it (the authority ends at the first ``/``, ``?`` or
    ``#``; the user info at its last ``@``), so that a URL whose port or IPv6 address does not parse is
    redacted too, and host and port are kept as written."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:{REDACTED}@{host}{rest[end:]}"


def check_egress(spec: SinkSpec, egress: EgressPolicy) -> None:
    """Registration: EgressRefused (InvalidParameter) when ``spec``'s webhook or MQTT broker is or resolves
    to an address sinks may not reach (keeneye.streams.egress); JSONL files and S3 buckets connect nowhere
    a request chooses."""
    if spec.webhook is not None:
        egress.check_url(spec.webhook.url, "sink", what=f"webhook {redacted_url(spec.webhook.url)}")
    elif spec.mqtt is not None:
        egress.check_host(
            spec.mqtt.host, spec.mqtt.port, "sink", what=f"mqtt://{spec.mqtt.host}:{spec.mqtt.port}"
        )


def build_sink(
    spec: SinkSpec,
    *,
    jsonl_dir: Path,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    put_object: PutObject | None = None,
    egress: EgressPolicy | None = None,
) -> Sink:
    """The sink for ``spec``. ``jsonl_dir``: the folder JSONL files live in; ``timeout_s``: bound on
    one send (connect + deliver); ``headers``: fixed extra webhook headers (the caller's, e.g. SNS's);
    ``put_object``: how ``s3`` targets are written (SinkError for an ``s3`` spec without it); ``egress``:
    where webhooks and brokers may be (default: the default policy)."""
    if spec.webhook is not None:
        return WebhookSink(spec.webhook, timeout_s=timeout_s, extra_headers=headers, egress=egress)
    if spec.mqtt is not None:
        return MqttSink(spec.mqtt, timeout_s=timeout_s, egress=egress)
    if spec.s3 is not None:
        if put_object is None:
            raise SinkError(f"s3://{spec.s3.bucket}: S3 sinks are not available here (no S3 writer)")
        return S3Sink(spec.s3, put_object)
    assert spec.jsonl is not None
    return JsonlSink(jsonl_dir / spec.jsonl.name)


def _encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


# -- sinks ---------------------------------------------------------------------------------------------


class WebhookSink:
    """POSTs each message as JSON to a URL (httpx, one pooled client per sink; every connection made by
    the egress policy; redirects are not followed)."""

    def __init__(
        self,
        target: WebhookTarget,
        *,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._url = target.url
        self._shown_url = redacted_url(target.url)
        self._headers = {"Content-Type": "application/json", **dict(extra_headers or {}), **target.headers}
        transport = http_transport(egress or EgressPolicy(), "sink")
        self._client = httpx.Client(
            timeout=timeout_s, follow_redirects=False, transport=transport, trust_env=False
        )

    def send(self, message: Mapping[str, Any]) -> None:
        try:
            response = self._client.post(self._url, content=_encode(message), headers=self._headers)
        except EgressRefused as exc:
            raise SinkError(exc.message) from None
        except httpx.TimeoutException:
            raise _not_accepted(f"webhook {self._shown_url}", "no answer in time") from None
        except httpx.HTTPError as exc:
            raise _not_accepted(f"webhook {self._shown_url}", f"{type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise _not_accepted(f"webhook {self._shown_url}", f"answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


def _not_accepted(where: str, detail: str) -> SinkError:
    """The neutral SinkError of a failed delivery; ``detail`` only in the log (see the module notes)."""
    log.warning("%s: %s", where, detail)
    return SinkError(f"{where}: {NOT_ACCEPTED}")


class _CheckedMqttClient(mqtt.Client):
    """paho's client with its TCP connection made by the egress policy (TLS, started by paho afterwards,
    still names and verifies the broker's host). paho has no public hook for its socket: this overrides
    the method that opens it (tests/streams/test_egress.py fails if a new paho stops calling it)."""

    def __init__(self, egress: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._egress = egress

    def _create_socket_connection(self) -> socket.socket:
        host, port = str(self._host), int(self._port)
        return self._egress.connect(
            host, port, "sink", timeout_s=self._connect_timeout, what=f"mqtt://{host}:{port}"
        )


class MqttSink:
    """Publishes each message as JSON to one MQTT topic over a persistent connection (paho-mqtt), connected
    by the egress policy."""

    def __init__(self, target: MqttTarget, *, timeout_s: float, egress: EgressPolicy | None = None) -> None:
        self._target = target
        self._egress = egress or EgressPolicy()
        self._timeout_s = timeout_s
        self._client: Any = None
        self._connected = threading.Event()
        self._refused: str | None = None
        self._where = f"mqtt://{target.host}:{target.port}/{target.topic}"

    def _connect(self) -> Any:
        t = self._target
        client = _CheckedMqttClient(
            self._egress,
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
        except EgressRefused as exc:
            raise SinkError(exc.message) from None
        except (OSError, ValueError) as exc:
            raise _not_accepted(self._where, f"cannot connect: {exc}") from None
        client.loop_start()
        if not self._connected.wait(self._timeout_s):
            self._drop(client)
            raise _not_accepted(self._where, "the broker did not answer CONNECT in time")
        if self._refused is not None:
            self._drop(client)
            raise _not_accepted(self._where, f"the broker refused the connection: {self._refused}")
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
            raise _not_accepted(self._where, f"publish failed: {exc}") from None
        if not published:
            self.close()
            raise _not_accepted(self._where, "the broker did not acknowledge the message in time")

    def close(self) -> None:
        if self._client is not None:
            self._drop(self._client)
            self._client = None


class JsonlSink:
    """Appends each message as one JSON line to a file, ``fsync``-ed before ``send`` returns. The file
    is 0600 and a folder made for it 0700, whatever the umask: the messages name identities."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, message: Mapping[str, Any]) -> None:
        line = _encode(message) + b"\n"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with self._lock:
            try:
                self.path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
                fd = private_fd(self.path, flags)
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


class S3Sink:
    """Writes each message as one JSON object into a bucket through ``put_object`` (see the module
    docstring for the key names)."""

    def __init__(
        self, target: S3Target, put_object: PutObject, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._bucket = target.bucket
        self._prefix = f"{target.prefix}/" if target.prefix else ""
        self._put = put_object
        self._clock = clock
        self._seq = 0
        self._where = f"s3://{target.bucket}/{self._prefix}"

    def key_for(self, unix_s: float, seq: int, unique: str) -> str:
        """The object key of the ``seq``-th message delivered at ``unix_s`` (UTC)."""
        when = datetime.fromtimestamp(unix_s, UTC)
        unix_ms = int(unix_s * 1000)
        return f"{self._prefix}{when:%Y/%m/%d/%H}/{unix_ms:013d}-{seq % 1_000_000:06d}-{unique}.json"

    def send(self, message: Mapping[str, Any]) -> None:
        key = self.key_for(self._clock(), self._seq, uuid.uuid4().hex)
        self._seq += 1
        try:
            self._put(self._bucket, key, _encode(message))
        except SinkError:
            raise
        except Exception as exc:  # the caller's writer: report what is safe to show, never carry on
            raise SinkError(f"{self._where}: cannot write {key}: {_safe_reason(exc)}") from None

    def close(self) -> None:
        return None


def _safe_reason(exc: Exception) -> str:
    """Why a writer failed, fit for an operator: keeneye errors' messages are; an OSError's text without
    its file names; otherwise only the exception's type (a client library's text may hold anything)."""
    if isinstance(exc, KeeneyeError):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
