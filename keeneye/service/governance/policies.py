"""IAM-shaped access policies: parse and validate a policy document, decide one request.

A policy is the subset of AWS IAM's identity-based policy language that an access key needs::

    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow",
                    "Action": ["rekognition:Search*", "rekognition:DescribeCollection"],
                    "Resource": "arn:aws:rekognition:*:*:collection/staff"},
                   {"Effect": "Deny", "Action": "rekognition:Delete*", "Resource": "*"}]}

``Action`` and ``Resource`` are a string or a list of strings; ``*`` matches any run of characters
(``:`` and ``/`` included) and ``?`` one character, as in IAM. Actions match case-insensitively,
resources case-sensitively. The decision is IAM's: an explicit ``Deny`` that matches wins; otherwise a
matching ``Allow`` allows; otherwise the request is denied (no policy at all denies everything).
``Sid`` is accepted; ``NotAction``, ``NotResource``, ``Condition`` and ``Principal`` are refused with
a clear error rather than silently ignored (ignoring a Condition would grant more than was written).

Pure: no I/O, no clock. Actions are ``rekognition:<Operation>`` (every operation name in botocore's
Rekognition model is known), ``keeneye:<Action>`` for the native API and for the things a request makes
keeneye use (:data:`NATIVE_ACTIONS`), and ``s3:GetObject`` / ``s3:PutObject`` for the objects a request
reads or writes (:data:`S3_ACTIONS`). :func:`resource_for` names an AWS operation's resource,
:func:`request_rights` the further ``(action, resource)`` rights its request needs (S3 objects,
notification channels); the resource names of URLs, files and S3 objects are built here too.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote, urlsplit

from botocore.session import get_session

from keeneye.core.errors import InvalidParameter

VERSION = "2012-10-17"
NATIVE_ACTIONS = (
    "keeneye:ReadAudit",
    "keeneye:ListJobs",
    "keeneye:CancelJob",
    "keeneye:ManageNotificationChannels",
    "keeneye:ReadNotifications",
    "keeneye:SetCollectionRetention",  # PUT /v1/collections/{id}/retention, on the collection's ARN
    "keeneye:RedactImage",  # POST /v1/redact (with keep_collection also SearchFacesByImage on it)
    "keeneye:RedactVideo",  # the console's video redaction job (with s3:GetObject on the video)
    "keeneye:PostUploadEvent",  # POST /v1/upload-events (S3/MinIO notifications, docs/uploads.md)
    "keeneye:ManageUploadRules",  # /v1/upload-rules/{bucket} (arn:aws:s3:::<bucket>), GET /v1/upload-events
    "keeneye:ManageCameras",  # /v1/cameras/{name} (arn:aws:kinesisvideo:...:stream/<name>/1)
    "keeneye:ManageDataStreams",  # /v1/data-streams/{name} (arn:aws:kinesis:...:stream/<name>)
    # What a stream processor uses, checked at Create, Start and Update (docs/security.md):
    "keeneye:UseCamera",  # its Input is a registered camera (arn:aws:kinesisvideo:...:stream/<name>/1)
    "keeneye:UseDataStream",  # its Output is a registered data stream (arn:aws:kinesis:...:stream/<name>)
    "keeneye:UseUrl",  # a URL given as Input or Output: read from / sent to (url_arn)
    "keeneye:WriteFile",  # a file://NAME.jsonl output, in the notifications folder (file_arn)
    # NotificationChannel of Start* and CreateStreamProcessor: told when a job or session ends (topic ARN)
    "keeneye:UseNotificationChannel",
    # The review queue (/v1/identifications, the console), on the identification's collection ARN: a
    # read-only policy (``keeneye:List*``, ``keeneye:Get*``) reads the queue but cannot decide.
    "keeneye:ListIdentifications",
    "keeneye:ReviewIdentification",  # confirm / reject / unsure
    "keeneye:SetCollectionReviewRequired",  # PUT /v1/collections/{id}/review-required
)
S3_ACTIONS = (
    "s3:GetObject",  # an S3Object a request reads (arn:aws:s3:::<bucket>/<key>)
    "s3:PutObject",  # where a stream processor writes (arn:aws:s3:::<bucket>/<prefix>/*)
)
SERVICES = ("rekognition", "keeneye", "s3")
URL_ARN_PREFIX = "arn:keeneye:url:::"
FILE_ARN_PREFIX = "arn:keeneye:file:::"
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "Resource"})
_UNSUPPORTED_KEYS = frozenset({"NotAction", "NotResource", "Condition", "Principal", "NotPrincipal"})
_ARN_RE = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:.+$")

Effect = Literal["Allow", "Deny"]
Reason = Literal["allowed", "explicit deny", "no matching allow"]


@lru_cache(maxsize=1)
def rekognition_actions() -> frozenset[str]:
    """``rekognition:<Operation>`` for every operation in botocore's Rekognition service model."""
    names = get_session().get_service_model("rekognition").operation_names
    return frozenset(f"rekognition:{n}" for n in names)


