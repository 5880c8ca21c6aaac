"""Access keys kept in the database: create, list, enable/disable, delete, set a policy; look one up.

SigV4 verification needs each secret itself (an HMAC key), so it cannot be stored as a hash. It is
stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256, ``cryptography``) under a key kept in
``<data_dir>/keys.secret`` (mode 0600, created once): a dump or backup of the database alone reveals
no secret. Whoever can read both the database and ``keys.secret`` (the service user) can. A secret is
shown once, by :meth:`AccessKeys.create`; nothing here logs, prints or audits one.

Short-lived native-API tokens of a key (``POST /v1/tokens``) are kept here too
(keeneye.service.governance.tokens: hashed); disabling or deleting a key deletes its tokens.

Every change appends an audit record (``keys:create``, ``keys:enable``, ``keys:disable``,
``keys:delete``, ``keys:set-policy``) naming who made it (``actor``: ``cli`` for the command line)
and the key by name and access key id in the record's ``details`` (with the new ``policy`` for
``keys:create`` and ``keys:set-policy``).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update

from keeneye.core.errors import AlreadyExists, InvalidParameter, NotFound
from keeneye.service.governance.credentials import AccessKey, generate_key
from keeneye.service.governance.policies import Policy
from keeneye.service.governance.tokens import ApiTokens, IssuedToken
from keeneye.store.db import Store
from keeneye.store.files import private_dir
from keeneye.store.tables import AccessKeyRow

if TYPE_CHECKING:
    from keeneye.config import Settings
    from keeneye.service.governance.audit import AuditLog

log = logging.getLogger("keeneye.keys")

KEY_FILE = "keys.secret"
NAME_RE = re.compile(r"^[A-Za-z0-9_.@+=,-]{1,64}$")  # IAM user-name characters
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never its secret."""

    access_key_id: str
    name: str
    enabled: bool
    policy: dict[str, Any] | None
    created_at: datetime
    last_used_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")

        return {
            "name": self.name,
            "access_key_id": self.access_key_id,
            "enabled": self.enabled,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "policy": self.policy,
        }


@dataclass(frozen=True)
class StoredKey:
    """An enabled key as the server needs it: its secret (hidden from repr) and its parsed policy."""

    access_key_id: str
    name: str
    secret_access_key: str = field(repr=False)
    policy: Policy | None


def load_or_create_fernet_key(data_dir: Path) -> bytes:
    """The encryption key in ``<data_dir>/keys.secret``, created once with mode 0600 (O_EXCL)."""
    path = data_dir / KEY_FILE
    if not path.exists():
        private_dir(data_dir)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it just now: read theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key() + b"\n")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; chmod 600 it", path)
    try:
        key = path.read_bytes().strip()
        Fernet(key)
    except (OSError, ValueError):
        raise InvalidParameter(f"{path} does not hold a valid key (it is made by keeneye)") from None
    return key


