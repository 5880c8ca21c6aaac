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
``detector_score`` the detector's raw score 0-1 when ``Face.score`` is its calibrated confidence
================  ==========================================================================

``Face.score`` is the probability that the box holds a face: the detector's raw score mapped through
its calibration (``keeneye.analysis.confidence``), when the detector has one; the AWS layer reports it
as Confidence (x 100). The detector's own ``score_threshold`` still applies to the raw score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from keeneye.analysis.confidence import ScoreCalibration, calibration_for
from keeneye.analysis.quality import face_quality
from keeneye.core.types import (
    EYE_LEFT,
    EYE_RIGHT,
    MOUTH_CENTER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE,
    Detections,
    Face,
    UInt8Image,
)
from keeneye.models.base import FaceAttributeClassifier, FaceDetector, FaceEmbedder, FaceLandmarker
from keeneye.models.facemesh import pose_from_axes

AttributeLevel = Literal["none", "basic", "default", "all"]


@dataclass
class FaceAnalyzer:
    """A configured face pipeline. Build it with ``keeneye.models.registry.build_face_analyzer``.

    detector: finds faces; landmarkers: refine points (first one that provides a name wins);
    embedder: descriptor; classifiers: attribute models run for ``attributes="all"``;
    dense: optional dense-landmark stage (face mesh) adding landmarks, pose, eyes/mouth open;
    calibrate: use the detector's stored calibration (``keeneye.analysis.confidence``) as ``confidence``;
    confidence: optional calibration of the detector's raw score (``Face.score`` becomes its value);
    pad_retry: when the detector finds no face, look again in a small copy of the image with a black
    border of this fraction of its long side on every side (0: never), for faces that fill the frame
    (see :func:`detect_in_padded`).
    video_detector, video_min_face_px, video_confidence: the detector (its size floor and calibration) for
    video frames (``video_frame=True``), which run it on every analysed frame and so want a fast one;
    None: ``detector``'s (see ``faces.video_detector`` in keeneye.config).
    """

    detector: FaceDetector
    embedder: FaceEmbedder | None = None
    landmarkers: Sequence[FaceLandmarker] = ()
    classifiers: Sequence[FaceAttributeClassifier] = ()
    dense: Any = None  # optional object with .analyze(image, faces) -> list[dict] (mesh landmarks, pose...)
    min_face_px: int = 16
    calibrate: bool = False
    confidence: ScoreCalibration | None = None
    models: dict[str, str] = field(default_factory=dict)  # role -> model id, for reports
    pad_retry: float = 0.0
    video_detector: FaceDetector | None = None
    video_min_face_px: int | None = None
    video_confidence: ScoreCalibration | None = None

    def __post_init__(self) -> None:
        if self.calibrate and self.confidence is None:  # the detector's stored calibration, if it has one
            self.confidence = calibration_for(self.detector.name)
        # (detector, calibration, size floor) for photos, and for video frames when that detector differs
        self._photo = (self.detector, self.confidence, self.min_face_px)
        self._video = None
        if self.video_detector is not None and self.video_detector is not self.detector:
            video_min = self.min_face_px if self.video_min_face_px is None else self.video_min_face_px
            self._video = (self.video_detector, self.video_confidence, video_min)

    def detect(self, image: UInt8Image, *, video_frame: bool = False) -> list[Face]:
        """Faces with boxes, scores and detector landmarks, largest first. ``video_frame=True``: the video
        detector (``video_detector``, when set) and no padded retry (``pad_retry``) when nothing is found:
        video frames, which mostly hold no face and rarely one that fills the frame, would pay one more
        detector pass for each."""
        photo, video = self._photo, self._video
        detector, confidence, min_px = video if video_frame and video is not None else photo
        faces = [f for f in _faces_from(detector.detect(image)) if _min_side(f) >= min_px]
        if not faces and self.pad_retry > 0 and not video_frame:
            # The second look: the photo detector in the padded copy, then the video detector there. On
            # UTKFace's aligned crops (even-indexed files, the tuning half) MTCNN alone found 97.8 %, with
            # its padded look 99.4 %, then BlazeFace's 99.9 %; neither padded look found a false face on
            # the no-face photos (docs/models.md).
            for stage in (photo,) if video is None else (photo, video):
                retry = detect_in_padded(stage[0], image, self.pad_retry)
                faces = [f for f in retry if _min_side(f) >= stage[2]]
                if faces:
                    detector, confidence, min_px = stage  # its calibration gives the Confidence
                    break
        if confidence is not None:
            for face, calibrated in zip(faces, confidence([f.score for f in faces]), strict=True):
                face.attributes["detector_score"] = face.score
                face.score = float(calibrated)
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
        video_frame: bool = False,
    ) -> list[Face]:
        """Detect and describe faces in one image (HxWx3 uint8 RGB), largest first.

        attributes: "none" (box, score, detector points), "basic" (+ quality, and pose from the detector's
        points: no face mesh, for choosing a track's best face on every frame of a live camera),
        "default" (+ landmarks, pose, quality: Rekognition's DEFAULT set), "all" (+ expression, smile,
        eyes/mouth open, age, gender).
        embed: also compute ``Face.embedding`` with the configured embedder.
        want: with "all", only run the classifiers that provide one of these attribute keys
        (e.g. ``{"emotions"}``); None runs them all.
        video_frame: as :meth:`detect` (True for video frames: the video detector, no padded retry).
        """
        faces = self.detect(image, video_frame=video_frame)
        if max_faces is not None:
            faces = faces[:max_faces]
        if not faces:
            return faces
        if attributes != "none":
            self._add_geometry(image, faces, dense=attributes != "basic")
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

    def describe(self, image: UInt8Image, faces: list[Face]) -> None:
        """Complete faces found with a lighter level ("none", "basic") to Rekognition's DEFAULT set
        (landmarks, pose, quality), in place: for a face reported once, not every frame."""
        if faces:
            self._add_geometry(image, faces)

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

    def _add_geometry(self, image: UInt8Image, faces: list[Face], *, dense: bool = True) -> None:
        for face in faces:
            face.attributes["quality"] = face_quality(image, face.xyxy)
        if dense and self.dense is not None:
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


