"""The audit log: append-only, tamper-evident (a hash chain), readable by time and collection.

Every IndexFaces, SearchFaces*, SearchUsers*, CompareFaces, DeleteFaces, DeleteUser and
DeleteCollection call appends one record (the adapter does, as only it knows the caller's access
key): time, access key id, operation, collection, number of faces in the request, matched FaceIds /
UserIds with their similarities, and the threshold. So do stored-video Start* calls and cancels,
notification-channel changes, retention changes and purges, with what they concern in ``details``
(job ids, topic ARNs, counts; never images or vectors). Records whose threshold is below 99 are
flagged: AWS recommends a threshold of at least 99 % for public-safety uses of face search. There
is no method to change or remove a record.

Tamper evidence (docs/accountability.md): each record carries ``prev_hash`` (the previous record's
hash; GENESIS for the first) and ``hash`` = SHA-256 of its canonical JSON (keeneye/store/audit_chain.py).
Appends are serialised so the chain never forks: one lock per process, and in the database
``BEGIN IMMEDIATE`` on SQLite (the write lock is taken before the chain's head is read) or a
transaction-level advisory lock on PostgreSQL; ``prev_hash`` is unique, so a writer that slipped
past both fails and retries instead of forking. The head is kept twice, so that removing records from
the end is detected too: in the database (``audit_head``: records appended in all, the last id and
hash, moved in the append's own transaction; an append that finds the log not ending there logs an
error and marks the head, for good) and in ``<data_dir>/audit-head.json`` (fsynced after the commit).
:meth:`AuditLog.verify` walks the chain, names the first bad record, and checks where the chain ends
against both heads and, if given, a head kept elsewhere. What this can and cannot show is in
docs/accountability.md.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keeneye.store.audit_chain import (
    GENESIS,
    HASHED_FIELDS,
    canonical_record,
    canonical_time,
    record_hash,
)
from keeneye.store.db import Store
from keeneye.store.files import PRIVATE_DIR, private_open
from keeneye.store.tables import AuditHeadRow, AuditRow

log = logging.getLogger("keeneye.audit")

PUBLIC_SAFETY_THRESHOLD = 99.0
FLAG_NOTE = "below the level AWS recommends for public-safety use (99)"
MAX_READ = 10_000
HEAD_FILE = "audit-head.json"
HEAD_ROW = 1  # the id of the one audit_head row
APPEND_RETRIES = 5
# pg_advisory_xact_lock key of the audit chain (any constant shared by all keeneye processes).
_PG_LOCK_KEY = 0x6B65656E  # "keen"
_APPEND_LOCK = threading.Lock()  # every AuditLog of this process: one append at a time


@dataclass
class VerifyReport:
    """What :meth:`AuditLog.verify` found. ``ok`` is False when ``problem`` names a bad record."""

    ok: bool
    records: int
    first_id: int | None = None
    last_id: int | None = None
    last_hash: str | None = None
    first_bad_id: int | None = None
    problem: str | None = None
    anchor: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    """Append, read, verify and export audit records in the store's ``audit`` table.

    ``head_file``: where the head anchor is kept (default ``<data_dir>/audit-head.json``).
    """

    def __init__(self, store: Store, *, head_file: Path | None = None) -> None:
        self._store = store
        self.head_file = head_file if head_file is not None else store.data_dir / HEAD_FILE

    def append(
        self,
        operation: str,
        *,
        access_key: str | None,
        collection_id: str | None = None,
        request_faces: int = 0,
        matches: Sequence[dict[str, Any]] = (),
        threshold: float | None = None,
        details: Mapping[str, Any] | None = None,
        time: datetime | None = None,
    ) -> int:
        """Write one record (committed before returning), chained to the last one; its id.

        matches: e.g. ``[{"FaceId": ..., "Similarity": 99.1}]`` or ``[{"UserId": ..., "Similarity": ...}]``
        (plain JSON values). threshold: the FaceMatchThreshold / UserMatchThreshold /
        SimilarityThreshold in force (0-100), None for operations without one. details: plain JSON
        about what the operation concerned (a JobId, a topic ARN, counts).
        """
        when = time or datetime.now(UTC)
        if when.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        # The values as they will read back from the database (plain JSON, microsecond UTC times),
        # so that the hash computed now is the one verify recomputes.
        values: dict[str, Any] = {
            "time": datetime.fromisoformat(canonical_time(when)),
            "access_key": access_key,
            "operation": operation,
            "collection_id": collection_id,
            "request_faces": int(request_faces),
            "matches": json.loads(json.dumps([dict(m) for m in matches], allow_nan=False)),
            "threshold": None if threshold is None else float(threshold),
            "flagged_below_99": threshold is not None and float(threshold) < PUBLIC_SAFETY_THRESHOLD,
            "details": None if details is None else json.loads(json.dumps(dict(details), allow_nan=False)),
        }
        with _APPEND_LOCK:
            for attempt in range(APPEND_RETRIES):
                try:
                    row_id, digest, records = self._append_once(values)
                    break
                except IntegrityError:  # another writer took the same head (no lock in that database)
                    if attempt == APPEND_RETRIES - 1:
                        raise
            try:
                self._write_head(row_id, digest, records)
            except OSError:  # the record is committed; only truncation detection is weaker until the next
                log.exception("could not write the audit head anchor %s", self.head_file)
        return row_id

    def _append_once(self, values: dict[str, Any]) -> tuple[int, str, int]:
        """Insert the record after the chain's last one and move the database's head to it, in one
        transaction under the chain's lock; (id, hash, records appended in all)."""
        with self._store.transaction() as session:
            _lock_chain(session)
            last = session.execute(
                select(AuditRow.id, AuditRow.hash).order_by(AuditRow.id.desc()).limit(1)
            ).first()
            prev = last[1] if last is not None else GENESIS
            row = AuditRow(**values, prev_hash=prev, hash="")
            session.add(row)
            session.flush()  # assigns the id, which the hash covers
            row.hash = record_hash(canonical_record(id=row.id, **values, prev_hash=prev))
            head = session.get(AuditHeadRow, HEAD_ROW)
            problem = _head_disagreement(head, None if last is None else (int(last[0]), str(last[1])))
            if head is None:
                before = session.scalar(
                    select(func.count()).select_from(AuditRow).where(AuditRow.id < row.id)
                )
                head = AuditHeadRow(id=HEAD_ROW, records=int(before or 0), problem=None)
                session.add(head)
            if problem is not None:
                log.error("audit log: %s (noticed appending record %d)", problem, row.id)
                if head.problem is None:  # the first one is kept: verify fails from now on
                    head.problem = f"{problem} (noticed appending record {row.id} at {_now_iso()})"[:1024]
            head.records += 1
            head.last_id, head.last_hash, head.updated_at = row.id, row.hash, datetime.now(UTC)
            session.flush()
            return row.id, row.hash, head.records

    # -- head anchor ----------------------------------------------------------------------------
    def _database(self) -> str:
        return make_url(self._store.url).render_as_string(hide_password=True)

    def _write_head(self, row_id: int, digest: str, records: int | None = None) -> None:
        """Record (id, hash) of the newest record, never moving backwards, with ``records``: how many
        records the log holds up to it (the database's count). A temp file, fsynced, renamed over the
        anchor. A file lock orders writers of other processes. The folder is not fsynced: a power cut
        may bring back the previous anchor, which is only weaker (an older record's hash), never wrong,
        since the record itself was committed durably first."""
        self.head_file.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        lock_path = self.head_file.with_name(self.head_file.name + ".lock")
        with private_open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read_head()
            same_db = current is not None and current.get("database") == self._database()
            if same_db and (_anchor_id(current) or 0) >= row_id:
                return  # a later record's append already moved the anchor past this one
            head: dict[str, Any] = {"id": row_id, "hash": digest, "database": self._database()}
            if records is not None:
                head["records"] = records
            head["written_at"] = _now_iso()
            tmp = self.head_file.with_name(self.head_file.name + ".tmp")
            with private_open(tmp, "w") as f:
                json.dump(head, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.head_file)

    def read_head(self) -> dict[str, Any] | None:
        """The head anchor, or None when there is none (or it is not readable JSON)."""
        try:
            data = json.loads(self.head_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # -- reading --------------------------------------------------------------------------------
    def read(
        self,
        since: datetime | None = None,
        collection_id: str | None = None,
        limit: int = 1000,
        *,
        after: int | None = None,
        newest_first: bool = False,
        access_key: str | None = None,
        operation: str | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` records at or after ``since``, of one collection if given: in the order they
        were written (oldest first), or newest first. ``after``: a page's cursor, the id of the last
        record of the page before (the next page holds the records after it in the same order: greater
        ids oldest first, smaller ids newest first). Ids only grow, so a page never repeats or skips a
        record, even while records are appended. ``access_key``, ``operation``: only those records;
        ``until``: only records before it."""
        if not 1 <= limit <= MAX_READ:
            raise ValueError(f"limit must be between 1 and {MAX_READ}")
        order = AuditRow.id.desc() if newest_first else AuditRow.id
        stmt = select(AuditRow).order_by(order).limit(limit)
        if after is not None:
            stmt = stmt.where(AuditRow.id < after if newest_first else AuditRow.id > after)
        if since is not None:
            stmt = stmt.where(AuditRow.time >= _utc(since))
        if collection_id is not None:
            stmt = stmt.where(AuditRow.collection_id == collection_id)
        if access_key is not None:
            stmt = stmt.where(AuditRow.access_key == access_key)
        if operation is not None:
            stmt = stmt.where(AuditRow.operation == operation)
        if until is not None:
            stmt = stmt.where(AuditRow.time < _utc(until))
        with self._store.sessions() as session:
            return [_as_dict(r) for r in session.scalars(stmt)]

    def _chain(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every record (or those at or after ``since``) as hashed, with its ``hash``, in id order."""
        stmt = select(AuditRow).order_by(AuditRow.id).execution_options(yield_per=1000)
        if since is not None:
            stmt = stmt.where(AuditRow.time >= _utc(since))
        with self._store.sessions() as session:
            for row in session.scalars(stmt):
                yield {**_canonical(row), "hash": row.hash}

    def export(self, out: IO[str], since: datetime | None = None) -> int:
        """Write records as JSON Lines (the hashed fields plus ``hash``), in id order; how many."""
        n = 0
        for record in self._chain(since):
            out.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
        return n

    def verify(self, expected: tuple[int, str] | None = None) -> VerifyReport:
        """Walk the whole chain (every hash recomputed, every link checked), then check where it ends
        against the head anchor file, the database's head (``audit_head``) and, if given, ``expected``:
        the (id, hash) of a record known from outside (an export, a published head hash).

        The heads are read before the walk, so a record appended meanwhile cannot look like a
        truncation.
        """
        db_head = self._database_head()
        head = self.read_head()
        watch = {_anchor_id(head), None if db_head is None else db_head.last_id}
        watch.add(None if expected is None else expected[0])
        report, seen = verify_chain(
            self._chain(), from_genesis=True, watch={i for i in watch if i is not None}
        )
        report.anchor = head
        if not report.ok:
            return report
        found = (
            _database_head_problem(db_head, report, seen)
            or self._anchor_problem(head, report, seen)
            or _expected_problem(expected, report, seen)
        )
        if found is not None:
            report.ok = False
            report.first_bad_id, report.problem = found
        return report

    def _database_head(self) -> _DatabaseHead | None:
        with self._store.sessions() as session:
            row = session.get(AuditHeadRow, HEAD_ROW)
            if row is None:
                return None
            return _DatabaseHead(row.records, row.last_id, row.last_hash, row.updated_at, row.problem)

    def _anchor_problem(
        self, head: dict[str, Any] | None, report: VerifyReport, seen: Mapping[int, tuple[str, int]]
    ) -> tuple[int | None, str] | None:
        """What the head anchor file shows wrong (None: nothing); a missing or foreign anchor is a
        warning (a new data directory, a restored database)."""
        if head is None:
            if report.records:
                report.warnings.append(
                    f"no head anchor ({self.head_file}): the database's own head is checked instead"
                )
            return None
        if head.get("database") != self._database():
            report.warnings.append(
                f"the head anchor is for another database ({head.get('database')}); it was not checked"
            )
            return None
        anchor_id, anchor_hash = _anchor_id(head), head.get("hash")
        if anchor_id is None or anchor_id not in seen:
            return anchor_id, (
                f"the log ends at record {report.last_id} but the head anchor says record {anchor_id} "
                f"was written ({head.get('written_at')}): records were removed from the end of the log"
            )
        digest, position = seen[anchor_id]
        if digest != anchor_hash:
            return anchor_id, (
                f"record {anchor_id}: its hash differs from the head anchor's: the log was rewritten "
                "from that record on (or the anchor file was changed)"
            )
        counted = head.get("records")
        if isinstance(counted, int) and counted != position:
            return anchor_id, (
                f"the log holds {position} records up to record {anchor_id} but the head anchor counted "
                f"{counted}: records were removed and their ids used again"
            )
        return None


@dataclass(frozen=True)
class _DatabaseHead:
    """The ``audit_head`` row (keeneye.store.tables.AuditHeadRow) as read."""

    records: int
    last_id: int
    last_hash: str
    updated_at: datetime
    problem: str | None


def _head_disagreement(head: AuditHeadRow | None, last: tuple[int, str] | None) -> str | None:
    """Why the log's last record (id, hash) is not where the database's head says the log ends; None
    when it is (an append checks this before it moves the head)."""
    if head is None:
        if last is None:
            return None
        return (
            f"the database's head of the log (table audit_head) was missing while the log held records up "
            f"to {last[0]}: it is written with every record, so it was deleted"
        )
    if last is None:
        return f"the log is empty but {head.records} records were written, the last one {head.last_id}"
    if last != (head.last_id, head.last_hash):
        return (
            f"the log ended at record {last[0]}, not at record {head.last_id} as written "
            f"({head.records} records): records were removed from the end, or the log was rewritten"
        )
    return None


def _database_head_problem(
    head: _DatabaseHead | None, report: VerifyReport, seen: Mapping[int, tuple[str, int]]
) -> tuple[int | None, str] | None:
    """What the database's head shows wrong with a chain that is intact in itself (None: nothing)."""
    if head is None:
        if not report.records:
            return None
        return None, (
            "the database's head of the log (table audit_head) is missing: it is written with every "
            "record, so it was deleted (records may have been removed from the end of the log)"
        )
    if head.problem is not None:
        return None, f"an append found the log tampered with: {head.problem}"
    written = f"({head.records} records, the last at {head.updated_at.isoformat(timespec='seconds')})"
    if head.last_id not in seen:
        ends = "the log is empty" if report.last_id is None else f"the log ends at record {report.last_id}"
        return head.last_id, (
            f"{ends} but the database's head says record {head.last_id} was written {written}: "
            "records were removed from the end of the log"
        )
    digest, position = seen[head.last_id]
    if digest != head.last_hash:
        return head.last_id, (
            f"record {head.last_id}: its hash differs from the database's head: the log was rewritten "
            "from that record on (or the head was changed)"
        )
    if position != head.records:
        return head.last_id, (
            f"the log holds {position} records up to record {head.last_id} but {head.records} were "
            "written: records were removed"
        )
    return None


def _expected_problem(
    expected: tuple[int, str] | None, report: VerifyReport, seen: Mapping[int, tuple[str, int]]
) -> tuple[int | None, str] | None:
    """Whether the record known from outside, (id, hash), is in the log as it was known."""
    if expected is None:
        return None
    record_id, digest = expected
    if record_id not in seen:
        return record_id, (
            f"the log ends at record {report.last_id} but record {record_id} was known to have been written "
            "(the head given): records were removed from the end of the log"
        )
    if seen[record_id][0] != digest:
        return record_id, (
            f"record {record_id}: its hash differs from the one given: the log was rewritten from that "
            "record on"
        )
    return None


def verify_chain(
    records: Iterable[Mapping[str, Any]], *, from_genesis: bool = True, watch: Collection[int] = ()
) -> tuple[VerifyReport, dict[int, tuple[str, int]]]:
    """Check records (the hashed fields plus ``hash``, in written order): each hash recomputed and
    each ``prev_hash`` equal to the hash before it; the first must chain from GENESIS when
    ``from_genesis`` (an export made with --since starts wherever it starts). Stops at the first bad
    record. Returns the report and, for each id of ``watch`` seen, the record's stored hash and its
    position (1 for the first record checked)."""
    report = VerifyReport(ok=True, records=0)
    prev_hash: str | None = GENESIS if from_genesis else None
    prev_id: int | None = None
    watched: dict[int, tuple[str, int]] = {}
    for rec in records:
        rid = int(rec["id"])
        problem = None
        if record_hash(dict(rec)) != rec.get("hash"):
            problem = (
                f"record {rid}: its contents do not match its hash (a field was changed after it was written)"
            )
        elif prev_hash is not None and rec["prev_hash"] != prev_hash:
            if prev_id is None:
                problem = (
                    f"record {rid}: the first record does not chain from the genesis value "
                    "(records at the start of the log were removed)"
                )
            else:
                problem = (
                    f"record {rid}: its prev_hash is not the hash of record {prev_id} before it "
                    "(records between them were removed, or records were reordered or replaced)"
                )
        elif prev_id is not None and rid <= prev_id:
            problem = f"record {rid}: comes after record {prev_id} (records were reordered)"
        if problem is not None:
            report.ok, report.first_bad_id, report.problem = False, rid, problem
            return report, watched
        if report.first_id is None:
            report.first_id = rid
        report.records += 1
        if rid in watch:
            watched[rid] = (str(rec["hash"]), report.records)
        report.last_id, report.last_hash = rid, str(rec["hash"])
        prev_hash, prev_id = str(rec["hash"]), rid
    return report, watched


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a ``keeneye audit export`` file (ValueError naming the line if one is not JSON)."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise ValueError(f"line {number} is not JSON") from None
            if not isinstance(rec, dict) or not {*HASHED_FIELDS, "hash"} <= rec.keys():
                raise ValueError(f"line {number} is not an audit record (fields are missing)")
            yield rec


def _lock_chain(session: Session) -> None:
    """Take the database's write lock on the chain before its head is read (see the module doc)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # pysqlite opens transactions lazily (a plain BEGIN at the first write); an explicit
        # BEGIN IMMEDIATE as the transaction's first statement takes the write lock now, and the
        # driver commits it as its own. busy_timeout makes other writers wait for it.
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    # Other databases: the unique prev_hash makes a racing append fail and retry instead of forking.


def _anchor_id(head: Mapping[str, Any] | None) -> int | None:
    if head is None:
        return None
    try:
        return int(head["id"])
    except (KeyError, TypeError, ValueError):
        return None


def _utc(when: datetime) -> datetime:
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)  # naive means UTC
    return aware.astimezone(UTC)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _canonical(row: AuditRow) -> dict[str, Any]:
    return canonical_record(
        id=row.id,
        time=row.time,
        access_key=row.access_key,
        operation=row.operation,
        collection_id=row.collection_id,
        request_faces=row.request_faces,
        matches=row.matches,
        threshold=row.threshold,
        flagged_below_99=row.flagged_below_99,
        details=row.details,
        prev_hash=row.prev_hash,
    )


def _as_dict(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": row.time.isoformat(),
        "access_key": row.access_key,
        "operation": row.operation,
        "collection_id": row.collection_id,
        "request_faces": row.request_faces,
        "matches": row.matches,
        "threshold": row.threshold,
        "flagged_below_99": bool(row.flagged_below_99),
        "flag": FLAG_NOTE if row.flagged_below_99 else None,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
