"""Model-input geometry shared by face backends: 5-point alignment, letterboxing and NMS.

Alignment follows the convention both InsightFace (``insightface.utils.face_align.norm_crop``) and
OpenCV (``FaceRecognizerSF::alignCrop`` in ``modules/objdetect/src/face_recognize.cpp``) use for their
112x112 recognisers: a least-squares similarity transform (Umeyama, 1991) from five detected points to
the fixed ArcFace template, then a bilinear ``warpAffine`` with a black border.

Why Umeyama and not ``cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)``: both references fit all five
points by plain least squares (skimage's ``SimilarityTransform.estimate`` and OpenCV's hand-written
``getSimilarityTransformMatrix`` are both Umeyama), and the embedders were trained on crops made that
way. LMEDS fits on random subsets and keeps the median-error one: with only five points it discards
real information, is not guaranteed to match the training crops, and depends on a random sampler.

Points are in pixels, ``(x, y)`` with the centre of the top-left pixel at ``(0, 0)`` (OpenCV's convention).
Landmark order is always eyeLeft, eyeRight, nose, mouthLeft, mouthRight with *image* left/right
(see ``keeneye.core.types``): the template's first point has the smaller x.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from keeneye.core.errors import InvalidImage, InvalidParameter
from keeneye.core.types import EYE_LEFT, EYE_RIGHT, MOUTH_LEFT, MOUTH_RIGHT, NOSE, FloatArray, UInt8Image

Float64Array = npt.NDArray[np.float64]

FIVE_POINT_NAMES: tuple[str, ...] = (EYE_LEFT, EYE_RIGHT, NOSE, MOUTH_LEFT, MOUTH_RIGHT)
"""The canonical 5-point order every 112x112 aligner here expects."""

ARCFACE_TEMPLATE_112: FloatArray = np.array(
    [
        [38.2946, 51.6963],  # eyeLeft (image left)
        [73.5318, 51.5014],  # eyeRight
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # mouthLeft
        [70.7299, 92.2041],  # mouthRight
    ],
    dtype=np.float32,
)
"""(5, 2) pixels: InsightFace's ``arcface_dst``, also hard-coded in OpenCV's FaceRecognizerSF."""


def estimate_similarity(src_pts: npt.ArrayLike, dst_pts: npt.ArrayLike) -> Float64Array:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src_pts`` onto ``dst_pts``.

    src_pts, dst_pts: (K, 2) pixels, K >= 2, matched row by row. Returns the (2, 3) float64 matrix ``M``
    with ``dst ~= M[:, :2] @ src + M[:, 2]``. Umeyama's closed form; reflections are excluded.
    Raises InvalidParameter when the source points are degenerate (all equal).
    """
    src = np.asarray(src_pts, dtype=np.float64)
    dst = np.asarray(dst_pts, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or src.shape[0] < 2:
        raise InvalidParameter(
            f"need matching (K, 2) point sets with K >= 2, got {src.shape} and {dst.shape}"
        )
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = float((src_c**2).sum(axis=1).mean())
    if not np.isfinite(src_var) or src_var < 1e-12:
        raise InvalidParameter("alignment points are degenerate (all in one place)")
    cov = dst_c.T @ src_c / src.shape[0]
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # best orthogonal fit is a reflection: flip the weakest axis
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float(s @ d) / src_var
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - scale * rot @ src_mean
    return m


def warp_face(image: UInt8Image, m: npt.ArrayLike, size: int | tuple[int, int]) -> UInt8Image:
    """Warp ``image`` (HxWx3 uint8) with the (2, 3) matrix ``m`` into a ``size`` crop.

    size: an int for a square crop or ``(width, height)`` pixels. Bilinear, black outside the image,
    as both references do. Returns (height, width, 3) uint8 in the input's channel order.
    """
    w, h = (size, size) if isinstance(size, int) else size
    mat = np.asarray(m, dtype=np.float64).reshape(2, 3)
    out = cv2.warpAffine(
        np.ascontiguousarray(image),
        mat,
        (int(w), int(h)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.asarray(out, dtype=np.uint8)


def template_for(size: int) -> FloatArray:
    """The ArcFace template for a ``size`` x ``size`` crop: (5, 2) pixels, scaled from 112.

    InsightFace scales the template the same way for multiples of 112; it is a plain scaling here for
    every size (InsightFace's special 128 case adds an 8 px shift instead; no keeneye embedder uses it).
    """
    if size <= 0:
        raise InvalidParameter(f"crop size must be positive, got {size}")
    return (ARCFACE_TEMPLATE_112 * (size / 112.0)).astype(np.float32)


def align_5point(image: UInt8Image, points: npt.ArrayLike, size: int = 112) -> UInt8Image:
    """ArcFace-style aligned crop: (size, size, 3) uint8, same channel order as ``image``.

    points: (5, 2) pixels in ``FIVE_POINT_NAMES`` order (eyeLeft, eyeRight, nose, mouthLeft, mouthRight;
    image-left first).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (5, 2):
        raise InvalidParameter(f"align_5point needs (5, 2) points, got {pts.shape}")
    return warp_face(image, estimate_similarity(pts, template_for(size)), size)


def face_points(landmarks: Mapping[str, tuple[float, float]], names: Sequence[str]) -> FloatArray:
    """The named landmarks of one face as a (K, 2) float32 array in ``names`` order (pixels)."""
    missing = [n for n in names if n not in landmarks]
    if missing:
        raise InvalidParameter(f"face lacks landmarks needed for alignment: {', '.join(missing)}")
    return np.array([landmarks[n] for n in names], dtype=np.float32).reshape(len(names), 2)


def check_rgb_image(image: UInt8Image) -> None:
    """Raise InvalidImage unless ``image`` is a non-empty HxWx3 uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise InvalidImage(f"expected a non-empty HxWx3 uint8 image, got {image.dtype} {image.shape}")


@dataclass(frozen=True)
class Letterbox:
    """A resized image pasted at the top-left of a zero canvas, and how to map results back.

    canvas: (canvas_h, canvas_w, 3) uint8; scale_x / scale_y: resized size over original size, so
    original coordinates are model coordinates divided by them (no offset: padding is bottom/right).
    """

    canvas: UInt8Image
    scale_x: float
    scale_y: float

    def to_original(self, xy: FloatArray) -> FloatArray:
        """Map (..., 2) model-input pixels back to original-image pixels."""
        return (xy / np.array([self.scale_x, self.scale_y], dtype=np.float32)).astype(np.float32)


def fit_size(
    image_wh: tuple[int, int], box_wh: tuple[int, int], allow_upscale: bool = True
) -> tuple[int, int]:
    """(width, height) of an image resized to fit ``box_wh`` keeping its aspect ratio.

    Rounds down like InsightFace's SCRFD ``detect`` (the fitting side is exact); never below 1 px.
    """
    w, h = image_wh
    bw, bh = box_wh
    if not allow_upscale and w <= bw and h <= bh:
        return w, h
    im_ratio = h / w
    if im_ratio > bh / bw:
        new_h, new_w = bh, int(bh / im_ratio)
    else:
        new_w, new_h = bw, int(bw * im_ratio)
    return max(1, new_w), max(1, new_h)


def letterbox(image: UInt8Image, resized_wh: tuple[int, int], canvas_wh: tuple[int, int]) -> Letterbox:
    """Resize ``image`` to ``resized_wh`` (bilinear) and pad it bottom/right with zeros to ``canvas_wh``."""
    rw, rh = resized_wh
    cw, ch = canvas_wh
    if rw > cw or rh > ch:
        raise InvalidParameter(f"resized size {resized_wh} does not fit canvas {canvas_wh}")
    h, w = image.shape[:2]
    src = np.ascontiguousarray(image)  # OpenCV rejects negative-stride views such as img[:, :, ::-1]
    resized = src if (rw, rh) == (w, h) else cv2.resize(src, (rw, rh), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((ch, cw, 3), dtype=np.uint8)
    canvas[:rh, :rw] = resized
    return Letterbox(canvas, rw / w, rh / h)


def nms_xyxy(
    xyxy: FloatArray, score: FloatArray, iou_threshold: float, top_k: int = 0
) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression; returns kept row indices, best score first.

    xyxy: (N, 4) pixels; score: (N,). A box is dropped when its IoU with a kept, higher-scoring box
    exceeds ``iou_threshold``. Areas are ``(x2 - x1) * (y2 - y1)`` (no +1, as cv2.dnn.NMSBoxes does for
    float boxes). Ties keep the earlier row. ``top_k > 0`` caps the number kept.
    """
    order = np.argsort(-score, kind="stable")
    x1, y1, x2, y2 = (xyxy[:, i] for i in range(4))
    areas = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    keep: list[int] = []
    while order.size and (top_k <= 0 or len(keep) < top_k):
        i, rest = int(order[0]), order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)
