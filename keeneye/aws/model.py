"""The Rekognition service model (botocore's ``service-2.json``) as the contract for requests.

``parse_input`` turns an AWS JSON 1.1 body into validated parameters, the way the service would:

* the body must be a JSON object (else ``SerializationException``; also for NaN and Infinity, which
  Python's parser would take, and for nesting deeper than Python's parser can recurse);
* blobs (``Image.Bytes``) arrive base64-encoded and are decoded here;
* botocore's ``ParamValidator`` checks required members, types and minimums (what the SDK checks
  client-side); keeneye then checks what the SDK leaves to the service: maximum lengths and values,
  enums and patterns. Violations are ``ValidationException`` with AWS's message style
  ("1 validation error detected: Value null at 'collectionId' failed to satisfy constraint: Member
  must not be null"). ``Image.Bytes`` over 5 MB is such a violation (``ImageBlob`` max 5242880), as
  on AWS; ``ImageTooLargeException`` is for S3 objects over 15 MB and images over the pixel limit.
* members the model does not know are ignored, as AWS JSON services do (forward compatibility).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from keeneye.aws.errors import AwsError
from keeneye.aws.plans import unsupported_message

SERVICE = "rekognition"
TARGET_PREFIX = "RekognitionService."
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Image.Bytes (ImageBlob max in the model)
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024  # images read from an S3Object (Rekognition's documented limit)
_MAX_SHOWN = 60  # longest value echoed in an error message


@cache
def service_model() -> ServiceModel:
    """Rekognition's model as shipped with the installed botocore (loaded once)."""
    return botocore.session.get_session().get_service_model(SERVICE)


def operation_names() -> list[str]:
    return sorted(service_model().operation_names)


def operation_for_target(
    target: str | None, supported: frozenset[str], implemented: frozenset[str] = frozenset()
) -> OperationModel:
    """The operation an ``X-Amz-Target`` header names, if this server serves it (``supported``);
    ``implemented``: what keeneye can serve at all (the answer says which case it is)."""
    if not target or not target.startswith(TARGET_PREFIX):
        raise AwsError("UnknownOperationException", f"unknown operation target {_show(target)}")
    name = target[len(TARGET_PREFIX) :]
    if name not in service_model().operation_names:
        raise AwsError("UnknownOperationException", f"unknown operation {_show(name)}")
    if name not in supported:
        raise AwsError("UnknownOperationException", unsupported_message(name, name in implemented))
    return service_model().operation_model(name)


