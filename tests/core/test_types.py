"""keeneye.core.types: Detections are validated on construction and never edited in place; a Face
survives its JSON record; a Track's box and anchor are its last observation's."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from keeneye.core.types import Detections, Face, Track, TrackPoint

BOXES = np.array([[0, 0, 10, 10], [5, 5, 25, 45]], np.float32)


def test_arrays_are_coerced_and_labels_default_to_zero() -> None:
    dets = Detections(np.array([[0, 0, 10, 10], [5, 5, 25, 45]]), np.array([0.5, 1.0]))  # int64, float64
    assert len(dets) == 2
    assert dets.xyxy.dtype == np.float32 and dets.xyxy.shape == (2, 4)
    assert dets.score.dtype == np.float32 and dets.label.dtype == np.int64
    assert dets.label.tolist() == [0, 0] and dets.landmarks is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score": np.array([0.9], np.float32)}, "disagree"),
        ({"label": np.array([1, 2, 3])}, "disagree"),
        ({"score": np.array([0.9, 1.5], np.float32)}, r"scores in \[0, 1\]"),
        ({"score": np.array([-0.1, 0.5], np.float32)}, r"scores in \[0, 1\]"),
        ({"xyxy": np.array([[0, 0, np.nan, 10], [1, 1, 2, 2]], np.float32)}, "finite boxes"),
        ({"xyxy": np.array([[0, 0, np.inf, 10], [1, 1, 2, 2]], np.float32)}, "finite boxes"),
        ({"landmarks": np.zeros((2, 3, 2), np.float32), "landmark_names": ("a", "b")}, "landmarks must be"),
        ({"landmarks": np.zeros((1, 2, 2), np.float32), "landmark_names": ("a", "b")}, "landmarks must be"),
        ({"landmarks": np.zeros((2, 2, 3), np.float32), "landmark_names": ("a", "b")}, "landmarks must be"),
    ],
    ids=[
        "too few scores",
        "too many labels",
        "score over 1",
        "negative score",
        "NaN box",
        "infinite box",
        "more points than names",
        "landmarks for other boxes",
        "points not 2-D",
    ],
)
def test_bad_detections_are_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"xyxy": BOXES, "score": np.array([0.9, 0.8], np.float32), **kwargs}
    with pytest.raises(ValueError, match=message):
        Detections(**args)


def test_empty_detections_keep_their_landmark_names() -> None:
    empty = Detections.empty(("eyeLeft", "eyeRight"))
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4)
    assert empty.landmarks is not None and empty.landmarks.shape == (0, 2, 2)
    assert empty.landmark_names == ("eyeLeft", "eyeRight")
    assert Detections.empty().landmarks is None


def test_select_returns_new_detections_and_leaves_the_input_alone() -> None:
    points = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    dets = Detections(BOXES, np.array([0.9, 0.3], np.float32), np.array([1, 2]), points, ("eyeLeft", "nose"))
    kept = dets.select(dets.score >= 0.5)
    assert len(kept) == 1 and kept is not dets
    assert kept.xyxy.tolist() == [[0, 0, 10, 10]] and kept.label.tolist() == [1]
    assert kept.landmarks is not None and kept.landmarks.tolist() == [[[0, 1], [2, 3]]]
    assert kept.landmark_names == ("eyeLeft", "nose")
    assert len(dets) == 2 and dets.score.tolist() == pytest.approx([0.9, 0.3])
    assert len(dets.select(np.array([1, 0]))) == 2  # an index array reorders


def _face() -> Face:
    return Face(
        np.array([10.5, 20, 50, 70], np.float32),
        np.float32(0.875),  # type: ignore[arg-type]  # backends hand numpy scalars; the record has floats
        landmarks={"eyeLeft": (20.0, 30.0), "nose": (30.0, 45.5)},
        attributes={
            "pose": (1.0, -2.5, np.float32(3.0)),
            "quality": {"brightness": np.float64(51.0), "sharpness": 70.0},
            "emotions": {"happy": 0.75, "neutral": 0.25},
            "gender": ("Female", 0.9),
            "points": np.array([[1, 2], [3, 4]], np.int64),
        },
        embedding=np.full(4, 0.5, np.float32),
        embedder_id="e1",
    )


def test_a_face_record_is_plain_json_without_the_embedding() -> None:
    record = _face().to_record()
    assert set(record) == {"xyxy", "score", "landmarks", "attributes"}
    assert json.loads(json.dumps(record)) == record  # numpy values and tuples became JSON's own
    assert record["xyxy"] == [10.5, 20.0, 50.0, 70.0] and record["score"] == 0.875
    assert record["landmarks"] == {"eyeLeft": [20.0, 30.0], "nose": [30.0, 45.5]}
    assert record["attributes"]["pose"] == [1.0, -2.5, 3.0]
    assert record["attributes"]["points"] == [[1, 2], [3, 4]]


def test_a_face_comes_back_from_its_record() -> None:
    face = _face()
    back = Face.from_record(json.loads(json.dumps(face.to_record())))
    assert back.xyxy.dtype == np.float32 and back.xyxy.tolist() == face.xyxy.tolist()
    assert back.score == pytest.approx(0.875) and isinstance(back.score, float)
    assert back.landmarks == face.landmarks  # tuples again
    assert back.attributes["pose"] == [1.0, -2.5, 3.0]  # attribute tuples come back as lists
    assert back.attributes["quality"] == {"brightness": 51.0, "sharpness": 70.0}
    assert back.embedding is None and back.embedder_id is None
    assert back.to_record() == face.to_record()
    bare = Face.from_record({"xyxy": [0, 0, 1, 1], "score": 1})
    assert bare.landmarks == {} and bare.attributes == {}


def test_face_area_is_never_negative() -> None:
    assert Face(np.array([0, 0, 4, 5], np.float32), 1.0).area == 20.0
    assert Face(np.array([4, 0, 0, 5], np.float32), 1.0).area == 0.0


def test_a_tracks_box_and_anchor_are_its_last_observation() -> None:
    track = Track(3, 0, 0.0, 100.0, "active", [TrackPoint(0.0, (0, 0, 10, 20), 0.9)])
    track.history.append(TrackPoint(100.0, (10, 10, 30, 50), 0.8))
    assert track.xyxy == (10, 10, 30, 50)
    assert track.anchor == (20.0, 50)  # bottom-centre: where a person stands
