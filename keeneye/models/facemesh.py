"""Human's FaceMesh (MediaPipe FaceMesh, 468 3-D points) as a FaceLandmarker, plus pose, eyes and mouth.

Ported from @vladmandic/human (MIT): ``src/face/facemesh.ts``, ``facemeshutil.ts`` (crop and
back-projection), ``facemeshcoords.ts`` (index groups) and ``angles.ts`` (head pose). The model is
``models/facemesh.json`` converted to ONNX with the TF.js layouts kept: input ``(N, 192, 192, 3)``
float32 RGB in [0, 1]; outputs ``output_mesh (N, 1404)`` = 468 x (x, y, z) in crop pixels and
``output_faceflag (N, 1)``, a sigmoid "this crop is a face" score.

Pre-processing, as human does it: the detector's tight box is enlarged 1.4x about its centre
(``config.face.detector.scale``), squarified to its longer side and resampled bilinearly to 192x192
(``enlargeBox``, ``squarifyBox``, ``cutAndResize``); optionally the crop is rotated so the eyes are level
(``correctFaceRotation``). Post-processing maps crop pixels back through the same affine transform
(``transformRawCoords``). Departures from human, on purpose:

* z is scaled to image pixels like x and y (human keeps raw crop units and then mixes them with x, y
  scaled 1.5x in ``calculateFaceAngle``), so 3-D distances and the pose are isotropic;
* coordinates are kept as floats (human truncates them to integers);
* the roll correction uses the detector's eye line when given (always, not only past 0.2 rad), else the
  roll of a first mesh measured on the upright crop, rather than blazeface's mouth-nose line; the crop
  is rotated about the box centre with one affine warp.

Landmark names follow keeneye's convention (``keeneye.core.types``): left/right are *image* left/right,
whereas MediaPipe's index groups are named from the subject's view (MediaPipe's "right eye" is the eye
on the image's left).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from keeneye.core.errors import BackendUnavailable, InvalidImage, InvalidParameter
from keeneye.core.types import EYE_LEFT, EYE_RIGHT, Face, FloatArray, UInt8Image
from keeneye.models.onnx_runtime import create_session

Float64Array = npt.NDArray[np.float64]

INPUT_SIZE = 192
"""Side of the square model input, pixels."""
MESH_POINTS = 468
BOX_SCALE = 1.4
"""human's ``config.face.detector.scale``: how much the tight detector box is enlarged before cropping."""
ROTATION_MIN_RAD = 0.2
"""human rotates the crop only when the face is rolled by more than this (about 11.5 degrees)."""

# MediaPipe canonical face-mesh indices (mediapipe/modules/face_geometry/data/
# canonical_face_model_uv_visualization.png; the same numbers as human's facemeshcoords.ts and MediaPipe's
# face_mesh_connections.py). MediaPipe's "right eye" (33 outer corner, 133 inner corner, 159 upper lid,
# 145 lower lid) is the subject's right eye, i.e. the eye on the *image* left of an upright face; its
# "left eye" (263 outer, 362 inner, 386, 374) is on the image right.
_IMG_LEFT_EYE_CONTOUR = (246, 161, 160, 159, 158, 157, 173, 33, 7, 163, 144, 145, 153, 154, 155, 133)
_IMG_RIGHT_EYE_CONTOUR = (466, 388, 387, 386, 385, 384, 398, 263, 249, 390, 373, 374, 380, 381, 382, 362)

