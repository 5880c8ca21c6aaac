"""A deterministic model backend for fast tests: one stand-in for each Protocol in ``keeneye.models.base``.

No weights and no runtime: each stand-in answers from the pixels by a rule simple enough that a test can
predict its output exactly, so tests of the layers above the models (analysis, collections, tracking,
the APIs) run in milliseconds and fail only for their own reasons. Configuration never selects them;
tests build them directly (``tests/factories.py`` composes them into a face pipeline).

=========================  ==================================================================================
``CentreFaceDetector``     one face, the middle half of any image that is not black, with eyes and nose
``SquaresFaceDetector``    one face per white (255) rectangle, its top-left corner as its one point
``NoFaceDetector``         never finds a face (for code that is handed faces and must not look for them)
``BrightBoxDetector``      a ``person`` around every bright pixel of the frame, or nothing
``BoxLandmarker``          five points at fixed fractions of each box
``PixelEmbedder``          the image's first 48 values as a unit vector: equal images, equal vectors
``TableEmbedder``          fixed unit vectors, one per face in turn; counts the faces it embedded
``FixedAttributeClassifier``  the same attributes for every face
=========================  ==================================================================================
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from keeneye.core.types import (
    EYE_LEFT,
    EYE_RIGHT,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE,
    Detections,
    Face,
    FloatArray,
    UInt8Image,
)
from keeneye.models.base import l2_normalize

CENTRE_LANDMARKS: tuple[str, ...] = (EYE_LEFT, EYE_RIGHT, NOSE)


class CentreFaceDetector:
    """One face in the middle of any image brighter than black (mean pixel value 5 or more).

    The box is the middle half of the image on each axis, ``[W/4, H/4, 3W/4, 3H/4]``, score 0.99; the
    eyes sit at ``(0.4W, 0.4H)`` and ``(0.6W, 0.4H)``, the nose at ``(0.5W, 0.5H)`` (a frontal face, so
    the pose from points is level). A black image (mean < 5) has no face: what "no face found" paths need.
    """

    name = "centre"

    def detect(self, image: UInt8Image) -> Detections:
        h, w = image.shape[:2]
        if image.mean() < 5:
            return Detections.empty(CENTRE_LANDMARKS)
        box = np.array([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]], np.float32)
        points = np.array([[[w * 0.4, h * 0.4], [w * 0.6, h * 0.4], [w * 0.5, h * 0.5]]], np.float32)
        return Detections(
            box, np.array([0.99], np.float32), landmarks=points, landmark_names=CENTRE_LANDMARKS
        )


class SquaresFaceDetector:
    """One face per white rectangle: a run of pixels whose red channel is exactly 255.

    Each rectangle is read from its top-left pixel rightwards and downwards; its box is exact in pixels
    and its one landmark (``eyeLeft``) is that top-left corner, so a test can check where boxes and
    points land after any mapping (tiles, crops, scaling). Score 0.9, or 0.5 for a rectangle under
    ``small_px`` wide, so a threshold has something to drop.
    """

    name = "squares"

    def __init__(self, small_px: int = 8) -> None:
        self.small_px = small_px

    def detect(self, image: UInt8Image) -> Detections:
        mask = image[:, :, 0] == 255
        boxes, scores = [], []
        seen = np.zeros_like(mask)
        for y, x in zip(*np.nonzero(mask), strict=True):
            if seen[y, x]:
                continue
            x2 = x
            while x2 < mask.shape[1] and mask[y, x2]:
                x2 += 1
            y2 = y
            while y2 < mask.shape[0] and mask[y2, x]:
                y2 += 1
            seen[y:y2, x:x2] = True
            boxes.append([x, y, x2, y2])
            scores.append(0.9 if x2 - x >= self.small_px else 0.5)
        names = (EYE_LEFT,)
        if not boxes:
            return Detections.empty(names)
        b = np.array(boxes, np.float32)
        return Detections(
            b, np.array(scores, np.float32), landmarks=b[:, None, :2].copy(), landmark_names=names
        )


class NoFaceDetector:
    """Finds no face in any image: for code handed its faces (track identification) that must not look."""

    name = "none"

    def detect(self, image: UInt8Image) -> Detections:
        return Detections.empty(())


class BrightBoxDetector:
    """An object detector of one class, ``person``: one box around every pixel whose red channel is over
    128 (score 0.9), or no detection. A synthetic video of one white box moving on black is then one
    person walking, detected exactly."""

    name = "bright-box"
    class_names: tuple[str, ...] = ("person",)

    def detect(self, image: UInt8Image) -> Detections:
        ys, xs = np.nonzero(image[:, :, 0] > 128)
        if len(xs) == 0:
            return Detections.empty()
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        return Detections(box, np.array([0.9], np.float32))


# Where BoxLandmarker puts each point, as (x, y) fractions of the box: a frontal face.
BOX_FRACTIONS: dict[str, tuple[float, float]] = {
    EYE_LEFT: (0.3, 0.4),
    EYE_RIGHT: (0.7, 0.4),
    NOSE: (0.5, 0.58),
    MOUTH_LEFT: (0.35, 0.78),
    MOUTH_RIGHT: (0.65, 0.78),
}


class BoxLandmarker:
    """Five points (eyes, nose, mouth corners) at fixed fractions of each box (``BOX_FRACTIONS``):
    landmarks for faces whose detector gives none, without looking at the pixels."""

    name = "box-fractions"
    landmark_names: tuple[str, ...] = tuple(BOX_FRACTIONS)

    def landmarks(self, image: UInt8Image, boxes_xyxy: FloatArray) -> FloatArray:
        """(N, 5, 2) pixels for (N, 4) boxes."""
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        fractions = np.array(list(BOX_FRACTIONS.values()), np.float32)  # (5, 2)
        origin, size = boxes[:, None, :2], (boxes[:, 2:] - boxes[:, :2])[:, None, :]
        points: FloatArray = (origin + fractions[None] * size).astype(np.float32)
        return points


class PixelEmbedder:
    """The image's first 16 pixels (48 values, centred on 127.5) as a unit vector, the same for every face
    of the image: equal images give equal vectors (similarity 100), random images nearly orthogonal
    ones. ``embedder_id`` names it, so collections bound to another id refuse its vectors."""

    dim = 48
    required_landmarks: tuple[str, ...] = ()

    def __init__(self, embedder_id: str = "pixels-v1") -> None:
        self.embedder_id = embedder_id

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        v = image.reshape(-1)[: self.dim].astype(np.float32) - 127.5
        v /= np.linalg.norm(v) or 1.0
        return np.tile(v, (len(faces), 1)).astype(np.float32)


class TableEmbedder:
    """Fixed vectors (rows of ``vectors``, L2-normalised): the i-th face of a call gets row i (cycling
    when there are more faces than rows), whatever the image. ``calls`` counts the faces embedded so far,
    for tests of how often a pipeline pays for an embedding."""

    def __init__(
        self,
        vectors: npt.ArrayLike,
        embedder_id: str = "table-v1",
        required_landmarks: tuple[str, ...] = (),
    ) -> None:
        table = np.asarray(vectors, np.float32)
        self.vectors = l2_normalize(table.reshape(1, -1) if table.ndim == 1 else table)
        self.dim = int(self.vectors.shape[1])
        self.embedder_id = embedder_id
        self.required_landmarks = required_landmarks
        self.calls = 0

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        self.calls += len(faces)
        rows: FloatArray = self.vectors[np.arange(len(faces)) % len(self.vectors)]
        return rows


# FixedAttributeClassifier's attributes unless told others: a smiling adult (keys as in analysis/faces.py).
DEFAULT_ATTRIBUTES: dict[str, Any] = {
    "emotions": {"happy": 0.8, "neutral": 0.2},
    "age": 30.0,
    "gender": ("Female", 0.9),
}


class FixedAttributeClassifier:
    """The same attributes for every face (a deep copy each time, so a stage that edits one face's
    attributes does not edit the others'); ``provides`` lists their keys."""

    name = "fixed"

    def __init__(self, attributes: Mapping[str, Any] | None = None) -> None:
        self.attributes = dict(DEFAULT_ATTRIBUTES if attributes is None else attributes)
        self.provides: tuple[str, ...] = tuple(self.attributes)

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        return [copy.deepcopy(self.attributes) for _ in faces]
