"""Idempotent requests: the same ClientRequestToken gets the same response.

Rekognition's CreateUser, DeleteUser, AssociateFaces and DisassociateFaces take a ClientRequestToken
"to prevent the same request from being processed more than once": a client that retries after a
timeout must not see ConflictException (the user it created) or ResourceNotFoundException (the user it
deleted). keeneye keeps each token's response for :data:`KEEP` per access key and region (another key's
token is another request); the same token with other parameters is IdempotentParameterMismatch.
Stored-video Start* jobs keep their tokens with the job (keeneye/service/video/jobs.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from keeneye.core.errors import IdempotentParameterMismatch
from keeneye.store.db import Store
from keeneye.store.tables import RequestTokenRow

KEEP = timedelta(hours=24)  # a retry comes within seconds; a day covers a client that queued it


def fingerprint(params: Mapping[str, Any]) -> str:
    """SHA-256 of every parameter but the token, canonically serialised."""
    rest = {k: v for k, v in params.items() if k != "ClientRequestToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


class RequestTokens:
    """The token store on the metadata database."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._clock = clock

    def run(
        self,
        *,
        access_key: str,
        region: str,
        operation: str,
        params: Mapping[str, Any],
        call: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """``call()``'s response, or, for a token seen before, the response it got then. Without a
        token, just ``call()``. A failed call keeps no token (the client may retry it)."""
        token = params.get("ClientRequestToken")
        if not token:
            return call()
        digest = fingerprint(params)
        key = (access_key, region, operation, str(token))
        now = self._clock()
        with self._store.transaction() as s:
            row = s.get(RequestTokenRow, key)
            if row is not None and row.created_at >= now - KEEP:
                if row.fingerprint != digest:
                    raise IdempotentParameterMismatch(
                        "ClientRequestToken was already used with other parameters; use a new token for a "
                        "different request"
                    )
                return dict(row.response)
        response = call()
        try:
            with self._store.transaction() as s:
                s.execute(delete(RequestTokenRow).where(RequestTokenRow.created_at < now - KEEP))
                s.merge(
                    RequestTokenRow(
                        access_key=access_key,
                        region=region,
                        operation=operation,
                        token=str(token),
                        fingerprint=digest,
                        response=response,
                        created_at=now,
                    )
                )
        except IntegrityError:  # the same request, at the same moment, from another thread: it won
            pass
        return response