MESH_LANDMARKS: dict[str, tuple[int, ...]] = {
    # name (image left/right) -> mesh indices averaged into the point
    "eyeLeft": _IMG_LEFT_EYE_CONTOUR,  # centre of the subject's right eye contour
    "eyeRight": _IMG_RIGHT_EYE_CONTOUR,
    "nose": (1,),  # nose tip (human: noseTip)
    "mouthLeft": (61,),  # outer lip corner, subject's right
    "mouthRight": (291,),
    "leftEyeBrowLeft": (70,),  # subject's right brow, outer end of its upper edge
    "leftEyeBrowRight": (107,),  # ... inner end
    "leftEyeBrowUp": (105,),  # ... top of the arch
    "rightEyeBrowLeft": (336,),  # subject's left brow, inner end
    "rightEyeBrowRight": (300,),  # ... outer end
    "rightEyeBrowUp": (334,),
    "leftEyeLeft": (33,),  # outer corner of the image-left eye
    "leftEyeRight": (133,),  # inner corner
    "leftEyeUp": (159,),  # upper lid, middle
    "leftEyeDown": (145,),  # lower lid, middle
    "rightEyeLeft": (362,),  # inner corner of the image-right eye
    "rightEyeRight": (263,),  # outer corner
    "rightEyeUp": (386,),
    "rightEyeDown": (374,),
    "noseLeft": (98,),  # human: noseRightCorner (subject's right alar base)
    "noseRight": (327,),  # human: noseLeftCorner
    "mouthUp": (0,),  # top of the upper lip, centre line
    "mouthDown": (17,),  # bottom of the lower lip, centre line
    # No iris model here: the pupil is estimated as the centre of the eye's corners and lid midpoints.
    "leftPupil": (33, 133, 159, 145),
    "rightPupil": (362, 263, 386, 374),
    "upperJawlineLeft": (234,),  # face oval at cheekbone / ear level (human angles.ts: "left")
    "midJawlineLeft": (172,),  # face oval at mouth level
    "chinBottom": (152,),
    "midJawlineRight": (397,),
    "upperJawlineRight": (454,),
}
"""All 30 Rekognition landmark types, each as the mean of these mesh points."""

# Points the pose and state functions read (MediaPipe indices, subject's view in the comments).
_TOP, _CHIN, _OVAL_IMG_LEFT, _OVAL_IMG_RIGHT = 10, 152, 234, 454  # human angles.ts: top, bottom, left, right
# Eye aspect ratio, the 6-point form (Soukupova & Cech 2016) on MediaPipe's eye contour:
# (corner, corner, upper-1, lower-1, upper-2, lower-2); upper-k sits above lower-k.
_EAR_IMG_LEFT = (33, 133, 160, 144, 158, 153)
_EAR_IMG_RIGHT = (263, 362, 387, 373, 385, 380)
_LIP_INNER_UP, _LIP_INNER_DOWN = 13, 14  # inner lip edges on the centre line
_MOUTH_CORNERS = (61, 291)

# Thresholds chosen by looking at LFW (1500 people, first image each; BlazeFace boxes and eyes, this model):
# faces sorted by the ratio and viewed. Eye aspect ratio: below ~0.135 about three in four eyes were shut or
# squeezed shut; from 0.135 to ~0.165 most were open (narrowed by a smile, looking down) with a few shut
# ones mixed in; above that nearly all were open (LFW percentiles: 1% 0.140, 5% 0.176, median 0.258). This
# model (plain FaceMesh, no attention/iris refinement) separates lids poorly, so the threshold favours
# "open": a blink is only called when the ratio is clearly low. Mouth: below ~0.09 the lips were together
# (a few barely parted), from ~0.10 up they were visibly apart or showed teeth (percentiles: 25% 0.039,
# median 0.087, 75% 0.178).
EYES_OPEN_THRESHOLD = 0.135
"""Eye aspect ratio (mean lid gap / eye width, both eyes averaged) above which eyes count as open."""
EYES_OPEN_SCALE = 0.015
"""Logistic width of the eyes-open confidence around the threshold (ratio units)."""
MOUTH_OPEN_THRESHOLD = 0.10
"""Inner-lip gap / mouth width above which the mouth counts as open."""
MOUTH_OPEN_SCALE = 0.02
"""Logistic width of the mouth-open confidence around the threshold (ratio units)."""
MIN_FACE_SCORE = 0.2
"""human's ``detector.minConfidence``: below this face score the mesh is not trusted."""


