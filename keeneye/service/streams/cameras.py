"""Cameras and data streams: the inputs and outputs stream processors name, registered by name.

* A camera (``PUT /v1/cameras/{name}``) is a live URL (``rtsp://``, ``rtsps://``, ``rtmp://``,
  ``http(s)://``), pulled or, with ``listen``, pushed to us (rtsp/rtmp); a processor's
  ``Input.KinesisVideoStream.Arn`` names it as
  ``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<any>``.
* A data stream (``PUT /v1/data-streams/{name}``) is one sink or several (webhook, MQTT, JSONL; see
  keeneye.streams.sinks); ``Output.KinesisDataStream.Arn`` names it as
  ``arn:aws:kinesis:<region>:<account>:stream/<name>``.

:meth:`Cameras.resolve_input` and :meth:`Cameras.resolve_outputs` turn a processor's Input and Output
into what its worker reads and writes, refusing (InvalidParameter) what is not registered, a local file
outside the served buckets, an S3 bucket the server does not serve, or a camera, webhook or MQTT broker
the egress policy refuses (keeneye.streams.egress: checked at registration, at Create and Start, and
again by the worker at every connection). URLs that hold credentials are kept
sealed (keeneye.service.governance.sealing) and shown without their passwords. :meth:`Cameras.snapshot`
reads one frame of a camera as a worker would (keeneye.streams.live.grab_frame).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter, KeeneyeError, NotFound, ServerBusy
from keeneye.service.governance.sealing import SecretBox
from keeneye.store.db import Store
from keeneye.store.tables import CameraRow, DataStreamRow
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.live import MAX_SNAPSHOT_BYTES, SNAPSHOT_WIDTH, encode_jpeg, grab_frame
from keeneye.streams.sink_urls import sink_spec_from_url
from keeneye.streams.sinks import S3Target, SinkSpec, check_egress

NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,128}")
CAMERA_ARN = re.compile(r"arn:[a-z\d-]+:kinesisvideo:([a-z\d-]+):(\d{12}):stream/([^/]+)(?:/.*)?")
DATA_STREAM_ARN = re.compile(r"arn:[a-z\d-]+:kinesis:([a-z\d-]+):(\d{12}):stream/([^/]+)")
CAMERA_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
MAX_GRABS = 2
"""Snapshots read from cameras at once (each one an FFmpeg connection and a thread for a few seconds)."""

_REGISTRATION = {
    CameraRow: ("camera", 'PUT /v1/cameras/{name} {{"url": "rtsp://..."}}, or give the URL as the Arn'),
    DataStreamRow: ("data stream", "PUT /v1/data-streams/{name}, or give a sink URL as the Arn"),
}


def _now() -> datetime:
    return datetime.now(UTC)


def check_name(name: str, what: str) -> None:
    """InvalidParameter unless ``name`` is 1-128 characters of a-z, A-Z, 0-9, _, . and -."""
    if not NAME.fullmatch(name):
        raise InvalidParameter(f"a {what} name is 1-128 characters of a-z, A-Z, 0-9, _, . and -")


def data_stream_sinks(spec: Mapping[str, Any]) -> list[SinkSpec]:
    """The sinks a data stream's body names: one sink, or ``{"sinks": [...]}`` (1 to 8); InvalidParameter
    otherwise."""
    raw = spec.get("sinks") if set(spec) == {"sinks"} else [spec]
    if not isinstance(raw, list) or not 1 <= len(raw) <= 8:
        raise InvalidParameter('"sinks" must be a list of 1 to 8 sinks')
    try:
        return [SinkSpec.model_validate(x) for x in raw]
    except ValueError as err:
        raise InvalidParameter(f"bad sink: {err}") from None


class Cameras:
    """The registered cameras and data streams (native API), and what a processor's Input and Output
    resolve to. region/account: what their ARNs carry; egress: where cameras and sinks may be (default:
    the settings' policy)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        region: str,
        account: str,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._store = store
        self.secrets = SecretBox(store.data_dir)  # camera and sink credentials, sealed at rest
        self._settings = settings
        self._egress = egress or EgressPolicy.from_settings(settings)
        self.region, self.account = region, account
        self._grabs = threading.BoundedSemaphore(MAX_GRABS)

    def camera_arn(self, name: str) -> str:
        """What Input.KinesisVideoStream.Arn names a registered camera by."""
        return f"arn:aws:kinesisvideo:{self.region}:{self.account}:stream/{name}/1"

    def data_stream_arn(self, name: str) -> str:
        """What Output.KinesisDataStream.Arn names a registered data stream by."""
        return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{name}"

    # -- cameras -----------------------------------------------------------------------------------------

    def put_camera(self, name: str, url: str, *, listen: bool = False) -> dict[str, Any]:
        check_name(name, "camera")
        scheme = urlsplit(url).scheme.lower()
        if scheme not in CAMERA_SCHEMES:
            raise InvalidParameter(
                f"a camera URL must be one of {', '.join(s + '://' for s in CAMERA_SCHEMES)}"
            )
        if listen and scheme not in ("rtsp", "rtmp"):
            raise InvalidParameter(
                "a camera that pushes (listen) needs an rtsp:// or rtmp:// URL to listen on"
            )
        if not listen:  # a push camera's URL is where keeneye listens: it connects nowhere
            self._egress.check_url(url, "camera", what=f"camera {name}")
        now, stored = _now(), self.secrets.seal_url(url)
        with self._store.transaction() as s:
            row = s.get(CameraRow, name)
            if row is None:
                row = CameraRow(name=name, url=stored, listen=listen, created_at=now, updated_at=now)
                s.add(row)
            else:
                row.url, row.listen, row.updated_at = stored, listen, now
            return self._camera_dict(row)

    def _camera_dict(self, row: CameraRow) -> dict[str, Any]:
        return {
            "name": row.name,
            "url": self.secrets.shown_url(row.url),
            "listen": row.listen,
            "arn": self.camera_arn(row.name),
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }

    def list_cameras(self) -> list[dict[str, Any]]:
        with self._store.transaction() as s:
            return [self._camera_dict(r) for r in s.scalars(select(CameraRow).order_by(CameraRow.name))]

    def get_camera(self, name: str) -> dict[str, Any]:
        with self._store.transaction() as s:
            return self._camera_dict(_registered(s, CameraRow, name, NotFound))

    def delete_camera(self, name: str) -> None:
        with self._store.transaction() as s:
            s.delete(_registered(s, CameraRow, name, NotFound))

    def snapshot(self, name: str) -> bytes:
        """A JPEG of one frame read now from a registered camera (NotFound without one; see
        :meth:`grab`). A camera a running processor reads is better asked through that processor
        (StreamProcessors.camera_snapshot): many cameras take few clients."""
        with self._store.transaction() as s:
            camera = _registered(s, CameraRow, name, NotFound)
            url, listen = self.secrets.open(camera.url), camera.listen
        return self.grab(url, listen=listen)

    def grab(self, url: str, *, listen: bool = False) -> bytes:
        """A JPEG of one frame of ``url`` (width capped at keeneye.streams.live.SNAPSHOT_WIDTH), read as a
        worker reads it: the egress policy at every connection, within GRAB_TIMEOUT_S; BackendUnavailable
        (with the worker's neutral words) when the camera gives no frame, EgressRefused when the policy
        refuses it, InvalidParameter for a camera that pushes (nothing to read until it pushes to its
        running processor), ServerBusy when MAX_GRABS grabs already run."""
        if listen:
            raise InvalidParameter(
                "a camera that pushes to keeneye has no snapshot until its processor runs and it pushes"
            )
        if not self._grabs.acquire(blocking=False):
            raise ServerBusy("Rate exceeded: too many camera snapshots are being read; retry")
        try:
            image = grab_frame(url, self._egress)
        finally:
            self._grabs.release()
        return encode_jpeg(image, max_width=SNAPSHOT_WIDTH, max_bytes=MAX_SNAPSHOT_BYTES)

    # -- data streams ------------------------------------------------------------------------------------

    def put_data_stream(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Register a data stream: one sink (``{"webhook": ...}``, ``{"mqtt": ...}``, ``{"jsonl": ...}``) or
        several that each get every record (``{"sinks": [{"webhook": ...}, {"mqtt": ...}]}``)."""
        check_name(name, "data stream")
        parsed = data_stream_sinks(spec)
        for sink in parsed:
            check_egress(sink, self._egress)
        dumped = [x.model_dump(mode="json", exclude_none=True) for x in parsed]
        body = {"sinks": [self.secrets.seal_sink(x) for x in dumped]}
        now = _now()
        with self._store.transaction() as s:
            row = s.get(DataStreamRow, name)
            if row is None:
                row = DataStreamRow(name=name, sink=body, created_at=now, updated_at=now)
                s.add(row)
            else:
                row.sink, row.updated_at = body, now
            return self._stream_dict(row)

    def _stream_dict(self, row: DataStreamRow) -> dict[str, Any]:
        return {
            "name": row.name,
            "sinks": [self.secrets.shown_sink(x) for x in row.sink["sinks"]],
            "arn": self.data_stream_arn(row.name),
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }

    def list_data_streams(self) -> list[dict[str, Any]]:
        with self._store.transaction() as s:
            return [
                self._stream_dict(r) for r in s.scalars(select(DataStreamRow).order_by(DataStreamRow.name))
            ]

    def delete_data_stream(self, name: str) -> None:
        with self._store.transaction() as s:
            s.delete(_registered(s, DataStreamRow, name, NotFound))

    # -- what a processor's Input and Output resolve to ----------------------------------------------------

    def resolve_input(self, arn: str) -> tuple[str, bool]:
        """Input.KinesisVideoStream.Arn -> (URL to read, listen)."""
        m = CAMERA_ARN.fullmatch(arn)
        if m is not None:
            with self._store.transaction() as s:
                camera = _registered(s, CameraRow, m.group(3), InvalidParameter)
                url, listen = self.secrets.open(camera.url), camera.listen
            if not listen:  # checked again: the policy or the name's addresses may have changed
                self._egress.check_url(url, "camera", what=f"camera {m.group(3)}")
            return url, listen
        scheme = urlsplit(arn).scheme.lower()
        if scheme in CAMERA_SCHEMES:
            self._egress.check_url(arn, "camera", what="Input.KinesisVideoStream.Arn")
            return arn, False
        if scheme == "file":
            path = Path(unquote(urlsplit(arn).path)).resolve()
            roots = [Path(f).resolve() for f in self._settings.server.buckets.values()]
            if not any(path.is_relative_to(r) for r in roots):
                raise InvalidParameter(
                    "a file:// input must be inside a folder this server serves as a bucket "
                    "(--bucket NAME=FOLDER)"
                )
            if not path.is_file():
                raise InvalidParameter(f"no such video file: {path.name}")
            return f"file://{path}", False
        raise InvalidParameter(
            "Input.KinesisVideoStream.Arn must be a camera registered on this server "
            "(arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1) or a URL: rtsp://, rtsps://, rtmp://, "
            "http(s):// or file://"
        )

    def resolve_outputs(self, output: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Output (KinesisDataStream and/or S3Destination) -> the sinks, each ``{"spec": SinkSpec JSON}``."""
        sinks: list[dict[str, Any]] = []
        kinesis = output.get("KinesisDataStream")
        if kinesis is not None:
            arn = str(kinesis.get("Arn", ""))
            m = DATA_STREAM_ARN.fullmatch(arn)
            if m is not None:
                with self._store.transaction() as s:
                    stream = _registered(s, DataStreamRow, m.group(3), InvalidParameter)
                    sinks += [{"spec": self.secrets.open_sink(x)} for x in stream.sink["sinks"]]
            else:
                spec = sink_spec_from_url(arn)
                sinks.append({"spec": spec.model_dump(mode="json", exclude_none=True)})
        s3 = output.get("S3Destination")
        if s3 is not None:
            try:
                target = S3Target(bucket=str(s3.get("Bucket", "")), prefix=str(s3.get("KeyPrefix", "")))
            except ValueError as err:
                raise InvalidParameter(f"S3Destination: {err}") from None
            sinks.append({"spec": {"s3": target.model_dump(mode="json")}})
        for sink in sinks:
            bucket = (sink["spec"].get("s3") or {}).get("bucket")
            if (
                bucket is not None
                and bucket not in self._settings.server.buckets
                and not self._settings.server.s3_endpoint
            ):
                raise InvalidParameter(
                    f"bucket {bucket!r} is not served by this server (--bucket NAME=FOLDER or --s3-endpoint)"
                )
        if not sinks:
            raise InvalidParameter("Output needs KinesisDataStream or S3Destination")
        for sink in sinks:
            check_egress(SinkSpec.model_validate(sink["spec"]), self._egress)
        return sinks


def _registered(s: Session, table: type[Any], name: str, error: type[KeeneyeError]) -> Any:
    """The camera / data stream row called ``name``; ``error`` (NotFound for the native API,
    InvalidParameter where a processor names it) saying how to register one when there is none."""
    row = s.get(table, name)
    if row is None:
        what, how = _REGISTRATION[table]
        if error is NotFound:
            raise NotFound(f"no {what} named {name!r}")
        raise error(f"no {what} named {name!r} on this server: register it with {how.format(name=name)}")
    return row
