"""The limits and the parameter checks of the collection, face, user and search operations.

Limits and patterns are botocore's service-2.json for Rekognition; every check raises InvalidParameter
(LimitExceeded for too many tags) with the parameter's Rekognition name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from keeneye.core.errors import InvalidParameter, LimitExceeded

MAX_LIST_COLLECTIONS = 4096
MAX_LIST_FACES = 4096
MAX_LIST_USERS = 500
DEFAULT_PAGE = 1000
MAX_SEARCH_FACES = 4096
MAX_SEARCH_USERS = 500
MAX_FACES_PER_USER = 100  # Rekognition's limit of faces associated with one user
MAX_ASSOCIATE = 100  # UserFaceIdList max
MAX_DELETE = 4096  # FaceIdList max
MAX_TAGS = 50
MAX_RETENTION_DAYS = 36_500
PURGE_CHUNK = 500  # faces deleted per transaction by a retention purge

USER_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
FACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TAG_KEY = re.compile(r"^(?!aws:)[\w\s.:/=+\-@]{1,128}$", re.UNICODE)
_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$", re.UNICODE)


def check(pattern: re.Pattern[str], value: str, name: str) -> str:
    """``value`` if it is a string matching ``pattern`` in full, else InvalidParameter naming ``name``."""
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidParameter(f"{name} {value!r} is not valid (must match {pattern.pattern})")
    return value


def check_range(value: float, low: float, high: float, name: str) -> None:
    """A number (not a bool) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def page_size(max_results: int, limit: int) -> int:
    """0 means the default page (PageSize allows 0); anything else must be within 1..limit."""
    if max_results == 0:
        return min(DEFAULT_PAGE, limit)
    check_range(max_results, 1, limit, "MaxResults")
    return max_results


def check_tags(tags: Mapping[str, str]) -> None:
    """Tags of a collection: at most MAX_TAGS, keys and values of Rekognition's forms."""
    if not isinstance(tags, dict):
        raise InvalidParameter("Tags must be a map of keys to values")
    if len(tags) > MAX_TAGS:
        raise LimitExceeded(f"a resource can have at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not isinstance(key, str) or _TAG_KEY.match(key) is None:
            raise InvalidParameter(f"tag key {key!r} is not valid (1-128 characters, not starting with aws:)")
        if not isinstance(value, str) or _TAG_VALUE.match(value) is None:
            raise InvalidParameter(f"tag value for {key!r} is not valid (0-256 characters)")


def user_face_ids(face_ids: Sequence[str]) -> list[str]:
    """Validate an Associate/DisassociateFaces FaceIds list (1-100 well-formed ids); duplicates dropped."""
    if not 1 <= len(face_ids) <= MAX_ASSOCIATE:
        raise InvalidParameter(f"FaceIds must hold 1 to {MAX_ASSOCIATE} ids")
    for face_id in face_ids:
        check(FACE_ID, face_id, "FaceId")
    return list(dict.fromkeys(face_ids))