def parse_input(operation: OperationModel, body: bytes) -> dict[str, Any]:
    """Validated input parameters (blobs decoded) for ``operation`` from a JSON 1.1 body."""
    try:
        params = json.loads(body, parse_constant=_refuse_constant) if body.strip() else {}
    except RecursionError:  # [[[[...: Python's parser recurses per level
        raise AwsError("SerializationException", "the request body is nested too deeply") from None
    except ValueError as exc:  # not JSON, not UTF-8, NaN/Infinity, an integer of over 4300 digits
        raise AwsError("SerializationException", f"the request body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise AwsError("SerializationException", "the request body must be a JSON object")
    shape = operation.input_shape
    if shape is None:
        return {}
    errors: list[str] = []
    cleaned = _walk(params, shape, "", errors)
    if not errors:
        errors.extend(_botocore_errors(cleaned, shape))
    if not errors:
        _check_constraints(cleaned, shape, "", errors)
    if errors:
        n = len(errors)
        raise AwsError(
            "ValidationException",
            f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(errors[:10]),
        )
    assert isinstance(cleaned, dict)
    return cleaned


def _refuse_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (Python's parser takes them; AWS's do not): a NaN
    threshold would pass every range check, as no comparison with NaN is true."""
    raise ValueError(f"{name} is not a JSON number")


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, bytes) else f"<{len(value)} bytes>"
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...'"


def _walk(value: Any, shape: Shape, path: str, errors: list[str]) -> Any:
    """Drop unknown members and decode base64 blobs; types are left to botocore's validator."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {
            k: _walk(v, members[k], f"{path}.{_camel(k)}" if path else _camel(k), errors)
            for k, v in value.items()
            if k in members and v is not None
        }
    if kind == "list" and isinstance(value, list):
        member = shape.member
        return [_walk(v, member, f"{path}.{i + 1}.member", errors) for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        vshape = shape.value
        return {k: _walk(v, vshape, f"{path}.{k}", errors) for k, v in value.items()}
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            errors.append(f"Value at '{path}' failed to satisfy constraint: Member must be valid base64")
            return b""
    return value


def _botocore_errors(params: dict[str, Any], shape: Shape) -> list[str]:
    """botocore's checks (required, types, minimums) rephrased the way the service reports them."""
    report = ParamValidator().validate(params, shape)
    if not report.has_errors():
        return []
    raw = getattr(report, "_errors", None)
    if not isinstance(raw, list):  # botocore changed its internals: fall back to its own wording
        return [report.generate_report().replace("\n", "; ")]
    out: list[str] = []
    for reason, name, extra in raw:
        where = ".".join(_camel(p) for p in str(name).split(".")[1:]) or _camel(shape.name)
        if reason == "missing required field":
            member = _camel(extra["required_name"])
            full = f"{where}.{member}" if name.count(".") else member
            out.append(f"Value null at '{full}' failed to satisfy constraint: Member must not be null")
        elif reason == "invalid type":
            out.append(
                f"Value {_show(extra.get('param'))} at '{where}' failed to satisfy constraint: "
                f"Member must be of type {_type_name(extra)}"
            )
        elif reason == "invalid length":  # botocore reports the length, not the value
            out.append(
                f"Value of length {extra.get('param')} at '{where}' failed to satisfy constraint: "
                f"Member must have length greater than or equal to {extra.get('min_allowed')}"
            )
        elif reason == "invalid range":
            out.append(
                f"Value {_show(extra.get('param'))} at '{where}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {extra.get('min_allowed')}"
            )
        else:
            out.append(f"Value at '{where}' failed to satisfy constraint: {reason}")
    return out


def _type_name(extra: dict[str, Any]) -> str:
    names = " or ".join(str(t).removeprefix("<class '").removesuffix("'>") for t in extra["valid_types"])
    return names or "the modelled type"


@cache
def _pattern(text: str) -> re.Pattern[str] | None:
    """A model pattern as a full-match regex; None for Java-only syntax Python cannot compile."""
    try:
        return re.compile(text)
    except re.error:
        return None


# Kinesis ARNs of stream processors: keeneye also takes a camera URL (Input) or a sink URL (Output) in
# their place (docs/streams.md: the schemes each accepts); any other value must still match AWS's pattern.
_URLS = {
    "KinesisVideoArn": re.compile(r"(?i)(rtsps?|rtmp|https?|file)://\S+"),
    "KinesisDataArn": re.compile(r"(?i)(https?|mqtts?|file|s3)://\S+"),
}


def _is_url(shape_name: str, value: str) -> bool:
    url = _URLS.get(shape_name)
    return url is not None and url.fullmatch(value) is not None


def _check_constraints(value: Any, shape: Shape, path: str, errors: list[str]) -> None:
    """Maximums, enums and patterns, which botocore's validator leaves to the service."""
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        for k, v in value.items():
            _check_constraints(v, members[k], f"{path}.{_camel(k)}" if path else _camel(k), errors)
        return
    if kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Value at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {meta['max']}"
            )
        for i, v in enumerate(value):
            _check_constraints(v, shape.member, f"{path}.{i + 1}.member", errors)
        return
    if kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Value at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {meta['max']}"
            )
        for k, v in value.items():
            _check_constraints(k, shape.key, f"{path}.key", errors)
            _check_constraints(v, shape.value, f"{path}.{k}", errors)
        return
    if kind in ("string", "blob") and isinstance(value, str | bytes):
        # botocore checks a string's minimum length but not a blob's: an empty Image.Bytes breaks the
        # model's ImageBlob min 1 (AWS answers ValidationException, not InvalidImageFormatException).
        if kind == "blob" and "min" in meta and len(value) < meta["min"]:
            errors.append(
                f"Value at '{path}' failed to satisfy constraint: "
                f"Member must have length greater than or equal to {meta['min']}"
            )
        # Pagination tokens are keeneye's own and opaque to clients; one naming a long collection id
        # may exceed the model's 255 characters, so their length is not held against the caller.
        if "max" in meta and len(value) > meta["max"] and shape.name != "PaginationToken":
            errors.append(
                f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {meta['max']}"
            )
        if isinstance(value, str):
            enum = shape.enum
            if enum and value not in enum:
                errors.append(
                    f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                    f"Member must satisfy enum value set: [{', '.join(enum)}]"
                )
            pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
            if _is_url(shape.name, value):
                pattern = None  # keeneye's extension: a camera or sink URL where AWS wants a Kinesis ARN
            if pattern is not None and not pattern.fullmatch(value):
                errors.append(
                    f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                    f"Member must satisfy regular expression pattern: {meta['pattern']}"
                )
        return
    numeric = kind in ("integer", "long", "float", "double") and isinstance(value, int | float)
    if numeric and "max" in meta and value > meta["max"]:
        errors.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {meta['max']}"
        )
