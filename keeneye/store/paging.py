"""Pages of a listing and their opaque NextTokens (keyset pagination on a primary key).

A token is base64url(JSON ``{"v": 1, "l": listing, "k": last key returned}``). Listings are keyset
paginated on their primary key (collection id, face id, user id), so a token stays valid and no item is
repeated or skipped when items are inserted or deleted between pages (new items whose key sorts before
the cursor are simply not in this pass, as with any snapshot-free listing). A token of another listing,
or not a token at all, is InvalidPaginationToken (Rekognition's InvalidPaginationTokenException).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from keeneye.core.errors import InvalidPaginationToken

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is opaque and None on the last page."""

    items: list[T]
    next_token: str | None = None


def encode_token(listing: str, last_key: str) -> str:
    raw = json.dumps({"v": 1, "l": listing, "k": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, listing: str) -> str | None:
    if token is None or token == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPaginationToken("NextToken is not a valid pagination token") from exc
    if not isinstance(data, dict) or data.get("v") != 1 or data.get("l") != listing:
        raise InvalidPaginationToken("NextToken is not a valid pagination token for this listing")
    key = data.get("k")
    if not isinstance(key, str):
        raise InvalidPaginationToken("NextToken is not a valid pagination token")
    return key


def page_of(fetched: Sequence[T], size: int, listing: str, last_key: Callable[[T], str]) -> Page[T]:
    """A page of the first ``size`` of up to ``size + 1`` items fetched; when there were more, its token
    continues after the last one's key."""
    items = list(fetched[:size])
    token = encode_token(listing, last_key(items[-1])) if len(fetched) > size else None
    return Page(items, token)
