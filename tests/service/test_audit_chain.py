"""The audit hash chain: every kind of tampering is named, appends never fork, the migration chains
old records, and an export verifies without keeneye."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keeneye.service.governance.audit import AuditLog, read_export, verify_chain
from keeneye.store.audit_chain import GENESIS
from keeneye.store.db import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append(
            "SearchFacesByImage",
            access_key="AK1",
            collection_id="staff",
            request_faces=1,
            matches=[{"FaceId": f"face-{i}", "Similarity": 99.0 + i / 7}],
            threshold=80.0 + i,
            details={"note": "ünïcode"} if i == 2 else None,
            time=T0 + timedelta(minutes=i),
        )


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(Store.open(tmp_path))


def _sql(log: AuditLog, statement: str) -> None:
    with log._store.engine.begin() as conn:
        for one in statement.split(";"):
            conn.execute(text(one))


def test_an_untouched_log_verifies_and_records_carry_their_hashes(log: AuditLog) -> None:
    assert log.verify().ok and log.verify().records == 0
    _fill(log)
    report = log.verify()
    assert report.ok and report.records == 5 and (report.first_id, report.last_id) == (1, 5)
    assert report.problem is None and report.warnings == []
    records = log.read()
    assert records[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(records))
    assert report.last_hash == records[-1]["hash"]
    head = json.loads(log.head_file.read_text())
    assert (head["id"], head["hash"]) == (5, records[-1]["hash"])


TAMPERING: list[tuple[str, str, int, str]] = [
    ("edited field", "UPDATE audit SET threshold = 99.5 WHERE id = 3", 3, "do not match its hash"),
    ("edited matches", "UPDATE audit SET matches = '[]' WHERE id = 2", 2, "do not match its hash"),
    ("deleted in the middle", "DELETE FROM audit WHERE id = 3", 4, "record 2 before it"),
    ("deleted at the start", "DELETE FROM audit WHERE id = 1", 2, "genesis"),
    # Two records swap places (each keeps its own hashes, ids exchanged): the links break.
    (
        "reordered",
        "UPDATE audit SET id = 100 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3;"
        " UPDATE audit SET id = 3 WHERE id = 100",
        2,
        "do not match its hash",
    ),
    ("truncated tail", "DELETE FROM audit WHERE id >= 4", 5, "removed from the end"),
    # Rewritten after the anchor's record: the recomputed chain no longer reaches the anchored hash.
    ("tail rewritten", "UPDATE audit SET hash = 'x' WHERE id = 5", 5, "do not match its hash"),
]


@pytest.mark.parametrize(("case", "statement", "bad_id", "needle"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_is_named_at_the_first_bad_record(
    log: AuditLog, case: str, statement: str, bad_id: int, needle: str
) -> None:
    _fill(log)
    _sql(log, statement)
    report = log.verify()
    assert not report.ok and report.first_bad_id == bad_id, report
    assert report.problem is not None and needle in report.problem


def test_a_whole_rewritten_chain_is_caught_by_the_anchor(log: AuditLog, tmp_path: Path) -> None:
    """An attacker who recomputes every hash after an edit still disagrees with the head anchor."""
    _fill(log, 3)
    _sql(log, "UPDATE audit SET threshold = 99.9 WHERE id = 2")
    other = AuditLog(log._store, head_file=tmp_path / "elsewhere.json")  # a rechained copy of the log
    fixed_prev = GENESIS
    from keeneye.service.governance.audit import _canonical
    from keeneye.store.audit_chain import record_hash
    from keeneye.store.tables import AuditRow

    with log._store.transaction() as s:
        for row in s.query(AuditRow).order_by(AuditRow.id):
            row.prev_hash = "pending-" + str(row.id)
        s.flush()
        for row in s.query(AuditRow).order_by(AuditRow.id):
            row.prev_hash = fixed_prev
            row.hash = record_hash(_canonical(row))
            fixed_prev = row.hash
    report = other.verify()  # the chain itself is consistent again, but not with the database's head ...
    assert not report.ok and report.first_bad_id == 3 and "database's head" in str(report.problem)
    _sql(log, f"UPDATE audit_head SET last_hash = '{fixed_prev}'")  # ... which the attacker rewrites too
    assert other.verify().ok
    report = log.verify()  # ... but not with the anchor written at append time
    assert not report.ok and report.first_bad_id == 3 and "head anchor" in str(report.problem)


def test_missing_anchor_is_a_warning_and_a_foreign_anchor_is_not_checked(log: AuditLog) -> None:
    _fill(log, 2)
    log.head_file.unlink()
    report = log.verify()
    assert report.ok and "no head anchor" in report.warnings[0]
    log.head_file.write_text(json.dumps({"id": 99, "hash": "x", "database": "sqlite:///other.db"}))
    report = log.verify()
    assert report.ok and "another database" in report.warnings[0]


def _head_of(log: AuditLog) -> tuple[int, str]:
    report = log.verify()
    assert report.ok and report.last_id is not None and report.last_hash is not None
    return report.last_id, report.last_hash


def test_the_tail_and_the_anchor_removed_together_are_caught(
    log: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting the last records and audit-head.json used to pass as a warning: the database keeps the
    head too (audit_head, written with every record), and an append that finds the log not ending there
    records it for good."""
    _fill(log)
    _sql(log, "DELETE FROM audit WHERE id >= 4")
    log.head_file.unlink()
    report = log.verify()
    assert not report.ok and report.first_bad_id == 5, report
    assert "database's head says record 5 was written (5 records" in str(report.problem)
    assert "removed from the end" in str(report.problem)
    with caplog.at_level("ERROR", logger="keeneye.audit"):
        log.append("SearchFaces", access_key="AK1")  # id 4 again: the ids of removed records are reused
        log.append("SearchFaces", access_key="AK1")
    assert "records were removed from the end" in caplog.records[0].getMessage()
    assert len(caplog.records) == 1  # the second append finds the head where the first one left it
    report = log.verify()  # the chain ends at 5 again, the anchor is back, yet the loss stays visible
    assert not report.ok and "an append found the log tampered with" in str(report.problem)
    assert "noticed appending record 4" in str(report.problem)


