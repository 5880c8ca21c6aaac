"""Box geometry, written once: the point a person stands on, box centres, IoU, and pixel boxes as ratios of
the frame. Boxes are ``xyxy`` pixels (x1, y1, x2, y2; y down) unless a name says otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keeneye.core.types import FloatArray

Box = Sequence[float] | FloatArray
Point = tuple[float, float]


def anchor(xyxy: Box) -> Point:
    """Bottom-centre of a box: where a person stands (lines and zones count this point)."""
    return ((float(xyxy[0]) + float(xyxy[2])) / 2.0, float(xyxy[3]))


def centre(xyxy: Box) -> Point:
    return ((float(xyxy[0]) + float(xyxy[2])) / 2.0, (float(xyxy[1]) + float(xyxy[3])) / 2.0)


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4) -> (N, M) float32."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float32)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: FloatArray = (inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)).astype(np.float32)
    return out


def box_iou(a: Box, b: Box) -> float:
    """IoU of two boxes (0 when their union is empty)."""
    ix = max(0.0, min(float(a[2]), float(b[2])) - max(float(a[0]), float(b[0])))
    iy = max(0.0, min(float(a[3]), float(b[3])) - max(float(a[1]), float(b[1])))
    inter = ix * iy
    union = (float(a[2]) - float(a[0])) * (float(a[3]) - float(a[1]))
    union += (float(b[2]) - float(b[0])) * (float(b[3]) - float(b[1])) - inter
    return inter / union if union > 0 else 0.0


def to_ratio(xyxy: Box, width: int, height: int, *, clip: bool = False) -> tuple[float, float, float, float]:
    """A pixel box as ``(left, top, width, height)`` ratios of a ``width`` x ``height`` frame; with ``clip``
    the box is cut to the frame first (detector boxes may reach past the border)."""
    x1, y1, x2, y2 = (float(v) for v in xyxy[:4])
    if clip:
        x1, x2 = max(0.0, x1), min(float(width), x2)
        y1, y2 = max(0.0, y1), min(float(height), y2)
        return (x1 / width, y1 / height, max(0.0, x2 - x1) / width, max(0.0, y2 - y1) / height)
    return (x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height)
