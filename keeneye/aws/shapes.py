"""Rekognition's response shapes. The only module that knows PascalCase, ratio boxes and 0-100 scores.

Shapes follow botocore's ``rekognition/2016-06-27/service-2.json``: FaceDetail, ComparedFace,
BoundingBox (ratios of the image width/height), Landmark (ratios), Pose (degrees), ImageQuality,
Emotion, Smile/EyeOpen/MouthOpen, AgeRange, Gender. Attributes no model here can give (Beard,
Mustache, Eyeglasses, Sunglasses, EyeDirection, FaceOccluded) are omitted, never invented.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from keeneye.core.errors import InvalidParameter
from keeneye.core.geometry import to_ratio
from keeneye.core.types import REKOGNITION_LANDMARK_TYPES, Face
from keeneye.service.video.results import match_from_record

if TYPE_CHECKING:
    from datetime import datetime

    from keeneye.service.faces.collections import (
        CollectionInfo,
        FaceMatch,
        StoredFace,
        Unsuccessful,
        UserInfo,
        UserMatch,
    )

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
# ``ALL`` in a requested-attribute set: every extra attribute and all 30 landmarks. Without it a
# FaceDetail carries Rekognition's five default landmarks, as AWS answers.
ALL = "ALL"
DEFAULT_LANDMARK_TYPES = ("eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose")

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

# FaceModelVersion: AWS answers a version number ("7.0") that client code compares or stores; keeneye's
# collections are keyed by the embedder that made their vectors (its id names models and weights).
# Each embedder keeneye ships has a fixed version of AWS's form here; any other (other fusion weights,
# a user's ONNX file) gets "7.<4 digits>" from a hash of its id, stable across servers. The mapping is
# served at GET /v1/health (face_model) and documented in docs/rekognition-coverage.md.
FACE_MODEL_VERSIONS: dict[str, str] = {
    "dlib-resnet-v1+human-faceres@0.83:0.17": "7.0",  # the default (faces.embedder.kind dlib+faceres)
    "dlib-resnet-v1": "7.1",
    "human-faceres": "7.2",
}


def face_model_version(embedder_id: str) -> str:
    """Rekognition's FaceModelVersion ("7.0") for the embedder whose vectors a collection holds."""
    known = FACE_MODEL_VERSIONS.get(embedder_id)
    if known is not None:
        return known
    if not embedder_id:
        return ""
    digest = int(hashlib.sha256(embedder_id.encode()).hexdigest()[:8], 16)
    return f"7.{1000 + digest % 9000}"


