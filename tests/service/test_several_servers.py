"""Several servers on one database (docs/deployment.md): stored-video jobs claimed by exactly one worker
with a lease, taken over when their server dies; one audit chain with several writers.

Each "server" here is what a ``keeneye serve`` process builds on the database (VideoJobs, AuditLog),
in this process or in a child process that is SIGKILLed; the HTTP side is tests/contract/
test_several_servers.py. PostgreSQL is the one started by tests/pg.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from keeneye.service.governance.audit import AuditLog
from keeneye.service.video.jobs import JobOutput, VideoJobs, VideoRef
from keeneye.store.db import Store
from keeneye.store.tables import VideoJobRow

VIDEO = VideoRef("bucket", "clip.mp4")
TIMEOUT_S = 30.0


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database for every server of the test: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., VideoJobs]]:
    """Build VideoJobs as separate servers do (their own store and data directory); closed at the end."""
    built: list[VideoJobs] = []

    def build(url: str, runner: Any, *, workers: int = 2, lease_s: float = 30.0) -> VideoJobs:
        data_dir = tmp_path / f"server-{len(built)}"
        jobs = VideoJobs(
            Store.open(data_dir, url),
            {"T": runner},
            lambda ref: data_dir / ref.name,
            workers=workers,
            lease_s=lease_s,
            poll_interval_s=0.05,
        )
        built.append(jobs)
        return jobs

    yield build
    for jobs in built:
        jobs.close()
        jobs._store.close()


def _wait_all(jobs: VideoJobs, job_ids: list[str], timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    for job_id in job_ids:
        while jobs.get(job_id, "T").status == "IN_PROGRESS":
            assert time.monotonic() < deadline, f"job {job_id} not done after {timeout_s} s"
            time.sleep(0.02)


def test_each_job_runs_once_when_two_servers_poll(shared_url: str, servers: Callable[..., VideoJobs]) -> None:
    runs: Counter[str] = Counter()
    by: dict[str, str] = {}
    lock = threading.Lock()

    def runner_of(name: str) -> Any:
        def run(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
            with lock:
                runs[str(params["job_id"])] += 1
                by[str(params["job_id"])] = name
            time.sleep(0.02)  # long enough for the other server's workers to look at the same rows
            checkpoint()
            return JobOutput({}, [])

        return run

    first, second = servers(shared_url, runner_of("first")), servers(shared_url, runner_of("second"))
    # Started through both, before any worker runs: both servers' workers find them all in the database.
    job_ids = [(first if i % 2 else second).start("T", VIDEO) for i in range(24)]
    first.start_workers()
    second.start_workers()
    _wait_all(first, job_ids)
    assert runs == Counter(dict.fromkeys(job_ids, 1))  # every job ran, and only once
    assert set(by.values()) == {"first", "second"}  # both servers took part
    assert all(second.get(j, "T").status == "SUCCEEDED" for j in job_ids)


def _forever(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    while True:
        checkpoint()
        time.sleep(0.01)


def _done(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    checkpoint()
    return JobOutput({"by": "survivor"}, [{"pts_ms": 0, "index": 0}])


SERVER = """
import sys, time
from pathlib import Path
from keeneye.service.video.jobs import VideoJobs
from tests.service.test_several_servers import _forever
jobs = VideoJobs(__import__("keeneye.store.db").store.db.Store.open(Path(sys.argv[1]), sys.argv[2]),
                 {"T": _forever}, lambda ref: Path(sys.argv[1]), workers=1, lease_s=60, poll_interval_s=0.05)
