"""Aspect-preserving resize for detector inputs ("letterbox"), and the way back to image pixels.

Squashing a 16:9 frame into a square input makes people thinner than anything the model was trained
on; a letterbox scales both axes by the same factor and pads the rest. The image is placed at the
top-left corner, so mapping a box back is one division. With a model whose H and W are dynamic the
canvas is only as large as the scaled image (rounded up to the network's stride), which also saves
the work a square canvas spends on padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from keeneye.core.types import FloatArray, UInt8Image


@dataclass(frozen=True)
class Placement:
    """How an image sits in a model input: input pixel = image pixel * (scale_x, scale_y)."""

    scale_x: float
    scale_y: float
    width: int  # canvas size, pixels
    height: int

    def to_image(self, xyxy: FloatArray) -> FloatArray:
        """(N, 4) boxes in input pixels -> image pixels."""
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y], np.float32)
        out: FloatArray = (np.asarray(xyxy, np.float32) / scale).astype(np.float32)
        return out


def canvas_size(width: int, height: int, long_side: int, stride: int) -> tuple[int, int]:
    """(W, H) of a canvas that holds the image scaled to ``long_side``, rounded up to ``stride``."""
    scale = long_side / max(width, height)
    return (
        max(stride, math.ceil(width * scale / stride) * stride),
        max(stride, math.ceil(height * scale / stride) * stride),
    )


def letterbox(image: UInt8Image, canvas_w: int, canvas_h: int, fill: int = 0) -> tuple[UInt8Image, Placement]:
    """``image`` (HxWx3 uint8) scaled by one factor to fit ``canvas_w x canvas_h``, top-left, padded with
    ``fill``; returns the canvas (uint8) and its :class:`Placement`."""
    h, w = image.shape[:2]
    scale = min(canvas_w / w, canvas_h / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((canvas_h, canvas_w, 3), fill, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, Placement(new_w / w, new_h / h, canvas_w, canvas_h)


def stretch(image: UInt8Image, canvas_w: int, canvas_h: int) -> tuple[UInt8Image, Placement]:
    """``image`` squashed to ``canvas_w x canvas_h`` (each axis its own factor), as human's ports do."""
    h, w = image.shape[:2]
    out = np.asarray(cv2.resize(image, (canvas_w, canvas_h), interpolation=cv2.INTER_LINEAR), np.uint8)
    return out, Placement(canvas_w / w, canvas_h / h, canvas_w, canvas_h)


__all__ = ["Placement", "canvas_size", "letterbox", "stretch"]