def known_actions() -> frozenset[str]:
    return rekognition_actions() | frozenset(NATIVE_ACTIONS) | frozenset(S3_ACTIONS)


@lru_cache(maxsize=1)
def _known_lower() -> frozenset[str]:
    return frozenset(a.lower() for a in known_actions())


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM wildcards: ``*`` any run of characters, ``?`` exactly one; everything else literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def matches(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    """Whether ``value`` matches the IAM wildcard pattern ``glob`` as a whole."""
    return _pattern(glob, ignore_case).fullmatch(value) is not None


@dataclass(frozen=True)
class Statement:
    effect: Effect
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    sid: str | None = None

    def applies(self, action: str, resource: str) -> bool:
        return self.names(action) and any(matches(r, resource) for r in self.resources)

    def names(self, action: str) -> bool:
        return any(matches(a, action, ignore_case=True) for a in self.actions)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Policy:
    """A validated policy document; :meth:`decide` answers one (action, resource) question."""

    statements: tuple[Statement, ...]
    document: Mapping[str, Any]

    @classmethod
    def parse(cls, document: Any) -> Policy:
        """Validate ``document`` (a parsed JSON value); raises InvalidParameter naming the bad field."""
        if not isinstance(document, Mapping):
            raise InvalidParameter("the policy must be a JSON object with Version and Statement")
        extra = sorted(set(document) - {"Version", "Statement", "Id"})
        if extra:
            raise InvalidParameter(f"policy: unknown field(s) {', '.join(extra)} (Version, Statement, Id)")
        if document.get("Version") != VERSION:
            raise InvalidParameter(f'policy.Version must be "{VERSION}" (got {document.get("Version")!r})')
        raw = document.get("Statement")
        items = [raw] if isinstance(raw, Mapping) else raw
        if not isinstance(items, list) or not items:
            raise InvalidParameter("policy.Statement must be a statement object or a non-empty list of them")
        statements = tuple(_statement(s, f"policy.Statement[{i}]") for i, s in enumerate(items))
        return cls(statements, dict(document))

    def decide(self, action: str, resource: str) -> Decision:
        """IAM's evaluation: an explicit Deny wins, then any Allow, else deny."""
        allowed = False
        for s in self.statements:
            if s.applies(action, resource):
                if s.effect == "Deny":
                    return Decision(False, "explicit deny")
                allowed = True
        return Decision(True, "allowed") if allowed else Decision(False, "no matching allow")

    def may_ever(self, action: str) -> bool:
        """Whether ``action`` could be allowed on some resource: an Allow names it and no Deny names it
        for every resource (``Resource: "*"``). Used for ListCollections, which is then filtered by
        collection."""
        if any(s.effect == "Deny" and s.names(action) and "*" in s.resources for s in self.statements):
            return False
        return any(s.effect == "Allow" and s.names(action) for s in self.statements)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise InvalidParameter(f"{where} must be a non-empty string or a non-empty list of strings")
    return tuple(items)


def _statement(raw: Any, where: str) -> Statement:
    if not isinstance(raw, Mapping):
        raise InvalidParameter(f"{where} must be an object with Effect, Action and Resource")
    unsupported = sorted(set(raw) & _UNSUPPORTED_KEYS)
    if unsupported:
        raise InvalidParameter(f"{where}.{unsupported[0]} is not supported by keeneye policies")
    extra = sorted(set(raw) - _STATEMENT_KEYS)
    if extra:
        names = ", ".join(extra)
        raise InvalidParameter(f"{where}: unknown field(s) {names} (Sid, Effect, Action, Resource)")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise InvalidParameter(f'{where}.Effect must be "Allow" or "Deny" (got {effect!r})')
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise InvalidParameter(f"{where}.Sid must be a string")
    for key in ("Action", "Resource"):
        if key not in raw:
            raise InvalidParameter(f"{where}.{key} is missing")
    actions = _strings(raw["Action"], f"{where}.Action")
    listed = isinstance(raw["Action"], list)
    for i, action in enumerate(actions):
        _check_action(action, f"{where}.Action[{i}]" if listed else f"{where}.Action")
    resources = _strings(raw["Resource"], f"{where}.Resource")
    for i, resource in enumerate(resources):
        if resource != "*" and not _ARN_RE.match(resource):
            at = f"{where}.Resource[{i}]" if isinstance(raw["Resource"], list) else f"{where}.Resource"
            raise InvalidParameter(
                f'{at}: {resource!r} is neither "*" nor an ARN like '
                '"arn:aws:rekognition:*:*:collection/staff"'
            )
    return Statement(effect, actions, resources, sid)


def _check_action(action: str, where: str) -> None:
    if action == "*":
        return
    service, sep, name = action.partition(":")
    if not sep or not name or service.lower() not in SERVICES:
        raise InvalidParameter(
            f"{where}: {action!r} must look like rekognition:<Operation>, keeneye:<Action> or "
            "s3:GetObject / s3:PutObject (or be *)"
        )
    if "*" in name or "?" in name:
        return
    if action.lower() not in _known_lower():
        hints = {"keeneye": ", ".join(NATIVE_ACTIONS), "s3": ", ".join(S3_ACTIONS)}
        hint = hints.get(service.lower(), "Rekognition's operation names")
        raise InvalidParameter(f"{where}: unknown action {action!r} (known: {hint})")


def resource_for(params: Mapping[str, Any], collection_arn: Callable[[str], str]) -> str:
    """The resource an AWS operation acts on: the collection ARN for a CollectionId, the ResourceArn of
    the tag operations, the stream processor's ARN for a Name, else ``*`` (DetectFaces, CompareFaces,
    Start/GetPersonTracking, ...).
    ``collection_arn``: CollectionId -> ARN (FaceCollections.arn)."""
    if isinstance(params.get("CollectionId"), str):
        return collection_arn(params["CollectionId"])
    if isinstance(params.get("ResourceArn"), str):
        return str(params["ResourceArn"])
    if isinstance(params.get("Name"), str):  # the stream-processor operations (same region and account)
        return collection_arn("*").replace(":collection/*", f":streamprocessor/{params['Name']}")
    return "*"


class Right(NamedTuple):
    """One (action, resource) question a request asks of the caller's policy."""

    action: str
    resource: str


def s3_object_arn(bucket: str, key: str) -> str:
    """An S3 object's ARN, as IAM names it: ``arn:aws:s3:::<bucket>/<key>``."""
    return f"arn:aws:s3:::{bucket}/{key}"


def s3_prefix_arn(bucket: str, prefix: str) -> str:
    """Every object under ``prefix`` (slashes at its ends dropped; empty: the whole bucket), ending in a
    literal ``*``: ``arn:aws:s3:::<bucket>/<prefix>/*``. A policy allows it when its pattern matches
    that text, i.e. when it allows the prefix or wider (``arn:aws:s3:::<bucket>/<prefix>/*``,
    ``arn:aws:s3:::<bucket>/*``)."""
    prefix = prefix.strip("/")
    return f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*"


def url_arn(url: str) -> str:
    """The resource a URL names for ``keeneye:UseUrl``: ``arn:keeneye:url:::<scheme>://<host>[:<port>]
    <path>``, the URL as keeneye connects to it with the scheme and host in lower case, without user,
    password, query or fragment (so no secret reaches a policy, a log line or an AccessDenied message),
    and the path percent-decoded with its ``.`` and ``..`` segments resolved (``/hooks/%2e%2e/admin`` is
    ``/admin``: a policy allowing ``.../hooks/*`` does not allow it). InvalidParameter for a URL
    without a scheme or host, or with a bad port or IPv6 address."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a bad port or IPv6 address
        raise InvalidParameter("the URL does not parse: check its host and port") from None
    host = parts.hostname or ""
    if not parts.scheme or not host:
        raise InvalidParameter("the URL needs a scheme and a host")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    path = unquote(parts.path)
    if path:
        trailing = "/" if path.endswith("/") and path != "/" else ""
        path = posixpath.normpath("/" + path.lstrip("/")).replace("//", "/") + trailing
    return f"{URL_ARN_PREFIX}{parts.scheme.lower()}://{host}{'' if port is None else f':{port}'}{path}"


def file_arn(name: str) -> str:
    """The resource of a JSONL file a stream processor appends to, for ``keeneye:WriteFile``:
    ``arn:keeneye:file:::notifications/<NAME>.jsonl`` (the data directory's notifications folder, where
    notification channels' JSONL files are too)."""
    return f"{FILE_ARN_PREFIX}notifications/{name}"


_IMAGE_KEYS = ("Image", "SourceImage", "TargetImage", "Video")


def request_rights(params: Mapping[str, Any]) -> list[Right]:
    """The rights an AWS request needs besides its operation's (:func:`resource_for`): ``s3:GetObject``
    on each S3Object it reads (``Image``, ``SourceImage``, ``TargetImage``, ``Video``) and
    ``keeneye:UseNotificationChannel`` on the topic its ``NotificationChannel`` names."""
    rights: list[Right] = []
    for key in _IMAGE_KEYS:
        value = params.get(key)
        s3 = value.get("S3Object") if isinstance(value, Mapping) else None
        if isinstance(s3, Mapping) and isinstance(s3.get("Bucket"), str) and isinstance(s3.get("Name"), str):
            rights.append(Right("s3:GetObject", s3_object_arn(s3["Bucket"], s3["Name"])))
    channel = params.get("NotificationChannel")
    if isinstance(channel, Mapping) and isinstance(channel.get("SNSTopicArn"), str):
        rights.append(Right("keeneye:UseNotificationChannel", channel["SNSTopicArn"]))
    return rights


def unique(rights: Iterable[Right]) -> list[Right]:
    """``rights`` in order, each once."""
    return list(dict.fromkeys(rights))
