"""Stream-processor records against Rekognition's documented Kinesis Data Streams face-search shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from keeneye.aws import stream_records as records
from keeneye.core.types import Face
from keeneye.service.faces.collections import FaceMatch, StoredFace
from keeneye.tracking.lines import LineEvent
from keeneye.tracking.zones import ZoneEvent

INFO = records.FrameInfo(
    stream_arn="rtsp://127.0.0.1:8554/cam",
    connection=0,
    captured_at=1_700_000_000.25,
    pts_ms=2833.3,
    width=640,
    height=360,
)


def _face(**attributes: Any) -> Face:
    return Face(
        xyxy=np.array([64, 36, 128, 108], np.float32),
        score=0.97,
        landmarks={"eyeLeft": (80.0, 60.0), "eyeRight": (110.0, 60.0), "not_rekognition": (1.0, 1.0)},
        attributes={
            "pose": (1.0, -5.0, 2.0),
            "quality": {"brightness": 60.0, "sharpness": 80.0},
            **attributes,
        },
    )


def _match(similarity: float = 97.5) -> FaceMatch:
    stored = StoredFace(
        face_id="11111111-1111-1111-1111-111111111111",
        collection_id="hamilton",
        image_id="22222222-2222-2222-2222-222222222222",
        external_image_id="lin-manuel-miranda",
        xyxy=(10.0, 20.0, 110.0, 140.0),
        image_width=200,
        image_height=200,
        score=0.99,
        indexed_at=datetime(2026, 1, 1, tzinfo=UTC),
        embedder_id="dlib-resnet",
        user_id="lin",
    )
    return FaceMatch(stored, similarity)


def test_match_record_has_the_documented_shape() -> None:
    face = _face()
    extra = records.keeneye_fields("face", track_id=3, info=INFO, identity="lin-manuel-miranda", face=face)
    record = records.face_search_record(INFO, [(face, [_match()])], extra)
    assert records.shape_problems(record) == []
    json.dumps(record)  # plain JSON, as a sink sends it
    kv = record["InputInformation"]["KinesisVideo"]
    assert kv == {
        "StreamArn": "rtsp://127.0.0.1:8554/cam",
        "FragmentNumber": "0",
        "ServerTimestamp": 1_700_000_000.25,
        "ProducerTimestamp": 1_700_000_000.25,
        "FrameOffsetInSeconds": 2.833,
    }
    assert record["StreamProcessorInformation"] == {"Status": "RUNNING"}
    [item] = record["FaceSearchResponse"]
    detected = item["DetectedFace"]
    assert set(detected) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    assert detected["BoundingBox"] == pytest.approx({"Width": 0.1, "Height": 0.2, "Left": 0.1, "Top": 0.1})
    assert detected["Confidence"] == pytest.approx(97.0)
    assert {lm["Type"] for lm in detected["Landmarks"]} == {"eyeLeft", "eyeRight"}
    assert detected["Pose"] == {"Roll": 1.0, "Yaw": -5.0, "Pitch": 2.0}
    [matched] = item["MatchedFaces"]
    assert matched["Similarity"] == 97.5
    # The documented Face fields, and UserId (Rekognition's Face shape has it; the documented stream record
    # predates users); no IndexFacesModelVersion.
    documented = {"BoundingBox", "FaceId", "Confidence", "ImageId", "ExternalImageId"}
    assert set(matched["Face"]) == documented | {"UserId"} and matched["Face"]["UserId"] == "lin"
    assert matched["Face"]["ExternalImageId"] == "lin-manuel-miranda"
    assert matched["Face"]["BoundingBox"] == pytest.approx(
        {"Width": 0.5, "Height": 0.6, "Left": 0.05, "Top": 0.1}
    )
    assert record["Keeneye"] == {"Kind": "face", "TrackId": 3, "Identity": "lin-manuel-miranda"}


def test_unknown_face_has_empty_matches_and_no_identity() -> None:
    face = _face()
    extra = records.keeneye_fields("face", track_id=7, info=INFO, face=face)
    record = records.face_search_record(INFO, [(face, [])], extra)
    assert records.shape_problems(record) == []
    assert record["FaceSearchResponse"][0]["MatchedFaces"] == []
    assert record["Keeneye"]["Identity"] is None


def test_keeneye_fields_person_box_lines_zones_expression() -> None:
    face = _face(emotions={"happy": 0.8, "neutral": 0.2})
    extra = records.keeneye_fields(
        "line",
        track_id=4,
        info=INFO,
        person_xyxy=(320.0, 0.0, 480.0, 360.0),
        lines=[LineEvent("door", 4, 1500.4, "in")],
        zones=[ZoneEvent("desk", 4, 1600.0, "exit", dwell_ms=800.0)],
        face=face,
    )
    assert extra["PersonBoundingBox"] == pytest.approx(
        {"Width": 0.25, "Height": 1.0, "Left": 0.5, "Top": 0.0}
    )
    assert extra["LineCrossings"] == [{"Line": "door", "Direction": "in", "TrackId": 4, "Timestamp": 1500}]
    assert extra["ZoneEvents"] == [
        {"Zone": "desk", "Kind": "exit", "TrackId": 4, "Timestamp": 1600, "DwellMillis": 800}
    ]
    assert extra["Expression"] == "HAPPY"
    record = records.face_search_record(INFO, [], extra)
    assert records.shape_problems(record) == [] and record["FaceSearchResponse"] == []


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda r: r.pop("StreamProcessorInformation"), "StreamProcessorInformation.Status"),
        (lambda r: r.update(Extra=1), "unexpected top-level key 'Extra'"),
        (lambda r: r["InputInformation"]["KinesisVideo"].pop("StreamArn"), "StreamArn"),
        (lambda r: r["FaceSearchResponse"][0]["DetectedFace"].update(Age=3), "DetectedFace.Age"),
        (lambda r: r["FaceSearchResponse"][0]["MatchedFaces"][0].update(Similarity=101), "Similarity"),
        (lambda r: r["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"].pop("FaceId"), "FaceId"),
        (lambda r: r["FaceSearchResponse"][0]["DetectedFace"]["BoundingBox"].pop("Top"), "BoundingBox"),
    ],
)
def test_shape_problems_finds_each_defect(mutate: Any, problem: str) -> None:
    face = _face()
    record = records.face_search_record(INFO, [(face, [_match()])], {})
    mutate(record)
    problems = records.shape_problems(record)
    assert any(problem in p for p in problems), problems


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        records.face_search_record(INFO, [], {}, status="SLEEPING")
