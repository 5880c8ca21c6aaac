"""`keeneye audit verify|export`, `keeneye collections set-retention` and `keeneye purge` as a user
runs them (subprocesses on a real data directory; faces from a stand-in pipeline, no models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text, update

from keeneye.service.governance.audit import AuditLog
from keeneye.store.db import Store
from keeneye.store.tables import FaceRow
from tests.factories import fake_collections, noise_image

KEENEYE = [sys.executable, "-m", "keeneye.cli"]


def run(*args: str | Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEENEYE_")}
    env["KEENEYE_DATA_DIR"] = str(data_dir)
    return subprocess.run([*KEENEYE, *map(str, args)], capture_output=True, text=True, timeout=120, env=env)


def _setup(data: Path) -> Store:
    store = Store.open(data)
    fc = fake_collections(store)
    fc.create_collection("visitors")
    for seed in range(2):
        fc.index_faces("visitors", noise_image(seed), quality_filter="NONE")
    AuditLog(store).append("IndexFaces", access_key="AK1", collection_id="visitors", request_faces=2)
    with store.transaction() as s:  # one face was indexed 40 days ago
        oldest = s.scalars(text("SELECT face_id FROM faces ORDER BY face_id LIMIT 1")).one()
        s.execute(
            update(FaceRow)
            .where(FaceRow.face_id == oldest)
            .values(indexed_at=datetime.now(UTC) - timedelta(days=40))
        )
    return store


def test_retention_purge_verify_and_export(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = _setup(data)

    r = run("collections", "set-retention", "visitors", "--days", "30", data_dir=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"CollectionId": "visitors", "RetentionDays": 30, "FaceCount": 2}

    dry = run("purge", "--dry-run", data_dir=data)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["faces"] == {"visitors": 1} and json.loads(dry.stdout)["dry_run"]
    done = json.loads(run("purge", data_dir=data).stdout)
    assert done["faces"] == {"visitors": 1} and not done["dry_run"]
    assert json.loads(run("purge", "--dry-run", data_dir=data).stdout)["faces_total"] == 0

    records = json.loads(run("audit", "--json", data_dir=data).stdout)
    assert [r["operation"] for r in records] == ["IndexFaces", "SetCollectionRetention", "Purge"]
    assert records[2]["details"]["faces"] == {"visitors": 1}

    ok = run("audit", "verify", data_dir=data)
    assert ok.returncode == 0 and "audit log intact: 3 records" in ok.stdout, ok.stderr
    out = tmp_path / "audit.jsonl"
    exported = run("audit", "export", out, data_dir=data)
    assert exported.returncode == 0 and "exported 3 audit records" in exported.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, 2, 3]
    assert run("audit", "verify", "--file", out, data_dir=data).returncode == 0

    with store.engine.begin() as conn:  # someone removes the retention change from the record
        conn.execute(text("DELETE FROM audit WHERE id = 2"))
    broken = run("audit", "verify", data_dir=data)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert "AuditChainBroken: record 3: its prev_hash is not the hash of record 1" in broken.stderr
    report = json.loads(run("audit", "verify", "--json", data_dir=data).stdout)
    assert report["ok"] is False and report["first_bad_id"] == 3
    lines = out.read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert run("audit", "verify", "--file", tmp_path / "cut.jsonl", data_dir=data).returncode == 1


def test_command_errors_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args, needle in [
        (("collections", "set-retention", "nope", "--days", "3"), "NotFound"),
        (("collections", "set-retention", "nope"), "either --days N or --clear"),
        (("audit", "--since", "yesterday"), "ISO 8601"),
        (("audit", "verify", "--file", tmp_path / "missing.jsonl"), "InvalidParameter"),
        (("audit", "verify", "--head", "3:abc"), "give ID:HASH"),
    ]:
        r = run(*args, data_dir=data)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_audit_pages_newest_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = AuditLog(Store.open(data))
    for _ in range(5):
        log.append("SearchFaces", access_key="AK1", collection_id="c")
    page = run("audit", "--json", "--newest", "--limit", "2", data_dir=data)
    assert page.returncode == 0, page.stderr
    assert [r["id"] for r in json.loads(page.stdout)] == [5, 4]
    rest = run("audit", "--json", "--newest", "--after", "4", data_dir=data)
    assert [r["id"] for r in json.loads(rest.stdout)] == [3, 2, 1]
    assert [r["id"] for r in json.loads(run("audit", "--json", "--after", "3", data_dir=data).stdout)] == [
        4,
        5,
    ]


def test_verify_tail_and_anchor_removed_and_the_head_kept_elsewhere(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    log = AuditLog(store)
    for _ in range(4):
        log.append("SearchFaces", access_key="AK1", collection_id="c")
    report = json.loads(run("audit", "verify", "--json", data_dir=data).stdout)
    published = f"{report['last_id']}:{report['last_hash']}"
    assert run("audit", "verify", "--head", published, data_dir=data).returncode == 0
    with store.engine.begin() as conn:  # the last two records and the anchor go
        conn.execute(text("DELETE FROM audit WHERE id >= 3"))
    (data / "audit-head.json").unlink()
    caught = run("audit", "verify", data_dir=data)  # was exit 0 with a warning
    assert caught.returncode == 1 and "database's head says record 4 was written" in caught.stderr
    with store.engine.begin() as conn:  # ... and the database's head is made to agree
        last = conn.execute(text("SELECT hash FROM audit WHERE id = 2")).scalar_one()
        conn.execute(text("UPDATE audit_head SET records = 2, last_id = 2, last_hash = :h"), {"h": last})
    assert run("audit", "verify", data_dir=data).returncode == 0  # nothing here can tell now
    kept = run("audit", "verify", "--head", published, data_dir=data)
    assert kept.returncode == 1 and "record 4 was known to have been written" in kept.stderr
