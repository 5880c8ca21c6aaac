"""Native-API tokens kept hashed with the keys (issue 13, item 9): issued for a key, refused once expired,
once their key is disabled or deleted, and never stored in clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from keeneye.auth.keyring import KeyRing
from keeneye.service.governance.credentials import AccessKey
from keeneye.service.governance.keys import AccessKeys
from keeneye.service.governance.tokens import ApiTokens, is_token, token_hash
from keeneye.store.db import Store

ADMIN = AccessKey("AKIAADMIN00000000000", "admin/secret/0123456789abcdefghijklmn")


def test_a_token_acts_as_its_key_until_it_expires(tmp_path: Path) -> None:
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    store = Store.open(tmp_path)
    tokens = ApiTokens(store, clock=lambda: now[0])
    issued = tokens.issue("AKIA1", 600)
    assert is_token(issued.token) and len(issued.token) == 47 and issued.token not in repr(issued)
    assert issued.expires_at == now[0] + timedelta(seconds=600)
    assert tokens.key_of(issued.token) == "AKIA1"
    assert tokens.key_of(issued.token + "x") is None and tokens.key_of("not-a-token") is None
    now[0] += timedelta(seconds=600)
    assert tokens.key_of(issued.token) is None  # expired
    tokens.issue("AKIA1", 60)  # issuing deletes the expired
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").fetchall()
    assert len(rows) == 1 and rows[0][0] != token_hash(issued.token)
    assert issued.token.encode() not in (tmp_path / "keeneye.db").read_bytes()


def test_disabling_or_deleting_a_key_ends_its_tokens(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    keys = AccessKeys(store, tmp_path)
    info, _ = keys.create("app", None, actor="cli")
    ring = KeyRing((ADMIN,), keys)
    first = keys.issue_token(info.access_key_id, 600).token
    principal = ring.principal_for_token(first)
    assert principal is not None and principal.name == "app" and principal.by_token
    admin = ring.principal_for_token(keys.issue_token(ADMIN.access_key_id, 600).token)
    assert admin is not None and admin.admin and admin.by_token
    keys.set_enabled("app", False, actor="cli")
    assert ring.principal_for_token(first) is None
    keys.set_enabled("app", True, actor="cli")
    assert ring.principal_for_token(first) is None  # deleted, not only refused: enabling brings none back
    second = keys.issue_token(info.access_key_id, 600).token
    assert ring.principal_for_token(second) is not None
    keys.delete("app", actor="cli")
    assert ring.principal_for_token(second) is None
    assert keys.revoke_token(second) is False
    third = keys.issue_token(ADMIN.access_key_id, 600).token
    assert keys.revoke_token(third) and ring.principal_for_token(third) is None
    assert KeyRing((ADMIN,)).principal_for_token(third) is None  # no database: no tokens
