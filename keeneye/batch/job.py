"""The driver of a batch job: inputs in, an engine's rows out to Parquet parts, resumable.

The output folder holds:

- ``job.json``: the job id and the task (name and options); a re-run with another task is refused;
- ``parts/part-NNNNNN-<run>.parquet``: result rows, one per input: ``uri``, ``status`` (ok/error),
  ``seconds``, ``error_code``, ``error_message``, ``result`` (a JSON string, task-specific). A part is
  written to a temporary file, fsynced and renamed, every ``flush_rows`` rows or ``flush_seconds``: a
  ``kill -9`` loses the rows since the last part, never a part half-written;
- ``summary.json``: counts over every part, errors by code, this run's throughput, engine, task, times.

Results name faces and people (FaceIds, ExternalImageIds, matches): the folder is made 0700 and its
files 0600, whatever the umask (keeneye.store.files), as the data directory's are.

A re-run with the same folder reads the ``uri`` column of the parts and sends only the other inputs
to the engine. Rows are de-duplicated on ``uri`` when read (the first part wins), so nothing is
counted twice. Ctrl-C writes the rows done and stops.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from keeneye.batch.base import BatchInput, Engine, Row, TaskSpec
from keeneye.core.errors import InvalidParameter
from keeneye.store.files import private_dir, private_open, restrict_file

JOB_FILE = "job.json"
SUMMARY_FILE = "summary.json"
PART_GLOB = "part-*.parquet"
PARTS_DIR = "parts"  # its own folder, so pyarrow / pandas / duckdb read it without the JSON files
# Options that say where inputs are read from, not what is computed: a re-run may change them.
_LOCATION_OPTIONS = frozenset({"buckets", "s3_endpoint"})

Progress = Callable[[int, int, int], None]
"""(inputs done in total, inputs in the job, errors in total)."""


class Collector(Protocol):
    """Driver-side work on rows before they are written (index-faces stores its vectors)."""

    def commit(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


def _schema() -> pa.Schema:
    return pa.schema(
        [
            ("uri", pa.string()),
            ("status", pa.string()),
            ("seconds", pa.float64()),
            ("error_code", pa.string()),
            ("error_message", pa.string()),
            ("result", pa.string()),
        ]
    )


def _task_options(spec: TaskSpec) -> dict[str, Any]:
    return {k: v for k, v in spec.options.items() if k not in _LOCATION_OPTIONS}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_job(out: Path, spec: TaskSpec) -> str:
    """Create ``out`` with its ``job.json``, or check that the one there is for the same task; the job id.
    InvalidParameter if ``out`` holds another task's results or is not a job folder."""
    task = {
        "name": spec.name,
        "options": {k: v for k, v in spec.options.items() if k not in _LOCATION_OPTIONS},
    }
    path = out / JOB_FILE
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InvalidParameter(f"{path} is unreadable ({e}); use another --output") from None
        # Through JSON both ways, so tuples and lists compare equal.
        if doc.get("task") != json.loads(json.dumps(task)):
            raise InvalidParameter(
                f"{out} holds the results of another task ({json.dumps(doc.get('task'))}); "
                f"this run is {json.dumps(task)}: use another --output, or the same task to resume"
            )
        return str(doc["job_id"])
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidParameter(f"{out} exists and is not a keeneye batch output folder; use another --output")
    private_dir(out)
    job_id = str(uuid.uuid4())
    _write_atomic(path, json.dumps({"job_id": job_id, "task": task, "created": _now()}, indent=1).encode())
    return job_id


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with private_open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(out: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every row of the parts, de-duplicated on ``uri`` (the earliest part wins), in part order."""
    parts = sorted((out / PARTS_DIR).glob(PART_GLOB))
    if not parts:
        return _schema().empty_table() if columns is None else _schema().empty_table().select(list(columns))
    cols = None if columns is None else sorted(set(columns) | {"uri"}, key=list(_schema().names).index)
    table = pa.concat_tables([pq.read_table(p, columns=cols) for p in parts])
    seen: set[str] = set()
    keep = []
    for i, uri in enumerate(table.column("uri").to_pylist()):
        if uri not in seen:
            seen.add(uri)
            keep.append(i)
    if len(keep) < table.num_rows:
        table = table.take(pa.array(keep, pa.int64()))
    return table if columns is None else table.select(list(columns))


class PartWriter:
    """Buffers rows and writes them as one Parquet part at a time, atomically."""

    def __init__(self, out: Path, flush_rows: int, flush_seconds: float, collector: Collector | None) -> None:
        self.folder = private_dir(out / PARTS_DIR)
        self.out, self.flush_rows, self.flush_seconds = out, flush_rows, flush_seconds
        self.collector = collector
        self.run_id = uuid.uuid4().hex[:8]
        self.buffer: list[Row] = []
        self.last_flush = time.monotonic()
        self.seq = len(list(self.folder.glob(PART_GLOB)))

    def add(self, row: Row) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.flush_rows or time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return

        # The buffer is emptied only once the part is on disk: a Ctrl-C landing in here leaves the rows
        # for the final flush (a replayed commit is a no-op, see IndexCollector).
        rows = self.buffer
        if self.collector is not None:
            self.collector.commit(rows)  # before the part: a row on disk is a row in the store
        table = pa.Table.from_pylist(
            [
                {
                    "uri": r.uri,
                    "status": r.status,
                    "seconds": float(r.seconds),
                    "error_code": r.error_code,
                    "error_message": r.error_message,
                    "result": json.dumps(r.result, separators=(",", ":")),
                }
                for r in rows
            ],
            schema=_schema(),
        )
        path = self.folder / f"part-{self.seq:06d}-{self.run_id}.parquet"
        tmp = self.folder / f".{path.name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        restrict_file(tmp)  # pyarrow takes no mode; the folder is 0700 meanwhile
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.folder)
        self.buffer = []
        self.seq += 1


def run_job(
    engine: Engine,
    engine_name: str,
    spec: TaskSpec,
    inputs: Sequence[BatchInput],
    out: Path,
    *,
    batch_size: int = 8,
    flush_rows: int = 200,
    flush_seconds: float = 5.0,
    collector_factory: Callable[[str], Collector] | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Run (or resume) the job in ``out``; the summary (also written to ``out/summary.json``).

    collector_factory: job id -> the driver-side collector (index-faces). KeyboardInterrupt is
    re-raised after the rows done are written and the summary says ``"interrupted": true``.
    """
    if batch_size < 1 or flush_rows < 1:
        raise InvalidParameter("batch size and rows per part must be at least 1")
    job_id = open_job(out, spec)
    for stale in (out / PARTS_DIR).glob(".part-*.tmp"):
        stale.unlink()  # a part being written when a previous run was killed
    started, t0 = _now(), time.perf_counter()
    done = set(read_rows(out, ["uri"]).column("uri").to_pylist())
    todo = [i for i in inputs if i.uri not in done]
    already = len(inputs) - len(todo)
    collector = collector_factory(job_id) if collector_factory is not None and todo else None
    writer = PartWriter(out, flush_rows, flush_seconds, collector)
    processed = errors = 0
    previous_errors = _error_count(out)
    interrupted = False
    try:
        for row in engine.run(spec, todo, batch_size=batch_size):
            writer.add(row)
            processed += 1
            errors += row.status == "error"
            if on_progress is not None:
                on_progress(already + processed, len(inputs), previous_errors + errors)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        try:
            engine.close()
            writer.flush()
        finally:
            if collector is not None:
                collector.close()
            summary = _summary(out, spec, engine_name, job_id, len(inputs), already, len(done), started, t0)
            summary["interrupted"] = interrupted
            _write_atomic(out / SUMMARY_FILE, (json.dumps(summary, indent=1) + "\n").encode())
    return summary


def _error_count(out: Path) -> int:
    if not any((out / PARTS_DIR).glob(PART_GLOB)):
        return 0
    return sum(1 for s in read_rows(out, ["status"]).column("status").to_pylist() if s == "error")


def _summary(
    out: Path,
    spec: TaskSpec,
    engine_name: str,
    job_id: str,
    inputs: int,
    already: int,
    done_before: int,
    started: str,
    t0: float,
) -> dict[str, Any]:
    table = read_rows(out, ["uri", "status", "error_code", "seconds"])
    # What this run wrote, counted from the parts on disk rather than the loop's counter: a Ctrl-C can
    # land between a row reaching the writer and the counter moving, and the rows are the truth.
    processed = max(0, table.num_rows - done_before)
    statuses = Counter(table.column("status").to_pylist())
    codes = Counter(c for c in table.column("error_code").to_pylist() if c is not None)
    elapsed = time.perf_counter() - t0
    return {
        "job_id": job_id,
        "task": {"name": spec.name, "options": _task_options(spec)},
        "engine": engine_name,
        "output": str(out),
        "inputs": inputs,
        "rows": table.num_rows,
        "ok": statuses.get("ok", 0),
        "errors": statuses.get("error", 0),
        "errors_by_code": dict(sorted(codes.items())),
        "remaining": max(0, inputs - already - processed),
        "run": {
            "skipped_already_done": already,
            "processed": processed,
            "seconds": round(elapsed, 2),
            "inputs_per_s": round(processed / elapsed, 2) if elapsed > 0 and processed else None,
            "started": started,
            "finished": _now(),
        },
    }
