"""NotificationChannel through boto3 against a real server: the webhook (a real HTTP server on
127.0.0.1) receives the SNS envelope of Rekognition's completion message; the operator cancels a
running job through the native API."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keeneye.config import VideoJobSettings
from tests.aws.signing import SECRET
from tests.contract.conftest import RunningServer
from tests.receivers import WebhookReceiver, wait_until, webhook_receiver

pytestmark = [pytest.mark.models, pytest.mark.data]

VIDEO = "vtest_480x360.mp4"
TOPIC = "arn:aws:sns:us-east-1:123456789012:AmazonRekognitionJobs"
CHANNEL = {"SNSTopicArn": TOPIC, "RoleArn": "arn:aws:iam::123456789012:role/keeneye"}
AUTH = {"Authorization": f"Bearer {SECRET}"}
VIDEO_REF = {"S3Object": {"Bucket": "videos", "Name": VIDEO}}


@pytest.fixture
def bucket(shared_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "bucket"
    folder.mkdir()
    shutil.copyfile(shared_data / "video" / "pets09_s2l1" / VIDEO, folder / VIDEO)
    return folder


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


def _configure(server: RunningServer, url: str) -> None:
    r = httpx.put(
        f"{server.url}/v1/notification-channels/{TOPIC}",
        headers=AUTH,
        json={"webhook": {"url": url}},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_person_tracking_notifies_the_webhook(
    start_server: Callable[..., RunningServer], bucket: Path, hook: WebhookReceiver
) -> None:
    server = start_server(buckets={"videos": bucket}, video_jobs=VideoJobSettings(max_duration_s=2.0))
    client = server.client()
    with pytest.raises(client.exceptions.InvalidParameterException) as refused:
        client.start_person_tracking(Video=VIDEO_REF, NotificationChannel=CHANNEL)
    assert "/v1/notification-channels/" in refused.value.response["Error"]["Message"]

    _configure(server, hook.url)
    job_id = client.start_person_tracking(Video=VIDEO_REF, NotificationChannel=CHANNEL, JobTag="door-cam")[
        "JobId"
    ]
    got = hook.wait_for(1, timeout_s=90)[0]
    assert got.headers["x-amz-sns-message-type"] == "Notification"
    envelope = got.body
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == TOPIC
    message = json.loads(envelope["Message"])
    assert message["JobId"] == job_id and message["Status"] == "SUCCEEDED"
    assert message["API"] == "StartPersonTracking" and message["JobTag"] == "door-cam"
    assert message["Video"] == {"S3ObjectName": VIDEO, "S3Bucket": "videos"}
    assert abs(message["Timestamp"] / 1000 - time.time()) < 120
    # the notification says the results are there
    done = client.get_person_tracking(JobId=job_id)
    assert done["JobStatus"] == "SUCCEEDED" and done["Persons"]


def test_operator_cancels_a_running_job(
    start_server: Callable[..., RunningServer], bucket: Path, hook: WebhookReceiver
) -> None:
    server = start_server(buckets={"videos": bucket}, video_jobs=VideoJobSettings(max_duration_s=None))
    client = server.client()
    _configure(server, hook.url)
    job_id = client.start_person_tracking(Video=VIDEO_REF, NotificationChannel=CHANNEL)["JobId"]

    def state() -> Any:
        return httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()["state"]

    wait_until(lambda: state() == "RUNNING", 30, "the job to run")
    time.sleep(1.0)  # into the video: the detector is loaded and frames are being analysed
    r = httpx.post(f"{server.url}/v1/jobs/{job_id}/cancel", headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "FAILED"
    done = client.get_person_tracking(JobId=job_id)
    assert done["JobStatus"] == "FAILED" and done["StatusMessage"] == "cancelled by the operator"
    assert "Persons" not in done
    message = json.loads(hook.wait_for(1, timeout_s=30)[0].body["Message"])
    assert message["JobId"] == job_id and message["Status"] == "FAILED"
    again = httpx.post(f"{server.url}/v1/jobs/{job_id}/cancel", headers=AUTH, timeout=10)
    assert again.status_code == 409 and again.json()["error"]["code"] == "Conflict"
    listed = httpx.get(f"{server.url}/v1/jobs", headers=AUTH, params={"status": "FAILED"}, timeout=10).json()
    assert [j["job_id"] for j in listed["jobs"]] == [job_id]
