from __future__ import annotations

import numpy as np
import pytest

from keeneye.aws import shapes
from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Face


def test_requested_attributes() -> None:
    assert shapes.requested_attributes(None) == frozenset()
    assert shapes.requested_attributes(["DEFAULT"]) == frozenset()
    assert "EMOTIONS" in shapes.requested_attributes(["ALL"])
    assert shapes.requested_attributes(["BEARD"]) == frozenset()  # valid enum, nothing we can give
    with pytest.raises(InvalidParameter, match="unknown attribute"):
        shapes.requested_attributes(["HAIR_COLOUR"])


def test_ratios_and_percentages() -> None:
    face = Face(
        xyxy=np.array([10, 20, 60, 100], np.float32),
        score=0.9,
        landmarks={"eyeLeft": (20.0, 40.0), "noseBottom": (30.0, 60.0)},
        attributes={"emotions": {"happy": 0.7, "neutral": 0.3}, "smile": (True, 0.7), "age": 31.4},
    )
    d = shapes.face_detail(face, 200, 400, shapes.requested_attributes(["ALL"]))
    assert d["BoundingBox"] == pytest.approx({"Width": 0.25, "Height": 0.2, "Left": 0.05, "Top": 0.05})
    assert d["Confidence"] == pytest.approx(90)
    assert d["Landmarks"] == [{"Type": "eyeLeft", "X": 0.1, "Y": 0.1}]  # non-Rekognition names dropped
    assert d["Emotions"][0] == {"Type": "HAPPY", "Confidence": pytest.approx(70)}
    assert d["Emotions"][1]["Type"] == "CALM"
    assert d["Smile"] == {"Value": True, "Confidence": pytest.approx(70)}
    assert d["AgeRange"] == {"Low": 26, "High": 37}
    assert "Gender" not in d and "Pose" not in d  # absent attributes are omitted, not invented
