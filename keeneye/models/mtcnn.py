"""MTCNN (Zhang et al. 2016) face detector: an image pyramid through three small cascaded networks.

A numpy port of PyPI ``mtcnn`` 0.1.1's ``MTCNN.detect_faces`` (MIT; ``mtcnn/mtcnn.py``), running the
networks converted by ``keeneye.models.convert.mtcnn``. Stage 1 (P-Net) slides a 12x12 window over
an image pyramid (the image scaled by ``12 / min_face_px``, then by ``scale_factor`` until its short
side is under 12 px), keeps windows scoring >= ``thresholds[0]``, merges them (NMS 0.5 per scale, 0.7
over all) and regresses them; stage 2 (R-Net) re-scores 24x24 crops of the squared candidates
(>= ``thresholds[1]``, NMS 0.7); stage 3 (O-Net) re-scores 48x48 crops, regresses the final box and
gives five landmarks; the last NMS (0.7, intersection over the smaller box) keeps the best.

Departures from the reference, on purpose:

* batched crops and vectorised box arithmetic (same numbers);
* the reference's single-candidate quirk (``generate_bounding_box`` flips the regression maps when
  exactly one window passes, inherited from the MATLAB code) is not reproduced: it mis-regresses
  that window;
* ``score_threshold`` filters the final O-Net scores separately from ``thresholds[2]``, so a low
  ``score_threshold`` yields a precision-recall curve.

Boxes: MTCNN's own box runs from the forehead to the chin (about 0.75 as wide as tall), whereas keeneye's
face models that crop from the box (FaceRes, FaceMesh, the expression models) were set up and measured
with BlazeFace's tight square box. With ``box_style="square"`` (the default) each MTCNN box is mapped to
that square: on 150 LFW faces found by both, BlazeFace's side was 1.11 x MTCNN's width and 0.85 x its
height (median; 7 % spread relative to the eye distance for either), its centre 0.016 x width right of and
0.089 x height below MTCNN's. On WIDER FACE (whose boxes are 0.79 as wide as tall) this costs about 1.5
AP points (bench/widerface.py); Rekognition's own boxes are near square too. ``box_style="mtcnn"`` keeps
the reference's boxes (MATLAB-style: the crop for box ``x1..x2`` starts at 0-based pixel ``x1 - 1``).
Landmarks are named by image left/right: MTCNN's ``left_eye`` has the smaller x on an upright face.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from keeneye.core.types import EYE_LEFT, EYE_RIGHT, MOUTH_LEFT, MOUTH_RIGHT, NOSE, Detections, UInt8Image
from keeneye.models.onnx_runtime import create_session

Float64Array = npt.NDArray[np.float64]

MTCNN_LANDMARK_NAMES: tuple[str, ...] = (EYE_LEFT, EYE_RIGHT, NOSE, MOUTH_LEFT, MOUTH_RIGHT)
_STRIDE, _CELL = 2, 12
# MTCNN box -> BlazeFace-style square (see the module docstring): side per width and per height,
# centre shift per width (x) and per height (y).
SQUARE_SIDE_PER_W, SQUARE_SIDE_PER_H = 1.111, 0.846
SQUARE_SHIFT_X, SQUARE_SHIFT_Y = 0.016, 0.089


def square_boxes(xyxy: Float64Array) -> Float64Array:
    """MTCNN boxes (N, 4) -> BlazeFace-style squares (N, 4) pixels (constants in the module docstring)."""
    w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 + SQUARE_SHIFT_X * w
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 + SQUARE_SHIFT_Y * h
    half = (SQUARE_SIDE_PER_W * w + SQUARE_SIDE_PER_H * h) / 4
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def _normalise(image: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    return ((image.astype(np.float32) - np.float32(127.5)) * np.float32(0.0078125)).astype(np.float32)


def nms_mtcnn(
    boxes: Float64Array, scores: Float64Array, threshold: float, method: Literal["union", "min"] = "union"
) -> npt.NDArray[np.int64]:
    """MTCNN's NMS: areas with the +1-pixel convention, overlap over the union or the smaller box;
    kept indices, best score first (ties: the later row first, as the reference's argsort does)."""
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[-1])
        keep.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, np.int64)


