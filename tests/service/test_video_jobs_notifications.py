"""VideoJobs with notification channels and the operator's cancel (fake runners, real store and sinks)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from keeneye.config import NotificationSettings
from keeneye.core.errors import InvalidParameter, InvalidVideo, NotFound
from keeneye.service.video.jobs import CANCELLED_MESSAGE, JobFinished, JobInfo, JobOutput, VideoJobs, VideoRef
from keeneye.service.video.notifications import NotificationService
from keeneye.store.db import Store
from tests.factories import loopback_egress
from tests.receivers import free_port, wait_until, webhook_receiver

TOPIC = "arn:aws:sns:us-east-1:123456789012:AmazonRekognitionJobs"
VIDEO = VideoRef("videos", "clip.mp4")
FAST = NotificationSettings(timeout_s=2.0, retry_initial_s=0.2, retry_max_s=0.4, poll_s=0.2)


def _ok(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    checkpoint()
    return JobOutput({"width": 4, "height": 3}, [{"pts_ms": 0.0, "index": 0}])


def _bad(path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
    raise InvalidVideo("not a video")


class Blocking:
    """A runner that runs until the pool stops or the job is cancelled, counting its calls."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.calls = 0
        self.stopped_by: list[str] = []

    def __call__(self, path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        self.calls += 1
        self.started.set()
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                checkpoint()
                time.sleep(0.01)
        except Exception as exc:
            self.stopped_by.append(type(exc).__name__)
            raise
        raise AssertionError("the job was never stopped")


def _jobs(tmp_path: Path, runners: Mapping[str, Any], *, channel: bool = True, workers: int = 1) -> VideoJobs:
    store = Store.open(tmp_path)
    notifications = NotificationService(store, FAST, tmp_path, egress=loopback_egress())
    if channel:
        notifications.put_channel(TOPIC, {"jsonl": {"name": "jobs.jsonl"}})
    jobs = VideoJobs(
        store, runners, lambda ref: tmp_path / ref.name, workers=workers, notifications=notifications
    )
    jobs.start_workers()
    return jobs


def _lines(tmp_path: Path, n: int) -> list[dict[str, Any]]:
    path = tmp_path / "notifications" / "jobs.jsonl"
    wait_until(lambda: path.is_file() and len(path.read_text().splitlines()) >= n, what=f"{n} JSONL line(s)")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _ended(jobs: VideoJobs, job_id: str) -> JobInfo:
    wait_until(lambda: jobs.info(job_id).status != "IN_PROGRESS", what=f"job {job_id} to end")
    return jobs.info(job_id)


@pytest.mark.parametrize(("runner", "status"), [(_ok, "SUCCEEDED"), (_bad, "FAILED")])
def test_a_job_notifies_its_end(tmp_path: Path, runner: Any, status: str) -> None:
    jobs = _jobs(tmp_path, {"PersonTracking": runner})
    job_id = jobs.start("PersonTracking", VIDEO, "my-tag", notification_topic=TOPIC)
    info = _ended(jobs, job_id)
    envelope = _lines(tmp_path, 1)[0]
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == TOPIC
    message = json.loads(envelope["Message"])
    assert message == {
        "JobId": job_id,
        "Status": status,
        "API": "StartPersonTracking",
        "JobTag": "my-tag",
        "Timestamp": message["Timestamp"],
        "Video": {"S3ObjectName": "clip.mp4", "S3Bucket": "videos"},
    }
    assert info.finished_at is not None
    assert abs(message["Timestamp"] - info.finished_at.timestamp() * 1000) < 1000

    def delivered() -> bool:
        notification = jobs.info(job_id).notification
        return notification is not None and notification.state == "delivered"

    wait_until(delivered)
    assert jobs.info(job_id).to_dict()["notification"]["message_id"] == envelope["MessageId"]
    jobs.close()


def test_a_job_without_a_channel_is_refused(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, {"PersonTracking": _ok}, channel=False)
    with pytest.raises(InvalidParameter, match="PUT /v1/notification-channels/"):
        jobs.start("PersonTracking", VIDEO, notification_topic=TOPIC)
    assert jobs.list_jobs() == []
    plain = jobs.start("PersonTracking", VIDEO)  # no NotificationChannel: nothing to configure
    assert _ended(jobs, plain).notification is None
    jobs.close()


def test_cancel_a_queued_job_it_never_runs(tmp_path: Path) -> None:
    blocking = Blocking()
    jobs = _jobs(tmp_path, {"Block": blocking, "PersonTracking": _ok})
    first = jobs.start("Block", VIDEO)
    assert blocking.started.wait(10)
    queued = jobs.start("PersonTracking", VIDEO, notification_topic=TOPIC)
    assert jobs.info(queued).state == "QUEUED" and jobs.info(first).state == "RUNNING"
    cancelled = jobs.cancel(queued)
    assert (cancelled.status, cancelled.state, cancelled.status_message) == (
        "FAILED",
        "FAILED",
        CANCELLED_MESSAGE,
    )
    assert json.loads(_lines(tmp_path, 1)[0]["Message"])["Status"] == "FAILED"
    jobs.cancel(first)  # frees the worker, which then skips the cancelled job
    wait_until(lambda: blocking.stopped_by == ["JobCancelled"], what="the running job to stop")
    time.sleep(0.2)
    assert jobs.info(queued).status_message == CANCELLED_MESSAGE and jobs.info(queued).items == 0
    assert blocking.calls == 1
    jobs.close()


def test_cancel_a_running_job_stops_it_at_a_checkpoint(tmp_path: Path) -> None:
    blocking = Blocking()
    jobs = _jobs(tmp_path, {"Block": blocking, "PersonTracking": _ok})
    job_id = jobs.start("Block", VIDEO, notification_topic=TOPIC)
    assert blocking.started.wait(10)
    info = jobs.cancel(job_id)
    assert info.status == "FAILED" and info.status_message == CANCELLED_MESSAGE
    wait_until(lambda: blocking.stopped_by == ["JobCancelled"], what="the running job to stop")
    message = json.loads(_lines(tmp_path, 1)[0]["Message"])
    assert message["JobId"] == job_id and message["Status"] == "FAILED" and message["API"] == "StartBlock"
    after = jobs.start("PersonTracking", VIDEO)  # the worker goes on with the next job
    assert _ended(jobs, after).status == "SUCCEEDED"
    time.sleep(0.3)
    assert len(_lines(tmp_path, 1)) == 1  # one notification for the cancelled job, none for the other
    with pytest.raises(JobFinished, match="already ended"):
        jobs.cancel(job_id)
    with pytest.raises(JobFinished):
        jobs.cancel(after)
    with pytest.raises(NotFound):
        jobs.cancel("nope")
    jobs.close()


def test_list_jobs_newest_first_with_filters(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, {"PersonTracking": _ok, "FaceDetection": _bad}, workers=0)
    ids = [jobs.start("PersonTracking", VIDEO) for _ in range(3)] + [jobs.start("FaceDetection", VIDEO)]
    jobs.cancel(ids[1])
    assert [j.job_id for j in jobs.list_jobs()] == ids[::-1]
    assert [j.job_id for j in jobs.list_jobs(kind="PersonTracking", limit=2)] == [ids[2], ids[1]]
    assert [j.job_id for j in jobs.list_jobs(status="FAILED")] == [ids[1]]
    assert {j.state for j in jobs.list_jobs(status="IN_PROGRESS")} == {"QUEUED"}
    with pytest.raises(InvalidParameter):
        jobs.list_jobs(limit=0)
    jobs.close()


def test_notification_of_a_job_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    store = Store.open(tmp_path)
    notifications = NotificationService(store, FAST, tmp_path, egress=loopback_egress())
    notifications.put_channel(TOPIC, {"webhook": {"url": f"http://127.0.0.1:{port}/hook"}})
    jobs = VideoJobs(store, {"PersonTracking": _ok}, lambda ref: tmp_path, notifications=notifications)
    jobs.start_workers()
    job_id = jobs.start("PersonTracking", VIDEO, notification_topic=TOPIC)
    wait_until(
        lambda: (n := jobs.info(job_id).notification) is not None and n.attempts >= 1,
        what="a failed delivery",
    )
    assert jobs.info(job_id).status == "SUCCEEDED"  # delivery trouble never fails the job
    jobs.close()
    with webhook_receiver(port) as hook:
        again = VideoJobs(
            store,
            {"PersonTracking": _ok},
            lambda ref: tmp_path,
            notifications=NotificationService(store, FAST, tmp_path, egress=loopback_egress()),
        )
        again.start_workers()
        got = hook.wait_for(1)
        wait_until(lambda: again.info(job_id).notification.state == "delivered", what="delivered")  # type: ignore[union-attr]
        again.close()
    assert json.loads(got[0].body["Message"])["JobId"] == job_id and len(got) == 1


def test_a_job_ends_once_when_cancel_races_its_end(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, {"PersonTracking": _ok}, workers=2)
    ids = [jobs.start("PersonTracking", VIDEO, notification_topic=TOPIC) for _ in range(20)]
    outcomes = []
    for job_id in ids:  # each cancel lands before, during or after its job's run
        try:
            outcomes.append(jobs.cancel(job_id).status_message)
        except JobFinished:
            outcomes.append("finished first")
    for job_id in ids:
        _ended(jobs, job_id)
    lines = _lines(tmp_path, len(ids))
    time.sleep(0.3)
    assert sorted(json.loads(e["Message"])["JobId"] for e in _lines(tmp_path, len(ids))) == sorted(ids)
    assert len(lines) == len(ids)
    for job_id, outcome in zip(ids, outcomes, strict=True):
        info = jobs.info(job_id)
        if outcome == CANCELLED_MESSAGE:
            assert info.status == "FAILED" and info.status_message == CANCELLED_MESSAGE and info.items == 0
        else:
            assert info.status == "SUCCEEDED"
    jobs.close()