def test_removing_the_database_head_too_is_caught(log: AuditLog) -> None:
    _fill(log)
    _sql(log, "DELETE FROM audit WHERE id >= 4; DELETE FROM audit_head")
    log.head_file.unlink()
    report = log.verify()
    assert not report.ok and "audit_head) is missing" in str(report.problem)


def test_counts_catch_removed_records_whose_ids_were_used_again(log: AuditLog) -> None:
    """Someone with the database alone (not the data directory) removes the last records, lets the
    server append again (the ids are used again) and then makes the database's head agree with the
    log: the anchor file, moved by those appends, still counts the records that were written."""
    _fill(log)
    _sql(log, "DELETE FROM audit WHERE id >= 4")
    for _ in range(3):
        log.append("SearchFaces", access_key="AK1")  # ids 4, 5, 6
    last = _sql_value(log, "SELECT hash FROM audit WHERE id = 6")
    _sql(log, f"UPDATE audit_head SET problem = NULL, records = 6, last_id = 6, last_hash = '{last}'")
    report = log.verify()
    assert not report.ok and report.first_bad_id == 6
    assert "holds 6 records up to record 6 but the head anchor counted 8" in str(report.problem)


def _sql_value(log: AuditLog, query: str) -> Any:
    with log._store.engine.begin() as conn:
        return conn.execute(text(query)).scalar_one()


def test_what_a_writer_of_both_can_hide_and_the_head_kept_elsewhere(log: AuditLog) -> None:
    """Someone who can write the database and the data directory (for SQLite, one and the same) can
    make the log, its database head and the anchor agree after removing records: only a head kept out
    of their reach (verify --head ID:HASH) shows it (docs/accountability.md says so)."""
    _fill(log)
    published = _head_of(log)
    _sql(log, "DELETE FROM audit WHERE id >= 4")
    last = _sql_value(log, "SELECT hash FROM audit WHERE id = 3")
    _sql(log, f"UPDATE audit_head SET records = 3, last_id = 3, last_hash = '{last}'")
    log.head_file.unlink()
    report = log.verify()
    assert report.ok and report.warnings  # nothing on this machine can tell
    report = log.verify(expected=published)
    assert not report.ok and report.first_bad_id == 5 and "record 5 was known" in str(report.problem)
    changed = (3, "0" * 64)
    assert "its hash differs from the one given" in str(log.verify(expected=changed).problem)


def test_the_anchor_never_moves_backwards(log: AuditLog) -> None:
    _fill(log, 3)
    log._write_head(2, "older")  # a slower writer of an earlier record
    assert json.loads(log.head_file.read_text())["id"] == 3


def test_concurrent_appends_from_threads_never_fork(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    logs = [AuditLog(store), AuditLog(Store.open(tmp_path))]  # two engines on one file

    def work(i: int) -> None:
        for j in range(15):
            logs[i % 2].append("SearchFaces", access_key=f"AK{i}", details={"j": j})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = logs[0].verify()
    assert report.ok and report.records == 60


def _append_in_process(data_dir: str, tag: str) -> None:
    log = AuditLog(Store.open(Path(data_dir)))
    for j in range(15):
        log.append("SearchFaces", access_key=tag, details={"j": j})


def test_concurrent_appends_from_processes_never_fork(tmp_path: Path) -> None:
    Store.open(tmp_path).close()  # migrate once, before the writers start
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_in_process, args=(str(tmp_path), f"P{i}")) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    report = AuditLog(Store.open(tmp_path)).verify()
    assert report.ok and report.records == 30
    assert json.loads((tmp_path / "audit-head.json").read_text())["id"] == 30