class AccessKeys:
    """The ``access_keys`` table. ``data_dir`` holds ``keys.secret``; ``audit`` records changes."""

    def __init__(self, store: Store, data_dir: Path, audit: AuditLog | None = None) -> None:
        self._store = store
        self._data_dir = data_dir
        self._audit = audit
        self.tokens = ApiTokens(store)
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()
        self._plain: dict[tuple[str, str], str] = {}  # (id, ciphertext) -> secret: ciphertexts never change
        self._touched: dict[str, datetime] = {}

    def close(self) -> None:
        """Close the store's pooled connections; a later call opens new ones."""
        self._store.close()

    # -- management -----------------------------------------------------------------------------------

    def create(
        self, name: str, policy: Mapping[str, Any] | None = None, *, actor: str
    ) -> tuple[KeyInfo, AccessKey]:
        """A new enabled key named ``name`` with ``policy`` (validated; None: everything denied).
        Returns the key's information and the key pair: the only time the secret is available."""
        _check_name(name)
        document = None if policy is None else dict(Policy.parse(policy).document)
        pair = generate_key()
        row = AccessKeyRow(
            access_key_id=pair.access_key_id,
            name=name,
            secret_encrypted=self._cipher().encrypt(pair.secret_access_key.encode()).decode("ascii"),
            policy=document,
            enabled=True,
            created_at=datetime.now(UTC),
            last_used_at=None,
        )
        with self._store.transaction() as session:
            if session.scalar(select(AccessKeyRow).where(AccessKeyRow.name == name)) is not None:
                raise AlreadyExists(f"an access key named {name!r} already exists")
            session.add(row)
            session.flush()
            info = _info(row)
        self._record("keys:create", actor, info, with_policy=True)
        return info, pair

    def list(self) -> list[KeyInfo]:
        with self._store.transaction() as session:
            return [_info(r) for r in session.scalars(select(AccessKeyRow).order_by(AccessKeyRow.name))]

    def get(self, name: str) -> KeyInfo:
        with self._store.transaction() as session:
            return _info(self._row(session, name))

    def set_enabled(self, name: str, enabled: bool, *, actor: str) -> KeyInfo:
        with self._store.transaction() as session:
            row = self._row(session, name)
            row.enabled = enabled
            info = _info(row)
        if not enabled:
            self.tokens.revoke_key(info.access_key_id)  # refused anyway (the key is resolved at each use)
        self._record("keys:enable" if enabled else "keys:disable", actor, info)
        return info

    def delete(self, name: str, *, actor: str) -> KeyInfo:
        with self._store.transaction() as session:
            row = self._row(session, name)
            info = _info(row)
            session.delete(row)
        self.tokens.revoke_key(info.access_key_id)
        self._record("keys:delete", actor, info)
        return info

    def set_policy(self, name: str, policy: Mapping[str, Any], *, actor: str) -> KeyInfo:
        document = dict(Policy.parse(policy).document)
        with self._store.transaction() as session:
            row = self._row(session, name)
            row.policy = document
            info = _info(row)
        self._record("keys:set-policy", actor, info, with_policy=True)
        return info

    # -- lookup (the server, per request) -------------------------------------------------------------

    def lookup(self, access_key_id: str) -> StoredKey | None:
        """The enabled key with this id, or None (unknown, disabled, deleted or undecryptable)."""
        with self._store.transaction() as session:
            row = session.get(AccessKeyRow, access_key_id)
            if row is None or not row.enabled:
                return None
            return self._stored(row)

    def find_by_secret(self, secret: str) -> StoredKey | None:
        """The enabled key whose secret is ``secret`` (bearer tokens of the native API)."""
        with self._store.transaction() as session:
            rows = list(session.scalars(select(AccessKeyRow).where(AccessKeyRow.enabled.is_(True))))
            found = None
            for row in rows:  # every row is compared, in constant time each
                key = self._stored(row)
                if key is not None and hmac.compare_digest(key.secret_access_key.encode(), secret.encode()):
                    found = key
            return found

    def issue_token(self, access_key_id: str, duration_s: float) -> IssuedToken:
        """A native-API token acting as ``access_key_id`` (any key the key ring accepts, the bootstrap
        key included) for ``duration_s`` seconds."""
        return self.tokens.issue(access_key_id, duration_s)

    def token_key(self, token: str) -> str | None:
        """The access key id an unexpired token acts as (None: unknown or expired)."""
        return self.tokens.key_of(token)

    def revoke_token(self, token: str) -> bool:
        return self.tokens.revoke(token)

    def touch(self, access_key_id: str, now: datetime | None = None) -> None:
        """Record that the key was used (written at most once per :data:`TOUCH_EVERY` per key)."""
        now = now or datetime.now(UTC)
        with self._lock:
            last = self._touched.get(access_key_id)
            if last is not None and now - last < TOUCH_EVERY:
                return
            self._touched[access_key_id] = now
        with self._store.transaction() as session:
            which = AccessKeyRow.access_key_id == access_key_id
            session.execute(update(AccessKeyRow).where(which).values(last_used_at=now))

    # -- internals ------------------------------------------------------------------------------------

    def _cipher(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(load_or_create_fernet_key(self._data_dir))
            return self._fernet

    def _stored(self, row: AccessKeyRow) -> StoredKey | None:
        cache_key = (row.access_key_id, row.secret_encrypted)
        secret = self._plain.get(cache_key)
        if secret is None:
            try:
                secret = self._cipher().decrypt(row.secret_encrypted.encode("ascii")).decode()
            except InvalidToken:
                log.error(
                    "access key %s (%s) cannot be decrypted: %s is not the key it was made with",
                    row.name,
                    row.access_key_id,
                    self._data_dir / KEY_FILE,
                )
                return None
            with self._lock:
                self._plain[cache_key] = secret
        policy = None
        if row.policy is not None:
            try:
                policy = Policy.parse(row.policy)
            except InvalidParameter as exc:  # validated when set: only an edit outside keeneye gets here
                log.error(
                    "access key %s (%s) has an invalid policy, so nothing is allowed: %s",
                    row.name,
                    row.access_key_id,
                    exc.message,
                )
        return StoredKey(row.access_key_id, row.name, secret, policy)

    @staticmethod
    def _row(session: Any, name: str) -> AccessKeyRow:
        row = session.scalar(select(AccessKeyRow).where(AccessKeyRow.name == name))
        if row is None:
            raise NotFound(f"no access key named {name!r} (see keeneye keys list)")
        assert isinstance(row, AccessKeyRow)
        return row

    def _record(self, operation: str, actor: str, info: KeyInfo, *, with_policy: bool = False) -> None:
        if self._audit is None:
            return
        subject: dict[str, Any] = {"key_name": info.name, "access_key_id": info.access_key_id}
        if with_policy:
            subject["policy"] = info.policy
        self._audit.append(operation, access_key=actor, details=subject)


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise InvalidParameter(
            f"key name {name!r}: use 1-64 letters, digits and _ . @ + = , - (like an IAM user name)"
        )


def _info(row: AccessKeyRow) -> KeyInfo:
    return KeyInfo(
        access_key_id=row.access_key_id,
        name=row.name,
        enabled=bool(row.enabled),
        policy=None if row.policy is None else dict(row.policy),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class LazyAccessKeys:
    """:class:`AccessKeys` on the store of ``settings``, opened on first use (a server whose callers all
    use the bootstrap key never touches the table)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: AccessKeys | None = None
        self._lock = threading.Lock()

    def _open(self) -> AccessKeys:
        with self._lock:
            if self._keys is None:
                store = Store.open(self._settings.data_dir, self._settings.database_url)
                self._keys = AccessKeys(store, self._settings.data_dir)
            return self._keys

    def close(self) -> None:
        """Close the store's pooled connections (the server's stop); a later use opens new ones."""
        with self._lock:
            if self._keys is not None:
                self._keys.close()

    def lookup(self, access_key_id: str) -> StoredKey | None:
        return self._open().lookup(access_key_id)

    def find_by_secret(self, secret: str) -> StoredKey | None:
        return self._open().find_by_secret(secret)

    def touch(self, access_key_id: str, now: datetime | None = None) -> None:
        self._open().touch(access_key_id, now)

    def issue_token(self, access_key_id: str, duration_s: float) -> IssuedToken:
        return self._open().issue_token(access_key_id, duration_s)

    def token_key(self, token: str) -> str | None:
        return self._open().token_key(token)

    def revoke_token(self, token: str) -> bool:
        return self._open().revoke_token(token)
