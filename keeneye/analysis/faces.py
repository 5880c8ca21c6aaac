"""Face analysis of still images: detect -> landmarks -> align/embed -> attributes.

``FaceAnalyzer`` composes backends chosen by configuration (see ``keeneye.models.registry``). It knows
nothing of AWS shapes: it fills ``Face`` objects with backend-neutral values that
``keeneye.aws.shapes`` turns into Rekognition's ``FaceDetail``.

Attribute keys in ``Face.attributes`` (all optional; absent when no configured model gives them):

================  ==========================================================================
``quality``       {"brightness": 0-100, "sharpness": 0-100} (analysis/quality.py)
``pose``          (roll, yaw, pitch) degrees, Rekognition's conventions
``emotions``      {label: probability} over the expression model's labels
``smile``         (bool, confidence 0-1), derived from the expression model's ``happy`` score
``eyes_open``     (bool, confidence 0-1), from the face mesh's eyelid distance
``mouth_open``    (bool, confidence 0-1), from the face mesh's lip gap
``age``           estimated apparent age in years (float)
``gender``        ("Male" | "Female", confidence 0-1): apparent gender as Rekognition reports it
``mesh_score``    face-mesh confidence 0-1 that the box holds a face (not in Rekognition's shape)
================  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from keeneye.analysis.quality import face_quality
from keeneye.core.types import EYE_LEFT, EYE_RIGHT, NOSE, Detections, Face, UInt8Image
from keeneye.models.base import FaceAttributeClassifier, FaceDetector, FaceEmbedder, FaceLandmarker

AttributeLevel = Literal["none", "default", "all"]


@dataclass
class FaceAnalyzer:
    """A configured face pipeline. Build it with ``keeneye.models.registry.build_face_analyzer``.

    detector: finds faces; landmarkers: refine points (first one that provides a name wins);
    embedder: descriptor; classifiers: attribute models run for ``attributes="all"``;
    pose_from_landmarks: optional ``(points by name) -> (roll, yaw, pitch)`` from a dense landmarker;
    mesh_attributes: optional callable adding eyes_open/mouth_open/pose from a dense landmarker.
    """

    detector: FaceDetector
    embedder: FaceEmbedder | None = None
    landmarkers: Sequence[FaceLandmarker] = ()
    classifiers: Sequence[FaceAttributeClassifier] = ()
    dense: Any = None  # optional object with .analyze(image, faces) -> list[dict] (mesh landmarks, pose...)
    min_face_px: int = 16
    models: dict[str, str] = field(default_factory=dict)  # role -> model id, for reports

    def detect(self, image: UInt8Image) -> list[Face]:
        """Faces with boxes, scores and detector landmarks, largest first."""
        dets = self.detector.detect(image)
        faces = [f for f in _faces_from(dets) if _min_side(f) >= self.min_face_px]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def analyze(
        self,
        image: UInt8Image,
        *,
        attributes: AttributeLevel = "default",
        embed: bool = False,
        max_faces: int | None = None,
        want: frozenset[str] | None = None,
    ) -> list[Face]:
        """Detect and describe faces in one image (HxWx3 uint8 RGB), largest first.

        attributes: "none" (box, score, detector points), "default" (+ landmarks, pose, quality:
        Rekognition's DEFAULT set), "all" (+ expression, smile, eyes/mouth open, age, gender).
        embed: also compute ``Face.embedding`` with the configured embedder.
        want: with "all", only run the classifiers that provide one of these attribute keys
        (e.g. ``{"emotions"}``); None runs them all.
        """
        faces = self.detect(image)
        if max_faces is not None:
            faces = faces[:max_faces]
        if not faces:
            return faces
        if attributes != "none":
            self._add_geometry(image, faces)
        if attributes == "all":
            self._add_classifiers(image, faces, want)
        if embed:
            self.embed(image, faces)
        return faces

    def embed(self, image: UInt8Image, faces: list[Face]) -> None:
        """Fill ``embedding`` / ``embedder_id`` of each face in place (batching all faces)."""
        if self.embedder is None:
            raise RuntimeError("no embedder configured")
        if not faces:
            return
        self._ensure_landmarks(image, faces, self.embedder.required_landmarks)
        vectors = self.embedder.embed(image, faces)
        for face, vec in zip(faces, vectors, strict=True):
            face.embedding = np.asarray(vec, np.float32)
            face.embedder_id = self.embedder.embedder_id

    def classify(self, image: UInt8Image, faces: list[Face], want: frozenset[str] | None = None) -> None:
        """Add the classifier attributes (``want``: only the classifiers giving one of these keys, e.g.
        ``{"emotions"}``) to faces found earlier, in place: for a face reported once, not every frame."""
        if faces:
            self._add_classifiers(image, faces, want)

    # -- stages ---------------------------------------------------------------------------------
    def _ensure_landmarks(self, image: UInt8Image, faces: list[Face], names: Sequence[str]) -> None:
        missing = [n for n in names if any(n not in f.landmarks for f in faces)]
        for lm in self.landmarkers:
            if not missing:
                return
            if not set(missing) & set(lm.landmark_names):
                continue
            boxes = np.stack([f.xyxy for f in faces]).astype(np.float32)
            points = lm.landmarks(image, boxes)
            for face, pts in zip(faces, points, strict=True):
                for name, (x, y) in zip(lm.landmark_names, pts, strict=True):
                    face.landmarks.setdefault(name, (float(x), float(y)))
            missing = [n for n in missing if n not in lm.landmark_names]
        if missing:
            raise RuntimeError(f"no configured landmarker provides {missing}")

    def _add_geometry(self, image: UInt8Image, faces: list[Face]) -> None:
        for face in faces:
            face.attributes["quality"] = face_quality(image, face.xyxy)
        if self.dense is not None:
            for face, extra in zip(faces, self.dense.analyze(image, faces), strict=True):
                for name, xy in extra.pop("landmarks", {}).items():
                    face.landmarks[name] = xy  # dense points are more precise than the detector's
                face.attributes.update(extra)
        for face in faces:
            if "pose" not in face.attributes:
                face.attributes["pose"] = pose_from_points(face.landmarks)

    def _add_classifiers(self, image: UInt8Image, faces: list[Face], want: frozenset[str] | None) -> None:
        for clf in self.classifiers:
            if want is not None and not set(clf.provides) & want:
                continue
            for face, values in zip(faces, clf.classify(image, faces), strict=True):
                face.attributes.update(values)
        for face in faces:
            emotions = face.attributes.get("emotions")
            if emotions and "happy" in emotions:
                p = float(emotions["happy"])
                face.attributes["smile"] = (p >= 0.5, p if p >= 0.5 else 1.0 - p)


def _faces_from(dets: Detections) -> list[Face]:
    faces = []
    for i in range(len(dets)):
        landmarks: dict[str, tuple[float, float]] = {}
        if dets.landmarks is not None:
            for name, (x, y) in zip(dets.landmark_names, dets.landmarks[i], strict=True):
                landmarks[name] = (float(x), float(y))
        faces.append(Face(xyxy=dets.xyxy[i].copy(), score=float(dets.score[i]), landmarks=landmarks))
    return faces


def _min_side(face: Face) -> float:
    x1, y1, x2, y2 = (float(v) for v in face.xyxy)
    return min(x2 - x1, y2 - y1)


def pose_from_points(points: dict[str, tuple[float, float]]) -> tuple[float, float, float] | None:
    """Coarse (roll, yaw, pitch) in degrees from eyes and nose, used when no face mesh is configured.

    Same sign conventions as the face mesh (keeneye/models/facemesh.py): roll is the angle of the eye
    line (positive: clockwise in the image); yaw is positive when the face turns towards the image's
    right, estimated from the nose's offset from the eye midpoint relative to half the eye distance;
    pitch is not observable from these points and is reported as 0. None without both eyes and nose.
    """
    if not all(k in points for k in (EYE_LEFT, EYE_RIGHT, NOSE)):
        return None
    (lx, ly), (rx, ry), (nx, ny) = points[EYE_LEFT], points[EYE_RIGHT], points[NOSE]
    roll = math.degrees(math.atan2(ry - ly, rx - lx))
    eye_dist = math.hypot(rx - lx, ry - ly) or 1.0
    # Offset of the nose along the eye line, in units of half the eye distance.
    ux, uy = (rx - lx) / eye_dist, (ry - ly) / eye_dist
    offset = ((nx - (lx + rx) / 2) * ux + (ny - (ly + ry) / 2) * uy) / (eye_dist / 2)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, offset))))
    return (roll, yaw, 0.0)
