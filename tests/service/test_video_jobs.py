"""VideoJobs with fake runners (no models): idempotency, paging, failures, restart of running jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from keeneye.core.errors import InvalidParameter, InvalidVideo, NotFound
from keeneye.service.video.jobs import JobOutput, JobPage, VideoJobs, VideoRef
from keeneye.store.db import Store

VIDEO = VideoRef("bucket", "clip.mp4")
ITEMS = [{"pts_ms": float(t), "index": i, "xyxy": [0, 0, 1, 1]} for t in (0, 100, 200) for i in (2, 1)]


def _ok(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    checkpoint()
    return JobOutput({"width": 4, "height": 3}, list(ITEMS))


def _bad(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    raise InvalidVideo(f"video {str(path)!r} is truncated")


def _jobs(tmp_path: Path, runner: Any = _ok, workers: int = 1) -> VideoJobs:
    jobs = VideoJobs(
        Store.open(tmp_path), {"T": runner}, lambda ref: tmp_path / "srv" / ref.name, workers=workers
    )
    jobs.start_workers()
    return jobs


def _wait(jobs: VideoJobs, job_id: str) -> JobPage:
    deadline = time.monotonic() + 10
    while (page := jobs.get(job_id, "T")).status == "IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return page


def test_pages_sort_and_idempotent_token(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    job_id = jobs.start("T", VIDEO, "tag", "tok")
    assert jobs.start("T", VideoRef("other", "x.mp4"), None, "tok") == job_id
    assert jobs.start("T", VIDEO, None, "tok2") != job_id
    page = _wait(jobs, job_id)
    assert page.status == "SUCCEEDED" and page.job_tag == "tag" and page.metadata == {"width": 4, "height": 3}
    by_time = [(it["pts_ms"], it["index"]) for it in page.items]
    assert by_time == sorted(by_time)
    got: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        p = jobs.get(job_id, "T", max_results=4, next_token=token, sort_by="INDEX")
        got += p.items
        if (token := p.next_token) is None:
            break
    assert [(it["index"], it["pts_ms"]) for it in got] == sorted((it["index"], it["pts_ms"]) for it in ITEMS)
    with pytest.raises(NotFound):
        jobs.get("nope", "T")
    with pytest.raises(InvalidParameter):
        jobs.get(job_id, "T", next_token="garbage")
    jobs.close()


def test_invalid_video_fails_without_the_server_path(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, _bad)
    page = _wait(jobs, jobs.start("T", VIDEO))
    assert page.status == "FAILED"
    assert page.status_message == "video 'clip.mp4' is truncated"
    assert page.items == [] and page.metadata is None
    jobs.close()


def test_running_job_restarts_and_queued_job_resumes(tmp_path: Path) -> None:
    running = threading.Event()

    def blocking(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        running.set()
        while True:  # a long video: only the pool's stop ends it
            checkpoint()
            time.sleep(0.01)

    jobs = _jobs(tmp_path, blocking)
    first = jobs.start("T", VIDEO)
    second = jobs.start("T", VIDEO)  # queued behind the first (one worker)
    assert running.wait(5)
    jobs.close()
    assert jobs.get(first, "T").status == "IN_PROGRESS"

    again = _jobs(tmp_path, _ok)
    assert _wait(again, first).status == "SUCCEEDED"
    assert _wait(again, second).status == "SUCCEEDED"
    again.close()
