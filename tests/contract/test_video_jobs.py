"""Stored-video jobs through boto3: StartPersonTracking / GetPersonTracking on the PETS09 video.

Jobs analyse only the first seconds of the video (``VideoJobSettings.max_duration_s``) to keep the
tests short; the bucket ``videos`` serves a temporary folder with the PETS09 file and a corrupt one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from keeneye.config import VideoJobSettings
from tests.contract.conftest import RunningServer, all_persons, wait_for_job

pytestmark = [pytest.mark.models, pytest.mark.data]

VIDEO = "vtest_480x360.mp4"
FACE_VIDEO = "short_hamilton_clip.mp4"
JOB_SETTINGS = VideoJobSettings(workers=1, target_fps=5.0, max_duration_s=4.0)
POLL_TIMEOUT_S = 40.0


@pytest.fixture
def bucket(shared_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "bucket"
    folder.mkdir()
    shutil.copyfile(shared_data / "video" / "pets09_s2l1" / VIDEO, folder / VIDEO)
    shutil.copyfile(shared_data / "video" / "face_clips" / FACE_VIDEO, folder / FACE_VIDEO)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    return folder


@pytest.fixture
def video_server(start_server: Callable[..., RunningServer], bucket: Path) -> RunningServer:
    return start_server(buckets={"videos": bucket}, video_jobs=JOB_SETTINGS)


def _video(name: str = VIDEO) -> dict[str, Any]:
    return {"S3Object": {"Bucket": "videos", "Name": name}}


def test_person_tracking_finds_people_pages_and_sorts(video_server: RunningServer) -> None:
    client = video_server.client()
    job_id = client.start_person_tracking(Video=_video(), JobTag="pets", ClientRequestToken="tok-1")["JobId"]
    again = client.start_person_tracking(Video=_video(), JobTag="pets", ClientRequestToken="tok-1")
    assert again["JobId"] == job_id

    done = wait_for_job(client, "get_person_tracking", job_id, timeout_s=POLL_TIMEOUT_S)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    assert done["JobTag"] == "pets"
    assert done["Video"] == _video()
    meta = done["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"], meta["Codec"]) == (480, 360, "h264")
    assert meta["DurationMillis"] > 70_000 and meta["FrameRate"] > 0

    full = client.get_person_tracking(JobId=job_id)  # MaxResults defaults to 1000
    by_time = full["Persons"]
    assert by_time and "NextToken" not in full
    indexes = {p["Person"]["Index"] for p in by_time}
    assert len(indexes) >= 3  # PETS09 S2L1 has several people in view from the start
    for p in by_time:
        box = p["Person"]["BoundingBox"]
        assert 0 <= box["Left"] <= 1 and 0 <= box["Top"] <= 1
        assert 0 < box["Width"] <= 1 and 0 < box["Height"] <= 1
        assert 0 <= p["Timestamp"] < 4000
    times = [p["Timestamp"] for p in by_time]
    assert times == sorted(times)

    by_index = all_persons(client, "get_person_tracking", job_id, "INDEX", page_size=7)
    keys = [(p["Person"]["Index"], p["Timestamp"]) for p in by_index]
    assert keys == sorted(keys)
    paged_by_time = all_persons(client, "get_person_tracking", job_id, "TIMESTAMP", page_size=7)
    assert paged_by_time == by_time
    assert sorted(keys) == sorted((p["Person"]["Index"], p["Timestamp"]) for p in by_time)


def test_corrupt_video_fails_with_a_message(video_server: RunningServer) -> None:
    client = video_server.client()
    job_id = client.start_person_tracking(Video=_video("corrupt.mp4"))["JobId"]
    done = wait_for_job(client, "get_person_tracking", job_id, timeout_s=POLL_TIMEOUT_S)
    assert done["JobStatus"] == "FAILED"
    assert done["StatusMessage"]
    assert "Persons" not in done


def test_missing_video_and_unknown_job_are_errors(video_server: RunningServer) -> None:
    client = video_server.client()
    with pytest.raises(ClientError) as missing:
        client.start_person_tracking(Video=_video("nope.mp4"))
    assert missing.value.response["Error"]["Code"] == "InvalidS3ObjectException"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_person_tracking(JobId="0123456789abcdef")
    job_id = client.start_person_tracking(Video=_video())["JobId"]
    with pytest.raises(ClientError) as bad_token:
        client.get_person_tracking(JobId=job_id, NextToken="not-a-token")
    assert bad_token.value.response["Error"]["Code"] == "InvalidPaginationTokenException"


def test_queued_job_runs_after_a_restart(
    start_server: Callable[..., RunningServer], bucket: Path, tmp_path: Path
) -> None:
    data = tmp_path / "restart"
    first = start_server(data, {"videos": bucket}, JOB_SETTINGS.model_copy(update={"workers": 0}))
    job_id = first.client().start_person_tracking(Video=_video())["JobId"]
    assert first.client().get_person_tracking(JobId=job_id)["JobStatus"] == "IN_PROGRESS"
    first.stop()

    second = start_server(data, {"videos": bucket}, JOB_SETTINGS)
    done = wait_for_job(second.client(), "get_person_tracking", job_id, timeout_s=POLL_TIMEOUT_S)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    assert done["Persons"]


def test_face_detection_finds_faces_with_details(video_server: RunningServer) -> None:
    client = video_server.client()
    job_id = client.start_face_detection(Video=_video(FACE_VIDEO), FaceAttributes="ALL", JobTag="f")["JobId"]
    assert client.start_face_detection(Video=_video(FACE_VIDEO), ClientRequestToken="t")["JobId"] != job_id
    done = wait_for_job(client, "get_face_detection", job_id, timeout_s=POLL_TIMEOUT_S)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    r = client.get_face_detection(JobId=job_id)
    faces = r["Faces"]
    assert faces and "NextToken" not in r
    times = [f["Timestamp"] for f in faces]
    assert times == sorted(times) and times[-1] < 4000
    detail = faces[0]["Face"]
    assert 0 < detail["BoundingBox"]["Width"] <= 1 and detail["Confidence"] > 50
    assert "AgeRange" in detail  # FaceAttributes ALL
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_face_detection(JobId="0123456789abcdef")
    with pytest.raises(client.exceptions.ResourceNotFoundException):  # a job of another kind
        client.get_person_tracking(JobId=job_id)
