"""The server's bootstrap access key pair: from the environment, or created once on disk.

SigV4 verification needs the secret itself (an HMAC key), so it cannot be stored hashed. It is kept
either in the environment (``KEENEYE_ACCESS_KEY_ID`` / ``KEENEYE_SECRET_ACCESS_KEY``) or in
``<data_dir>/credentials.json``, created with mode 0600 so only the service user can read it.
Nothing here logs or prints a secret; ``repr`` of a key pair hides it. Keys made with ``keeneye keys
create`` are in the database (keeneye.service.governance.keys); keeneye.auth.keyring accepts both.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter
from keeneye.store.files import private_dir

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
    private_dir(path.parent)
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
