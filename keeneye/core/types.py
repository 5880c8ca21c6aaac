"""Plain data that flows between stages. numpy only.

Conventions (see STYLE.md): images are ``HxWx3 uint8 RGB``; boxes are ``xyxy`` float32 pixels;
``score`` is in [0, 1]. "Left"/"right" in landmark names mean *image* left/right of an upright face
(Rekognition's convention: ``eyeLeft`` has the smaller x), not the subject's own left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
UInt8Image = npt.NDArray[np.uint8]

# Canonical landmark names, Rekognition's spelling (Landmark.Type). Backends map their points onto these.
EYE_LEFT = "eyeLeft"
EYE_RIGHT = "eyeRight"
NOSE = "nose"
MOUTH_LEFT = "mouthLeft"
MOUTH_RIGHT = "mouthRight"
MOUTH_CENTER = "mouthCenter"  # not a Rekognition type; used for alignment only
LEFT_EYE_LEFT = "leftEyeLeft"
LEFT_EYE_RIGHT = "leftEyeRight"
RIGHT_EYE_LEFT = "rightEyeLeft"
RIGHT_EYE_RIGHT = "rightEyeRight"
NOSE_LEFT = "noseLeft"
NOSE_RIGHT = "noseRight"
MIDJAW_LEFT = "midJawlineLeft"
MIDJAW_RIGHT = "midJawlineRight"
UPPER_JAW_LEFT = "upperJawlineLeft"
UPPER_JAW_RIGHT = "upperJawlineRight"

REKOGNITION_LANDMARK_TYPES: frozenset[str] = frozenset(
    {
        "eyeLeft",
        "eyeRight",
        "nose",
        "mouthLeft",
        "mouthRight",
        "leftEyeBrowLeft",
        "leftEyeBrowRight",
        "leftEyeBrowUp",
        "rightEyeBrowLeft",
        "rightEyeBrowRight",
        "rightEyeBrowUp",
        "leftEyeLeft",
        "leftEyeRight",
        "leftEyeUp",
        "leftEyeDown",
        "rightEyeLeft",
        "rightEyeRight",
        "rightEyeUp",
        "rightEyeDown",
        "noseLeft",
        "noseRight",
        "mouthUp",
        "mouthDown",
        "leftPupil",
        "rightPupil",
        "upperJawlineLeft",
        "midJawlineLeft",
        "chinBottom",
        "midJawlineRight",
        "upperJawlineRight",
    }
)


def _as_f32(a: Any, shape_tail: tuple[int, ...], name: str) -> FloatArray:
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class Detections:
    """N detections as parallel arrays (supervision-style).

    xyxy: (N, 4) float32 pixels; score: (N,) float32 in [0, 1]; label: (N,) int64 class ids;
    landmarks: optional (N, K, 2) float32 pixels with ``landmark_names`` (K names).
    """

    xyxy: FloatArray
    score: FloatArray
    label: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0,), np.int64))
    landmarks: FloatArray | None = None
    landmark_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = xyxy.shape[0]
        score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        label = np.asarray(self.label, dtype=np.int64).reshape(-1)
        if label.size == 0 and n:
            label = np.zeros((n,), np.int64)
        if score.shape[0] != n or label.shape[0] != n:
            raise ValueError(
                f"Detections arrays disagree: {n} boxes, {score.shape[0]} scores, {label.shape[0]} labels"
            )
        if n and (np.any(score < 0) or np.any(score > 1) or not np.all(np.isfinite(xyxy))):
            raise ValueError("Detections need scores in [0, 1] and finite boxes")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "label", label)
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if (
                lm.ndim != 3
                or lm.shape[0] != n
                or lm.shape[2] != 2
                or lm.shape[1] != len(self.landmark_names)
            ):
                raise ValueError(
                    f"landmarks must be (N, K, 2) with K = len(landmark_names); got {lm.shape}"
                    f" for {n} boxes and {len(self.landmark_names)} names"
                )
            object.__setattr__(self, "landmarks", lm)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls, landmark_names: tuple[str, ...] = ()) -> Detections:
        lm = np.zeros((0, len(landmark_names), 2), np.float32) if landmark_names else None
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0,), np.int64),
            lm,
            landmark_names,
        )

    def select(self, index: npt.NDArray[Any]) -> Detections:
        """A new Detections with the rows picked by a boolean mask or index array."""
        lm = None if self.landmarks is None else self.landmarks[index]
        return Detections(self.xyxy[index], self.score[index], self.label[index], lm, self.landmark_names)


@dataclass
class Face:
    """One face found in one image, filled in stage by stage.

    xyxy: (4,) float32 pixels; score in [0, 1]; landmarks: name -> (x, y) pixels;
    attributes: backend-neutral values (see analysis/faces.py for keys); embedding: (D,) float32,
    L2-normalised, produced by ``embedder_id`` (vectors of different embedders are never compared).
    """

    xyxy: FloatArray
    score: float
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    embedding: FloatArray | None = None
    embedder_id: str | None = None

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = (float(v) for v in self.xyxy)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def to_record(self) -> dict[str, Any]:
        """The face as plain JSON values, without its embedding (how job results keep faces):
        ``{"xyxy": [4 floats], "score", "landmarks": {name: [x, y]}, "attributes": {...}}``."""
        return {
            "xyxy": [float(v) for v in self.xyxy],
            "score": float(self.score),
            "landmarks": {name: [float(x), float(y)] for name, (x, y) in self.landmarks.items()},
            "attributes": _plain(self.attributes),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Face:
        """The face :meth:`to_record` wrote (tuples come back as lists; no embedding)."""
        return cls(
            xyxy=np.asarray(record["xyxy"], np.float32),
            score=float(record["score"]),
            landmarks={name: (float(x), float(y)) for name, (x, y) in record.get("landmarks", {}).items()},
            attributes=dict(record.get("attributes", {})),
        )


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class Frame:
    """One decoded video frame. image: HxWx3 uint8 RGB; pts_ms: presentation time from the container
    (milliseconds since the stream's start), never the wall clock; index: 0-based decode order."""

    source_id: str
    index: int
    pts_ms: float
    image: UInt8Image


TrackState = Literal["tentative", "active", "lost", "removed"]
"""Life cycle of a track: ``tentative`` until it has been matched ``min_hits`` times, ``active`` while
matched, ``lost`` while unmatched (kept for motion and appearance re-linking), ``removed`` when given up."""


@dataclass(frozen=True)
class TrackPoint:
    """One observed box of a track: ``pts_ms`` of its frame, ``xyxy`` pixels, detector ``score`` in [0, 1]."""

    pts_ms: float
    xyxy: tuple[float, float, float, float]
    score: float


@dataclass
class Track:
    """One object followed through a video (see keeneye/tracking/tracker.py).

    ``track_id`` is stable for the life of the tracker (re-identification keeps it across occlusions and
    re-entries); ``label`` is the detector's class id; ``first_pts_ms`` / ``last_pts_ms`` bound the observed
    boxes; ``history`` holds every matched box in time order; ``best_face`` is the best face seen so far
    (``best_face_score`` its quality score, see keeneye/tracking/reid.py); ``identity`` is the matched
    person's name or id where the pipeline found one.
    """

    track_id: int
    label: int
    first_pts_ms: float
    last_pts_ms: float
    state: TrackState = "tentative"
    history: list[TrackPoint] = field(default_factory=list)
    best_face: Face | None = None
    best_face_score: float = 0.0
    identity: str | None = None

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        """The last observed box, pixels."""
        return self.history[-1].xyxy

    @property
    def anchor(self) -> tuple[float, float]:
        """Bottom-centre of the last observed box (the foot point lines and zones use), pixels."""
        x1, _, x2, y2 = self.history[-1].xyxy
        return (
            (x1 + x2) / 2.0,
            y2,
        )  # keeneye.core.geometry.anchor (types cannot import it: it imports types)
