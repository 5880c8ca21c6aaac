"""The human review queue over HTTP (keeneye/service/review/queue.py): ``GET /v1/identifications`` (newest
first, filtered), ``GET /v1/identifications/{id}`` and its ``/crop`` (the probe face, image/jpeg), all
``keeneye:ListIdentifications``; ``POST /v1/identifications/{id}/decision`` ``{"Decision": "CONFIRMED" |
"REJECTED" | "UNSURE"}``, ``keeneye:ReviewIdentification`` (audited as ReviewIdentification); and
``GET|PUT /v1/collections/{collection_id}/review-required`` (``keeneye:SetCollectionReviewRequired`` to
change it). Rights are checked on the identification's collection ARN; listing without ``collection``
needs the right on every resource (``*``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from keeneye.api.collections import RegionQuery, collection_arn, collection_key
from keeneye.api.deps import ApiState, Caller, allowed, need
from keeneye.core import regions
from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.service.container import Services
from keeneye.service.review.queue import MAX_LIST, SOURCE_KINDS, STATUSES, Identification, ReviewQueue

router = APIRouter()

LIST = "keeneye:ListIdentifications"
REVIEW = "keeneye:ReviewIdentification"
SET_REQUIRED = "keeneye:SetCollectionReviewRequired"


def queue(services: Services) -> ReviewQueue:
    result: ReviewQueue = need(services.review, "the review queue")
    return result


def _arn(state: ApiState, collection_id: str | None) -> str:
    collections = state.services.collections
    if collections is None or collection_id is None:
        return "*"
    return collections.arn(collection_id)


def identification_arn(request: Request, state: ApiState) -> str:
    """The collection ARN of the path's identification; ``*`` when there is none (the caller is then
    authorized on every resource before learning that it does not exist)."""
    review = state.services.review
    if review is None:
        return "*"
    try:
        found = review.get(str(request.path_params["identification_id"]))
    except NotFound:
        return "*"
    return _arn(state, found.collection_id)


def listed_arn(request: Request, state: ApiState) -> str:
    """The ``collection`` query's ARN (in the ``region`` query's region), else ``*``."""
    name = request.query_params.get("collection")
    return "*" if name is None else _arn(state, _scoped(name, request.query_params.get("region")))


def _scoped(collection: str, region: str | None) -> str:
    region = region or regions.HOME_REGION
    if not regions.is_region(region):
        raise InvalidParameter("region must be a region name such as us-east-1")
    return collection if regions.SEPARATOR in collection else regions.scoped_key(region, collection)


def to_json(item: Identification) -> dict[str, Any]:
    return {
        "identification_id": item.identification_id,
        "created_at": item.created_at.isoformat(),
        "source_kind": item.source_kind,
        "source_name": item.source_name,
        "session_id": item.session_id,
        "collection_id": item.collection_id,
        "face_id": item.face_id,
        "user_id": item.user_id,
        "similarity": round(item.similarity, 3),
        "track_id": item.track_id,
        "pts_ms": item.pts_ms,
        "has_crop": item.has_crop,
        "status": item.status,
        "decided_by": item.decided_by,
        "decided_at": None if item.decided_at is None else item.decided_at.isoformat(),
    }


@router.get(
    "/v1/identifications",
    summary="Identifications waiting for (or given) a person's review, newest first (authenticated)",
    description=f"Filters: status ({', '.join(STATUSES)}), collection (with region), source "
    f"({', '.join(SOURCE_KINDS)}); at most `limit`. Also answers the count per status (of the "
    "collection, if given).",
)
def list_identifications(
    status: Annotated[str | None, Query(description="PENDING, CONFIRMED, REJECTED or UNSURE")] = None,
    collection: Annotated[str | None, Query(description="Only identifications of this collection")] = None,
    region: Annotated[str | None, Query(description="The collection's region")] = None,
    source: Annotated[str | None, Query(description="stream, video or upload")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="At most this many")] = 100,
    caller: Caller = allowed(LIST, listed_arn),
) -> dict[str, Any]:
    review = queue(caller.services)
    key = None if collection is None else _scoped(collection, region)
    items = review.list(status=status, collection_id=key, source_kind=source, limit=limit)
    return {"identifications": [to_json(i) for i in items], "counts": review.counts(collection_id=key)}


@router.get("/v1/identifications/{identification_id}", summary="One identification (authenticated)")
def get_identification(
    identification_id: str, caller: Caller = allowed(LIST, identification_arn)
) -> dict[str, Any]:
    return to_json(queue(caller.services).get(identification_id))


@router.get(
    "/v1/identifications/{identification_id}/crop",
    summary="The probe face that matched, as JPEG (authenticated)",
    description="404 when the identification kept no crop (or is gone).",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_crop(identification_id: str, caller: Caller = allowed(LIST, identification_arn)) -> Response:
    jpeg = queue(caller.services).crop(identification_id)
    if jpeg is None:
        raise NotFound(f"identification {identification_id!r} has no face crop")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.post(
    "/v1/identifications/{identification_id}/decision",
    summary="Confirm, reject or mark unsure one identification (authenticated)",
    description='Body: {"Decision": "CONFIRMED" | "REJECTED" | "UNSURE"}. A rejected pair is not alerted '
    "again for its track, and its probe is kept as a negative for that person. Audited as "
    "ReviewIdentification under the caller's key.",
)
def decide(identification_id: str, caller: Caller = allowed(REVIEW, identification_arn)) -> dict[str, Any]:
    body = caller.json('{"Decision": "CONFIRMED"}')
    if set(body) != {"Decision"} or not isinstance(body["Decision"], str):
        raise InvalidParameter('the body must be {"Decision": "CONFIRMED" | "REJECTED" | "UNSURE"}')
    item = queue(caller.services).decide(identification_id, body["Decision"], access_key=caller.access_key_id)
    return to_json(item)


@router.get(
    "/v1/collections/{collection_id}/review-required",
    summary="Whether a collection's matches wait for review before sinks get them (authenticated)",
)
def get_review_required(
    request: Request,
    collection_id: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed(LIST, collection_arn),
) -> dict[str, Any]:
    collections = need(caller.services.collections, "collections")
    key = collection_key(request)
    return {"collection_id": regions.name_of(key), "review_required": collections.review_required(key)}


@router.put(
    "/v1/collections/{collection_id}/review-required",
    summary="Hold sink records of a collection's matches until a person confirms them (authenticated)",
    description='Body: {"review_required": true | false}. Applies from a stream processor\'s next start, '
    "and to uploads analysed from now on. Audited.",
)
def set_review_required(
    request: Request,
    collection_id: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed(SET_REQUIRED, collection_arn),
) -> dict[str, Any]:
    collections = need(caller.services.collections, "collections")
    spec = caller.json('{"review_required": true}')
    if set(spec) != {"review_required"} or not isinstance(spec["review_required"], bool):
        raise InvalidParameter('the body must be {"review_required": true} or {"review_required": false}')
    key = collection_key(request)
    collections.set_review_required(key, spec["review_required"])
    caller.audit(
        "SetCollectionReviewRequired", {"review_required": spec["review_required"]}, collection_id=key
    )
    return {"collection_id": regions.name_of(key), "review_required": spec["review_required"]}