PAD_RETRY_SIDE = 256
"""Side in pixels of the padded copy searched again (BlazeFace's input size): the retry looks only for faces
that fill much of the image, which stay >= 64 px there, so a small copy suffices and costs one small pass."""

PAD_RETRY_MIN_FILL = 0.5
"""A face found by the retry is kept only if its box's shorter side is at least this fraction of the image's
shorter side: the retry is for faces that fill the frame (smaller ones were the first pass's job). Measured:
the faces it finds on UTKFace's crops are >= 0.84 of the side; the false faces it found on the no-face
photos (a galaxy field, a dog) 0.09 and 0.18, so 0.5 lies far from both."""


def detect_in_padded(detector: FaceDetector, image: UInt8Image, pad: float) -> list[Face]:
    """Faces that fill the frame, found in a copy of ``image`` resized to fit ``PAD_RETRY_SIDE`` with a black
    border of ``pad`` x its long side on every side; in ``image``'s pixels (boxes may reach past its edges),
    only those at least ``PAD_RETRY_MIN_FILL`` of its shorter side.

    Why: a face that fills the frame (a passport-style or aligned crop) is missed by detectors trained on
    faces with context around them; on UTKFace's aligned 200x200 crops BlazeFace found 90.8 % of the faces,
    99.9 % with a border of half the long side (even-indexed files; 0.125 / 0.25 / 0.5 and black / mean
    colour / replicated edge compared: docs/models.md). Black is what the face-crop models put outside an
    image, so the crops they cut from the returned boxes are the ones the detector saw.
    """
    h, w = image.shape[:2]
    scale = PAD_RETRY_SIDE / ((1.0 + 2.0 * pad) * max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    border = round(pad * max(sw, sh))
    padded = cv2.copyMakeBorder(small, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    faces = _faces_from(detector.detect(np.ascontiguousarray(padded)))
    sx, sy = w / sw, h / sh
    for face in faces:
        face.xyxy = ((face.xyxy - border) * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32)
        face.landmarks = {k: ((x - border) * sx, (y - border) * sy) for k, (x, y) in face.landmarks.items()}
    return [f for f in faces if _min_side(f) >= PAD_RETRY_MIN_FILL * min(h, w)]


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


# Five-point face model for pose from a detector's landmarks: the median of human's FaceMesh on 271 frontal
# LFW faces, in the face's own frame (x to the image right, y down, z away from the camera), eye distance 1
# with the eye midpoint at the origin, then made left-right symmetric (tools/pose_template.py). The mesh's
# ear-level oval points are not the detectors' ear points (BlazeFace's tragions), so ears are not used.
POSE_TEMPLATE: dict[str, tuple[float, float, float]] = {
    EYE_LEFT: (-0.5, 0.0, 0.0),
    EYE_RIGHT: (0.5, 0.0, 0.0),
    NOSE: (0.0, 0.586, -0.647),
    MOUTH_LEFT: (-0.431, 1.053, -0.104),
    MOUTH_RIGHT: (0.431, 1.053, -0.104),
    MOUTH_CENTER: (0.0, 1.067, -0.321),
}


def pose_from_points(points: dict[str, tuple[float, float]]) -> tuple[float, float, float] | None:
    """(roll, yaw, pitch) in degrees from a detector's landmarks, used when no face mesh is configured or the
    mesh does not take the face (its face score < 0.2, e.g. a strong profile).

    The points present among ``POSE_TEMPLATE`` (eyes and nose, plus mouth corners (MTCNN) or the mouth centre
    (BlazeFace); at least four) are fitted by a scaled orthographic camera: an affine least-squares fit,
    projected onto the nearest scaled rotation; the face's axes then give the angles with the face mesh's
    conventions and Euler split (``keeneye.models.facemesh.pose_from_axes``). Yaw stays within [-90, 90]:
    a fit that faces away from the camera (a profile whose eyes the detector swapped) is refitted with
    left and right swapped, else held at +-90. (The previous estimate took the
    nose's offset from the eye midpoint as the sine of the yaw and clipped it, so a three-quarter face,
    whose nose lies beyond half the eye distance, got exactly 90.) With only eyes and nose, pitch cannot
    be observed: yaw comes from the nose offset through the template's depth (atan, not asin) and pitch
    is 0. None without both eyes and the nose.
    """
    if not all(k in points for k in (EYE_LEFT, EYE_RIGHT, NOSE)):
        return None
    names = [n for n in POSE_TEMPLATE if n in points]
    if len(names) < 4:
        return _pose_eyes_nose(points)
    pose = _fit_pose(points, names)
    if abs(pose[1]) > 90.0:
        # The fitted face looks away from the camera: the points' left/right order is inconsistent (a
        # detector can swap the eyes of a profile). Refit with left and right swapped; a yaw still past 90
        # is held at the profile it must be, since every point was seen.
        swapped = {_MIRROR.get(n, n): xy for n, xy in points.items()}
        pose = _fit_pose(swapped, names)
        if abs(pose[1]) > 90.0:
            pose = (pose[0], math.copysign(90.0, pose[1]), pose[2])
    return pose


_MIRROR = {EYE_LEFT: EYE_RIGHT, EYE_RIGHT: EYE_LEFT, MOUTH_LEFT: MOUTH_RIGHT, MOUTH_RIGHT: MOUTH_LEFT}


def _fit_pose(points: dict[str, tuple[float, float]], names: list[str]) -> tuple[float, float, float]:
    """Scaled-orthographic fit of ``POSE_TEMPLATE[names]`` to ``points``: (roll, yaw, pitch) degrees."""
    model = np.array([POSE_TEMPLATE[n] for n in names], np.float64)
    image = np.array([points[n] for n in names], np.float64)
    model -= model.mean(axis=0)
    image -= image.mean(axis=0)
    affine, *_ = np.linalg.lstsq(model, image, rcond=None)  # (3, 2): image = model @ affine
    u, _sv, vt = np.linalg.svd(affine.T, full_matrices=False)  # nearest scaled rotation rows
    rows = u @ vt
    r3 = np.cross(rows[0], rows[1])
    rotation = np.vstack([rows, r3])  # face frame -> image frame; columns are the face's axes
    return pose_from_axes(rotation[:, 0], rotation[:, 1], rotation[:, 2])


def _pose_eyes_nose(points: dict[str, tuple[float, float]]) -> tuple[float, float, float]:
    (lx, ly), (rx, ry), (nx, ny) = points[EYE_LEFT], points[EYE_RIGHT], points[NOSE]
    roll = math.degrees(math.atan2(ry - ly, rx - lx))
    eye_dist = math.hypot(rx - lx, ry - ly) or 1.0
    ux, uy = (rx - lx) / eye_dist, (ry - ly) / eye_dist
    # nose offset along the eye line in eye distances = depth * tan(yaw) / cos... ~ depth * tan(yaw)
    offset = ((nx - (lx + rx) / 2) * ux + (ny - (ly + ry) / 2) * uy) / eye_dist
    depth = -POSE_TEMPLATE[NOSE][2]
    return (roll, math.degrees(math.atan2(offset, depth)), 0.0)