def requested_attributes(attributes: Iterable[str] | None) -> frozenset[str]:
    """Validate a DetectFaces ``Attributes`` list; returns the extra attribute names wanted.

    ``["DEFAULT"]`` (or nothing) -> empty set; ``["ALL"]`` -> all supported extras and ``"ALL"`` (every
    landmark; otherwise Rekognition's five default ones are given). Unsupported
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
        return _ALL_EXTRA | {ALL}
    return frozenset(a for a in names if a in _ALL_EXTRA)


def _box(left: float, top: float, width: float, height: float) -> dict[str, float]:
    return {"Width": width, "Height": height, "Left": left, "Top": top}


def bounding_box(face: Face, width: int, height: int) -> dict[str, float]:
    return _box(*to_ratio(face.xyxy, width, height))


def landmarks(face: Face, width: int, height: int, *, every: bool = False) -> list[dict[str, Any]]:
    """Rekognition Landmarks (ratios): the five default ones, or with ``every`` all 30 keeneye has."""
    if not every:
        return [
            {
                "Type": name,
                "X": float(face.landmarks[name][0]) / width,
                "Y": float(face.landmarks[name][1]) / height,
            }
            for name in DEFAULT_LANDMARK_TYPES
            if name in face.landmarks
        ]
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


def _geometry(face: Face, width: int, height: int, every_landmark: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "BoundingBox": bounding_box(face, width, height),
        "Confidence": _pct(face.score),
        "Landmarks": landmarks(face, width, height, every=every_landmark),
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
    """Rekognition ``FaceDetail`` for one face of a ``width`` x ``height`` image (all 30 landmarks only
    when ``extras`` holds ``ALL``, as AWS answers DEFAULT with five)."""
    out = _geometry(face, width, height, every_landmark=ALL in extras)
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
    return {"BoundingBox": bounding_box(face, width, height), "Confidence": confidence(face)}


def confidence(face: Face) -> float:
    """The detector's score as Rekognition's 0-100 Confidence."""
    return _pct(face.score)


# -- collections, faces and users (shapes of the identity operations) -------------------------------
# These take the plain results of keeneye.service.faces.collections (imported for type checking only, so
# this module stays importable without the store).


def epoch_seconds(when: datetime) -> float:
    """AWS JSON 1.1 timestamps are seconds since the epoch (a datetime's ``timestamp()``)."""
    return float(when.timestamp())


def stored_face(face: StoredFace) -> dict[str, Any]:
    """Rekognition ``Face`` (ListFaces, FaceMatch.Face, FaceRecord.Face) from a ``StoredFace``."""
    out: dict[str, Any] = {
        "FaceId": face.face_id,
        "BoundingBox": _box(*to_ratio(face.xyxy, face.image_width, face.image_height)),
        "ImageId": face.image_id,
        "Confidence": _pct(face.score),
        "IndexFacesModelVersion": face_model_version(face.embedder_id),
    }
    if face.external_image_id is not None:
        out["ExternalImageId"] = face.external_image_id
    if face.user_id is not None:
        out["UserId"] = face.user_id
    return out


def face_match(match: FaceMatch) -> dict[str, Any]:
    """Rekognition ``FaceMatch`` from a service ``FaceMatch`` (Similarity already 0-100)."""
    return {"Similarity": float(match.similarity), "Face": stored_face(match.face)}


def user(info: UserInfo) -> dict[str, Any]:
    return {"UserId": info.user_id, "UserStatus": info.status}


def user_match(match: UserMatch) -> dict[str, Any]:
    return {
        "Similarity": float(match.similarity),
        "User": {"UserId": match.user.user_id, "UserStatus": match.user.status},
    }


def unsuccessful(item: Unsuccessful, *, with_confidence: bool = False) -> dict[str, Any]:
    """Unsuccessful face deletion/association/disassociation entries (one shape, several names)."""
    out: dict[str, Any] = {"FaceId": item.face_id, "Reasons": list(item.reasons)}
    if item.user_id is not None:
        out["UserId"] = item.user_id
    if with_confidence and item.confidence is not None:
        out["Confidence"] = float(item.confidence)
    return out


def collection_description(info: CollectionInfo) -> dict[str, Any]:
    """DescribeCollection's response (note AWS's spelling ``CollectionARN`` here)."""
    return {
        "FaceCount": info.face_count,
        "FaceModelVersion": face_model_version(info.face_model_version),
        "CollectionARN": info.arn,
        "CreationTimestamp": epoch_seconds(info.created_at),
        "UserCount": info.user_count,
    }


# -- stored-video jobs ----------------------------------------------------------------------------------


def video_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Rekognition's VideoMetadata from keeneye.video.sources.VideoMetadata (as a dict)."""
    out: dict[str, Any] = {
        "Codec": meta["codec"],
        # FFmpeg demuxer long name ("QuickTime / MOV"), as AWS answers; not the demuxer list
        "Format": meta.get("format_long") or meta["format"],
        "FrameHeight": int(meta["height"]),
        "FrameWidth": int(meta["width"]),
    }
    if meta.get("duration_ms") is not None:
        out["DurationMillis"] = round(meta["duration_ms"])
    if meta.get("fps") is not None:
        out["FrameRate"] = float(meta["fps"])
    if meta.get("color_range") is not None:
        out["ColorRange"] = meta["color_range"]
    return out


def ratio_box(xyxy: Iterable[float], width: int, height: int) -> dict[str, float]:
    """A pixel ``xyxy`` box as Rekognition's BoundingBox (ratios of the frame, clipped to 0-1)."""
    return _box(*to_ratio(list(xyxy), width, height, clip=True))


def person_detection(item: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """One PersonDetection: Timestamp (ms), Person.Index (the track id) and its BoundingBox."""
    return {
        "Timestamp": round(item["pts_ms"]),
        "Person": {"Index": int(item["index"]), "BoundingBox": ratio_box(item["xyxy"], width, height)},
    }


def kept_face(
    record: dict[str, Any], width: int, height: int, extras: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Rekognition's FaceDetail of a face a job kept (``Face.to_record``); results written by an older
    keeneye kept the FaceDetail itself."""
    if "BoundingBox" in record:
        return record
    return face_detail(Face.from_record(record), width, height, extras)


def kept_match(record: dict[str, Any]) -> dict[str, Any]:
    """Rekognition's FaceMatch of a match a job kept (keeneye.service.video.results.match_record)."""
    if "Similarity" in record:  # written by an older keeneye
        return record
    return face_match(match_from_record(record))


def face_detection(item: dict[str, Any], width: int, height: int, extras: frozenset[str]) -> dict[str, Any]:
    """One GetFaceDetection FaceDetection: Timestamp (ms) and the FaceDetail (``extras``: the job's
    FaceAttributes)."""
    return {"Timestamp": round(item["pts_ms"]), "Face": kept_face(item["face"], width, height, extras)}


def person_match(item: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """One GetFaceSearch PersonMatch: Timestamp (ms), Person (Index: the face track; BoundingBox: the
    face's box, keeneye tracks faces for face search; Face: its FaceDetail) and the track's FaceMatches."""
    return {
        "Timestamp": round(item["pts_ms"]),
        "Person": {
            "Index": int(item["index"]),
            "BoundingBox": ratio_box(item["xyxy"], width, height),
            "Face": kept_face(item["face"], width, height),
        },
        "FaceMatches": [kept_match(m) for m in item["matches"]],
    }
