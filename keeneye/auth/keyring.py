"""Access keys the server accepts: the bootstrap key pair (admin) and the keys in the database.

The bootstrap key comes from the environment, or is a key pair created once on disk; it is allowed
everything. Keys made with ``keeneye keys create`` live in the database (keeneye.service.governance.keys) and
are bound by their IAM-shaped policies (keeneye.service.governance.policies); :class:`KeyRing` finds both.

SigV4 verification needs the secret itself (an HMAC key), so it cannot be stored hashed. It is kept
either in the environment (``KEENEYE_ACCESS_KEY_ID`` / ``KEENEYE_SECRET_ACCESS_KEY``) or in
``<data_dir>/credentials.json``, created with mode 0600 so only the service user can read it.
Nothing here logs or prints a secret; ``repr`` of a key pair hides it.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import string
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter
from keeneye.service.governance.policies import Decision, Policy

if TYPE_CHECKING:
    from keeneye.service.governance.keys import StoredKey

CREDENTIALS_FILE = "credentials.json"
_ID_ALPHABET = string.ascii_uppercase + "234567"  # like AWS key ids: upper case letters and digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class CredentialSource:
    """Where the key came from: ``env``, or the file it was read from (``created`` on first run)."""

    key: AccessKey
    origin: str  # "env" or "file"
    path: Path | None = None
    created: bool = False


def generate_key() -> AccessKey:
    """An AWS-like pair: 20-character id starting ``AKIA``, 40-character secret (``secrets`` module)."""
    akid = "AKIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return AccessKey(akid, secret)


def load_or_create(settings: Settings) -> CredentialSource:
    """The server's access key: environment first, else ``<data_dir>/credentials.json`` (made once)."""
    env_id = settings.access_key_id
    env_secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
    if env_id or env_secret:
        if not (env_id and env_secret):
            raise InvalidParameter(
                "set both KEENEYE_ACCESS_KEY_ID and KEENEYE_SECRET_ACCESS_KEY, or neither "
                f"(then a key pair is kept in <data_dir>/{CREDENTIALS_FILE})"
            )
        return CredentialSource(AccessKey(env_id, env_secret), "env")
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        return CredentialSource(_read(path), "file", path)
    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two servers starting at once cannot both write; mode 0600 from the start, not chmod later.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return CredentialSource(_read(path), "file", path)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}, f)
        f.write("\n")
    return CredentialSource(key, "file", path, created=True)


def _read(path: Path) -> AccessKey:
    try:
        data = json.loads(path.read_text())
        return AccessKey(str(data["access_key_id"]), str(data["secret_access_key"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidParameter(f"cannot read the key pair in {path}: {type(exc).__name__}") from None


class KeyDatabase(Protocol):
    """Keys kept in the database (keeneye.service.governance.keys.AccessKeys): enabled keys only."""

    def lookup(self, access_key_id: str) -> StoredKey | None: ...

    def find_by_secret(self, secret: str) -> StoredKey | None: ...

    def touch(self, access_key_id: str, now: datetime | None = None) -> None: ...


@dataclass(frozen=True)
class Principal:
    """Who signed a request, and what they may do.

    ``admin``: the bootstrap key (environment or credentials.json), allowed everything. Otherwise
    ``policy`` decides; a key without a policy is allowed nothing.
    """

    access_key_id: str
    name: str
    admin: bool = False
    policy: Policy | None = None

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