jobs.start_workers()
time.sleep(600)
"""


def _lease(url: str, job_id: str) -> tuple[str | None, datetime | None]:
    store = Store(url, Path("."))
    try:
        with store.transaction() as s:
            row = s.get(VideoJobRow, job_id)
            assert row is not None
            return row.lease_owner, row.lease_expires_at
    finally:
        store.close()


def test_a_job_of_a_killed_server_is_finished_by_another(
    pg_url: str, servers: Callable[..., VideoJobs], tmp_path: Path
) -> None:
    survivor = servers(pg_url, _done, workers=1)
    job_id = survivor.start("T", VIDEO)  # no worker runs here yet: the other server claims it
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "doomed"), pg_url], env=env)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while (owner := _lease(pg_url, job_id)[0]) is None:
            assert child.poll() is None and time.monotonic() < deadline, "the other server claimed nothing"
            time.sleep(0.05)
        assert owner.split(":")[1] == str(child.pid)
        assert survivor.info(job_id).state == "RUNNING"
    finally:
        child.send_signal(signal.SIGKILL)  # mid-job: no release, its lease still runs for 60 s
        child.wait()
    # On the same host the survivor sees that the owner's process is gone, without waiting for the lease.
    survivor.start_workers()
    _wait_all(survivor, [job_id], timeout_s=10)
    page = survivor.get(job_id, "T")
    assert page.status == "SUCCEEDED" and page.metadata == {"by": "survivor"}


def test_an_expired_lease_of_another_host_is_taken_over(
    pg_url: str, servers: Callable[..., VideoJobs]
) -> None:
    survivor = servers(pg_url, _done, workers=1, lease_s=1.0)
    job_id = survivor.start("T", VIDEO)
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    with survivor._store.transaction() as s:  # a server on another machine holds it, then goes silent
        s.execute(
            update(VideoJobRow)
            .where(VideoJobRow.job_id == job_id)
            .values(
                lease_owner="elsewhere:1:00000000", lease_expires_at=expires, started_at=datetime.now(UTC)
            )
        )
    survivor.start_workers()
    time.sleep(0.5)
    assert survivor.get(job_id, "T").status == "IN_PROGRESS"  # the lease still holds
    _wait_all(survivor, [job_id], timeout_s=10)
    assert datetime.now(UTC) >= expires and survivor.get(job_id, "T").status == "SUCCEEDED"


def test_a_worker_that_lost_its_lease_stops_and_records_nothing(
    pg_url: str, servers: Callable[..., VideoJobs]
) -> None:
    slow = servers(pg_url, _forever, workers=1, lease_s=0.3)
    job_id = slow.start("T", VIDEO)
    slow.start_workers()
    deadline = time.monotonic() + TIMEOUT_S
    while _lease(pg_url, job_id)[0] is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with slow._store.transaction() as s:  # as if it stalled past its lease and another server took the job
        later = datetime.now(UTC) + timedelta(minutes=5)
        taken = {"lease_owner": "elsewhere:1:0", "lease_expires_at": later}
        s.execute(update(VideoJobRow).where(VideoJobRow.job_id == job_id).values(**taken))
    while slow._running:
        assert time.monotonic() < deadline, "the worker went on without its lease"
        time.sleep(0.02)
    assert slow.get(job_id, "T").status == "IN_PROGRESS"
    assert _lease(pg_url, job_id)[0] == "elsewhere:1:0"


def _append_as_server(url: str, data_dir: str, tag: str) -> None:
    store = Store.open(Path(data_dir), url)
    log = AuditLog(store)
    for j in range(20):
        log.append("SearchFaces", access_key=tag, details={"j": j})
    store.close()


def test_two_servers_append_to_one_audit_chain(shared_url: str, tmp_path: Path) -> None:
    Store.open(tmp_path / "migrate", shared_url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_append_as_server, args=(shared_url, str(tmp_path / f"server-{i}"), f"S{i}"))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    for i in range(2):  # each server's own anchor file agrees with the one chain
        store = Store.open(tmp_path / f"server-{i}", shared_url)
        report = AuditLog(store).verify()
        store.close()
        assert report.ok and report.records == 40, report
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEENEYE_")}
    env |= {"KEENEYE_DATA_DIR": str(tmp_path / "server-0"), "KEENEYE_DATABASE_URL": shared_url}
    cli = [sys.executable, "-m", "keeneye.cli", "audit", "verify"]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
