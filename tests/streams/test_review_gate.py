"""The worker's review gate (keeneye/streams/review.py): each match reported once per (track, person) with
its crop and probe, records marked with their review, a rejected pair no longer reported or sent, and
with review_required the records held until CONFIRMED and then sent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from keeneye.aws.stream_records import encode
from keeneye.core.events import Event, FaceIdentified, FrameContext
from keeneye.core.types import Face, Frame
from keeneye.store.collections import FaceMatch, StoredFace
from keeneye.streams.review import CROP_PX, ReviewGate, face_crop

IMAGE = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
FRAME = Frame("cam", 0, 0.0, IMAGE)


def _stored(face_id: str, user_id: str | None = None) -> StoredFace:
    return StoredFace(
        face_id,
        "staff",
        "img",
        None,
        (0.0, 0.0, 10.0, 10.0),
        100,
        100,
        0.99,
        datetime.now(UTC),
        "e1",
        user_id,
    )


def _event(
    track_id: int, face_id: str = "f-alice", user_id: str | None = "alice", pts: float = 40.0
) -> Event:
    face = Face(
        np.array([200, 100, 400, 340], np.float32),
        0.99,
        embedding=np.full(4, 0.5, np.float32),
        embedder_id="e1",
    )
    payload = FaceIdentified(face, (FaceMatch(_stored(face_id, user_id), 97.0),), user_id)
    return Event("face_identified", "cam", pts, track_id, payload, FrameContext(pts, 640, 480, 1.0))


class Sink:
    def __init__(self) -> None:
        self.records: list[Mapping[str, Any]] = []

    def send(self, record: Mapping[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        return None


def _gate(review_required: bool = False) -> tuple[ReviewGate, list[dict[str, Any]]]:
    reports: list[dict[str, Any]] = []
    return ReviewGate(
        session_id="s1", report=reports.append, encode=encode, review_required=review_required
    ), reports


def _decision(status: str, track_id: int = 1, person: str = "alice", session: str = "s1") -> dict[str, Any]:
    return {
        "session_id": session,
        "track_id": track_id,
        "person": person,
        "status": status,
        "by": "AK",
        "at": "t",
    }


def _size(jpeg: bytes) -> tuple[int, int]:
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    return int(decoded.shape[0]), int(decoded.shape[1])


def test_face_crop_is_a_small_jpeg_of_the_face_with_a_margin() -> None:
    jpeg = face_crop(IMAGE, (200, 100, 400, 340))
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8" and len(jpeg) < 40_000
    assert max(_size(jpeg)) == CROP_PX
    small = face_crop(IMAGE, (10, 10, 40, 50))  # smaller than CROP_PX: kept at its size (with margin)
    assert small is not None and max(_size(small)) < CROP_PX
    assert face_crop(IMAGE, (700, 500, 800, 600)) is None  # outside the image


def test_matches_are_reported_once_per_pair_with_crop_and_probe_and_marked_pending() -> None:
    gate, reports = _gate()
    event = _event(1)
    assert gate.admit(event, FRAME)
    assert gate.admit(_event(1, pts=80.0), FRAME)  # the track's next record: reported without the crop
    assert gate.admit(_event(2), FRAME)
    assert [r["track_id"] for r in reports] == [1, 1, 2]
    assert (
        reports[0]["identification_id"] == reports[1]["identification_id"] != reports[2]["identification_id"]
    )
    assert reports[0]["crop"][:2] == b"\xff\xd8" and "crop" not in reports[1]
    assert reports[0]["embedder_id"] == "e1" and reports[0]["embedding"].shape == (4,)
    assert reports[0]["matches"] == [{"FaceId": "f-alice", "Similarity": 97.0}]
    assert reports[0]["user_id"] == "alice" and reports[0]["pts_ms"] == 40
    review = gate.encode(event)["Keeneye"]["Review"]
    assert review == {
        "IdentificationId": reports[0]["identification_id"],
        "Status": "PENDING",
        "By": None,
        "At": None,
    }
    # An unknown face (no match) is not an identification: passed on, unmarked.
    assert isinstance(event.payload, FaceIdentified)
    unknown = Event(
        "face_identified", "cam", 0.0, 3, FaceIdentified(event.payload.face, (), None), event.frame
    )
    assert (
        gate.admit(unknown, FRAME) and "Review" not in gate.encode(unknown)["Keeneye"] and len(reports) == 3
    )


def test_a_rejected_pair_is_not_reported_or_sent_again_for_that_track() -> None:
    gate, reports = _gate()
    assert gate.admit(_event(1), FRAME)
    assert gate.release(_decision("REJECTED", session="another run"), []) == 0  # not this run: ignored
    assert gate.admit(_event(1), FRAME)
    gate.release(_decision("REJECTED"), [])
    assert not gate.admit(_event(1), FRAME) and len(reports) == 2
    assert gate.admit(_event(2), FRAME)  # another track of the same person
    assert gate.admit(_event(1, face_id="f-bob", user_id="bob"), FRAME)  # another person on that track
    gate.release(_decision("CONFIRMED"), [])  # a changed decision lets it through again
    assert gate.admit(_event(1), FRAME)
    assert gate.encode(_event(1))["Keeneye"]["Review"]["Status"] == "CONFIRMED"


def test_review_required_holds_records_until_confirmed() -> None:
    gate, reports = _gate(review_required=True)
    sink = Sink()
    assert not gate.admit(_event(1, pts=40.0), FRAME)
    assert not gate.admit(_event(1, pts=80.0), FRAME)
    assert not gate.admit(_event(2), FRAME)
    assert len(reports) == 3  # reported (queued for review), not sent
    assert gate.release(_decision("UNSURE"), [sink]) == 0 and sink.records == []
    assert gate.release(_decision("CONFIRMED"), [sink]) == 2
    assert [r["Keeneye"]["Review"]["Status"] for r in sink.records] == ["CONFIRMED", "CONFIRMED"]
    assert sink.records[0]["Keeneye"]["Review"]["By"] == "AK"
    assert [r["Keeneye"]["TrackId"] for r in sink.records] == [1, 1]
    assert gate.admit(_event(1, pts=120.0), FRAME)  # confirmed: later records go at once
    gate.release(_decision("REJECTED", track_id=2), [sink])
    assert gate.release(_decision("CONFIRMED", track_id=2), [sink]) == 0  # its held records were dropped
