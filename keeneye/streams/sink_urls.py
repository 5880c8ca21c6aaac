"""Sink URLs (what users type) and the sinks they name.

:func:`sink_spec_from_url` turns ``http(s)://...``, ``mqtt(s)://[user:pass@]host[:port]/topic/path``,
``file://NAME.jsonl`` and ``s3://bucket/prefix`` into a :class:`~keeneye.streams.sinks.SinkSpec` (server
mode: a file is a plain name in the server's folder); :func:`local_sink_target` and
:func:`build_local_sink` accept any ``file://PATH`` for the local CLI. Errors never show a URL's password.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import ValidationError

from keeneye.core.errors import InvalidParameter
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.sinks import (
    REDACTED,
    JsonlSink,
    JsonlTarget,
    MqttTarget,
    PutObject,
    S3Target,
    Sink,
    SinkSpec,
    WebhookTarget,
    build_sink,
)

URL_FORMS = (
    "http(s)://host[:port]/path (webhook), mqtt://[user:pass@]host[:port]/topic/path (MQTT; mqtts:// for "
    "TLS), file://NAME.jsonl (JSONL file) or s3://bucket/prefix (S3)"
)


def sink_spec_from_url(url: str) -> SinkSpec:
    """The :class:`SinkSpec` a sink URL names, for the server: ``file://`` takes only a plain
    ``NAME.jsonl`` (a file in the server's notifications folder), never a path.

    Forms: ``http(s)://...`` -> webhook (POST JSON to the URL as given); ``mqtt://[user:pass@]host[:port]
    /topic/path`` -> MQTT (topic: the path without its leading slash, percent-decoded; port 1883;
    ``mqtts://``: TLS, port 8883); ``file://NAME.jsonl`` -> JSONL; ``s3://bucket[/prefix]`` -> S3.
    Raises InvalidParameter saying which forms are accepted."""
    spec = _parse_url(url, allow_paths=False)
    assert isinstance(spec, SinkSpec)
    return spec


def local_sink_target(url: str) -> SinkSpec | Path:
    """As :func:`sink_spec_from_url`, for the local CLI: ``file://PATH`` may name any file and gives
    that :class:`Path` (``file:///tmp/x.jsonl``: absolute; ``file://out.jsonl``: relative to the working
    folder; ``~`` expanded; percent-escapes decoded)."""
    return _parse_url(url, allow_paths=True)


def build_local_sink(
    url: str, *, timeout_s: float, put_object: PutObject | None = None, egress: EgressPolicy | None = None
) -> Sink:
    """The sink a local CLI user names by URL (see :func:`local_sink_target`); ``file://`` writes the
    path given. InvalidParameter for a bad URL (and for ``s3://`` without ``put_object``). ``egress``: the
    CLI passes EgressPolicy.unrestricted() (the operator's own command)."""
    target = local_sink_target(url)
    if isinstance(target, Path):
        return JsonlSink(target)
    if target.s3 is not None and put_object is None:
        raise InvalidParameter(f"sink {_shown(url)}: s3:// sinks are not available here")
    return build_sink(target, jsonl_dir=Path.cwd(), timeout_s=timeout_s, put_object=put_object, egress=egress)


def _shown(url: str) -> str:
    """The URL for an error message: password hidden (even where the URL does not parse), shortened."""
    return repr(re.sub(r"^([^/]*//[^/@:]*):[^/]*@", rf"\1:{REDACTED}@", url.strip())[:200])


def _bad_url(url: str, why: str) -> InvalidParameter:
    return InvalidParameter(f"sink {_shown(url)}: {why}; accepted forms: {URL_FORMS}")


def _parse_url(url: str, *, allow_paths: bool) -> SinkSpec | Path:
    text = url.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    try:
        if scheme == "file":
            return _file_target(url, text[len("file://") :], allow_paths=allow_paths)
        parts = urlsplit(text)
        if scheme in ("http", "https"):
            return SinkSpec(webhook=WebhookTarget(url=text))
        if scheme in ("mqtt", "mqtts"):
            return SinkSpec(mqtt=_mqtt_target(url, parts))
        if scheme == "s3":
            return SinkSpec(s3=_s3_target(url, parts))
    except ValidationError as exc:
        raise _bad_url(url, exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    except ValueError as exc:  # urlsplit: a bad port or host
        raise _bad_url(url, str(exc)) from None
    raise _bad_url(url, "not a sink URL")


def _no_extras(url: str, parts: SplitResult, what: str) -> None:
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise _bad_url(url, f"{what} URLs take no '?query' or '#fragment' (an MQTT topic cannot hold '#')")


def _mqtt_target(url: str, parts: SplitResult) -> MqttTarget:
    _no_extras(url, parts, "mqtt://")
    if not parts.hostname:
        raise _bad_url(url, "an mqtt:// URL needs a host")
    topic = unquote(parts.path.removeprefix("/"))
    if not topic:
        raise _bad_url(url, "an mqtt:// URL needs a topic: mqtt://host/topic/path")
    tls = parts.scheme.lower() == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        topic=topic,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,
    )


def _s3_target(url: str, parts: SplitResult) -> S3Target:
    _no_extras(url, parts, "s3://")
    if "@" in parts.netloc or parts.port is not None:
        raise _bad_url(url, "an s3:// URL names a bucket, not a user or a port")
    if not parts.netloc:
        raise _bad_url(url, "an s3:// URL needs a bucket: s3://bucket/prefix")
    return S3Target(bucket=parts.netloc, prefix=unquote(parts.path))


def _file_target(url: str, rest: str, *, allow_paths: bool) -> SinkSpec | Path:
    if not rest:
        raise _bad_url(url, "a file:// URL needs a file name")
    if not allow_paths:
        # JsonlTarget refuses anything but a plain NAME.jsonl (no folders, no '..').
        try:
            return SinkSpec(jsonl=JsonlTarget(name=rest))
        except ValueError:
            raise _bad_url(
                url,
                "the server writes JSONL files only in its own notifications folder: file:// takes a plain "
                "file name (letters, digits, '.', '_', '-', ending in .jsonl), not a path",
            ) from None
    path = unquote(rest)
    if "\x00" in path:
        raise _bad_url(url, "a file path cannot hold NUL")
    return Path(path).expanduser()
