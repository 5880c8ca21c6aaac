"""``PUT /v1/collections/{collection_id}/retention``: how long a collection keeps its faces
(``keeneye:SetCollectionRetention`` on the collection's ARN; docs/accountability.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from keeneye.api.deps import ApiState, Caller, allowed, need
from keeneye.core import regions
from keeneye.core.errors import InvalidParameter

router = APIRouter()

RegionQuery = Annotated[
    str, Query(description="The collection's region (collections are regional, as on AWS)")
]


def collection_key(request: Request) -> str:
    """The store key of the path's collection in the query's region ("demo", "ap-southeast-2/demo")."""
    collection_id = str(request.path_params["collection_id"])
    region = request.query_params.get("region", regions.HOME_REGION)
    if not regions.is_region(region):
        raise InvalidParameter("region must be a region name such as us-east-1")
    if regions.SEPARATOR in collection_id:
        return collection_id
    return regions.scoped_key(region, collection_id)


def collection_arn(request: Request, state: ApiState) -> str:
    collections = state.services.collections
    return collections.arn(collection_key(request)) if collections is not None else "*"


@router.put(
    "/v1/collections/{collection_id}/retention",
    summary="Set how many days a collection keeps its faces (authenticated)",
    description='Body: {"days": N} (1-36500) or {"days": null} (keep until deleted). Faces indexed '
    "longer ago are deleted by the retention purge. Answers the collection id, retention and face "
    "count; audited.",
)
def set_retention(
    request: Request,
    collection_id: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("keeneye:SetCollectionRetention", collection_arn),
) -> dict[str, Any]:
    collections = need(caller.services.collections, "collections")
    spec = caller.json('{"days": 30}')
    if set(spec) != {"days"}:
        raise InvalidParameter('the body must be {"days": N} or {"days": null}')
    key = collection_key(request)
    info = collections.set_retention(key, spec["days"])
    caller.audit("SetCollectionRetention", {"days": info.retention_days}, collection_id=key)
    return {
        "collection_id": info.collection_id,
        "retention_days": info.retention_days,
        "face_count": info.face_count,
    }
