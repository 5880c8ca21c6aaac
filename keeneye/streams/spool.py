"""An on-disk spool in front of a sink: a sink that is down neither blocks the producer nor loses records.

:class:`SpooledSink` is itself a sink (``send(message)``, ``close()``). Delivery policy:

* ``send`` appends the message (as compact JSON) to a SQLite database in the spool's folder
  (``spool.sqlite3``, WAL mode, one table ``spool(id INTEGER PRIMARY KEY, body BLOB)``) and returns: it
  never waits for the wrapped sink. It wakes the delivery thread, so when the sink is up a record is
  on its way within the time of one insert (no polling delay).
* One delivery thread (the only user of the wrapped sink) sends the records **in order**, oldest
  first, and deletes each one once the sink accepted it. Delivery is at least once: a record whose
  send succeeded but whose delete did not happen (a crash in between) is sent again on restart.
* A send that fails (SinkError or any other exception) keeps the record at the head of the spool and
  is retried after a backoff that doubles from ``initial_backoff_s`` (0.5 s) up to ``max_backoff_s``
  (30 s); the first success resets it. New records wait behind the head: order is never broken.
* Bound: the bodies on disk are kept under ``max_bytes`` (64 MiB) and, if given, ``max_records``. A
  send that goes over the bound drops the **oldest** records (never the one being delivered) and
  counts them in ``dropped``; a single record larger than ``max_bytes`` can never fit and is dropped
  itself. The database file may be somewhat larger than ``max_bytes`` (SQLite's pages and WAL file).
* Durability: the database survives a crash or restart of the process (WAL with
  ``synchronous=NORMAL``); ``fsync=True`` (``synchronous=FULL``) also survives a power loss at the cost
  of one fsync per ``send``. A new :class:`SpooledSink` over the same folder delivers what an earlier
  one left. One spool per folder at a time: the folder is locked (``spool.lock``, ``flock``) while open.
* ``close(timeout_s)`` keeps delivering for up to ``timeout_s`` (skipping a backoff wait in progress),
  then stops the thread and closes the wrapped sink; what is left stays on disk for next time.

:meth:`SpooledSink.stats` gives the counters (of this process's life; ``queued`` is what is on disk).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from keeneye.store.files import private_dir, private_fd, private_sqlite
from keeneye.streams.sinks import Sink, SinkError

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DB_NAME = "spool.sqlite3"
LOCK_NAME = "spool.lock"
_DROP_LOG_INTERVAL_S = 60.0
_JOIN_GRACE_S = 30.0

SpoolState = Literal["ok", "retrying", "closed"]


@dataclass(frozen=True)
class SpoolStats:
    """A snapshot of a spool.

    ``queued``: records on disk (the one being delivered included); ``delivered``, ``dropped`` (overflow)
    and ``failures`` (failed send attempts) count since this :class:`SpooledSink` opened;
    ``last_error``: the last failure's message (no secrets; None before the first); ``state``: ``ok``,
    ``retrying`` (the last attempt failed; waiting to retry) or ``closed``."""

    queued: int
    delivered: int
    dropped: int
    failures: int
    last_error: str | None
    state: SpoolState


class SpooledSink:
    """A sink that spools to disk in ``folder`` and delivers to ``sink`` from a background thread.

    ``max_bytes``/``max_records``: the bound on what is kept (None: no bound of that kind; at least one
    must be set); ``initial_backoff_s``/``max_backoff_s``: retry delays; ``fsync``: survive power loss
    too; ``name``: shown in logs and errors. ``send`` may be called from one producer thread at a time
    (any thread); ``sink`` is used by the delivery thread only, and closed by it."""

    def __init__(
        self,
        sink: Sink,
        folder: Path,
        *,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_records: int | None = None,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        fsync: bool = False,
        name: str = "spool",
    ) -> None:
        if max_bytes is None and max_records is None:
            raise ValueError("a spool needs max_bytes or max_records: it must not grow without bound")
        if (max_bytes is not None and max_bytes < 1) or (max_records is not None and max_records < 1):
            raise ValueError("max_bytes and max_records must be at least 1")
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError("backoff: want 0 < initial_backoff_s <= max_backoff_s")
        self._sink = sink
        self._name = name
        self._max_bytes = max_bytes
        self._max_records = max_records
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        private_dir(folder)  # identifications wait here: 0700, files 0600 (keeneye.store.files)
        self._lock_fd = _lock_folder(folder, name)
        try:
            self._db, count, size = _open_db(folder / DB_NAME, fsync=fsync)
        except (sqlite3.Error, OSError) as exc:
            os.close(self._lock_fd)
            raise SinkError(f"{name}: cannot open the spool in {folder}: {exc}") from None
        self._cond = threading.Condition()  # guards the database connection and every field below
        self._count: int = count
        self._bytes: int = size
        self._in_flight: int | None = None
        self._delivered = 0
        self._dropped = 0
        self._failures = 0
        self._last_error: str | None = None
        self._state: SpoolState = "ok"
        self._closing = False  # close() called: deliver until the deadline, then stop
        self._deadline = 0.0
        self._last_drop_log = -_DROP_LOG_INTERVAL_S
        self._thread = threading.Thread(target=self._run, name=f"keeneye-{name}", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        """The name given at construction (logs, errors, metrics labels)."""
        return self._name

    # -- producer side ------------------------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        """Spool ``message`` (JSON-serialisable) and return; SinkError if the spool is closed or the
        disk refuses the write."""
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        with self._cond:
            if self._closing:
                raise SinkError(f"{self._name}: the spool is closed")
            if self._max_bytes is not None and len(body) > self._max_bytes:  # can never fit
                self._dropped += 1
                log.warning("%s: a %d-byte record exceeds max_bytes; dropped", self._name, len(body))
                return
            try:
                self._db.execute("INSERT INTO spool (body) VALUES (?)", (body,))
            except sqlite3.Error as exc:
                raise SinkError(f"{self._name}: cannot write to the spool: {exc}") from None
            self._count += 1
            self._bytes += len(body)
            self._trim()
            self._cond.notify_all()

    def _trim(self) -> None:
        """Drop the oldest records (never the one in flight) until the spool is within its bound."""
        dropped = 0
        after = 0
        while self._over_bound():
            rows = self._db.execute(
                "SELECT id, LENGTH(body) FROM spool WHERE id > ? ORDER BY id LIMIT 256", (after,)
            ).fetchall()
            if not rows:
                break
            picked: list[int] = []
            for row_id, size in rows:
                if not self._over_bound():
                    break
                after = row_id
                if row_id == self._in_flight:
                    continue
                picked.append(row_id)
                self._count -= 1
                self._bytes -= size
            self._db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in picked])
            dropped += len(picked)
        if dropped:
            self._dropped += dropped
            now = time.monotonic()
            if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
                self._last_drop_log = now
                log.warning(
                    "%s: over its bound, dropped the %d oldest record(s) (%d dropped in all)",
                    self._name,
                    dropped,
                    self._dropped,
                )

    def _over_bound(self) -> bool:
        return (self._max_bytes is not None and self._bytes > self._max_bytes) or (
            self._max_records is not None and self._count > self._max_records
        )

    def stats(self) -> SpoolStats:
        with self._cond:
            return SpoolStats(
                queued=self._count,
                delivered=self._delivered,
                dropped=self._dropped,
                failures=self._failures,
                last_error=self._last_error,
                state="closed" if self._closing else self._state,
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout_s``, then stop and close the wrapped sink. Returns
        within ``timeout_s`` plus the send in progress (bounded by the wrapped sink's own timeout);
        undelivered records stay on disk. Idempotent."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + max(0.0, timeout_s)
                self._cond.notify_all()
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + _JOIN_GRACE_S)
        if self._thread.is_alive():
            log.warning(
                "%s: the wrapped sink did not return in time; it will be closed when it does", self._name
            )

    # -- delivery thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff_s = self._initial_backoff_s
        try:
            while True:
                head = self._next()
                if head is None:
                    return
                row_id, body = head
                error = self._deliver(body)
                with self._cond:
                    self._in_flight = None
                    if error is None:
                        self._db.execute("DELETE FROM spool WHERE id = ?", (row_id,))
                        self._count -= 1
                        self._bytes -= len(body)
                        self._delivered += 1
                        if self._state == "retrying":
                            log.info("%s: delivering again after %d failure(s)", self._name, self._failures)
                        self._state = "ok"
                        backoff_s = self._initial_backoff_s
                        continue
                    self._failures += 1
                    self._last_error = error
                    self._state = "retrying"
                    log.warning("%s: delivery failed (next try in %.1f s): %s", self._name, backoff_s, error)
                    self._wait_backoff(backoff_s)
                    backoff_s = min(backoff_s * 2, self._max_backoff_s)
        except sqlite3.Error as exc:  # the spool itself failed: nothing more can be delivered
            with self._cond:
                self._last_error = f"spool database error: {exc}"
                self._state = "retrying"
            log.error("%s: the spool database failed; delivery stopped", self._name, exc_info=exc)
        finally:
            self._shutdown()

    def _next(self) -> tuple[int, bytes] | None:
        """The oldest record, once there is one; None when it is time to stop."""
        with self._cond:
            while True:
                if self._closing and (self._count == 0 or time.monotonic() >= self._deadline):
                    return None
                if self._count > 0:
                    row = self._db.execute("SELECT id, body FROM spool ORDER BY id LIMIT 1").fetchone()
                    if row is not None:
                        self._in_flight = int(row[0])
                        return int(row[0]), bytes(row[1])
                    self._count, self._bytes = 0, 0  # cannot happen: the counts track the table
                if self._closing:
                    self._cond.wait(max(0.0, self._deadline - time.monotonic()))
                else:
                    self._cond.wait()

    def _deliver(self, body: bytes) -> str | None:
        """Send one record; None when delivered, else why not (fit for an operator)."""
        try:
            self._sink.send(json.loads(body))
        except SinkError as exc:
            return exc.message
        except Exception as exc:  # a sink's bug: keep the record and retry, as for a SinkError
            log.error("%s: the wrapped sink failed unexpectedly", self._name, exc_info=exc)
            return f"internal error in the sink: {type(exc).__name__}"
        return None

    def _wait_backoff(self, delay_s: float) -> None:
        """Wait ``delay_s`` (the condition's lock held), cut short when close() begins: then one prompt
        try, and later waits end at the close deadline."""
        end = time.monotonic() + delay_s
        was_closing = self._closing
        while True:
            now = time.monotonic()
            if self._closing:
                if not was_closing:
                    return
                end = min(end, self._deadline)
            if now >= end:
                return
            self._cond.wait(end - now)

    def _shutdown(self) -> None:
        try:
            self._sink.close()
        except Exception as exc:  # closing must go on: the database and the lock are still to free
            log.error("%s: closing the wrapped sink failed", self._name, exc_info=exc)
        with self._cond:
            self._closing = True
            self._state = "closed"
            self._db.close()
            os.close(self._lock_fd)


def _lock_folder(folder: Path, name: str) -> int:
    fd = private_fd(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SinkError(f"{name}: the spool folder {folder} is in use by another spool") from None
    return fd


def _open_db(path: Path, *, fsync: bool) -> tuple[sqlite3.Connection, int, int]:
    """The spool's database, with the number of records in it and their total size (bytes)."""
    # One connection shared by the producer and the delivery thread, always under the spool's lock;
    # autocommit (isolation_level=None): each statement is its own transaction.
    private_sqlite(path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
        db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        db.execute("CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM spool").fetchone()
    except sqlite3.Error:
        db.close()
        raise
    return db, int(count), int(size)
