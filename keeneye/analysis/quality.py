"""Image quality of a face crop: brightness and sharpness on Rekognition's 0-100 scale.

Rekognition does not publish its formulas; these are ours and documented in docs/attributes.md:

* brightness: mean luma (BT.601) of the face box, 0 (black) .. 100 (white).
* sharpness: variance of the Laplacian of the face resized to 112 px wide (so it does not depend on
  face size), mapped through ``100 * (1 - exp(-var / SHARPNESS_SCALE))``: a blurred face scores low,
  a crisp one approaches 100.
"""

from __future__ import annotations

import cv2
import numpy as np

from keeneye.core.types import FloatArray, UInt8Image

SHARPNESS_SCALE = 300.0
_NORM_WIDTH = 112


def crop(image: UInt8Image, xyxy: FloatArray) -> UInt8Image:
    """The part of ``image`` inside the box, clipped to the image (at least 1x1)."""
    h, w = image.shape[:2]
    x1 = int(np.clip(np.floor(xyxy[0]), 0, w - 1))
    y1 = int(np.clip(np.floor(xyxy[1]), 0, h - 1))
    x2 = int(np.clip(np.ceil(xyxy[2]), x1 + 1, w))
    y2 = int(np.clip(np.ceil(xyxy[3]), y1 + 1, h))
    return image[y1:y2, x1:x2]


def brightness(face: UInt8Image) -> float:
    luma = face.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return float(np.clip(luma.mean() / 255.0 * 100.0, 0.0, 100.0))


def sharpness(face: UInt8Image) -> float:
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    if w != _NORM_WIDTH:
        new_h = max(1, round(h * _NORM_WIDTH / w))
        interp = cv2.INTER_AREA if w > _NORM_WIDTH else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (_NORM_WIDTH, new_h), interpolation=interp)
    var = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    return float(100.0 * (1.0 - np.exp(-var / SHARPNESS_SCALE)))


def face_quality(image: UInt8Image, xyxy: FloatArray) -> dict[str, float]:
    face = crop(image, xyxy)
    return {"brightness": brightness(face), "sharpness": sharpness(face)}
