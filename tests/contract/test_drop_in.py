"""The last differences a Rekognition user tripped on (issue 17), each checked through boto3 on a real
server: error names and bodies, regions, landmarks, FaceModelVersion, QualityFilter, idempotency
tokens, session tokens, person indexes, video metadata and job ids, regional stream processors, and
what unsupported operations say. Every test here failed on keeneye before it was fixed."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from keeneye.config import VideoJobSettings
from tests.aws.signing import sign
from tests.contract.conftest import RunningServer, wait_for_job
from tests.contract.test_access_keys import allow, client_for, new_key, policy
from tests.receivers import free_port

pytestmark = [pytest.mark.models, pytest.mark.data]

VIDEO = "vtest_480x360.mp4"
JOB_SETTINGS = VideoJobSettings(workers=1, target_fps=5.0, max_duration_s=3.0)
DEFAULT_LANDMARKS = {"eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"}


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


@pytest.fixture
def photos(shared_data: Path) -> Path:
    return shared_data / "faces"


def image(path: Path) -> dict[str, bytes]:
    return {"Bytes": path.read_bytes()}


def test_a_bad_next_token_is_invalid_pagination_token(rekognition: Any, photos: Path) -> None:
    rekognition.create_collection(CollectionId="pages")
    bad = "not-a-token"
    calls: list[Callable[[], Any]] = [
        lambda: rekognition.list_collections(NextToken=bad),
        lambda: rekognition.list_faces(CollectionId="pages", NextToken=bad),
        lambda: rekognition.list_users(CollectionId="pages", NextToken=bad),
        lambda: rekognition.list_stream_processors(NextToken=bad),
    ]
    for call in calls:
        code, _ = error_of(call)
        assert code == "InvalidPaginationTokenException"
    # botocore knows the error: it is in the model for these operations
    with pytest.raises(rekognition.exceptions.InvalidPaginationTokenException):
        rekognition.list_faces(CollectionId="pages", NextToken=bad)


def test_collections_are_regional(server: RunningServer, photos: Path) -> None:
    sydney = server.client(region_name="ap-southeast-2")
    virginia = server.client(region_name="us-east-1")
    made = sydney.create_collection(CollectionId="family")
    assert made["CollectionArn"] == "arn:aws:rekognition:ap-southeast-2:000000000000:collection/family"
    assert sydney.describe_collection(CollectionId="family")["CollectionARN"] == made["CollectionArn"]
    # Not seen from another region: not described, not listed, and the id is free there.
    assert error_of(lambda: virginia.describe_collection(CollectionId="family"))[0] == (
        "ResourceNotFoundException"
    )
    assert "family" not in virginia.list_collections()["CollectionIds"]
    assert sydney.list_collections()["CollectionIds"] == ["family"]
    other = virginia.create_collection(CollectionId="family")["CollectionArn"]
    assert other == "arn:aws:rekognition:us-east-1:000000000000:collection/family"
    sydney.index_faces(CollectionId="family", Image=image(photos / "face_recognition/obama3.jpg"))
    assert sydney.describe_collection(CollectionId="family")["FaceCount"] == 1
    assert virginia.describe_collection(CollectionId="family")["FaceCount"] == 0
    probe = image(photos / "face_recognition/obama-480p.jpg")
    assert len(sydney.search_faces_by_image(CollectionId="family", Image=probe)["FaceMatches"]) == 1
    assert virginia.search_faces_by_image(CollectionId="family", Image=probe)["FaceMatches"] == []
    # Tags go by ARN: another region's ARN names nothing here.
    code, _ = error_of(lambda: virginia.list_tags_for_resource(ResourceArn=made["CollectionArn"]))
    assert code == "ResourceNotFoundException"
    # Users live in their region's collection.
    sydney.create_user(CollectionId="family", UserId="dad")
    assert virginia.list_users(CollectionId="family")["Users"] == []
    sydney.delete_collection(CollectionId="family")
    assert virginia.describe_collection(CollectionId="family")["CollectionARN"] == other


def test_stream_processors_are_regional(server: RunningServer) -> None:
    """A processor belongs to the region it was created in, as AWS's do: not listed, described, started
    or deleted from another; the same name may be used there for another processor."""
    camera = f"rtsp://127.0.0.1:{free_port()}/cam"  # never started here: nothing connects to it

    def create(client: Any, name: str) -> str:
        return str(
            client.create_stream_processor(
                Name=name,
                Input={"KinesisVideoStream": {"Arn": camera}},
                Output={"KinesisDataStream": {"Arn": "file://door.jsonl"}},
                Settings={"ConnectedHome": {"Labels": ["PERSON"], "MinConfidence": 50.0}},
                RoleArn="arn:aws:iam::000000000000:role/keeneye",
            )["StreamProcessorArn"]
        )

    home, away = server.client(), server.client(region_name="ap-southeast-2")
    assert create(home, "door") == "arn:aws:rekognition:us-east-1:000000000000:streamprocessor/door"
    assert away.list_stream_processors()["StreamProcessors"] == []
    for call in (away.describe_stream_processor, away.start_stream_processor, away.delete_stream_processor):
        assert error_of(lambda call=call: call(Name="door"))[0] == "ResourceNotFoundException"  # type: ignore[misc]
    arn = create(away, "door")
    assert arn == "arn:aws:rekognition:ap-southeast-2:000000000000:streamprocessor/door"
    assert [p["Name"] for p in away.list_stream_processors()["StreamProcessors"]] == ["door"]
    away.delete_stream_processor(Name="door")
    assert home.describe_stream_processor(Name="door")["StreamProcessorArn"].endswith(":streamprocessor/door")
    assert [p["Name"] for p in home.list_stream_processors()["StreamProcessors"]] == ["door"]


def test_detect_faces_gives_five_landmarks_unless_all(rekognition: Any, photos: Path) -> None:
    photo = image(photos / "face_recognition/obama3.jpg")
    default = rekognition.detect_faces(Image=photo)["FaceDetails"][0]
    assert {lm["Type"] for lm in default["Landmarks"]} == DEFAULT_LANDMARKS
    assert len(default["Landmarks"]) == 5
    named = rekognition.detect_faces(Image=photo, Attributes=["DEFAULT"])["FaceDetails"][0]
    assert len(named["Landmarks"]) == 5
    every = rekognition.detect_faces(Image=photo, Attributes=["ALL"])["FaceDetails"][0]
    assert len(every["Landmarks"]) == 30 and {lm["Type"] for lm in every["Landmarks"]} >= DEFAULT_LANDMARKS


def test_face_model_version_is_a_version_number(rekognition: Any, photos: Path) -> None:
    version = re.compile(r"\d+\.\d+")
    made = rekognition.create_collection(CollectionId="versions")
    assert made["FaceModelVersion"] == "7.0"
    indexed = rekognition.index_faces(
        CollectionId="versions", Image=image(photos / "face_recognition/obama3.jpg")
    )
    assert indexed["FaceModelVersion"] == "7.0"
    assert indexed["FaceRecords"][0]["Face"]["IndexFacesModelVersion"] == "7.0"
    assert rekognition.describe_collection(CollectionId="versions")["FaceModelVersion"] == "7.0"
    listed = rekognition.list_collections()
    assert listed["FaceModelVersions"] == ["7.0"] * len(listed["CollectionIds"])
    found = rekognition.search_faces_by_image(
        CollectionId="versions", Image=image(photos / "face_recognition/obama-480p.jpg")
    )
    assert version.fullmatch(found["FaceModelVersion"])
    assert version.fullmatch(rekognition.list_faces(CollectionId="versions")["FaceModelVersion"])


def test_health_names_the_model_behind_the_version(server: RunningServer) -> None:
    health = httpx.get(f"{server.url}/v1/health", timeout=10).json()
    assert health["face_model"]["face_model_version"] == "7.0"
    assert health["face_model"]["embedder_id"].startswith("dlib-resnet-v1+human-faceres")
    assert health["face_model"]["versions"]["7.0"] == health["face_model"]["embedder_id"]


def test_error_bodies_carry_message_for_every_sdk(server: RunningServer) -> None:
    """botocore reads ``message``; the AWS SDK for JavaScript v3 reads ``Message`` (e.Message)."""
    body = json.dumps({"CollectionId": "missing"}).encode()
    headers = sign(
        body,
        {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.DescribeCollection",
        },
        url=f"{server.url}/",
        region="us-east-1",
    )
    answer = httpx.post(f"{server.url}/", content=body, headers=headers, timeout=10)
    assert answer.status_code == 400
    error = answer.json()
    assert error["__type"] == "ResourceNotFoundException"
    assert error["Message"] == error["message"] and "missing" in error["Message"]


def test_empty_image_bytes_is_a_validation_error(rekognition: Any) -> None:
    code, message = error_of(lambda: rekognition.detect_faces(Image={"Bytes": b""}))
    assert code == "ValidationException"
    assert "'image.bytes'" in message and "greater than or equal to 1" in message


def test_session_tokens_are_refused(server: RunningServer) -> None:
    temporary = server.client(aws_session_token="FwoGZXIvYXdzEBYaDTemporaryCredentials")
    code, message = error_of(lambda: temporary.list_collections())
    assert code == "UnrecognizedClientException" and "session tokens" in message


def test_unsigned_operation_header_cannot_be_swapped(server: RunningServer, rekognition: Any) -> None:
    """A request signed over host and x-amz-date only, captured and replayed with another target."""
    rekognition.create_collection(CollectionId="victim")
    body = json.dumps({"CollectionId": "victim"}).encode()
    headers = sign(
        body, {"Content-Type": "application/x-amz-json-1.1"}, url=f"{server.url}/", region="us-east-1"
    )
    headers["X-Amz-Target"] = "RekognitionService.DeleteCollection"
    answer = httpx.post(f"{server.url}/", content=body, headers=headers, timeout=10)
    assert answer.status_code == 400 and answer.json()["__type"] == "InvalidSignatureException"
    assert rekognition.describe_collection(CollectionId="victim")["FaceCount"] == 0


def test_compare_faces_applies_the_quality_filter(rekognition: Any, photos: Path) -> None:
    source = image(photos / "face_recognition/obama3.jpg")
    # Seven faces 32-36 px wide in a crowd: HIGH's bar is 60 px (keeneye/analysis/quality_filter.py).
    target = image(photos / "dlib/faces/2008_004176.jpg")

    def compared(quality: str) -> int:
        r = rekognition.compare_faces(SourceImage=source, TargetImage=target, QualityFilter=quality)
        return len(r["FaceMatches"]) + len(r["UnmatchedFaces"])

    assert compared("NONE") >= 5
    assert compared("HIGH") == 0
    small = target  # its largest face, the source face, is 36 px wide: under HIGH's bar
    ok = rekognition.compare_faces(SourceImage=small, TargetImage=source, QualityFilter="NONE")
    assert 0 < ok["SourceImageFace"]["BoundingBox"]["Width"] < 0.1 and ok["FaceMatches"] == []
    code, _ = error_of(
        lambda: rekognition.compare_faces(SourceImage=small, TargetImage=source, QualityFilter="HIGH")
    )
    assert code == "InvalidParameterException"


def test_user_operations_replay_their_client_request_token(rekognition: Any, photos: Path) -> None:
    rekognition.create_collection(CollectionId="tokens")
    rekognition.create_user(CollectionId="tokens", UserId="ann", ClientRequestToken="t-1")
    # The same request again (a client retrying after a timeout) is not a conflict...
    rekognition.create_user(CollectionId="tokens", UserId="ann", ClientRequestToken="t-1")
    # ...but another request is, and the same token with other parameters is refused.
    assert error_of(lambda: rekognition.create_user(CollectionId="tokens", UserId="ann"))[0] == (
        "ConflictException"
    )
    code, _ = error_of(
        lambda: rekognition.create_user(CollectionId="tokens", UserId="bob", ClientRequestToken="t-1")
    )
    assert code == "IdempotentParameterMismatchException"
    face = rekognition.index_faces(
        CollectionId="tokens", Image=image(photos / "face_recognition/obama3.jpg")
    )["FaceRecords"][0]["Face"]["FaceId"]
    first = rekognition.associate_faces(
        CollectionId="tokens", UserId="ann", FaceIds=[face], ClientRequestToken="t-2"
    )
    again = rekognition.associate_faces(
        CollectionId="tokens", UserId="ann", FaceIds=[face], ClientRequestToken="t-2"
    )
    assert again["AssociatedFaces"] == first["AssociatedFaces"] == [{"FaceId": face}]
    rekognition.disassociate_faces(CollectionId="tokens", UserId="ann", FaceIds=[face])
    rekognition.delete_user(CollectionId="tokens", UserId="ann", ClientRequestToken="t-3")
    rekognition.delete_user(CollectionId="tokens", UserId="ann", ClientRequestToken="t-3")  # replayed
    assert error_of(lambda: rekognition.delete_user(CollectionId="tokens", UserId="ann"))[0] == (
        "ResourceNotFoundException"
    )


def test_unsupported_operations_say_whether_they_are_planned(rekognition: Any, photos: Path) -> None:
    photo = image(photos / "face_recognition/obama3.jpg")
    code, message = error_of(lambda: rekognition.recognize_celebrities(Image=photo))
    assert code == "UnknownOperationException"
    assert "does not plan to support" in message and "not support yet" not in message
    code, message = error_of(lambda: rekognition.detect_labels(Image=photo))
    assert code == "UnknownOperationException" and "does not support yet" in message


@pytest.fixture
def video_server(
    start_server: Callable[..., RunningServer], shared_data: Path, tmp_path: Path
) -> RunningServer:
    folder = tmp_path / "bucket"
    folder.mkdir()
    shutil.copyfile(shared_data / "video" / "pets09_s2l1" / VIDEO, folder / VIDEO)
    return start_server(buckets={"videos": folder}, video_jobs=JOB_SETTINGS)


def _video() -> dict[str, Any]:
    return {"S3Object": {"Bucket": "videos", "Name": VIDEO}}


def test_video_jobs_as_aws_numbers_them(video_server: RunningServer) -> None:
    client = video_server.client()
    job_id = client.start_person_tracking(Video=_video(), ClientRequestToken="same")["JobId"]
    assert re.fullmatch(r"[0-9a-f]{64}", job_id)  # AWS's JobIds are 64 characters
    done = wait_for_job(client, "get_person_tracking", job_id, timeout_s=60)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    assert done["VideoMetadata"]["Format"] == "QuickTime / MOV"  # not FFmpeg's demuxer list
    persons = client.get_person_tracking(JobId=job_id)["Persons"]
    indexes = sorted({p["Person"]["Index"] for p in persons})
    assert indexes == list(range(len(indexes))) and len(indexes) >= 3  # 0, 1, 2, ... without gaps
    first_seen: dict[int, int] = {}
    for p in persons:  # sorted by time: indexes are given in order of first appearance
        first_seen.setdefault(p["Person"]["Index"], p["Timestamp"])
    assert [first_seen[i] for i in indexes] == sorted(first_seen.values())
    # Jobs are regional too.
    elsewhere = video_server.client(region_name="eu-west-1")
    assert error_of(lambda: elsewhere.get_person_tracking(JobId=job_id))[0] == "ResourceNotFoundException"


def test_start_tokens_replay_per_key_and_refuse_other_parameters(video_server: RunningServer) -> None:
    admin = video_server.client()
    job_id = admin.start_person_tracking(Video=_video(), ClientRequestToken="tok")["JobId"]
    assert admin.start_person_tracking(Video=_video(), ClientRequestToken="tok")["JobId"] == job_id
    code, _ = error_of(
        lambda: admin.start_person_tracking(Video=_video(), JobTag="other", ClientRequestToken="tok")
    )
    assert code == "IdempotentParameterMismatchException"
    # Another access key re-using the token starts its own job and never learns the admin's JobId.
    key = new_key(video_server, "other", policy(allow(["rekognition:*", "s3:GetObject"])))
    theirs = client_for(video_server, key).start_person_tracking(Video=_video(), ClientRequestToken="tok")
    assert theirs["JobId"] != job_id
    # Every Start* replays its token: face detection and face search as person tracking does.
    detect = admin.start_face_detection(Video=_video(), ClientRequestToken="tok-fd")["JobId"]
    assert admin.start_face_detection(Video=_video(), ClientRequestToken="tok-fd")["JobId"] == detect
    admin.create_collection(CollectionId="tokens")
    search = admin.start_face_search(Video=_video(), CollectionId="tokens", ClientRequestToken="tok-fs")
    again = admin.start_face_search(Video=_video(), CollectionId="tokens", ClientRequestToken="tok-fs")
    assert again["JobId"] == search["JobId"] and len({job_id, detect, search["JobId"]}) == 3
    code, _ = error_of(
        lambda: admin.start_face_search(
            Video=_video(), CollectionId="tokens", FaceMatchThreshold=99, ClientRequestToken="tok-fs"
        )
    )
    assert code == "IdempotentParameterMismatchException"
    # A replay is answered even once the video is gone (nothing is checked again).
    (video_server.buckets["videos"] / VIDEO).unlink()
    assert admin.start_person_tracking(Video=_video(), ClientRequestToken="tok")["JobId"] == job_id
    assert admin.start_face_detection(Video=_video(), ClientRequestToken="tok-fd")["JobId"] == detect