def _square(boxes: Float64Array) -> Float64Array:
    """``rerec``: each box made square on its longer side, about its centre."""
    out = boxes.copy()
    w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
    side = np.maximum(w, h)
    out[:, 0] += w * 0.5 - side * 0.5
    out[:, 1] += h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: Float64Array, reg: Float64Array) -> Float64Array:
    """``bbreg``: corners moved by ``reg`` times the box's (+1) width and height."""
    out = boxes.copy()
    w = out[:, 2] - out[:, 0] + 1
    h = out[:, 3] - out[:, 1] + 1
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def crop_boxes(image: UInt8Image, boxes: Float64Array, size: int) -> npt.NDArray[np.float32]:
    """(N, size, size, 3) normalised crops of integer MATLAB-style boxes (``pad`` + INTER_AREA resize).

    Box ``x1..x2`` covers 0-based columns ``x1 - 1 .. x2 - 1``; outside the image is zero.
    """
    h, w = image.shape[:2]
    out = np.empty((boxes.shape[0], size, size, 3), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(np.int64)[:, :4]):
        bw, bh = int(x2 - x1 + 1), int(y2 - y1 + 1)
        tmp = np.zeros((max(bh, 0), max(bw, 0), 3), np.float64)
        sx0, sy0 = max(int(x1) - 1, 0), max(int(y1) - 1, 0)
        sx1, sy1 = min(int(x2), w), min(int(y2), h)
        if sx1 > sx0 and sy1 > sy0 and bw > 0 and bh > 0:
            dx, dy = sx0 - (int(x1) - 1), sy0 - (int(y1) - 1)
            tmp[dy : dy + sy1 - sy0, dx : dx + sx1 - sx0] = image[sy0:sy1, sx0:sx1]
        if bw <= 0 or bh <= 0:
            out[k] = _normalise(np.zeros((size, size, 3)))
            continue
        out[k] = _normalise(cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA))
    return out


