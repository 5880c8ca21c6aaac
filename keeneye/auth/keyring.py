"""Access keys the server accepts: the bootstrap key pair (admin) and the keys in the database.

The bootstrap key (keeneye.service.governance.credentials) comes from the environment, or is a key pair
created once on disk; it is allowed everything. Keys made with ``keeneye keys create`` live in the
database (keeneye.service.governance.keys) and are bound by their IAM-shaped policies
(keeneye.service.governance.policies); :class:`KeyRing` finds both. Native-API tokens
(keeneye.service.governance.tokens, ``POST /v1/tokens``) are kept with the database keys and act as the
key they were issued to: the key is resolved again at each use, so a disabled, deleted or changed key's
tokens stop working at once. Nothing here logs or prints a secret.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from keeneye.service.governance.credentials import AccessKey as AccessKey  # re-exported
from keeneye.service.governance.policies import Decision, Policy

if TYPE_CHECKING:
    from keeneye.service.governance.keys import StoredKey
    from keeneye.service.governance.tokens import IssuedToken


class KeyDatabase(Protocol):
    """Keys kept in the database (keeneye.service.governance.keys.AccessKeys): enabled keys only."""

    def lookup(self, access_key_id: str) -> StoredKey | None: ...

    def find_by_secret(self, secret: str) -> StoredKey | None: ...

    def touch(self, access_key_id: str, now: datetime | None = None) -> None: ...


@runtime_checkable
class TokenDatabase(Protocol):
    """Native-API tokens, kept with the database keys (keeneye.service.governance.keys.AccessKeys); a
    key database without them serves no tokens."""

    def issue_token(self, access_key_id: str, duration_s: float) -> IssuedToken: ...

    def token_key(self, token: str) -> str | None: ...

    def revoke_token(self, token: str) -> bool: ...


@dataclass(frozen=True)
class Principal:
    """Who signed a request, and what they may do.

    ``admin``: the bootstrap key (environment or credentials.json), allowed everything. Otherwise
    ``policy`` decides; a key without a policy is allowed nothing. ``by_token``: the request showed a
    native-API token, not the key's secret or signature (a token cannot be used to get another).
    """

    access_key_id: str
    name: str
    admin: bool = False
    policy: Policy | None = None
    by_token: bool = False

    def decide(self, action: str, resource: str) -> Decision:
        if self.admin:
            return Decision(True, "allowed")
        if self.policy is None:
            return Decision(False, "no matching allow")
        return self.policy.decide(action, resource)

    def may_ever(self, action: str) -> bool:
        return self.admin or (self.policy is not None and self.policy.may_ever(action))


BOOTSTRAP_NAME = "bootstrap"


@dataclass(frozen=True)
class KeyRing:
    """The access keys the server accepts: ``keys`` (the bootstrap key pair: admin, full access) and,
    with ``database``, the enabled keys made with ``keeneye keys create`` (their policies apply).
    A disabled or deleted key is unknown here, so a request signed with it gets
    UnrecognizedClientException, as AWS answers for an inactive key."""

    keys: tuple[AccessKey, ...]
    database: KeyDatabase | None = None

    def with_database(self, database: KeyDatabase) -> KeyRing:
        return replace(self, database=database)

    def resolve(self, access_key_id: str) -> tuple[str, Principal] | None:
        """The secret and principal of an access key id, or None if it is not (or no longer) valid."""
        for k in self.keys:
            if hmac.compare_digest(k.access_key_id.encode(), access_key_id.encode()):
                return k.secret_access_key, Principal(k.access_key_id, BOOTSTRAP_NAME, admin=True)
        if self.database is None:
            return None
        stored = self.database.lookup(access_key_id)
        if stored is None:
            return None
        return stored.secret_access_key, Principal(stored.access_key_id, stored.name, policy=stored.policy)

    def principal_for_secret(self, secret: str) -> Principal | None:
        """The principal whose secret is ``secret`` (bearer authentication of the native API)."""
        for k in self.keys:
            if hmac.compare_digest(k.secret_access_key.encode(), secret.encode()):
                return Principal(k.access_key_id, BOOTSTRAP_NAME, admin=True)
        stored = None if self.database is None else self.database.find_by_secret(secret)
        return None if stored is None else Principal(stored.access_key_id, stored.name, policy=stored.policy)

    @property
    def tokens(self) -> TokenDatabase | None:
        """Where native-API tokens are kept: the key database, if it keeps them."""
        return self.database if isinstance(self.database, TokenDatabase) else None

    def principal_for_token(self, token: str) -> Principal | None:
        """The principal a native-API token acts as: its key, if that key is still accepted."""
        access_key_id = None if self.tokens is None else self.tokens.token_key(token)
        found = None if access_key_id is None else self.resolve(access_key_id)
        return None if found is None else replace(found[1], by_token=True)

    def touch(self, principal: Principal) -> None:
        """Note that a database key was used (its ``last_used_at``; throttled by the database)."""
        if not principal.admin and self.database is not None:
            self.database.touch(principal.access_key_id)

    def secret_for(self, access_key_id: str) -> str | None:
        found = self.resolve(access_key_id)
        return None if found is None else found[0]

    def key_for_secret(self, secret: str) -> str | None:
        """The access key id whose secret is ``secret`` (bearer authentication of the native API)."""
        found = self.principal_for_secret(secret)
        return None if found is None else found.access_key_id
