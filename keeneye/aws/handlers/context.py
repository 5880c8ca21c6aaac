"""What every handler shares: the call's :class:`Context`, the collections of the caller's region, the
audit record, ClientRequestToken replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from keeneye.aws import shapes
from keeneye.aws.errors import AwsError
from keeneye.core import regions
from keeneye.service.container import Services
from keeneye.service.faces.collections import FaceCollections, FaceMatch, UserMatch

Params = dict[str, Any]
Response = dict[str, Any]

DEFAULT_THRESHOLD = 80.0  # FaceMatchThreshold / SimilarityThreshold / UserMatchThreshold defaults
DEFAULT_ASSOCIATE_THRESHOLD = 75.0  # AssociateFaces' UserMatchThreshold default


def _allow_all(action: str, resource: str) -> bool:
    return True


@dataclass(frozen=True)
class Context:
    """One call: the services, who made it, and ``authorize(action, resource)`` of the caller's policy
    (the adapter checks the operation itself; handlers use it to filter what they list)."""

    services: Services
    access_key_id: str
    request_id: str
    authorize: Callable[[str, str], object] = _allow_all
    region: str = regions.HOME_REGION  # the region the caller signed for: it scopes collections & co.


Handler = Callable[[Context, Params], Response]


def regional_collections(ctx: Context) -> FaceCollections:
    """The collections of the caller's region."""
    if ctx.services.collections is None:
        raise AwsError("InternalServerError", "collections are not available on this server")
    return ctx.services.collections.in_region(ctx.region)


def scoped(ctx: Context, collection_id: str) -> str:
    """What the audit log and the jobs record for a collection: its id, qualified with its region
    outside us-east-1 (keeneye.core.regions)."""
    return regions.scoped_key(ctx.region, collection_id)


def audit(
    ctx: Context,
    operation: str,
    collection_id: str | None,
    *,
    faces_in_request: int = 0,
    matches: Sequence[dict[str, Any]] = (),
    threshold: float | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit record (time, caller, operation, collection, faces, matches, threshold)."""
    trail = ctx.services.audit
    if trail is None:
        return
    trail.append(
        operation,
        access_key=ctx.access_key_id,
        collection_id=collection_id,
        request_faces=faces_in_request,
        matches=list(matches),
        threshold=threshold,
        details=details,
    )


def face_hits(matches: Sequence[FaceMatch]) -> list[dict[str, Any]]:
    """Face matches as the audit record keeps them."""
    return [{"FaceId": m.face.face_id, "Similarity": float(m.similarity)} for m in matches]


def user_hits(matches: Sequence[UserMatch]) -> list[dict[str, Any]]:
    """User matches as the audit record keeps them."""
    return [{"UserId": m.user.user_id, "Similarity": float(m.similarity)} for m in matches]


def model_version(ctx: Context, collection_id: str) -> str:
    """The FaceModelVersion of a collection of the caller's region."""
    return shapes.face_model_version(
        regional_collections(ctx).describe_collection(collection_id).face_model_version
    )


def once(ctx: Context, operation: str, p: Params, call: Callable[[], Response]) -> Response:
    """``call()``, or the response an earlier call with the same ClientRequestToken got."""
    tokens = ctx.services.request_tokens
    if tokens is None:
        return call()
    return tokens.run(
        access_key=ctx.access_key_id, region=ctx.region, operation=operation, params=p, call=call
    )