def test_migration_chains_records_written_before_it(tmp_path: Path) -> None:
    store = Store.open(tmp_path, upgrade=False)
    store.upgrade("0004")
    with store.engine.begin() as conn:
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO audit (time, access_key, operation, collection_id, request_faces, matches,"
                    " threshold, flagged_below_99) VALUES (:t, 'AK', 'SearchFaces', 'c', 1, :m, 80.0, 1)"
                ),
                {
                    "t": f"2026-01-0{i + 1} 10:00:00.123456",
                    "m": json.dumps([{"FaceId": f"f{i}", "Similarity": 91.5}]),
                },
            )
    store.upgrade()
    log = AuditLog(store)
    report = log.verify()
    assert report.ok and report.records == 3 and "no head anchor" in report.warnings[0]
    log.append("SearchFaces", access_key="AK")  # new records chain onto the migrated ones
    assert log.verify().ok and log.verify().records == 4 and log.verify().warnings == []


def _external_verify(lines: list[str]) -> bool:
    """The verifier of docs/accountability.md, without keeneye: canonical JSON, SHA-256, links."""
    prev = None
    for line in lines:
        rec = json.loads(line)
        claimed = rec.pop("hash")
        canonical = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if hashlib.sha256(canonical.encode("utf-8")).hexdigest() != claimed:
            return False
        if prev is not None and rec["prev_hash"] != prev:
            return False
        prev = claimed
    return True


def test_export_verifies_outside_keeneye_and_with_since(log: AuditLog, tmp_path: Path) -> None:
    _fill(log)
    out = io.StringIO()
    assert log.export(out) == 5
    lines = out.getvalue().splitlines()
    assert _external_verify(lines) and json.loads(lines[0])["prev_hash"] == GENESIS
    path = tmp_path / "audit.jsonl"
    path.write_text(out.getvalue())
    assert verify_chain(read_export(path))[0].ok
    tampered = [*lines[:2], lines[2].replace('"request_faces": 1', '"request_faces": 2'), *lines[3:]]
    assert not _external_verify(tampered)
    later = io.StringIO()
    assert log.export(later, since=T0 + timedelta(minutes=3)) == 2
    report, _ = verify_chain(
        read_export(_write(tmp_path / "later.jsonl", later.getvalue())), from_genesis=False
    )
    assert report.ok and report.first_id == 4


def _write(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


APPEND_ERRORS: list[tuple[Callable[[AuditLog], Any], type[Exception]]] = [
    (lambda log: log.append("X", access_key=None, time=datetime(2026, 1, 1)), ValueError),  # naive time
    (lambda log: log.append("X", access_key=None, matches=[{"Similarity": float("nan")}]), ValueError),
]


@pytest.mark.parametrize(("call", "error"), APPEND_ERRORS)
def test_bad_appends_write_nothing(
    log: AuditLog, call: Callable[[AuditLog], Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(log)
    assert log.read() == [] and log.verify().ok


def test_the_database_refuses_a_fork(log: AuditLog) -> None:
    """Two records can never follow the same one: prev_hash is unique."""
    from sqlalchemy.exc import IntegrityError

    _fill(log, 2)
    with pytest.raises(IntegrityError), log._store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit (time, operation, request_faces, matches, flagged_below_99,"
                " prev_hash, hash) SELECT time, 'Forged', 0, '[]', 0, prev_hash, 'x' FROM audit WHERE id = 2"
            )
        )


class _FakeSession:
    def __init__(self, dialect: str) -> None:
        self.dialect = type("D", (), {"name": dialect})()
        self.statements: list[str] = []

    def get_bind(self) -> Any:
        return self

    def execute(self, statement: Any, params: Any = None) -> None:
        self.statements.append(str(statement))

    def connection(self) -> Any:
        outer = self

        class Conn:
            def exec_driver_sql(self, sql: str) -> None:
                outer.statements.append(sql)

        return Conn()


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [("sqlite", ["BEGIN IMMEDIATE"]), ("postgresql", ["SELECT pg_advisory_xact_lock(:key)"]), ("mysql", [])],
)
def test_each_database_takes_its_chain_lock(dialect: str, expected: list[str]) -> None:
    from keeneye.service.governance.audit import _lock_chain

    session = _FakeSession(dialect)
    _lock_chain(session)  # type: ignore[arg-type]
    assert session.statements == expected
