"""DetectFaces and CompareFaces through boto3 against a real server (real HTTP, real SigV4, real models)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.contract.conftest import RunningServer

pytestmark = [pytest.mark.models, pytest.mark.data]


def lfw(shared_data: Path, name: str, n: int) -> bytes:
    return (shared_data / "faces/lfw" / name / f"{name}_{n:04d}.jpg").read_bytes()


def test_detect_faces_two_people(rekognition: Any, shared_data: Path) -> None:
    photo = (shared_data / "faces/face_recognition/two_people.jpg").read_bytes()
    out = rekognition.detect_faces(Image={"Bytes": photo}, Attributes=["ALL"])
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert out["ResponseMetadata"]["RequestId"]
    faces = out["FaceDetails"]
    assert len(faces) == 2
    for f in faces:
        box = f["BoundingBox"]
        assert 0 <= box["Left"] < 1 and 0 < box["Width"] < 1
        assert {"Confidence", "Landmarks", "Pose", "Quality", "Emotions", "AgeRange"} <= set(f)
    default = rekognition.detect_faces(Image={"Bytes": photo})["FaceDetails"]
    assert len(default) == 2 and "Emotions" not in default[0]


def test_detect_faces_no_face(rekognition: Any, shared_data: Path) -> None:
    photo = (shared_data / "faces/no_face/skimage_brick.png").read_bytes()
    assert rekognition.detect_faces(Image={"Bytes": photo})["FaceDetails"] == []


def test_compare_faces_same_and_different(rekognition: Any, shared_data: Path) -> None:
    lines = (shared_data / "faces/lfw_protocol/pairs.txt").read_text().splitlines()
    same = lines[1].split()
    a, b = lfw(shared_data, same[0], int(same[1])), lfw(shared_data, same[0], int(same[2]))
    # Threshold 0 shows the similarity: this genuine pair scores ~78 with the photo detector's boxes, under
    # the default 80 (calibrated to a false-match rate of 1e-4, it rejects ~14 % of genuine LFW pairs).
    out = rekognition.compare_faces(
        SourceImage={"Bytes": a}, TargetImage={"Bytes": b}, QualityFilter="NONE", SimilarityThreshold=0
    )
    assert out["FaceMatches"] and out["FaceMatches"][0]["Similarity"] >= 70
    assert 0 < out["SourceImageFace"]["BoundingBox"]["Width"] < 1
    strict = rekognition.compare_faces(
        SourceImage={"Bytes": a}, TargetImage={"Bytes": b}, SimilarityThreshold=100
    )
    assert strict["FaceMatches"] == [] and strict["UnmatchedFaces"]


def test_compare_faces_different_people(rekognition: Any, shared_data: Path) -> None:
    lines = (shared_data / "faces/lfw_protocol/pairs.txt").read_text().splitlines()
    diff = lines[301].split()
    c, d = lfw(shared_data, diff[0], int(diff[1])), lfw(shared_data, diff[2], int(diff[3]))
    out = rekognition.compare_faces(SourceImage={"Bytes": c}, TargetImage={"Bytes": d})
    assert out["FaceMatches"] == [] and len(out["UnmatchedFaces"]) >= 1


def test_compare_faces_obama(rekognition: Any, shared_data: Path) -> None:
    fr = shared_data / "faces/face_recognition"
    out = rekognition.compare_faces(
        SourceImage={"Bytes": (fr / "obama_small.jpg").read_bytes()},
        TargetImage={"Bytes": (fr / "obama-480p.jpg").read_bytes()},
    )
    assert len(out["FaceMatches"]) == 1


def test_compare_faces_no_face_in_source(rekognition: Any, shared_data: Path) -> None:
    with pytest.raises(rekognition.exceptions.InvalidParameterException) as info:
        rekognition.compare_faces(
            SourceImage={"Bytes": (shared_data / "faces/no_face/skimage_coffee.png").read_bytes()},
            TargetImage={"Bytes": (shared_data / "faces/face_recognition/obama3.jpg").read_bytes()},
        )
    assert "no faces in the source image" in info.value.response["Error"]["Message"]


def test_s3object_from_bucket_folder(start_server: Any, shared_data: Path) -> None:
    server: RunningServer = start_server(buckets={"photos": shared_data / "faces/face_recognition"})
    client = server.client()
    out = client.detect_faces(Image={"S3Object": {"Bucket": "photos", "Name": "two_people.jpg"}})
    assert len(out["FaceDetails"]) == 2
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.detect_faces(Image={"S3Object": {"Bucket": "photos", "Name": "../lfw_protocol/pairs.txt"}})


def test_error_code_reaches_boto3(rekognition: Any) -> None:
    with pytest.raises(ClientError) as info:
        rekognition.detect_faces(Image={"Bytes": b"this is not a photo"})
    err = info.value.response
    assert err["Error"]["Code"] == "InvalidImageFormatException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert isinstance(info.value, rekognition.exceptions.InvalidImageFormatException)


def test_concurrent_clients(server: RunningServer, shared_data: Path) -> None:
    photo = (shared_data / "faces/face_recognition/obama_small.jpg").read_bytes()

    def detect(_: int) -> int:
        return len(server.client().detect_faces(Image={"Bytes": photo})["FaceDetails"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(detect, range(8))) == [1] * 8
