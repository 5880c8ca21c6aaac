"""What a stream processor uses, as the rights its request needs: whoever creates, starts or updates it
must be allowed each (docs/security.md, "Resources of each operation").

A processor reads a camera and sends records on, so its request names resources of its own besides the
processor's ARN, and each is a right:

* ``Input.KinesisVideoStream.Arn``: a registered camera -> ``keeneye:UseCamera`` on the camera's ARN
  (``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1``, however the request spelt it); a URL ->
  ``keeneye:UseUrl`` on :func:`~keeneye.service.governance.policies.url_arn`; a ``file://`` video ->
  ``s3:GetObject`` on the object of each served bucket whose folder holds it;
* ``Output.KinesisDataStream.Arn``: a registered data stream -> ``keeneye:UseDataStream`` on its ARN; a
  webhook or MQTT URL -> ``keeneye:UseUrl``; ``file://NAME.jsonl`` -> ``keeneye:WriteFile`` on
  :func:`~keeneye.service.governance.policies.file_arn`; ``s3://bucket/prefix`` -> ``s3:PutObject``;
* ``Output.S3Destination`` -> ``s3:PutObject`` on ``arn:aws:s3:::<Bucket>/<KeyPrefix>/*``;
* ``Settings.FaceSearch`` -> ``rekognition:SearchFaces`` on the collection (the processor identifies
  people in it);
* ``NotificationChannel`` -> ``keeneye:UseNotificationChannel`` on the topic ARN.

Rights are named from the request as given, before anything is looked up: a caller who may not use a
camera is refused the same way whether it is registered or not. An output that is no sink URL, and a URL
without a host or with a bad port, are refused here (InvalidParameter, as validation would); anything
else that does not parse needs no right, and the request's validation (keeneye.service.streams.cameras)
refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from keeneye.core.errors import InvalidParameter
from keeneye.service.governance.policies import (
    Right,
    file_arn,
    request_rights,
    s3_object_arn,
    s3_prefix_arn,
    unique,
    url_arn,
)
from keeneye.service.streams.cameras import CAMERA_ARN, CAMERA_SCHEMES, DATA_STREAM_ARN, Cameras
from keeneye.streams.sink_urls import sink_spec_from_url
from keeneye.streams.sinks import S3Target, SinkSpec


def processor_rights(
    request: Mapping[str, Any],
    *,
    cameras: Cameras,
    buckets: Mapping[str, Path],
    collection_arn: Callable[[str], str],
) -> list[Right]:
    """The rights a CreateStreamProcessor ``request`` (or a stored one, at Start and Update) needs, each
    once. ``buckets``: the served bucket folders (``--bucket NAME=FOLDER``); ``collection_arn``:
    CollectionId -> its ARN in the processor's region."""
    rights = input_rights(
        str(((request.get("Input") or {}).get("KinesisVideoStream") or {}).get("Arn", "")),
        cameras=cameras,
        buckets=buckets,
    )
    rights += output_rights(request.get("Output") or {}, cameras=cameras)
    face = (request.get("Settings") or {}).get("FaceSearch") or {}
    if face.get("CollectionId"):
        rights.append(Right("rekognition:SearchFaces", collection_arn(str(face["CollectionId"]))))
    rights += request_rights(request)  # NotificationChannel
    return unique(rights)


def input_rights(arn: str, *, cameras: Cameras, buckets: Mapping[str, Path]) -> list[Right]:
    """What reading ``Input.KinesisVideoStream.Arn`` needs."""
    m = CAMERA_ARN.fullmatch(arn)
    if m is not None:
        return [Right("keeneye:UseCamera", cameras.camera_arn(m.group(3)))]
    try:
        parts = urlsplit(arn)
    except ValueError:  # a bracketed host that is no IPv6 address
        raise InvalidParameter("Input.KinesisVideoStream.Arn: the URL does not parse") from None
    scheme = parts.scheme.lower()
    if scheme in CAMERA_SCHEMES:
        return _url_right(arn)
    if scheme == "file":
        # The file as it will be read (links resolved), in each served folder that holds it.
        path = Path(unquote(parts.path)).resolve()
        rights: list[Right] = []
        for bucket, folder in buckets.items():
            root = Path(folder).resolve()
            if path.is_relative_to(root):
                rights.append(Right("s3:GetObject", s3_object_arn(bucket, path.relative_to(root).as_posix())))
        return rights
    return []


def output_rights(output: Mapping[str, Any], *, cameras: Cameras) -> list[Right]:
    """What sending records to ``Output`` (KinesisDataStream and/or S3Destination) needs."""
    rights: list[Right] = []
    kinesis = output.get("KinesisDataStream")
    if isinstance(kinesis, Mapping):
        arn = str(kinesis.get("Arn", ""))
        m = DATA_STREAM_ARN.fullmatch(arn)
        if m is not None:
            rights.append(Right("keeneye:UseDataStream", cameras.data_stream_arn(m.group(3))))
        else:
            rights += _sink_rights(sink_spec_from_url(arn), arn)  # InvalidParameter: not a sink URL
    s3 = output.get("S3Destination")
    if isinstance(s3, Mapping):
        try:
            target = S3Target(bucket=str(s3.get("Bucket", "")), prefix=str(s3.get("KeyPrefix", "")))
        except ValueError:
            pass  # Create's validation says what is wrong
        else:
            rights.append(Right("s3:PutObject", s3_prefix_arn(target.bucket, target.prefix)))
    return rights


def _sink_rights(spec: SinkSpec, url: str) -> list[Right]:
    if spec.jsonl is not None:
        return [Right("keeneye:WriteFile", file_arn(spec.jsonl.name))]
    if spec.s3 is not None:
        return [Right("s3:PutObject", s3_prefix_arn(spec.s3.bucket, spec.s3.prefix))]
    return _url_right(url)


def sink_rights(spec: SinkSpec) -> list[Right]:
    """What registering ``spec`` as a place records go needs (a data stream's sink, a notification
    channel, an upload rule's sink): the rights a processor's ``Output`` naming it directly would need,
    so that a sink registered once cannot reach a file, bucket or URL its registrant may not use.
    ``keeneye:WriteFile`` on a JSONL file, ``s3:PutObject`` on an S3 prefix, ``keeneye:UseUrl`` on a
    webhook's URL or on ``mqtt(s)://host[:port]/topic`` (the port when not the scheme's default, 1883
    / 8883)."""
    if spec.webhook is not None:
        return _sink_rights(spec, spec.webhook.url)
    if spec.mqtt is not None:
        m = spec.mqtt
        host = f"[{m.host}]" if ":" in m.host else m.host
        port = "" if m.port == (8883 if m.tls else 1883) else f":{m.port}"  # as a URL without one says
        url = f"{'mqtts' if m.tls else 'mqtt'}://{host}{port}/{quote(m.topic, safe='/')}"
        return _url_right(url)
    return _sink_rights(spec, "")


def _url_right(url: str) -> list[Right]:
    """``keeneye:UseUrl`` on the URL; InvalidParameter for one without a host or with a bad port (which
    would otherwise need no right)."""
    return [Right("keeneye:UseUrl", url_arn(url))]
