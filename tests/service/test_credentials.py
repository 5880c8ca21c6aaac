"""Access keys: environment first, else a key pair created once, readable only by its owner."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from keeneye.auth.keyring import KeyRing
from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter
from keeneye.service.governance.credentials import generate_key, load_or_create


def test_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create(Settings(data_dir=tmp_path))
    assert first.created and first.origin == "file" and first.path == tmp_path / "credentials.json"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    second = load_or_create(Settings(data_dir=tmp_path))
    assert not second.created and second.key == first.key


def test_environment_wins(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path, access_key_id="AKIAFROMENVIRONMENT0", secret_access_key=SecretStr("x" * 40)
    )
    src = load_or_create(s)
    assert src.origin == "env" and src.key.access_key_id == "AKIAFROMENVIRONMENT0"
    assert not (tmp_path / "credentials.json").exists()


def test_half_set_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="both"):
        load_or_create(Settings(data_dir=tmp_path, access_key_id="AKIAONLYID0000000000"))


def test_key_shape_and_secret_hidden() -> None:
    key = generate_key()
    assert (
        len(key.access_key_id) == 20 and key.access_key_id.startswith("AKIA") and key.access_key_id.isupper()
    )
    assert len(key.secret_access_key) == 40
    assert key.secret_access_key not in repr(key)
    ring = KeyRing((key,))
    assert ring.secret_for(key.access_key_id) == key.secret_access_key
    assert ring.secret_for("AKIAOTHER") is None and ring.secret_for("é") is None
    assert ring.key_for_secret(key.secret_access_key) == key.access_key_id
    assert ring.key_for_secret("wrong") is None
