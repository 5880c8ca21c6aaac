"""Stored-video jobs on videos behind ``--s3-endpoint``: the object is downloaded for the job and
deleted after it.

The S3 API here is moto's server (real HTTP on 127.0.0.1, objects kept in memory): a test stand-in for
an S3-compatible store, as Debian has no S3 server. keeneye talks to it with botocore, as it would to
MinIO or AWS.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from keeneye.config import VideoJobSettings
from tests.contract.conftest import RunningServer, wait_for_job

pytestmark = [pytest.mark.models, pytest.mark.data]

CLIP = "short_hamilton_clip.mp4"
POLL_TIMEOUT_S = 40.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> Iterator[str]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket="cameras")
    s3.put_object(
        Bucket="cameras", Key=f"hall/{CLIP}", Body=(shared_data / "video" / "face_clips" / CLIP).read_bytes()
    )
    try:
        yield url
    finally:
        server.stop()


def test_face_detection_on_a_video_behind_an_s3_endpoint(
    start_server: Callable[..., RunningServer], s3_endpoint: str
) -> None:
    jobs = VideoJobSettings(workers=1, target_fps=2.0, max_duration_s=3.0)
    server = start_server(video_jobs=jobs, s3_endpoint=s3_endpoint)
    client = server.client()
    video = {"S3Object": {"Bucket": "cameras", "Name": f"hall/{CLIP}"}}
    job_id = client.start_face_detection(Video=video)["JobId"]
    done = wait_for_job(client, "get_face_detection", job_id, timeout_s=POLL_TIMEOUT_S, max_results=5)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    assert done["VideoMetadata"]["FrameWidth"] == 640 and done["Faces"]
    assert done["Video"]["S3Object"] == {"Bucket": "cameras", "Name": f"hall/{CLIP}"}
    downloads = server.data_dir / "video-downloads"
    assert not list(downloads.glob("*")), "the downloaded video was not deleted after the job"

    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.start_face_detection(Video={"S3Object": {"Bucket": "cameras", "Name": "hall/none.mp4"}})
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.start_person_tracking(Video={"S3Object": {"Bucket": "no-such-bucket", "Name": CLIP}})
