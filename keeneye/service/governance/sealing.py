"""Secrets the server must use again, sealed at rest: camera and sink URL credentials, webhook header
values, MQTT passwords.

keeneye connects to cameras and sinks with the credentials it was given, so it needs them in clear at
the moment it connects: they cannot be kept as hashes. They are kept encrypted, like access keys'
secrets (keeneye.service.governance.keys): Fernet (AES-128-CBC + HMAC-SHA256) under the key in
``<data_dir>/keys.secret`` (mode 0600, made once). A dump or backup of the database alone reveals no
password; whoever can read both the database and ``keys.secret`` (the service user, root) can.

What is sealed, and how it is stored:

* a URL that holds credentials (anything before ``@`` in its authority, or a query string, where
  cameras often take ``?user=...&password=...`` or a token) is sealed whole: the stored text is
  ``fernet:<token>``. Other URLs stay as they are (they hold nothing secret, and stay readable);
* a sink's JSON (keeneye.streams.sinks.SinkSpec): the webhook's URL as above and each header value,
  the MQTT password;
* a stream processor's request: ``Input.KinesisVideoStream.Arn`` and ``Output.KinesisDataStream.Arn``
  when they are URLs;
* an upload rule (and the copy each upload event keeps): its sink.

A value that is not ``fernet:...`` is read as it is: rows written before sealing existed keep working,
and :func:`seal_stored` (the server runs it at start) seals them in place. Nothing here logs a secret.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from keeneye.core.errors import InvalidParameter
from keeneye.service.governance.keys import KEY_FILE, load_or_create_fernet_key
from keeneye.store.db import Store
from keeneye.store.tables import (
    CameraRow,
    DataStreamRow,
    NotificationChannelRow,
    StreamProcessorRow,
    UploadEventRow,
    UploadRuleRow,
)
from keeneye.streams.sinks import REDACTED, SinkSpec, redacted, redacted_url

log = logging.getLogger("keeneye.secrets")

PREFIX = "fernet:"
UNREADABLE = "<sealed: cannot be decrypted with this data directory's keys.secret>"


class SecretUnreadable(InvalidParameter):
    """A sealed value that ``keys.secret`` cannot decrypt (it is not the key the value was sealed
    with): the thing that holds it must be configured again."""


def is_sealed(text: object) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def url_has_secret(url: str) -> bool:
    """Whether ``url`` holds credentials: user information (``user:password@``, a token as the user) or
    a query string (``?password=``, ``?token=``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True  # unparseable: sealed rather than guessed at
    return "@" in parts.netloc or bool(parts.query)


class SecretBox:
    """Seals and opens values with the Fernet key of ``data_dir`` (loaded, or made, at first use)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def _cipher(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(load_or_create_fernet_key(self._data_dir))
            return self._fernet

    # -- one value ------------------------------------------------------------------------------------

    def seal(self, text: str) -> str:
        """``text`` encrypted (``fernet:<token>``); a sealed value is returned as it is."""
        if is_sealed(text):
            return text
        return PREFIX + self._cipher().encrypt(text.encode()).decode("ascii")

    def open(self, text: str) -> str:
        """The clear value of ``text`` (a value that is not sealed is returned as it is); raises
        :class:`SecretUnreadable` when ``keys.secret`` is not the key it was sealed with."""
        if not is_sealed(text):
            return text
        try:
            return self._cipher().decrypt(text[len(PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(
                f"a stored password cannot be decrypted: {self._data_dir / KEY_FILE} is not the key it was "
                "sealed with; configure it again"
            ) from None

    def seal_url(self, url: str) -> str:
        """``url`` sealed whole when it holds credentials (:func:`url_has_secret`), else as it is."""
        return self.seal(url) if url_has_secret(url) else url

    def shown_url(self, url: str) -> str:
        """A stored URL as it may be shown: opened, its password replaced by ``***``; never raises."""
        try:
            return redacted_url(self.open(url))
        except SecretUnreadable:
            return UNREADABLE

    # -- sinks, requests, rules -----------------------------------------------------------------------

    def seal_sink(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A SinkSpec's JSON with its secrets sealed (webhook URL credentials and header values, the
        MQTT password)."""
        return _map_sink(spec, self.seal_url, self.seal)

    def open_sink(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A stored sink's JSON in clear (SecretUnreadable if a value cannot be decrypted)."""
        return _map_sink(spec, self.open, self.open)

    def shown_sink(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A stored sink's JSON as it may be shown (keeneye.streams.sinks.redacted: secrets as ``***``);
        never raises: a URL that cannot be decrypted shows as such."""
        try:
            return redacted(SinkSpec.model_validate(self.open_sink(spec)))
        except SecretUnreadable:
            return _map_sink(spec, self.shown_url, lambda _: REDACTED)

    def seal_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A stream processor's request with its Input and Output URLs sealed."""
        return _map_request(request, self.seal_url)

    def open_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return _map_request(request, self.open)

    def seal_rule(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        """An upload rule's JSON with its sink's secrets sealed."""
        return _map_rule(rule, self.seal_sink)

    def open_rule(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        return _map_rule(rule, self.open_sink)


def _map_sink(
    spec: Mapping[str, Any], url: Callable[[str], str], secret: Callable[[str], str]
) -> dict[str, Any]:
    out = dict(spec)
    hook = out.get("webhook")
    if isinstance(hook, Mapping):
        hook = dict(hook)
        if isinstance(hook.get("url"), str):
            hook["url"] = url(hook["url"])
        headers = hook.get("headers")
        if isinstance(headers, Mapping):
            hook["headers"] = {k: secret(v) if isinstance(v, str) else v for k, v in headers.items()}
        out["webhook"] = hook
    broker = out.get("mqtt")
    if isinstance(broker, Mapping) and isinstance(broker.get("password"), str):
        out["mqtt"] = {**broker, "password": secret(broker["password"])}
    return out


def _map_request(request: Mapping[str, Any], url: Callable[[str], str]) -> dict[str, Any]:
    """``url`` applied to the request's Input and Output stream ARNs (keeneye takes URLs there; an ARN
    holds no secret, and neither function changes one)."""
    out = dict(request)
    for side, stream in (("Input", "KinesisVideoStream"), ("Output", "KinesisDataStream")):
        part = out.get(side)
        if not isinstance(part, Mapping) or not isinstance(part.get(stream), Mapping):
            continue
        inner = part[stream]
        if isinstance(inner.get("Arn"), str):
            out[side] = {**part, stream: {**inner, "Arn": url(inner["Arn"])}}
    return out


def _map_rule(rule: Mapping[str, Any], sink: Callable[[Mapping[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    out = dict(rule)
    if isinstance(out.get("sink"), Mapping):
        out["sink"] = sink(out["sink"])
    return out


def seal_stored(store: Store, box: SecretBox) -> int:
    """Seal the secrets of rows written in clear (before sealing existed), in one transaction; how many
    rows changed. Idempotent: sealed values are left as they are. Then the write-ahead log is truncated
    (Store.scrub), so the clear values are not left in it (the database's secure_delete zeroes the old
    rows' bytes in the file)."""
    changed = 0
    with store.transaction() as s:
        for camera in s.scalars(select(CameraRow)):
            sealed = box.seal_url(camera.url)
            if sealed != camera.url:
                camera.url, changed = sealed, changed + 1
        for stream in s.scalars(select(DataStreamRow)):
            sinks = {"sinks": [box.seal_sink(x) for x in stream.sink.get("sinks", [])]}
            if sinks != stream.sink:
                stream.sink, changed = sinks, changed + 1
        for channel in s.scalars(select(NotificationChannelRow)):
            config = box.seal_sink(channel.config)
            if config != channel.config:
                channel.config, changed = config, changed + 1
        for processor in s.scalars(select(StreamProcessorRow)):
            request = box.seal_request(processor.request)
            if request != processor.request:
                processor.request, changed = request, changed + 1
        for rule_row in s.scalars(select(UploadRuleRow)):
            rule = box.seal_rule(rule_row.rule)
            if rule != rule_row.rule:
                rule_row.rule, changed = rule, changed + 1
        for event in s.scalars(select(UploadEventRow).execution_options(yield_per=500)):
            rule = box.seal_rule(event.rule)
            if rule != event.rule:
                event.rule, changed = rule, changed + 1
    if changed:
        store.scrub()
        log.info("sealed the stored credentials of %d camera, sink, processor and upload rows", changed)
    return changed
