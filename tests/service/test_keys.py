"""Access keys in the database (keeneye.service.governance.keys), the KeyRing over them, the rate limiter."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from keeneye.auth.keyring import KeyRing
from keeneye.auth.ratelimit import RateLimiter, retry_after_s
from keeneye.core.errors import AlreadyExists, InvalidParameter, NotFound
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.credentials import AccessKey
from keeneye.service.governance.keys import KEY_FILE, AccessKeys
from keeneye.store.db import Store

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "rekognition:Search*", "Resource": "*"}],
}


@pytest.fixture
def keys(tmp_path: Path) -> AccessKeys:
    store = Store.open(tmp_path)
    return AccessKeys(store, tmp_path, AuditLog(store))


def test_create_lookup_and_secret_encrypted_at_rest(keys: AccessKeys, tmp_path: Path) -> None:
    info, pair = keys.create("reader", READ_ONLY, actor="cli")
    assert info.name == "reader" and info.enabled and info.policy == READ_ONLY
    assert pair.access_key_id.startswith("AKIA") and len(pair.secret_access_key) == 40
    assert "secret" not in repr(info).lower() and pair.secret_access_key not in repr(pair)
    stored = keys.lookup(pair.access_key_id)
    assert stored is not None and stored.secret_access_key == pair.secret_access_key
    assert stored.policy is not None and stored.policy.decide("rekognition:SearchFaces", "*")
    # The database holds only ciphertext; the encryption key is a separate 0600 file.
    assert pair.secret_access_key.encode() not in (tmp_path / "keeneye.db").read_bytes()
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    # Another process (a new AccessKeys on the same files) reads it back.
    again = AccessKeys(Store.open(tmp_path), tmp_path)
    found = again.find_by_secret(pair.secret_access_key)
    assert found is not None and found.access_key_id == pair.access_key_id
    assert again.find_by_secret("not-a-secret") is None


def test_lost_encryption_key_makes_keys_unusable_not_readable(keys: AccessKeys, tmp_path: Path) -> None:
    _, pair = keys.create("k", None, actor="cli")
    (tmp_path / KEY_FILE).unlink()
    fresh = AccessKeys(Store.open(tmp_path), tmp_path)
    assert fresh.lookup(pair.access_key_id) is None


def test_disable_enable_delete_and_errors(keys: AccessKeys) -> None:
    _, pair = keys.create("k", None, actor="cli")
    with pytest.raises(AlreadyExists):
        keys.create("k", None, actor="cli")
    with pytest.raises(InvalidParameter, match="key name"):
        keys.create("has space", None, actor="cli")
    keys.set_enabled("k", False, actor="cli")
    assert keys.lookup(pair.access_key_id) is None and keys.find_by_secret(pair.secret_access_key) is None
    assert keys.list()[0].enabled is False
    keys.set_enabled("k", True, actor="cli")
    assert keys.lookup(pair.access_key_id) is not None
    with pytest.raises(InvalidParameter, match=r"Statement\[0\]\.Effect"):
        keys.set_policy("k", {"Version": "2012-10-17", "Statement": [{"Effect": "allow"}]}, actor="cli")
    keys.set_policy("k", READ_ONLY, actor="cli")
    keys.delete("k", actor="cli")
    assert keys.lookup(pair.access_key_id) is None and keys.list() == []
    calls: list[Callable[[], object]] = [lambda: keys.delete("k", actor="cli"), lambda: keys.get("nope")]
    for call in calls:
        with pytest.raises(NotFound):
            call()


def test_changes_are_audited_without_secrets(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    audit = AuditLog(store)
    keys = AccessKeys(store, tmp_path, audit)
    _, pair = keys.create("k", READ_ONLY, actor="cli")
    keys.set_enabled("k", False, actor="cli")
    keys.set_enabled("k", True, actor="cli")
    keys.set_policy("k", READ_ONLY, actor="admin-key")
    keys.delete("k", actor="cli")
    records = audit.read()
    ops = [(r["operation"], r["access_key"]) for r in records]
    assert ops == [
        ("keys:create", "cli"),
        ("keys:disable", "cli"),
        ("keys:enable", "cli"),
        ("keys:set-policy", "admin-key"),
        ("keys:delete", "cli"),
    ]
    assert records[0]["details"]["access_key_id"] == pair.access_key_id
    assert records[3]["details"]["policy"] == READ_ONLY
    assert pair.secret_access_key not in repr(records)


def test_keyring_bootstrap_is_admin_database_keys_follow_policy(keys: AccessKeys) -> None:
    _, pair = keys.create("reader", READ_ONLY, actor="cli")
    _, bare = keys.create("bare", None, actor="cli")
    ring = KeyRing((AccessKey("AKIABOOTSTRAP0000001", "boot-secret"),)).with_database(keys)
    boot = ring.resolve("AKIABOOTSTRAP0000001")
    assert boot is not None and boot[1].admin and boot[1].decide("rekognition:DeleteCollection", "*")
    found = ring.resolve(pair.access_key_id)
    assert found is not None and found[0] == pair.secret_access_key
    principal = found[1]
    assert principal.name == "reader" and not principal.admin
    assert principal.decide("rekognition:SearchFacesByImage", "*")
    assert not principal.decide("rekognition:IndexFaces", "*")
    nothing = ring.resolve(bare.access_key_id)
    assert nothing is not None and not nothing[1].decide("rekognition:DetectFaces", "*")
    assert ring.key_for_secret(pair.secret_access_key) == pair.access_key_id
    assert ring.key_for_secret("boot-secret") == "AKIABOOTSTRAP0000001"
    assert ring.resolve("AKIAUNKNOWN000000000") is None
    ring.touch(principal)
    assert keys.get("reader").last_used_at is not None


def test_rate_limiter_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)  # empty: one token in 0.5 s
    assert limiter.acquire("b") == 0.0  # buckets are per key
    now[0] = 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    now[0] = 100.0  # refills up to the burst, not beyond
    assert [limiter.acquire("a") for _ in range(4)][-1] > 0
    assert RateLimiter(0, 1).acquire("a") == 0.0  # 0: off
    assert retry_after_s(0.01) == 1 and retry_after_s(2.2) == 3


def test_a_policy_broken_outside_keeneye_allows_nothing(keys: AccessKeys, tmp_path: Path) -> None:
    from sqlalchemy import update

    from keeneye.store.tables import AccessKeyRow

    _, pair = keys.create("k", READ_ONLY, actor="cli")
    store = Store.open(tmp_path)
    with store.transaction() as session:
        session.execute(update(AccessKeyRow).values(policy={"Version": "1999"}))
    stored = keys.lookup(pair.access_key_id)
    assert stored is not None and stored.policy is None  # logged; the KeyRing then denies everything
