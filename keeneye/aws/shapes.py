"""Rekognition's response shapes. The only module that knows PascalCase, ratio boxes and 0-100 scores.

Shapes follow botocore's ``rekognition/2016-06-27/service-2.json``: FaceDetail, ComparedFace,
BoundingBox (ratios of the image width/height), Landmark (ratios), Pose (degrees), ImageQuality,
Emotion, Smile/EyeOpen/MouthOpen, AgeRange, Gender. Attributes no model here can give (Beard,
Mustache, Eyeglasses, Sunglasses, EyeDirection, FaceOccluded) are omitted, never invented.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import REKOGNITION_LANDMARK_TYPES, Face

# Rekognition's Attribute enum and what keeneye can answer for each.
SUPPORTED_ATTRIBUTES = (
    "DEFAULT",
    "ALL",
    "AGE_RANGE",
    "EMOTIONS",
    "EYES_OPEN",
    "GENDER",
    "MOUTH_OPEN",
    "SMILE",
)
UNSUPPORTED_ATTRIBUTES = ("BEARD", "EYEGLASSES", "EYE_DIRECTION", "FACE_OCCLUDED", "MUSTACHE", "SUNGLASSES")
_ALL_EXTRA = frozenset({"AGE_RANGE", "EMOTIONS", "EYES_OPEN", "GENDER", "MOUTH_OPEN", "SMILE"})

# Expression model labels -> Rekognition EmotionName. No bundled model predicts CONFUSED, so it is
# never reported (see docs/attributes.md). "neutral" is reported as CALM.
EMOTION_NAMES = {
    "happy": "HAPPY",
    "sad": "SAD",
    "angry": "ANGRY",
    "surprise": "SURPRISED",
    "disgust": "DISGUSTED",
    "fear": "FEAR",
    "neutral": "CALM",
}

AGE_HALF_WIDTH = 5  # AgeRange = estimate +- this many years (see docs/attributes.md)


def requested_attributes(attributes: Iterable[str] | None) -> frozenset[str]:
    """Validate a DetectFaces ``Attributes`` list; returns the extra attribute names wanted.

    ``["DEFAULT"]`` (or nothing) -> empty set; ``["ALL"]`` -> all supported extras. Unsupported
    names are accepted (Rekognition's enum) but yield nothing; unknown names are an error.
    """
    names = list(attributes or ["DEFAULT"])
    unknown = [a for a in names if a not in SUPPORTED_ATTRIBUTES and a not in UNSUPPORTED_ATTRIBUTES]
    if unknown:
        raise InvalidParameter(
            f"unknown attribute(s) {unknown}; valid: "
            + ", ".join(SUPPORTED_ATTRIBUTES + UNSUPPORTED_ATTRIBUTES)
        )
    if "ALL" in names:
        return _ALL_EXTRA
    return frozenset(a for a in names if a in _ALL_EXTRA)


def bounding_box(face: Face, width: int, height: int) -> dict[str, float]:
    x1, y1, x2, y2 = (float(v) for v in face.xyxy)
    return {"Width": (x2 - x1) / width, "Height": (y2 - y1) / height, "Left": x1 / width, "Top": y1 / height}


def landmarks(face: Face, width: int, height: int) -> list[dict[str, Any]]:
    return [
        {"Type": name, "X": x / width, "Y": y / height}
        for name, (x, y) in face.landmarks.items()
        if name in REKOGNITION_LANDMARK_TYPES
    ]


def _pct(p: float) -> float:
    return float(min(max(p, 0.0), 1.0) * 100.0)


def _flag(value: tuple[bool, float]) -> dict[str, Any]:
    return {"Value": bool(value[0]), "Confidence": _pct(value[1])}


def emotions(probs: dict[str, float]) -> list[dict[str, Any]]:
    out = [{"Type": EMOTION_NAMES[k], "Confidence": _pct(v)} for k, v in probs.items() if k in EMOTION_NAMES]
    return sorted(out, key=lambda e: -e["Confidence"])


def _geometry(face: Face, width: int, height: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "BoundingBox": bounding_box(face, width, height),
        "Confidence": _pct(face.score),
        "Landmarks": landmarks(face, width, height),
    }
    pose = face.attributes.get("pose")
    if pose is not None:
        roll, yaw, pitch = pose
        out["Pose"] = {"Roll": float(roll), "Yaw": float(yaw), "Pitch": float(pitch)}
    quality = face.attributes.get("quality")
    if quality is not None:
        out["Quality"] = {
            "Brightness": float(quality["brightness"]),
            "Sharpness": float(quality["sharpness"]),
        }
    return out


def face_detail(face: Face, width: int, height: int, extras: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Rekognition ``FaceDetail`` for one face of a ``width`` x ``height`` image."""
    out = _geometry(face, width, height)
    a = face.attributes
    if "AGE_RANGE" in extras and "age" in a:
        age = float(a["age"])
        out["AgeRange"] = {
            "Low": max(0, math.floor(age) - AGE_HALF_WIDTH),
            "High": math.ceil(age) + AGE_HALF_WIDTH,
        }
    if "SMILE" in extras and "smile" in a:
        out["Smile"] = _flag(a["smile"])
    if "GENDER" in extras and "gender" in a:
        out["Gender"] = {"Value": a["gender"][0], "Confidence": _pct(a["gender"][1])}
    if "EYES_OPEN" in extras and "eyes_open" in a:
        out["EyesOpen"] = _flag(a["eyes_open"])
    if "MOUTH_OPEN" in extras and "mouth_open" in a:
        out["MouthOpen"] = _flag(a["mouth_open"])
    if "EMOTIONS" in extras and "emotions" in a:
        out["Emotions"] = emotions(a["emotions"])
    return out


def compared_face(face: Face, width: int, height: int) -> dict[str, Any]:
    """Rekognition ``ComparedFace``: geometry plus Emotions and Smile where known."""
    out = _geometry(face, width, height)
    if "emotions" in face.attributes:
        out["Emotions"] = emotions(face.attributes["emotions"])
    if "smile" in face.attributes:
        out["Smile"] = _flag(face.attributes["smile"])
    return out


def compared_source_face(face: Face, width: int, height: int) -> dict[str, Any]:
    return {"BoundingBox": bounding_box(face, width, height), "Confidence": _pct(face.score)}