class MtcnnDetector:
    """MTCNN from PyPI ``mtcnn`` 0.1.1's weights (three ONNX files: P-, R- and O-Net).

    detect(image HxWx3 uint8 RGB) -> Detections: xyxy (N, 4) pixels clipped to the image, score (N,)
    O-Net face probability, landmarks (N, 5, 2) named ``MTCNN_LANDMARK_NAMES``; best first.

    ``min_face_px``: the smallest face looked for (the pyramid's first scale is 12 / min_face_px, so
    smaller values cost roughly (20 / min_face_px)^2 times the reference's 20 px). ``thresholds``: P-Net
    and R-Net candidate thresholds and the O-Net threshold of the reference (0.6, 0.7, 0.7);
    ``score_threshold`` then filters the final scores. ``exact_pyramid``: resize every pyramid level
    from the full image as the reference does (slower; for the equivalence test), see ``pyramid``.
    ``box_style``: "square" (BlazeFace-like, the default) or "mtcnn" (the reference's boxes).
    ``full_scale_pixels``: on images of more pixels the smallest face looked for grows with the image's
    side (``effective_min_face_px``), so the pyramid costs about what it costs at that size (its first
    level's area stays constant); None: ``min_face_px`` at every size (the cost grows with the pixels).
    """

    name = "mtcnn"
    landmark_names = MTCNN_LANDMARK_NAMES

    def __init__(
        self,
        pnet_path: Path | str,
        rnet_path: Path | str,
        onet_path: Path | str,
        *,
        min_face_px: float = 20.0,
        scale_factor: float = 0.709,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        score_threshold: float = 0.7,
        max_faces: int = 1000,
        exact_pyramid: bool = False,
        box_style: Literal["square", "mtcnn"] = "square",
        full_scale_pixels: int | None = None,
    ) -> None:
        self.min_face_px = float(min_face_px)
        self.full_scale_pixels = full_scale_pixels
        self.scale_factor = float(scale_factor)
        self.thresholds = thresholds
        self.score_threshold = score_threshold
        self.max_faces = max_faces
        self.exact_pyramid = exact_pyramid
        self.box_style = box_style
        self._pnet = create_session(pnet_path)
        self._rnet = create_session(rnet_path)
        self._onet = create_session(onet_path)
        self._warmup()

    def _warmup(self) -> None:
        self._pnet.run(None, {"image": np.zeros((1, 24, 24, 3), np.float32)})
        self._rnet.run(None, {"image": np.zeros((1, 24, 24, 3), np.float32)})
        self._onet.run(None, {"image": np.zeros((1, 48, 48, 3), np.float32)})

    def detect(self, image: UInt8Image) -> Detections:
        """Faces in ``image`` (HxWx3 uint8 RGB), best first."""
        boxes = self._stage1(image)
        if boxes.shape[0]:
            boxes = self._stage2(image, boxes)
        if boxes.shape[0] == 0:
            return Detections.empty(MTCNN_LANDMARK_NAMES)
        boxes, scores, points = self._stage3(image, boxes)
        return self._postprocess(boxes, scores, points, image.shape[1], image.shape[0])

    # -- stages -----------------------------------------------------------------------------------
    def effective_min_face_px(self, height: int, width: int) -> float:
        """``min_face_px``, grown in proportion to the image's side beyond ``full_scale_pixels`` pixels."""
        if self.full_scale_pixels is None or height * width <= self.full_scale_pixels:
            return self.min_face_px
        return self.min_face_px * float(np.sqrt(height * width / self.full_scale_pixels))

    def scales(self, height: int, width: int) -> list[float]:
        """The pyramid: 12 / min face, times scale_factor while the scaled short side is >= 12 px."""
        m = 12.0 / self.effective_min_face_px(height, width)
        min_layer = min(height, width) * m
        out: list[float] = []
        k = 0
        while min_layer >= 12:
            out.append(m * self.scale_factor**k)
            min_layer *= self.scale_factor
            k += 1
        return out

    def pyramid(self, image: UInt8Image) -> list[tuple[float, UInt8Image]]:
        """(scale, image resized to ceil(W * scale) x ceil(H * scale)) for each pyramid level.

        The reference resizes the full image for every level (INTER_AREA, about 1.5 ms each on a 640x480
        photo, 15 ms in all). A level here is resized from the smallest earlier level at least twice its
        size (else from the image): area averaging over >= 2x2 source pixels barely differs, whereas
        chaining every 0.709 step blurred small faces enough to lose some.
        """
        h, w = image.shape[:2]
        levels: list[tuple[float, UInt8Image]] = []
        for scale in self.scales(h, w):
            size = (int(np.ceil(w * scale)), int(np.ceil(h * scale)))
            src = image
            if not self.exact_pyramid:
                src = next((lv for s, lv in reversed(levels) if s >= 2.0 * scale), image)
            levels.append((scale, np.asarray(cv2.resize(src, size, interpolation=cv2.INTER_AREA), np.uint8)))
        return levels

    def _stage1(self, image: UInt8Image) -> Float64Array:
        """Candidate boxes (M, 5): x1, y1, x2, y2 (integers, squared), P-Net score."""
        found: list[Float64Array] = []
        for scale, level in self.pyramid(image):
            prob, reg = self._pnet.run(["prob", "reg"], {"image": _normalise(level)[None]})
            score = prob[0, :, :, 1]
            ys, xs = np.nonzero(score >= self.thresholds[0])
            if ys.size == 0:
                continue
            q1x = np.fix((_STRIDE * xs + 1) / scale)
            q1y = np.fix((_STRIDE * ys + 1) / scale)
            q2x = np.fix((_STRIDE * xs + _CELL) / scale)
            q2y = np.fix((_STRIDE * ys + _CELL) / scale)
            rows = np.column_stack([q1x, q1y, q2x, q2y, score[ys, xs], reg[0, ys, xs]]).astype(np.float64)
            found.append(rows[nms_mtcnn(rows[:, :4], rows[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5))
        rows = np.concatenate(found)
        rows = rows[nms_mtcnn(rows[:, :4], rows[:, 4], 0.7)]
        w = rows[:, 2] - rows[:, 0]
        h = rows[:, 3] - rows[:, 1]
        boxes = np.column_stack(
            [
                rows[:, 0] + rows[:, 5] * w,
                rows[:, 1] + rows[:, 6] * h,
                rows[:, 2] + rows[:, 7] * w,
                rows[:, 3] + rows[:, 8] * h,
                rows[:, 4],
            ]
        )
        boxes = _square(boxes)
        boxes[:, :4] = np.fix(boxes[:, :4])
        return boxes

    def _stage2(self, image: UInt8Image, boxes: Float64Array) -> Float64Array:
        prob, reg = self._rnet.run(["prob", "reg"], {"image": crop_boxes(image, boxes, 24)})
        score = prob[:, 1].astype(np.float64)
        keep = score > self.thresholds[1]
        boxes = np.column_stack([boxes[keep, :4], score[keep]])
        reg = reg[keep].astype(np.float64)
        if boxes.shape[0] == 0:
            return boxes
        pick = nms_mtcnn(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(_regress(boxes[pick], reg[pick]))

    def _stage3(
        self, image: UInt8Image, boxes: Float64Array
    ) -> tuple[Float64Array, Float64Array, Float64Array]:
        boxes = np.fix(boxes).astype(np.float64)
        prob, reg, marks = self._onet.run(
            ["prob", "reg", "landmarks"], {"image": crop_boxes(image, boxes, 48)}
        )
        score = prob[:, 1].astype(np.float64)
        keep = score > min(self.thresholds[2], self.score_threshold)
        boxes, score = boxes[keep, :4], score[keep]
        reg, marks = reg[keep].astype(np.float64), marks[keep].astype(np.float64)
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack(
            [
                w[:, None] * marks[:, 0:5] + boxes[:, 0:1] - 1,
                h[:, None] * marks[:, 5:10] + boxes[:, 1:2] - 1,
            ],
            axis=2,
        )
        boxes = _regress(boxes, reg)
        pick = nms_mtcnn(boxes, score, 0.7, "min")
        return boxes[pick], score[pick], points[pick]

    def _postprocess(
        self, boxes: Float64Array, scores: Float64Array, points: Float64Array, width: int, height: int
    ) -> Detections:
        keep = np.flatnonzero(scores >= self.score_threshold)[: self.max_faces]
        xyxy = square_boxes(boxes[keep]) if self.box_style == "square" else boxes[keep].copy()
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        keep, xyxy = keep[ok], xyxy[ok]
        return Detections(
            xyxy.astype(np.float32),
            np.clip(scores[keep], 0.0, 1.0).astype(np.float32),
            np.zeros(keep.size, np.int64),
            points[keep].astype(np.float32),
            MTCNN_LANDMARK_NAMES,
        )
