"""StartFaceSearch / GetFaceSearch through boto3 on a real clip with real enrolment photos.

``short_hamilton_clip.mp4`` (9.2 s, 640x360) shows Lin-Manuel Miranda on stage (a small face, 0-0.6 s),
a close-up of the pianist Alex Lacamoire in profile (1.0-1.2 s; his face is turned away: not
recognisable, and not expected to match), Lin-Manuel singing (2.8-7.0 s) and, after a cut, the audience
(7.2-9.2 s). The collection holds one photo of each of the two men. The search must find Lin-Manuel,
with timestamps inside his singing shot, and nobody else (no audience face, nothing after the cut).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from keeneye.config import VideoJobSettings
from tests.aws.signing import SECRET
from tests.contract.conftest import RunningServer, all_persons, wait_for_job
from tests.factories import photo_variants
from tests.receivers import wait_until

pytestmark = [pytest.mark.models, pytest.mark.data]

CLIP = "short_hamilton_clip.mp4"
POLL_TIMEOUT_S = 60.0
SINGING_MS = (2700, 7100)  # Lin-Manuel's singing shot; the cut to the audience is at ~7.1 s


@pytest.fixture
def search_server(
    start_server: Callable[..., RunningServer], shared_data: Path, tmp_path: Path
) -> RunningServer:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copyfile(shared_data / "video" / "face_clips" / CLIP, folder / CLIP)
    jobs = VideoJobSettings(workers=1, target_fps=5.0)
    return start_server(buckets={"videos": folder}, video_jobs=jobs)


def enrol_hamilton(client: Any, shared_data: Path) -> dict[str, str]:
    """The collection ``hamilton``: Lin-Manuel Miranda and Alex Lacamoire, one photo each; their FaceIds."""
    client.create_collection(CollectionId="hamilton")
    face_ids = {}
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        data = (shared_data / "faces" / "face_recognition" / f"{name}.png").read_bytes()
        r = client.index_faces(
            CollectionId="hamilton", Image={"Bytes": data}, ExternalImageId=name, MaxFaces=1
        )
        face_ids[name] = r["FaceRecords"][0]["Face"]["FaceId"]
    return face_ids


def test_face_search_finds_lin_manuel_and_nobody_else(
    search_server: RunningServer, shared_data: Path
) -> None:
    client = search_server.client()
    face_ids = enrol_hamilton(client, shared_data)
    video = {"S3Object": {"Bucket": "videos", "Name": CLIP}}
    job_id = client.start_face_search(Video=video, CollectionId="hamilton", JobTag="hamilton")["JobId"]
    done = wait_for_job(client, "get_face_search", job_id, timeout_s=POLL_TIMEOUT_S)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    assert done["JobTag"] == "hamilton" and done["VideoMetadata"]["FrameWidth"] == 640

    persons = all_persons(client, "get_face_search", job_id, "TIMESTAMP", page_size=7)
    assert persons, "Lin-Manuel Miranda was not found"
    matched = {m["Face"]["FaceId"] for p in persons for m in p["FaceMatches"]}
    assert matched == {face_ids["lin-manuel-miranda"]}, "someone other than Lin-Manuel was matched"
    for p in persons:
        assert all(m["Similarity"] >= 80 for m in p["FaceMatches"])
        assert p["FaceMatches"][0]["Face"]["ExternalImageId"] == "lin-manuel-miranda"
        assert SINGING_MS[0] <= p["Timestamp"] <= SINGING_MS[1], p["Timestamp"]
        box = p["Person"]["BoundingBox"]
        assert 0 < box["Width"] < 0.5 and 0 <= box["Left"] <= 1
        assert p["Person"]["Face"]["BoundingBox"] == box
    times = [p["Timestamp"] for p in persons]
    assert times == sorted(times)
    # He sings for ~4 s: at 5 analysed frames per second most of the shot is reported.
    assert len(times) >= 15 and times[-1] - times[0] >= 3000
    assert {p["Person"]["Index"] for p in persons} == {0}  # one person, indexed from 0 as AWS does

    by_index = all_persons(client, "get_face_search", job_id, "INDEX", page_size=1000)
    assert sorted(p["Timestamp"] for p in by_index) == times

    # The request and then what the job identified are in the audit log, under the caller's key, with
    # the threshold used.
    log = search_server.services.audit.read()  # type: ignore[union-attr]
    (request,) = [r for r in log if r["operation"] == "StartFaceSearch"]
    (identified,) = [r for r in log if r["operation"] == "FaceSearchResults"]
    assert request["collection_id"] == identified["collection_id"] == "hamilton"
    assert request["details"]["job_id"] == identified["details"]["job_id"] == job_id
    assert request["matches"] == [] and request["access_key"] and request["threshold"] == 80.0
    assert [m["FaceId"] for m in identified["matches"]] == [face_ids["lin-manuel-miranda"]]
    assert identified["access_key"] == request["access_key"] and identified["threshold"] == 80.0


def test_face_search_at_99_and_request_errors(search_server: RunningServer, shared_data: Path) -> None:
    client = search_server.client()
    enrol_hamilton(client, shared_data)
    video = {"S3Object": {"Bucket": "videos", "Name": CLIP}}
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.start_face_search(Video=video, CollectionId="nobody")
    with pytest.raises(ClientError, match="ValidationException"):  # the model's range, as AWS checks it
        client.start_face_search(Video=video, CollectionId="hamilton", FaceMatchThreshold=101)
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.start_face_search(
            Video={"S3Object": {"Bucket": "videos", "Name": "gone.mp4"}}, CollectionId="hamilton"
        )
    # Completion is announced on a notification channel: here a JSONL file in the data directory.
    topic = "arn:aws:sns:us-east-1:123456789012:FaceSearchDone"
    r = httpx.put(
        f"{search_server.url}/v1/notification-channels/{topic}",
        headers={"Authorization": f"Bearer {SECRET}"},
        json={"jsonl": {"name": "face-search.jsonl"}},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    token = "same-request"
    job_id = client.start_face_search(
        Video=video,
        CollectionId="hamilton",
        FaceMatchThreshold=99,
        ClientRequestToken=token,
        NotificationChannel={"SNSTopicArn": topic, "RoleArn": "arn:aws:iam::123456789012:role/x"},
    )["JobId"]
    again = client.start_face_search(  # the same request again: the same job (Rekognition's replay)
        Video=video,
        CollectionId="hamilton",
        FaceMatchThreshold=99,
        ClientRequestToken=token,
        NotificationChannel={"SNSTopicArn": topic, "RoleArn": "arn:aws:iam::123456789012:role/x"},
    )
    assert again["JobId"] == job_id
    with pytest.raises(client.exceptions.IdempotentParameterMismatchException):  # another request
        client.start_face_search(Video=video, CollectionId="hamilton", ClientRequestToken=token)
    done = wait_for_job(client, "get_face_search", job_id, timeout_s=POLL_TIMEOUT_S)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    # At 99 only the most similar faces pass; whatever passes is still only Lin-Manuel.
    persons = all_persons(client, "get_face_search", job_id, "TIMESTAMP", page_size=1000)
    assert all(
        m["Face"]["ExternalImageId"] == "lin-manuel-miranda" for p in persons for m in p["FaceMatches"]
    )
    assert all(m["Similarity"] >= 99 for p in persons for m in p["FaceMatches"])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_person_tracking(JobId=job_id)  # a job of another kind
    jsonl = search_server.data_dir / "notifications" / "face-search.jsonl"
    wait_until(lambda: jsonl.is_file() and jsonl.read_text().strip() != "", what="the completion message")
    message = json.loads(json.loads(jsonl.read_text().splitlines()[0])["Message"])
    assert (
        message["JobId"] == job_id
        and message["Status"] == "SUCCEEDED"
        and message["API"] == "StartFaceSearch"
    )


def test_face_search_names_the_user_once_per_match(search_server: RunningServer, shared_data: Path) -> None:
    """When the collection has users, a track is identified as the user: Lin-Manuel is the user ``lin``
    with three faces, and each Person lists ``lin`` once (Face.UserId set), not once per face."""
    client = search_server.client()
    client.create_collection(CollectionId="cast")
    photo = (shared_data / "faces" / "face_recognition" / "lin-manuel-miranda.png").read_bytes()
    lin_faces = [
        client.index_faces(CollectionId="cast", Image={"Bytes": data}, ExternalImageId="lin", MaxFaces=1)[
            "FaceRecords"
        ][0]["Face"]["FaceId"]
        for data in photo_variants(photo)
    ]
    alex = (shared_data / "faces" / "face_recognition" / "alex-lacamoire.png").read_bytes()
    client.index_faces(CollectionId="cast", Image={"Bytes": alex}, ExternalImageId="alex", MaxFaces=1)
    client.create_user(CollectionId="cast", UserId="lin")
    client.associate_faces(CollectionId="cast", UserId="lin", FaceIds=lin_faces)

    video = {"S3Object": {"Bucket": "videos", "Name": CLIP}}
    job_id = client.start_face_search(Video=video, CollectionId="cast")["JobId"]
    done = wait_for_job(client, "get_face_search", job_id, timeout_s=POLL_TIMEOUT_S)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    persons = all_persons(client, "get_face_search", job_id, "TIMESTAMP", page_size=50)
    assert persons, "Lin-Manuel was not found"
    for p in persons:
        matches = p["FaceMatches"]
        assert len(matches) == 1, matches  # the user once, at their best face
        assert matches[0]["Face"]["UserId"] == "lin" and matches[0]["Face"]["FaceId"] in lin_faces
        assert matches[0]["Similarity"] >= 80
