"""Stream processors (live cameras): Create ... Delete, in the caller's region."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keeneye.aws import shapes
from keeneye.aws.errors import AwsError
from keeneye.aws.handlers.context import (
    Context,
    Handler,
    Params,
    Response,
    audit,
    regional_collections,
    scoped,
)
from keeneye.core import regions
from keeneye.service.faces.collections import decode_token, encode_token
from keeneye.service.governance.policies import Right
from keeneye.service.streams.processors import StreamProcessors
from keeneye.service.streams.spec import ProcessorInfo
from keeneye.streams.sinks import redacted_url


def _processors(ctx: Context) -> StreamProcessors:
    if ctx.services.stream_processors is None:
        raise AwsError("InternalServerError", "stream processors are not available on this server")
    return ctx.services.stream_processors


_MAX_PROCESSOR_KEY = 128  # the stream_processors.name column


def _processor(ctx: Context, name: str) -> str:
    """A processor's store key in the caller's region (keeneye.core.regions)."""
    key = regions.scoped_key(ctx.region, name)
    if len(key) > _MAX_PROCESSOR_KEY:
        raise AwsError(
            "InvalidParameterException",
            f"Name is too long: in region {ctx.region} keeneye keeps stream processor names of up to "
            f"{_MAX_PROCESSOR_KEY - len(ctx.region) - 1} characters",
        )
    return key


def _collection_arn(ctx: Context) -> Callable[[str], str]:
    return lambda collection_id: regional_collections(ctx).arn(collection_id)


def _create_rights(ctx: Context, p: Params) -> list[Right]:
    return _processors(ctx).rights(p, collection_arn=_collection_arn(ctx))


def _stored_rights(ctx: Context, p: Params) -> list[Right]:
    return _processors(ctx).stored_rights(_processor(ctx, p["Name"]))


def create_stream_processor(ctx: Context, p: Params) -> Response:
    face = (p.get("Settings") or {}).get("FaceSearch")
    arn = _processors(ctx).create(_processor(ctx, p["Name"]), p)
    collection = scoped(ctx, str(face["CollectionId"])) if face and face.get("CollectionId") else None
    audit(ctx, "CreateStreamProcessor", collection, details={"name": _processor(ctx, p["Name"])})
    return {"StreamProcessorArn": arn}


def _processor_shape(info: ProcessorInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Name": regions.name_of(info.name),
        "StreamProcessorArn": info.arn,
        "Status": info.status,
        "CreationTimestamp": shapes.epoch_seconds(info.created_at),
        "LastUpdateTimestamp": shapes.epoch_seconds(info.updated_at),
    }
    if info.status_message:
        out["StatusMessage"] = info.status_message
    for key in (
        "Input",
        "Output",
        "RoleArn",
        "Settings",
        "NotificationChannel",
        "KmsKeyId",
        "RegionsOfInterest",
        "DataSharingPreference",
    ):
        if key in info.request:
            out[key] = info.request[key]
    return _without_passwords(out)


def _without_passwords(shape: dict[str, Any]) -> dict[str, Any]:
    """The request as Describe echoes it, with every URL password shown as ``***`` (as cameras and data
    streams show theirs): the Input and Output URLs are the only members that take a URL."""
    out = dict(shape)
    for key, inner in (("Input", "KinesisVideoStream"), ("Output", "KinesisDataStream")):
        member = (out.get(key) or {}).get(inner)
        if isinstance(member, dict) and isinstance(member.get("Arn"), str):
            out[key] = {**out[key], inner: {**member, "Arn": redacted_url(member["Arn"])}}
    return out


def describe_stream_processor(ctx: Context, p: Params) -> Response:
    return _processor_shape(_processors(ctx).describe(_processor(ctx, p["Name"])))


def list_stream_processors(ctx: Context, p: Params) -> Response:

    after = decode_token(p.get("NextToken"), "stream-processors")
    page, last = _processors(ctx).list_processors(p.get("MaxResults", 1000), after, region=ctx.region)
    out: Response = {
        "StreamProcessors": [{"Name": regions.name_of(i.name), "Status": i.status} for i in page]
    }
    if last is not None:
        out["NextToken"] = encode_token("stream-processors", last)
    return out


def start_stream_processor(ctx: Context, p: Params) -> Response:
    if p.get("StartSelector"):
        raise AwsError(
            "InvalidParameterException",
            "StartSelector is not supported: keeneye reads cameras live and keeps no fragment archive to "
            "start from",
        )
    duration = (p.get("StopSelector") or {}).get("MaxDurationInSeconds")
    session = _processors(ctx).start(
        _processor(ctx, p["Name"]), max_duration_s=duration, access_key=ctx.access_key_id
    )
    audit(
        ctx, "StartStreamProcessor", None, details={"name": _processor(ctx, p["Name"]), "session_id": session}
    )
    return {"SessionId": session}


def stop_stream_processor(ctx: Context, p: Params) -> Response:
    _processors(ctx).stop(_processor(ctx, p["Name"]))
    audit(ctx, "StopStreamProcessor", None, details={"name": _processor(ctx, p["Name"])})
    return {}


def update_stream_processor(ctx: Context, p: Params) -> Response:
    home = (p.get("SettingsForUpdate") or {}).get("ConnectedHomeForUpdate")
    _processors(ctx).update(
        _processor(ctx, p["Name"]),
        connected_home=home,
        regions=p.get("RegionsOfInterestForUpdate"),
        data_sharing=p.get("DataSharingPreferenceForUpdate"),
        delete=p.get("ParametersToDelete") or (),
    )
    audit(ctx, "UpdateStreamProcessor", None, details={"name": _processor(ctx, p["Name"])})
    return {}


def delete_stream_processor(ctx: Context, p: Params) -> Response:
    _processors(ctx).delete(_processor(ctx, p["Name"]))
    audit(ctx, "DeleteStreamProcessor", None, details={"name": _processor(ctx, p["Name"])})
    return {}


STREAM_OPERATIONS: dict[str, Handler] = {
    "CreateStreamProcessor": create_stream_processor,
    "DescribeStreamProcessor": describe_stream_processor,
    "ListStreamProcessors": list_stream_processors,
    "StartStreamProcessor": start_stream_processor,
    "StopStreamProcessor": stop_stream_processor,
    "UpdateStreamProcessor": update_stream_processor,
    "DeleteStreamProcessor": delete_stream_processor,
}


# What a processor uses (its camera, data stream, URLs, files, buckets, FaceSearch collection, notification
# channel) needs rights of its own: at Create, and again at Start and Update, against the caller's policy
# (keeneye.service.streams.rights; the endpoint checks them after the operation's own right).
STREAM_RIGHTS: dict[str, Callable[[Context, Params], list[Right]]] = {
    "CreateStreamProcessor": _create_rights,
    "StartStreamProcessor": _stored_rights,
    "UpdateStreamProcessor": _stored_rights,
}
