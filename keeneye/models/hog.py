"""OpenCV's HOG + linear SVM pedestrian detector (Dalal & Triggs), the person-detection baseline.

``cv2.HOGDescriptor.getDefaultPeopleDetector()`` is a 64x128 window trained on INRIA pedestrians. It
needs no model file, which makes it the fallback when the converted CenterNet is not installed, and the
number to beat: on PETS09 S2.L1 it is both slower and less accurate than CenterNet (bench/pets_tracking.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from keeneye.core.types import Detections, FloatArray, UInt8Image
from keeneye.models.align import nms_xyxy

# OpenCV's samples/cpp/peopledetect.cpp shrinks every window the same way before drawing it, because
# the 64x128 window has a margin around the pedestrian: x += 0.1 w, w *= 0.8, y += 0.07 h, h *= 0.8.
# Without it the windows rarely reach IoU 0.5 with tight ground-truth boxes (measured on PETS09:
# recall 0.03 unshrunk vs 0.63 shrunk at the same margin threshold).
_SHRINK_X, _SHRINK_W, _SHRINK_Y, _SHRINK_H = 0.1, 0.8, 0.07, 0.8


def margin_to_score(margin: FloatArray) -> FloatArray:
    """SVM margins (signed distance to the hyperplane, 0 = on it) -> scores in [0, 1]: ``1 / (1 + e^-m)``.

    A plain logistic, not a calibrated probability: margin 0 (OpenCV's default decision) is 0.5,
    margin 1 is 0.73, margin 2 is 0.88. It only gives HOG a [0, 1] score that orders detections like
    the margin and lets one ``score_threshold`` setting serve every detector.
    """
    m = np.clip(np.asarray(margin, np.float32), -80.0, 80.0)
    out: FloatArray = (1.0 / (1.0 + np.exp(-m))).astype(np.float32)
    return out


class HogPersonDetector:
    """Pedestrians with OpenCV's default people HOG + SVM, as an ``ObjectDetector`` (class ``person``).

    detect(image HxWx3 uint8 RGB) -> Detections: xyxy (N, 4) float32 original pixels (the window shrunk
    to the person as OpenCV's sample does, clipped to the image), score (N,) = ``margin_to_score`` of
    the SVM margin, label (N,) all 0 (``person``), best first.

    ``upscale``: the image is resized by this factor first; the window is 64x128, so at 1.0 nobody
    shorter than 128 px is found (PETS09 pedestrians at 480x360 are ~50 px: x2 is needed). ``hit_threshold``
    is the minimum SVM margin (0 = OpenCV's default, score 0.5). Every window above it is kept
    (``groupThreshold=0``) and overlapping windows are merged by greedy NMS at ``nms_iou``, so each
    kept box carries its own margin (OpenCV's ``groupRectangles`` averages boxes instead).
    Cost grows with the upscaled area: ~130 ms per 480x360 frame at x2 on 2 cores.
    """

    name = "opencv-hog-people"
    class_names: tuple[str, ...] = ("person",)

    def __init__(
        self,
        upscale: float = 2.0,
        hit_threshold: float = 0.0,
        nms_iou: float = 0.45,
        win_stride: int = 8,
        scale_step: float = 1.05,
        score_threshold: float = 0.0,
    ) -> None:
        if upscale <= 0 or scale_step <= 1.0 or win_stride <= 0 or win_stride % 8:
            raise ValueError("upscale > 0, scale_step > 1 and win_stride a positive multiple of 8 required")
        self.upscale = upscale
        self.hit_threshold = hit_threshold
        self.nms_iou = nms_iou
        self.win_stride = win_stride
        self.scale_step = scale_step
        self.score_threshold = score_threshold
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))

    def detect(self, image: UInt8Image) -> Detections:
        """Pedestrians in ``image`` (HxWx3 uint8 RGB), best first."""
        windows, margins = self._infer(self._preprocess(image))
        return self._postprocess(windows, margins, image.shape[1], image.shape[0])

    def _preprocess(self, image: UInt8Image) -> UInt8Image:
        """The image resized by ``upscale`` (HOG works on gradients: RGB vs BGR order does not matter)."""
        if self.upscale == 1.0:
            return image
        out = cv2.resize(image, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        return np.asarray(out, np.uint8)

    def _infer(self, image: UInt8Image) -> tuple[FloatArray, FloatArray]:
        """Raw windows (N, 4) x, y, w, h in upscaled pixels and their SVM margins (N,)."""
        stride = (self.win_stride, self.win_stride)
        rects, weights = self._hog.detectMultiScale(
            image,
            hitThreshold=self.hit_threshold,
            winStride=stride,
            padding=stride,
            scale=self.scale_step,
            groupThreshold=0,
        )
        windows = np.asarray(rects, np.float32).reshape(-1, 4)
        margins = np.asarray(weights, np.float32).reshape(-1)
        return windows, margins

    def _postprocess(self, windows: FloatArray, margins: FloatArray, width: int, height: int) -> Detections:
        if windows.shape[0] == 0:
            return Detections.empty()
        x, y, w, h = (windows[:, i] / np.float32(self.upscale) for i in range(4))
        x, y, w, h = x + _SHRINK_X * w, y + _SHRINK_Y * h, w * _SHRINK_W, h * _SHRINK_H
        xyxy = np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)
        scores = margin_to_score(margins)
        keep = np.flatnonzero(scores >= self.score_threshold)
        keep = keep[nms_xyxy(xyxy[keep], scores[keep], self.nms_iou)]
        xyxy = xyxy[keep]
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        return Detections(xyxy, scores[keep], np.zeros(keep.size, np.int64))


__all__ = ["HogPersonDetector", "margin_to_score"]
