"""Short-lived tokens of the native API (``POST /v1/tokens``), so that a secret access key need not
travel with every request.

A token is ``ket_`` and 43 URL-safe characters (256 random bits, ``secrets``); a secret access key never
holds ``_``, so the two cannot be confused. Only its SHA-256 is stored (``api_tokens``): a dump of the
database gives nothing to replay, and a token is looked up by its hash (an unkeyed hash suffices for a
256-bit random value). It acts as the access key it was issued to, with that key's policy, until it
expires; the key ring (keeneye.auth.keyring) resolves the key again at every use, so a token stops
working the moment its key is disabled or deleted (whose tokens are also deleted then), and a token of
the bootstrap key stops when that key changes. Expired rows are deleted as new tokens are issued.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from keeneye.store.db import Store
from keeneye.store.tables import ApiTokenRow

PREFIX = "ket_"


def is_token(bearer: str) -> bool:
    """Whether a Bearer value is a token (``ket_...``) rather than a secret access key."""
    return bearer.startswith(PREFIX)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A new token (shown once: only its hash is kept), whose key it acts as, and until when."""

    token: str = field(repr=False)
    access_key_id: str
    expires_at: datetime


class ApiTokens:
    """The ``api_tokens`` table. ``clock``: now, timezone-aware."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._now = clock

    def issue(self, access_key_id: str, duration_s: float) -> IssuedToken:
        """A token acting as ``access_key_id`` for ``duration_s`` seconds (the caller bounds it)."""
        now = self._now()
        token = PREFIX + secrets.token_urlsafe(32)
        expires = now + timedelta(seconds=duration_s)
        with self._store.transaction() as s:
            s.execute(delete(ApiTokenRow).where(ApiTokenRow.expires_at <= now))
            s.add(
                ApiTokenRow(
                    token_hash=token_hash(token),
                    access_key_id=access_key_id,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return IssuedToken(token, access_key_id, expires)

    def key_of(self, token: str) -> str | None:
        """The access key id an unexpired ``token`` acts as; None for an unknown or expired one."""
        if not is_token(token):
            return None
        with self._store.transaction() as s:
            row = s.get(ApiTokenRow, token_hash(token))
            if row is None or row.expires_at <= self._now():
                return None
            return row.access_key_id

    def revoke(self, token: str) -> bool:
        """Delete one token (``DELETE /v1/tokens``: a client done with it); whether it existed."""
        with self._store.transaction() as s:
            gone = s.execute(delete(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash(token)))
            return bool(gone.rowcount)  # type: ignore[attr-defined]

    def revoke_key(self, access_key_id: str) -> int:
        """Delete every token of a key (it was disabled or deleted); how many."""
        with self._store.transaction() as s:
            gone = s.execute(delete(ApiTokenRow).where(ApiTokenRow.access_key_id == access_key_id))
            return int(gone.rowcount)  # type: ignore[attr-defined]
