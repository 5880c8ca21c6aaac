"""Rekognition's QualityFilter (NONE, AUTO, LOW, MEDIUM, HIGH): which faces are good enough to index,
search with or compare, and the UnindexedFaces reasons of those that are not.

Used by IndexFaces, SearchFacesByImage / SearchUsersByImage and CompareFaces (keeneye.service) and by
the batch tasks. Needs the attributes ``FaceAnalyzer.analyze(attributes="default")`` fills in (pose,
quality).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Face

QualityFilter = Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]
UnindexedReason = Literal[
    "EXCEEDS_MAX_FACES",
    "EXTREME_POSE",
    "LOW_BRIGHTNESS",
    "LOW_SHARPNESS",
    "LOW_CONFIDENCE",
    "SMALL_BOUNDING_BOX",
    "LOW_FACE_QUALITY",
]


@dataclass(frozen=True)
class QualityBar:
    """What a face needs to be indexed at one QualityFilter level (Rekognition keeps its bars secret).

    min_score: detector score 0-1 (the detector itself keeps faces >= 0.65 by default);
    min_side_px: shorter side of the box in pixels; max_yaw/max_pitch: |degrees| (pose from the face
    mesh or, without it, the eyes and nose); min_brightness / min_sharpness: analysis/quality.py's
    0-100 values of the face crop. Set from LFW's main faces (250x250 news photos: detector score
    0.80-0.96, box 77-134 px, sharpness 10-51, brightness 29-63, |yaw| <= 33), so that AUTO/MEDIUM
    keeps such ordinary photos and drops small, blurred, dark or turned-away faces; each level is
    stricter than the one below.
    """

    min_score: float
    min_side_px: float
    max_yaw: float
    max_pitch: float
    min_brightness: float
    min_sharpness: float


QUALITY_BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(
        min_score=0.65, min_side_px=20, max_yaw=75, max_pitch=60, min_brightness=8, min_sharpness=2
    ),
    "MEDIUM": QualityBar(0.70, 32, 60, 45, 12, 5),
    "HIGH": QualityBar(0.80, 60, 45, 30, 20, 15),
}
QUALITY_BARS["AUTO"] = QUALITY_BARS["MEDIUM"]  # Rekognition's default; "chosen by the service"


def quality_reasons(face: Face, quality_filter: QualityFilter) -> list[UnindexedReason]:
    """Why ``face`` fails the bar (empty: it passes). Needs attributes from ``analyze("default")``."""
    if quality_filter == "NONE":
        return []
    if quality_filter not in QUALITY_BARS:
        raise InvalidParameter(
            f"QualityFilter must be one of NONE, AUTO, LOW, MEDIUM, HIGH; got {quality_filter!r}"
        )
    bar = QUALITY_BARS[quality_filter]
    reasons: list[UnindexedReason] = []
    if face.score < bar.min_score:
        reasons.append("LOW_CONFIDENCE")
    x1, y1, x2, y2 = (float(v) for v in face.xyxy)
    if min(x2 - x1, y2 - y1) < bar.min_side_px:
        reasons.append("SMALL_BOUNDING_BOX")
    pose = face.attributes.get("pose")
    if pose is not None:
        _roll, yaw, pitch = pose
        if abs(yaw) > bar.max_yaw or abs(pitch) > bar.max_pitch:
            reasons.append("EXTREME_POSE")
    quality = face.attributes.get("quality") or {}
    if quality.get("brightness", 100.0) < bar.min_brightness:
        reasons.append("LOW_BRIGHTNESS")
    if quality.get("sharpness", 100.0) < bar.min_sharpness:
        reasons.append("LOW_SHARPNESS")
    return reasons
