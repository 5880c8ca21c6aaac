"""One function per Rekognition operation: PascalCase parameters in, service call, shapes out.

Parameters arrive validated against the service model (keeneye.aws.model), blobs decoded. Each
handler reads what it needs, calls keeneye.service, and builds the response with keeneye.aws.shapes.
Identity operations and stored-video Start* calls append an audit record with the caller's access key
id (docs/accountability.md). The handlers live by domain:

* ``context.py``: :class:`Context` (one call), the collections of the caller's region, the audit
  record, ClientRequestToken replay;
* ``faces.py``: DetectFaces, CompareFaces;
* ``catalog.py``: collections, the faces in them (IndexFaces ... SearchFacesByImage), tags;
* ``users.py``: CreateUser ... SearchUsersByImage;
* ``video.py``: stored-video jobs (Start* / Get*);
* ``streams.py``: stream processors.

:data:`OPERATIONS` maps every operation name to its handler (keeneye.aws.endpoint dispatches on it).
"""

from __future__ import annotations

from keeneye.aws.handlers.catalog import CATALOG_OPERATIONS, TAG_OPERATIONS
from keeneye.aws.handlers.context import Context, Handler, Params, Response
from keeneye.aws.handlers.faces import FACE_OPERATIONS
from keeneye.aws.handlers.streams import STREAM_OPERATIONS, STREAM_RIGHTS
from keeneye.aws.handlers.users import USER_OPERATIONS
from keeneye.aws.handlers.video import VIDEO_OPERATIONS
from keeneye.service.container import Services
from keeneye.service.governance.policies import Right, request_rights, unique

__all__ = [
    "COLLECTION_OPERATIONS",
    "FACE_OPERATIONS",
    "IGNORED_PARAMETERS",
    "OPERATIONS",
    "STREAM_OPERATIONS",
    "VIDEO_OPERATIONS",
    "Context",
    "Handler",
    "Params",
    "Response",
    "Services",
    "rights_needed",
]

COLLECTION_OPERATIONS: dict[str, Handler] = {**CATALOG_OPERATIONS, **USER_OPERATIONS, **TAG_OPERATIONS}

OPERATIONS: dict[str, Handler] = {
    **FACE_OPERATIONS,
    **COLLECTION_OPERATIONS,
    **VIDEO_OPERATIONS,
    **STREAM_OPERATIONS,
}


def rights_needed(ctx: Context, operation: str, params: Params) -> list[Right]:
    """The rights a request needs besides its operation's own, each once: ``s3:GetObject`` on every
    S3Object it reads and ``keeneye:UseNotificationChannel`` on its NotificationChannel
    (keeneye.service.governance.policies.request_rights), and what a stream processor uses at Create,
    Start and Update (:data:`STREAM_RIGHTS`). Run only once the operation itself is allowed: a stored
    processor is read to name them."""
    extra = STREAM_RIGHTS.get(operation)
    return unique([*request_rights(params), *(extra(ctx, params) if extra is not None else ())])


# Parameters of supported operations keeneye accepts but does not act on (docs/rekognition-coverage.md).
IGNORED_PARAMETERS: dict[str, tuple[str, ...]] = {
    # No IAM or KMS here; records are not shared with anyone (docs/streams.md).
    "CreateStreamProcessor": ("RoleArn", "KmsKeyId", "DataSharingPreference"),
}