class FaceMeshLandmarker:
    """human's FaceMesh backend: 468-point mesh per face box and the 30 Rekognition landmarks from it.

    onnx_path: the converted ``facemesh.onnx``. ``rotate``: when no eye points are given, run a first pass
    on the upright crop and, if that face is rolled by more than ``ROTATION_MIN_RAD``, a second pass on a
    crop rotated (and re-centred on the first mesh) to level it, as human does on its tracking path.
    ``threads``: ONNX Runtime intra-op threads (default ``KEENEYE_INTRA_OP_THREADS``).
    """

    name = "human-facemesh"
    landmark_names: tuple[str, ...] = tuple(MESH_LANDMARKS)

    def __init__(self, onnx_path: Path | str, *, rotate: bool = True, threads: int | None = None) -> None:
        self._session: Any = create_session(onnx_path, threads=threads)
        self._input_name: str = self._session.get_inputs()[0].name
        self._outputs = _output_names(self._session)
        self._rotate = rotate
        self._index_groups = [np.asarray(v, dtype=np.int64) for v in MESH_LANDMARKS.values()]
        self._infer(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32))  # warm-up

    def landmarks(self, image: UInt8Image, boxes_xyxy: FloatArray) -> FloatArray:
        """(N, 30, 2) float32 pixels named by ``landmark_names``, one row per box in ``boxes_xyxy`` (N, 4)."""
        mesh, _ = self.mesh(image, boxes_xyxy)
        return named_landmarks(mesh, self._index_groups)

    def mesh(
        self, image: UInt8Image, boxes_xyxy: FloatArray, eye_points: FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """The 468-point mesh and face score for each tight face box.

        image: HxWx3 uint8 RGB. boxes_xyxy: (N, 4) pixels. eye_points: optional (N, 2, 2) pixels, the
        (image-left, image-right) eye centres; when given the crop is rotated so they are level.
        Returns ``mesh`` (N, 468, 3) float32 (x, y in image pixels; z relative depth in the same pixel
        units, about 0 at the face's centre, smaller = nearer the camera) and ``face_score`` (N,) float32
        in [0, 1] (the model's face flag: is this crop a face).
        """
        _check_image(image)
        boxes = _check_boxes(boxes_xyxy)
        if boxes.shape[0] == 0:
            return np.zeros((0, MESH_POINTS, 3), np.float32), np.zeros((0,), np.float32)
        centers, sizes = crop_squares(boxes)
        if eye_points is not None:
            angles = _eye_angles(_check_eyes(eye_points, boxes.shape[0]))
            return self._run(image, centers, sizes, angles)
        mesh, score = self._run(image, centers, sizes, np.zeros(boxes.shape[0]))
        return self._rerun_rolled(image, mesh, score, sizes) if self._rotate else (mesh, score)

    def _rerun_rolled(
        self, image: UInt8Image, mesh: FloatArray, score: FloatArray, sizes: Float64Array
    ) -> tuple[FloatArray, FloatArray]:
        """Second pass, on a level re-centred crop, for faces rolled past ``ROTATION_MIN_RAD``.

        The roll comes from the whole face frame (``pose_from_mesh``), not the eye line: on an upright crop
        of a rolled face the model pulls the eyes toward level (a 25 degree roll read as ~10 degrees by the
        eyes but ~19 by the face frame), and the face frame gets the second crop closer to level.
        """
        angles = np.radians([pose_from_mesh(m)[0] for m in mesh])
        redo = np.abs(angles) > ROTATION_MIN_RAD
        if not np.any(redo):
            return mesh, score
        xy = mesh[redo, :, :2]
        centers = (xy.min(axis=1) + xy.max(axis=1)) / 2.0  # human's findFaceCenter / calculateFaceBox
        mesh2, score2 = self._run(image, centers.astype(np.float64), sizes[redo], angles[redo])
        mesh, score = mesh.copy(), score.copy()
        mesh[redo], score[redo] = mesh2, score2
        return mesh, score

    def _run(
        self, image: UInt8Image, centers: Float64Array, sizes: Float64Array, angles: Float64Array
    ) -> tuple[FloatArray, FloatArray]:
        transforms = [crop_transform(c, s, a) for c, s, a in zip(centers, sizes, angles, strict=True)]
        batch = self._preprocess(image, transforms)
        raw_mesh, face_flag = self._infer(batch)
        return self._postprocess(raw_mesh, transforms, sizes), face_flag

    @staticmethod
    def _preprocess(image: UInt8Image, transforms: list[Float64Array]) -> FloatArray:
        """(N, 192, 192, 3) float32 crops in [0, 1] (human's ``cutAndResize``: bilinear, black outside)."""
        crops = [
            cv2.warpAffine(
                image,
                t,
                (INPUT_SIZE, INPUT_SIZE),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            for t in transforms
        ]
        return np.stack(crops).astype(np.float32) / np.float32(255.0)

    def _infer(self, batch: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Raw model outputs: mesh (N, 468, 3) in crop pixels and face flag (N,) in [0, 1]."""
        out = self._session.run(self._outputs, {self._input_name: batch})
        raw = np.asarray(out[0], np.float32).reshape(-1, MESH_POINTS, 3)
        flag = np.clip(np.asarray(out[1], np.float32).reshape(-1), 0.0, 1.0)
        return raw, flag

    @staticmethod
    def _postprocess(raw: FloatArray, transforms: list[Float64Array], sizes: Float64Array) -> FloatArray:
        """Crop pixels back to image pixels (human's ``transformRawCoords``); z scaled like x and y."""
        out = np.empty_like(raw)
        for i, (t, size) in enumerate(zip(transforms, sizes, strict=True)):
            out[i, :, :2] = raw[i, :, :2] @ t[:, :2].T + t[:, 2]
            out[i, :, 2] = raw[i, :, 2] * (size / INPUT_SIZE)
        return out


class FaceMeshAnalysis:
    """The dense-analysis stage ``FaceAnalyzer`` calls: landmarks, pose, eyes and mouth from the mesh.

    ``analyze(image, faces)`` returns one dict per face with ``landmarks`` (name -> (x, y) pixels, the 30
    Rekognition types), ``pose`` (roll, yaw, pitch) degrees, ``eyes_open`` and ``mouth_open`` (bool,
    confidence 0-1) and ``mesh_score`` in [0, 1]; a face whose mesh scores below ``MIN_FACE_SCORE`` gets
    only ``mesh_score``. The detector's eye points, when every face has them, level the crops.
    """

    name = "human-facemesh"

    def __init__(self, onnx_path: Path | str, *, threads: int | None = None) -> None:
        self.landmarker = FaceMeshLandmarker(onnx_path, threads=threads)

    def analyze(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """One attribute dict per face (see the class docstring), in the order of ``faces``."""
        if not faces:
            return []
        boxes = np.stack([np.asarray(f.xyxy, np.float32) for f in faces])
        eyes = None
        if all(EYE_LEFT in f.landmarks and EYE_RIGHT in f.landmarks for f in faces):
            eyes = np.array([[f.landmarks[EYE_LEFT], f.landmarks[EYE_RIGHT]] for f in faces], np.float32)
        meshes, scores = self.landmarker.mesh(image, boxes, eye_points=eyes)
        return [mesh_attributes(m, float(s)) for m, s in zip(meshes, scores, strict=True)]


def mesh_attributes(mesh: FloatArray, score: float) -> dict[str, Any]:
    """Attributes of one face from its mesh (468, 3) pixels and face score (see ``FaceMeshAnalysis``)."""
    if score < MIN_FACE_SCORE:
        return {"mesh_score": score}
    points = named_landmarks(mesh[None])[0]
    return {
        "landmarks": {n: (float(x), float(y)) for n, (x, y) in zip(MESH_LANDMARKS, points, strict=True)},
        "pose": pose_from_mesh(mesh),
        "eyes_open": eyes_open(mesh),
        "mouth_open": mouth_open(mesh),
        "mesh_score": score,
    }


def crop_squares(boxes_xyxy: npt.ArrayLike, scale: float = BOX_SCALE) -> tuple[Float64Array, Float64Array]:
    """Centres (N, 2) and sides (N,) in pixels of the square crops: boxes enlarged ``scale``x, squarified."""
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    centers = (b[:, :2] + b[:, 2:]) / 2.0
    sides = np.max(np.abs(b[:, 2:] - b[:, :2]), axis=1) * scale
    return centers, np.maximum(sides, 1.0)


def crop_transform(center: Float64Array, size: float, angle_rad: float) -> Float64Array:
    """(2, 3) affine map from crop pixels (0..192) to image pixels.

    The crop is a ``size``-pixel square centred on ``center`` whose x axis points along ``angle_rad``
    (image coordinates, y down, so a positive angle is clockwise as seen). Crop coordinate ``u`` lands at
    ``center + R(angle) @ (u - 96) * size / 192``. The same map samples the crop (pixel ``j`` is read at
    ``u = j``) and maps the model's output back, as human's ``cutAndResize`` / ``transformRawCoords`` pair
    does (human samples with ``size / 191`` steps, a sub-pixel difference).
    """
    k = size / INPUT_SIZE
    cos, sin = math.cos(angle_rad) * k, math.sin(angle_rad) * k
    lin = np.array([[cos, -sin], [sin, cos]])
    offset = np.asarray(center, np.float64) - lin @ np.array([INPUT_SIZE / 2.0, INPUT_SIZE / 2.0])
    return np.hstack([lin, offset.reshape(2, 1)])


def named_landmarks(mesh: FloatArray, index_groups: list[npt.NDArray[np.int64]] | None = None) -> FloatArray:
    """(N, 30, 2) float32 pixels in ``MESH_LANDMARKS`` order from meshes (N, 468, >=2)."""
    groups = index_groups or [np.asarray(v, np.int64) for v in MESH_LANDMARKS.values()]
    m = np.asarray(mesh, np.float32)
    pts = [m[:, g, :2].mean(axis=1) for g in groups]
    return np.stack(pts, axis=1).astype(np.float32)


def pose_from_mesh(mesh: FloatArray) -> tuple[float, float, float]:
    """Head pose ``(roll, yaw, pitch)`` in degrees, each in [-180, 180], from one mesh (468, 3) pixels.

    The face frame is human's (``angles.ts``): x from the oval's image-left point (234) to its image-right
    point (454), y from the top of the forehead (10) to the chin (152), z = x cross y, re-orthogonalised;
    the Euler split is human's (geometrictools YZX). Signs, camera as the reference (the AWS answer on
    Rekognition's Pose, repost.aws QUpMr97ckeQ4ixqY9idkU0fQ; the API reference gives only the range):

    * roll > 0: the face is rotated clockwise as seen in the image (its image-right eye is lower);
    * yaw > 0: the face turns toward the image's right (the subject turns to their own left);
    * pitch > 0: the face tilts down (chin toward the chest); looking up is negative.
    """
    return pose_from_axes(*face_axes(mesh))


def face_axes(mesh: FloatArray) -> tuple[Float64Array, Float64Array, Float64Array]:
    """The face's own unit axes in image coordinates (x right, y down, z away from the camera), from
    one mesh (468, 3): x from the oval's image-left to image-right point, y from forehead to chin, z = x
    cross y, then x re-orthogonalised (human's ``angles.ts``)."""
    m = np.asarray(mesh, np.float64).reshape(MESH_POINTS, 3)
    x_axis = _unit(m[_OVAL_IMG_RIGHT] - m[_OVAL_IMG_LEFT])
    y_axis = _unit(m[_CHIN] - m[_TOP])
    z_axis = _unit(np.cross(x_axis, y_axis))
    return np.cross(y_axis, z_axis), y_axis, z_axis


def pose_from_axes(
    x_axis: Float64Array, y_axis: Float64Array, z_axis: Float64Array
) -> tuple[float, float, float]:
    """``(roll, yaw, pitch)`` degrees from the face's unit axes in image coordinates (see
    ``pose_from_mesh`` for the signs); the Euler split is human's (geometrictools YZX)."""
    # Rows x, y, z of human's matrix; z grows away from the camera (MediaPipe: smaller z is nearer).
    theta_z = math.atan2(y_axis[0], math.hypot(x_axis[0], z_axis[0]))
    theta_y = math.atan2(-z_axis[0], x_axis[0])
    theta_x = math.atan2(-y_axis[2], y_axis[1])
    # human reports (pitch, yaw, roll) = (-theta_x, -theta_y, -theta_z). We keep its roll (clockwise
    # positive) and pitch (chin up negative) and flip its yaw so that turning toward image right is positive.
    return _deg(-theta_z), _deg(theta_y), _deg(-theta_x)


def eye_aspect_ratio(mesh: FloatArray) -> float:
    """Mean over both eyes of (upper-to-lower lid distance) / (corner-to-corner width), 3-D, unitless."""
    m = np.asarray(mesh, np.float64).reshape(MESH_POINTS, 3)
    return float(np.mean([_ear(m, idx) for idx in (_EAR_IMG_LEFT, _EAR_IMG_RIGHT)]))


def mouth_aspect_ratio(mesh: FloatArray) -> float:
    """Inner-lip gap on the centre line (13-14) / outer mouth width (61-291), 3-D, unitless."""
    m = np.asarray(mesh, np.float64).reshape(MESH_POINTS, 3)
    gap = float(np.linalg.norm(m[_LIP_INNER_UP] - m[_LIP_INNER_DOWN]))
    width = float(np.linalg.norm(m[_MOUTH_CORNERS[0]] - m[_MOUTH_CORNERS[1]]))
    return gap / max(width, 1e-6)


def eyes_open(mesh: FloatArray) -> tuple[bool, float]:
    """(open, confidence in [0.5, 1]) from ``eye_aspect_ratio`` against ``EYES_OPEN_THRESHOLD``.

    Confidence is a logistic of the distance to the threshold, for the returned value (0.5 at the threshold).
    """
    return _decide(eye_aspect_ratio(mesh), EYES_OPEN_THRESHOLD, EYES_OPEN_SCALE)


def mouth_open(mesh: FloatArray) -> tuple[bool, float]:
    """(open, confidence in [0.5, 1]) from ``mouth_aspect_ratio`` against ``MOUTH_OPEN_THRESHOLD``."""
    return _decide(mouth_aspect_ratio(mesh), MOUTH_OPEN_THRESHOLD, MOUTH_OPEN_SCALE)


def _decide(ratio: float, threshold: float, scale: float) -> tuple[bool, float]:
    p_open = 1.0 / (1.0 + math.exp(-(ratio - threshold) / scale))
    is_open = ratio > threshold
    return is_open, float(p_open if is_open else 1.0 - p_open)


def _ear(m: Float64Array, idx: tuple[int, int, int, int, int, int]) -> float:
    c1, c2, u1, l1, u2, l2 = (m[i] for i in idx)
    width = float(np.linalg.norm(c1 - c2))
    return float(np.linalg.norm(u1 - l1) + np.linalg.norm(u2 - l2)) / (2.0 * max(width, 1e-6))


def _eye_angles(eyes: Float64Array) -> Float64Array:
    """(N,) radians of the image-left -> image-right eye line; positive = clockwise as seen (y down)."""
    d = eyes[:, 1] - eyes[:, 0]
    return np.arctan2(d[:, 1], d[:, 0])


def _unit(v: Float64Array) -> Float64Array:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _deg(rad: float) -> float:
    return float((math.degrees(rad) + 180.0) % 360.0 - 180.0)


def _output_names(session: Any) -> list[str]:
    """Names of the mesh (last dim 1404) and face-flag (last dim 1) outputs, found by shape as human does."""
    by_dim = {o.shape[-1]: o.name for o in session.get_outputs() if o.shape and isinstance(o.shape[-1], int)}
    if MESH_POINTS * 3 not in by_dim or 1 not in by_dim:
        raise BackendUnavailable("facemesh model lacks the (N, 1404) mesh or (N, 1) face-flag output")
    return [by_dim[MESH_POINTS * 3], by_dim[1]]


def _check_image(image: Any) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImage("expected an HxWx3 uint8 RGB image")


def _check_boxes(boxes_xyxy: Any) -> Float64Array:
    b = np.asarray(boxes_xyxy, np.float64)
    if b.size == 0:
        return np.zeros((0, 4), np.float64)
    if b.ndim != 2 or b.shape[1] != 4 or not np.all(np.isfinite(b)):
        raise InvalidParameter(f"boxes_xyxy must be finite (N, 4) pixels, got shape {b.shape}")
    return b


def _check_eyes(eye_points: Any, n: int) -> Float64Array:
    e = np.asarray(eye_points, np.float64)
    if e.shape != (n, 2, 2) or not np.all(np.isfinite(e)):
        raise InvalidParameter(f"eye_points must be finite (N, 2, 2) pixels for {n} boxes, got {e.shape}")
    return e
