"""`keeneye keys` as an operator runs it: a real subprocess on a data directory."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import assert_one_line_error, run

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "rekognition:Search*", "Resource": "*"}],
}


def test_create_list_disable_enable_set_policy_delete(tmp_path: Path) -> None:
    data = tmp_path / "data"
    policy = tmp_path / "read-only.json"
    policy.write_text(json.dumps(READ_ONLY))
    created = run("keys", "create", "reader", "--policy", policy, data_dir=data)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["name"] == "reader" and key["access_key_id"].startswith("AKIA")
    secret = key["secret_access_key"]
    assert len(secret) == 40 and key["policy"] == READ_ONLY

    listed = run("keys", "list", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    (entry,) = json.loads(listed.stdout)
    assert entry["access_key_id"] == key["access_key_id"] and entry["enabled"] is True

    assert json.loads(run("keys", "disable", "reader", data_dir=data).stdout)["enabled"] is False
    assert json.loads(run("keys", "enable", "reader", data_dir=data).stdout)["enabled"] is True

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Alow", "Action": "*"}]}))
    assert_one_line_error(run("keys", "set-policy", "reader", bad, data_dir=data), "Statement[0].Effect")
    assert_one_line_error(run("keys", "create", "reader", data_dir=data), "already exists")

    deleted = run("keys", "delete", "reader", data_dir=data)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(run("keys", "list", data_dir=data).stdout) == []
    assert_one_line_error(run("keys", "disable", "reader", data_dir=data), "no access key named 'reader'")

    audit = run("audit", "--json", data_dir=data)
    records = [r for r in json.loads(audit.stdout) if r["operation"].startswith("keys:")]
    assert [(r["operation"], r["access_key"]) for r in records] == [
        ("keys:create", "cli"),
        ("keys:disable", "cli"),
        ("keys:enable", "cli"),
        ("keys:delete", "cli"),
    ]
    assert secret not in audit.stdout


def test_policy_file_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert_one_line_error(
        run("keys", "create", "k", "--policy", tmp_path / "nope.json", data_dir=data), "nope.json"
    )
    notjson = tmp_path / "p.json"
    notjson.write_text("{not json")
    assert_one_line_error(run("keys", "create", "k", "--policy", notjson, data_dir=data), "is not JSON")
    assert_one_line_error(run("keys", "create", "bad name", data_dir=data), "key name")
