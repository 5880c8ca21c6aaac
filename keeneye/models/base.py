"""Small typed interfaces every model backend implements.

A backend is chosen by configuration (see ``keeneye.config``) and built by ``keeneye.models.registry``.
All images are ``HxWx3 uint8 RGB``. Backends follow a ``_preprocess / _infer / _postprocess`` split
internally and warm up on load, so the first request is not slow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from keeneye.core.types import Detections, Face, FloatArray, UInt8Image


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces. Returns boxes, scores in [0, 1] and, where the model gives them, named landmarks."""

    name: str

    def detect(self, image: UInt8Image) -> Detections: ...


@runtime_checkable
class FaceLandmarker(Protocol):
    """Refines landmarks for given face boxes: returns (N, K, 2) pixels named by ``landmark_names``."""

    name: str
    landmark_names: tuple[str, ...]

    def landmarks(self, image: UInt8Image, boxes_xyxy: FloatArray) -> FloatArray: ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Maps aligned faces to L2-normalised vectors (N, dim) float32.

    ``required_landmarks`` names the points (in ``Face.landmarks``) the embedder aligns with;
    the pipeline guarantees they are present before calling ``embed``.
    """

    embedder_id: str
    dim: int
    required_landmarks: tuple[str, ...]

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray: ...


@runtime_checkable
class FaceAttributeClassifier(Protocol):
    """Adds backend-neutral attributes to each face (e.g. ``emotions``, ``age_range``, ``gender``).

    Returns one dict per face; keys are documented in ``keeneye.analysis.faces``.
    """

    name: str
    provides: tuple[str, ...]

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]: ...


@runtime_checkable
class ObjectDetector(Protocol):
    """Finds objects of named classes (e.g. COCO ``person``); ``label`` indexes ``class_names``."""

    name: str
    class_names: tuple[str, ...]

    def detect(self, image: UInt8Image) -> Detections: ...


def l2_normalize(x: npt.NDArray[Any], axis: int = -1) -> FloatArray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    out: FloatArray = (x / np.maximum(n, 1e-12)).astype(np.float32)
    return out
