"""``POST /v1/collections/{collection_id}/users/{user_id}/photos``: enrol a person from several photos
in one request (keeneye/service/faces/enrol.py), each photo's outcome in the answer.

Needs ``rekognition:IndexFaces`` and ``rekognition:AssociateFaces`` on the collection's ARN, and
``rekognition:CreateUser`` too when the user is new: the rights of the Rekognition calls it stands
for. At most :data:`MAX_PHOTOS` photos, in a body within ``server.max_body_bytes``; analysed under the
same caps as ``POST /`` (``server.max_inflight`` requests, ``server.max_pixels_inflight`` pixels).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request

from keeneye.api.collections import RegionQuery, collection_arn, collection_key
from keeneye.api.deps import Caller, allowed, analysing, need
from keeneye.core import regions
from keeneye.core.errors import InvalidParameter
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.faces.enrol import Photo, enrol

router = APIRouter()

MAX_PHOTOS = 20
EXAMPLE = '{"photos": [{"name": "ada1.jpg", "bytes": "<base64>"}], "quality_filter": "AUTO"}'
QUALITY_FILTERS = ("AUTO", "NONE", "LOW", "MEDIUM", "HIGH")

_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["photos"],
    "additionalProperties": False,
    "properties": {
        "photos": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_PHOTOS,
            "items": {
                "type": "object",
                "required": ["name", "bytes"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "description": "File name; the face's ExternalImageId"},
                    "bytes": {"type": "string", "description": "The JPEG or PNG photo, base64"},
                },
            },
        },
        "quality_filter": {"type": "string", "enum": list(QUALITY_FILTERS), "default": "AUTO"},
    },
}


def _photo(item: Any, n: int) -> Photo:
    """One item of ``photos``; bytes that are not base64 make the photo unreadable, not the request."""
    if not isinstance(item, dict) or set(item) != {"name", "bytes"}:
        raise InvalidParameter(
            f"photos[{n}] must be an object such as {{'name': 'a.jpg', 'bytes': '<base64>'}}"
        )
    name, data = item["name"], item["bytes"]
    if not isinstance(name, str) or not name or not isinstance(data, str):
        raise InvalidParameter(f"photos[{n}]: name must be a non-empty string and bytes a base64 string")
    try:
        return Photo(name, base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return Photo(name, None, "bytes are not base64")


def _photos(spec: dict[str, Any]) -> list[Photo]:
    if not set(spec) <= {"photos", "quality_filter"} or "photos" not in spec:
        raise InvalidParameter(f"the body must be a JSON object such as {EXAMPLE}")
    items = spec["photos"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_PHOTOS:
        raise InvalidParameter(f"photos must be a list of 1 to {MAX_PHOTOS} photos")
    return [_photo(item, n) for n, item in enumerate(items)]


@router.post(
    "/v1/collections/{collection_id}/users/{user_id}/photos",
    summary="Enrol a person from several photos: index each and associate it with the user (authenticated)",
    description=f"Body: {EXAMPLE} (1-{MAX_PHOTOS} photos). Every photo is checked first (exactly one "
    "face passing quality_filter); those that pass are indexed (ExternalImageId: the name) and "
    "associated with the user, created if new. Answers each photo's outcome: indexed with its "
    "face_id, or skipped with the reason. No photo passes: 400 and nothing is written. Needs "
    "rekognition:IndexFaces and rekognition:AssociateFaces on the collection (and "
    "rekognition:CreateUser for a new user); audited.",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    },
)
def enrol_user(
    request: Request,
    collection_id: str,
    user_id: str,
    region: RegionQuery = regions.HOME_REGION,
    caller: Caller = allowed("rekognition:IndexFaces", collection_arn),
) -> dict[str, Any]:
    arn = collection_arn(request, caller.state)
    where = f"POST {request.url.path}"
    caller.require([("rekognition:AssociateFaces", arn)], where)
    collections: FaceCollections = need(caller.services.collections, "collections")
    spec = caller.json(EXAMPLE)
    photos = _photos(spec)
    quality = spec.get("quality_filter", "AUTO")
    if quality not in QUALITY_FILTERS:
        raise InvalidParameter(f"quality_filter must be one of {', '.join(QUALITY_FILTERS)}")
    key = collection_key(request)
    with analysing(caller.state):  # under server.max_inflight, its pixels under the server's budget
        result = enrol(
            collections,
            key,
            user_id,
            photos,
            quality_filter=quality,
            before_create_user=lambda: caller.require([("rekognition:CreateUser", arn)], where),
        )
    skipped = len(result.photos) - len(result.face_ids)
    caller.audit(
        "EnrolUser",
        {
            "user_id": user_id,
            "face_ids": result.face_ids,
            "skipped": skipped,
            "user_created": result.user_created,
        },
        collection_id=key,
    )
    doc = result.to_dict()
    doc["collection_id"] = regions.name_of(key)
    return doc
