"""dlib's 5-point shape predictor and face-recognition ResNet, re-implemented without dlib.

The weights are converted once by :mod:`keeneye.models.convert.dlib` (``.dat`` -> ``.npz`` / ``.onnx``);
this module evaluates them with numpy, OpenCV-free array code and ONNX Runtime, reproducing dlib's own
arithmetic closely enough that landmarks and descriptors match ``dlib.shape_predictor`` /
``dlib.face_recognition_model_v1`` (see ``tests/models/test_dlib_convert.py`` for the measured differences).

Boxes. keeneye boxes are ``xyxy`` float pixels with exclusive right/bottom edges (a box covering pixel
columns 10..19 is ``x1=10, x2=20``). dlib rectangles hold *inclusive* integer corners
(``rectangle(10, .., 19, ..)`` has width 10). :func:`xyxy_to_dlib_rect` maps one to the other by rounding each
edge to the nearest integer and subtracting 1 from the right/bottom edge; :func:`dlib_rect_to_xyxy` is its
inverse on integer boxes. The shape predictor places its mean shape so that (0, 0) -> (left, top) and
(1, 1) -> (right, bottom) of that inclusive rectangle, exactly as dlib does.

Landmarks. dlib's 5 points are, in its order: outer and inner corner of the eye on the image *right*,
outer and inner corner of the eye on the image *left*, and the bottom of the nose (this can be read off the
template in dlib's ``get_face_chip_details``). With keeneye's image-left/right convention (``eyeLeft`` has
the smaller x) that is ``rightEyeRight, rightEyeLeft, leftEyeLeft, leftEyeRight, noseBottom``. dlib returns
integer pixel positions (its ``point`` rounds); :class:`DlibShapeLandmarker` does the same by default so
that chips and descriptors match dlib bit for bit, and offers ``subpixel=True`` for the unrounded positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from keeneye.core.types import (
    LEFT_EYE_LEFT,
    LEFT_EYE_RIGHT,
    RIGHT_EYE_LEFT,
    RIGHT_EYE_RIGHT,
    Face,
    FloatArray,
    UInt8Image,
)
from keeneye.models.base import l2_normalize

#: Bottom of the nose (between the nostrils). Not a Rekognition landmark type; dlib's 5th point.
NOSE_BOTTOM = "noseBottom"
#: dlib's 5 points, in dlib's order, under keeneye's image-left/right naming.
DLIB5_LANDMARK_NAMES: tuple[str, ...] = (
    RIGHT_EYE_RIGHT,
    RIGHT_EYE_LEFT,
    LEFT_EYE_LEFT,
    LEFT_EYE_RIGHT,
    NOSE_BOTTOM,
)

#: Chip geometry dlib's ``compute_face_descriptor`` uses.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: dlib's 5-point chip template (``get_face_chip_details``), unit square, same order as the landmarks.
_TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    np.float64,
)

IntArray = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


# ------------------------------------------------------------------------------------------------------------
# Geometry shared by both models


def xyxy_to_dlib_rect(boxes_xyxy: npt.ArrayLike) -> IntArray:
    """(N, 4) xyxy float pixels (exclusive right/bottom) -> (N, 4) int64 dlib ``(left, top, right, bottom)``.

    Each edge is rounded to the nearest integer (half away from zero, like dlib's own float->int
    conversions); right and bottom then become inclusive (``-1``). ``dlib.rectangle(*row)`` is the
    equivalent dlib object.
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    r = np.floor(b + 0.5).astype(np.int64)
    r[:, 2:] -= 1
    return r


def dlib_rect_to_xyxy(rects: npt.ArrayLike) -> FloatArray:
    """(N, 4) dlib ``(left, top, right, bottom)`` inclusive ints -> (N, 4) float32 xyxy (exclusive edges)."""
    r = np.asarray(rects, dtype=np.float64).reshape(-1, 4).copy()
    r[:, 2:] += 1
    return r.astype(np.float32)


def _similarity(from_pts: F64, to_pts: F64) -> tuple[F64, F64]:
    """Least-squares similarity transform (Umeyama, as dlib's ``find_similarity_transform``), batched.

    from_pts, to_pts: (N, K, 2). Returns ``m`` (N, 2, 2) = scale * rotation and ``t`` (N, 2) with
    ``to ~= m @ from + t``. In 2-D the optimum has the closed form ``m = [[a, -b], [b, a]] / var(from)``
    with ``a`` / ``b`` the mean dot / cross products of the centred points, which is what Umeyama's SVD
    (including dlib's reflection handling) reduces to; computed in float64 like dlib.
    """
    f = np.asarray(from_pts, np.float64)
    t = np.asarray(to_pts, np.float64)
    mf, mt = f.mean(axis=1), t.mean(axis=1)
    fc, tc = f - mf[:, None], t - mt[:, None]
    sigma = (fc**2).sum(axis=(1, 2)) / f.shape[1]
    a = (fc[..., 0] * tc[..., 0] + fc[..., 1] * tc[..., 1]).mean(axis=1)
    b = (fc[..., 0] * tc[..., 1] - fc[..., 1] * tc[..., 0]).mean(axis=1)
    sigma = np.where(sigma == 0, 1.0, sigma)
    m = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2) / sigma[:, None, None]
    trans = mt - np.einsum("nij,nj->ni", m, mf)
    return m, trans


def _round_half_up(x: npt.NDArray[Any]) -> IntArray:
    """dlib's float -> integer point conversion (``floor(x + 0.5)``)."""
    return np.floor(np.asarray(x, np.float64) + 0.5).astype(np.int64)


# ------------------------------------------------------------------------------------------------------------
# Shape predictor


class DlibShapeLandmarker:
    """dlib's ``shape_predictor_5_face_landmarks`` (an ERT cascade) evaluated with numpy.

    ``landmarks(image, boxes_xyxy)`` returns (N, 5, 2) float32 pixels named by ``landmark_names``; equal to
    ``dlib.shape_predictor(image, dlib.rectangle(*xyxy_to_dlib_rect(box)))`` (integer pixels) unless
    ``subpixel=True``, which skips dlib's final rounding.
    """

    name = "dlib-shape5"
    landmark_names: tuple[str, ...] = DLIB5_LANDMARK_NAMES

    def __init__(self, npz_path: Path | str, subpixel: bool = False) -> None:
        with np.load(Path(npz_path)) as z:
            self._initial = z["initial_shape"].astype(np.float32)  # (P, 2)
            self._idx1 = z["split_idx1"].astype(np.int64)  # (C, T, S)
            self._idx2 = z["split_idx2"].astype(np.int64)
            self._thresh = z["split_thresh"].astype(np.float32)
            self._leaves = z["leaf_values"].astype(np.float32)  # (C, T, L, P, 2)
            self._anchor = z["anchor_idx"].astype(np.int64)  # (C, F)
            self._deltas = z["deltas"].astype(np.float32)  # (C, F, 2)
        if self._initial.shape[0] != len(self.landmark_names):
            raise ValueError(f"{npz_path} has {self._initial.shape[0]} parts, expected 5")
        self._depth = int(np.log2(self._leaves.shape[2]))
        c, t, s = self._idx1.shape
        self._idx1_flat = self._idx1.reshape(c, t * s)
        self._idx2_flat = self._idx2.reshape(c, t * s)
        self._thresh_flat = self._thresh.reshape(c, t * s)
        self._leaves_flat = self._leaves.reshape(c, t * (s + 1), -1)
        self.subpixel = subpixel
        self.landmarks(np.zeros((8, 8, 3), np.uint8), np.array([[1, 1, 7, 7]], np.float32))  # warm-up

    def landmarks(self, image: UInt8Image, boxes_xyxy: FloatArray) -> FloatArray:
        """(N, 5, 2) float32 pixel positions for (N, 4) xyxy boxes on an HxWx3 uint8 RGB image."""
        rects = xyxy_to_dlib_rect(boxes_xyxy)
        return self.landmarks_for_rects(image, rects)

    def landmarks_for_rects(self, image: UInt8Image, rects: npt.ArrayLike) -> FloatArray:
        """Like :meth:`landmarks` but for dlib rectangles (N, 4) ``(left, top, right, bottom)`` inclusive."""
        rects_i = np.asarray(rects, np.int64).reshape(-1, 4)
        img = self._preprocess(image)
        if rects_i.shape[0] == 0:
            return np.zeros((0, len(self.landmark_names), 2), np.float32)
        shape = self._infer(img, rects_i)
        return self._postprocess(shape, rects_i)

    @staticmethod
    def _preprocess(image: UInt8Image) -> UInt8Image:
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {img.shape} {img.dtype}")
        return img

    @staticmethod
    def _unnormalize(rects: IntArray) -> tuple[F64, F64]:
        """Scale (N, 2) and offset (N, 2) mapping the unit box onto the inclusive rectangle corners."""
        scale = np.stack([rects[:, 2] - rects[:, 0], rects[:, 3] - rects[:, 1]], -1).astype(np.float64)
        offset = rects[:, :2].astype(np.float64)
        return scale, offset

    @staticmethod
    def _intensity(img: UInt8Image, ix: IntArray, iy: IntArray) -> npt.NDArray[np.float32]:
        """dlib's ``get_pixel_intensity`` of RGB pixels, ``(r + g + b) / 3`` in integers; 0 outside the image.

        Only the sampled pixels are converted, so cost does not grow with the image size.
        """
        h, w = img.shape[:2]
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        rgb = img[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)].astype(np.int32)
        return np.where(inside, rgb.sum(axis=-1) // 3, 0).astype(np.float32)

    def _infer(self, img: UInt8Image, rects: IntArray) -> npt.NDArray[np.float32]:
        """Run the cascade; returns the shape (N, P, 2) float32 in unit-box coordinates."""
        n = rects.shape[0]
        scale, offset = self._unnormalize(rects)
        current = np.repeat(self._initial[None], n, axis=0)  # (N, P, 2) float32
        initial64 = np.repeat(self._initial[None].astype(np.float64), n, axis=0)
        rows = np.arange(n)[:, None]
        _, n_trees, n_splits = self._idx1.shape
        split_base = (np.arange(n_trees) * n_splits)[None, :]  # flat offsets of each tree's nodes
        leaf_base = (np.arange(n_trees) * (n_splits + 1))[None, :]
        for c in range(self._idx1.shape[0]):
            m64, _ = _similarity(initial64, current.astype(np.float64))
            m = m64.astype(np.float32)  # dlib: matrix_cast<float>(tform.get_m())
            d = self._deltas[c]  # (F, 2)
            anchor = current[:, self._anchor[c]]  # (N, F, 2)
            # float32 arithmetic, as dlib's matrix<float,2,2> * vector<float,2> + location(...)
            px = m[:, None, 0, 0] * d[None, :, 0] + m[:, None, 0, 1] * d[None, :, 1] + anchor[..., 0]
            py = m[:, None, 1, 0] * d[None, :, 0] + m[:, None, 1, 1] * d[None, :, 1] + anchor[..., 1]
            ix = _round_half_up(scale[:, 0:1] * px.astype(np.float64) + offset[:, 0:1])
            iy = _round_half_up(scale[:, 1:2] * py.astype(np.float64) + offset[:, 1:2])
            feats = self._intensity(img, ix, iy)  # (N, F)
            idx1, idx2 = self._idx1_flat[c], self._idx2_flat[c]
            thresh = self._thresh_flat[c]
            node = np.zeros((n, n_trees), np.int64)
            for _ in range(self._depth):
                at = split_base + node
                go_left = (feats[rows, idx1[at]] - feats[rows, idx2[at]]) > thresh[at]
                node = 2 * node + 2 - go_left
            leaves = self._leaves_flat[c][leaf_base + node - n_splits]  # (N, T, 2P)
            # dlib adds the trees' outputs one by one in float32; cumsum keeps that order exactly.
            stacked = np.concatenate([current.reshape(n, 1, -1), leaves], axis=1)
            current = np.cumsum(stacked, axis=1, dtype=np.float32)[:, -1].reshape(current.shape)
        return current

    def _postprocess(self, shape: npt.NDArray[np.float32], rects: IntArray) -> FloatArray:
        scale, offset = self._unnormalize(rects)
        pts = scale[:, None, :] * shape.astype(np.float64) + offset[:, None, :]
        if not self.subpixel:
            pts = _round_half_up(pts).astype(np.float64)
        return pts.astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# Face chips (dlib's get_face_chip_details + extract_image_chip)


def chip_details(
    landmarks5: npt.ArrayLike, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> tuple[F64, F64]:
    """dlib's ``get_face_chip_details`` for (N, 5, 2) landmarks: chip rectangles and angles.

    The similarity that best maps the padded 5-point template (scaled to ``size``) onto the landmarks
    gives an angle and a scale; the chip rectangle is ``centered_drect(tform(size/2, size/2), size*scale,
    size*scale)``. Returns ``rects`` (N, 4) float64 drectangles ``(left, top, right, bottom)`` (dlib
    drectangles are inclusive: width = right - left + 1) and ``angles`` (N,) radians.
    """
    pts = np.asarray(landmarks5, np.float64).reshape(-1, 5, 2)
    n = pts.shape[0]
    template = (padding + _TEMPLATE_5) / (2 * padding + 1) * size
    m, t = _similarity(np.repeat(template[None], n, 0), pts)
    p = m[:, :, 0]  # m @ (1, 0)
    angle = np.arctan2(p[:, 1], p[:, 0])
    scale = np.hypot(p[:, 0], p[:, 1])
    centre = np.einsum("nij,j->ni", m, np.array([size / 2.0, size / 2.0])) + t
    half = (size * scale - 1) / 2  # centered_drect: width-- then +-width/2
    rects = np.stack([centre[:, 0] - half, centre[:, 1] - half, centre[:, 0] + half, centre[:, 1] + half], -1)
    return rects, angle


def _area(rect: F64) -> float:
    """Area of a dlib drectangle (inclusive: width = right - left + 1)."""
    w, h = rect[2] - rect[0] + 1, rect[3] - rect[1] + 1
    return 0.0 if w <= 0 or h <= 0 else float(w * h)


def _rect_down(rect: F64) -> F64:
    """``pyramid_down<2>::rect_down``: each corner p -> p/2 - (1.25, 0.75)."""
    off = np.array([1.25, 0.75, 1.25, 0.75])
    return np.asarray(np.asarray(rect, np.float64) / 2.0 - off, np.float64)


def _rotated_corners(rect: F64, angle: float) -> F64:
    """(4, 2) corners tl, tr, bl, br of ``rect`` rotated by ``angle`` about its centre (``rotate_point``)."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    c = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    d = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64) - c
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = np.stack([cos * d[:, 0] - sin * d[:, 1], sin * d[:, 0] + cos * d[:, 1]], -1)
    return np.asarray(rotated + c, np.float64)


def pyramid_down2(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """dlib's ``pyramid_down<2>`` on an RGB image: separable [1 4 6 4 1] filter, keep every other pixel.

    (H, W, 3) uint8 -> ((H-3)//2, (W-3)//2, 3) uint8; integer arithmetic, final ``// 256`` like dlib.
    Output pixel (r, c) is centred on input (2r+2, 2c+2).
    """
    a = np.asarray(img, np.int32)
    if a.shape[0] <= 8 or a.shape[1] <= 8:
        return np.zeros((0, 0, 3), np.uint8)  # dlib returns an empty image for tiny inputs
    w5 = (1, 4, 6, 4, 1)
    nc, nr = (a.shape[1] - 3) // 2, (a.shape[0] - 3) // 2
    temp = np.zeros((a.shape[0], nc, 3), np.int32)
    for j, wj in enumerate(w5):
        temp += wj * a[:, j : j + 2 * nc : 2]
    down = np.zeros((nr, nc, 3), np.int32)
    for j, wj in enumerate(w5):
        down += wj * temp[j : j + 2 * nr : 2]
    return (down // 256).astype(np.uint8)


def _bilinear(img: npt.NDArray[Any], x: F64, y: F64) -> npt.NDArray[np.float64]:
    """dlib's ``interpolate_bilinear`` on an (H, W, 3) image at float coords; 0 where a tap is outside."""
    h, w = img.shape[:2]
    left = np.floor(x).astype(np.int64)
    top = np.floor(y).astype(np.int64)
    ok = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    lc, tc = np.clip(left, 0, max(w - 2, 0)), np.clip(top, 0, max(h - 2, 0))
    lr = (x - left)[..., None]
    tb = (y - top)[..., None]
    im = img.astype(np.float64)
    if w < 2 or h < 2:
        return np.zeros((*x.shape, 3), np.float64)
    tl, tr = im[tc, lc], im[tc, lc + 1]
    bl, br = im[tc + 1, lc], im[tc + 1, lc + 1]
    v = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
    return np.where(ok[..., None], v, 0.0)


def _extract_chip(img: npt.NDArray[np.uint8], rect: F64, angle: float, size: int) -> npt.NDArray[np.uint8]:
    """One chip, following dlib's ``extract_image_chips`` step by step.

    dlib crops a bounding box around the rotated chip rectangle (grown by a margin), builds a
    ``pyramid_down<2>`` pyramid of that crop when the chip is much smaller than the rectangle (so bilinear
    sampling does not alias), picks the level whose rectangle is still larger than the chip, and samples it
    bilinearly along the rotated grid whose corner pixels hit the rectangle's corners.
    """
    h, w = img.shape[:2]
    n_pixels = size * size
    depth, grow = 0, 2.0
    down = _rect_down(rect)
    while _area(down) > n_pixels:
        down = _rect_down(down)
        depth += 1
        grow = grow * 2 + 2
    rot = _rotated_corners(rect, angle)
    bbox_d = np.array(
        [rot[:, 0].min() - grow, rot[:, 1].min() - grow, rot[:, 0].max() + grow, rot[:, 1].max() + grow]
    )
    bbox_d = np.array([max(bbox_d[0], 0), max(bbox_d[1], 0), min(bbox_d[2], w - 1), min(bbox_d[3], h - 1)])
    bbox = np.floor(bbox_d + 0.5).astype(np.int64)  # drectangle -> rectangle rounds each edge
    if bbox[0] > bbox[2] or bbox[1] > bbox[3]:
        return np.zeros((size, size, 3), np.uint8)  # chip entirely outside the image
    src: npt.NDArray[np.uint8] = img[bbox[1] : bbox[3] + 1, bbox[0] : bbox[2] + 1]
    local = np.asarray(rect, np.float64) - np.array([bbox[0], bbox[1], bbox[0], bbox[1]], np.float64)
    for _ in range(depth):  # level = depth - 1: the deepest level dlib built
        src = pyramid_down2(src)
        local = _rect_down(local)
    corners = _rotated_corners(local, angle)
    tl, tr, bl = corners[0], corners[1], corners[2]
    grid = np.arange(size, dtype=np.float64)
    cols, rows = np.meshgrid(grid, grid)
    ax, ay = (tr - tl) / (size - 1), (bl - tl) / (size - 1)
    x = tl[0] + ax[0] * cols + ay[0] * rows
    y = tl[1] + ax[1] * cols + ay[1] * rows
    v = _bilinear(src, x, y)
    return np.clip(v, 0, 255).astype(np.uint8)  # dlib's assign_pixel: clamp, then truncate


def extract_face_chips(
    image: UInt8Image, landmarks5: npt.ArrayLike, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> npt.NDArray[np.uint8]:
    """(N, size, size, 3) uint8 aligned chips, as ``dlib.get_face_chip(image, shape, size, padding)``.

    landmarks5: (N, 5, 2) pixels in dlib's order (:data:`DLIB5_LANDMARK_NAMES`). Geometry, pyramid,
    bilinear sampling and the float->uint8 conversion (clamp, truncate) all follow dlib. (dlib's shortcut of
    a plain copy when the chip is an unrotated, unscaled crop is not reproduced; it never happens with
    real landmarks.)
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {img.shape} {img.dtype}")
    rects, angles = chip_details(landmarks5, size, padding)
    out = np.zeros((rects.shape[0], size, size, 3), np.uint8)
    for i in range(rects.shape[0]):
        out[i] = _extract_chip(img, rects[i], float(angles[i]), size)
    return out


# ------------------------------------------------------------------------------------------------------------
# ResNet embedder


class DlibResNetEmbedder:
    """dlib's face-recognition ResNet (converted to ONNX) on dlib-aligned 150x150 chips.

    ``embed`` returns (N, 128) float32 L2-normalised vectors. With ``flip_tta`` the raw descriptors of each
    chip and its mirror image are averaged before normalising; the vectors stay in the same space (same
    network, same alignment), so the ``embedder_id`` does not change and such vectors may be compared with
    and stored next to plain ones.
    """

    embedder_id = "dlib-resnet-v1"
    dim = 128
    required_landmarks: tuple[str, ...] = DLIB5_LANDMARK_NAMES

    def __init__(self, onnx_path: Path | str, flip_tta: bool = False, threads: int | None = None) -> None:
        from keeneye.models.onnx_runtime import create_session

        self.flip_tta = flip_tta
        self._session = create_session(onnx_path, threads=threads)
        self._input = self._session.get_inputs()[0].name
        self.embed_chips(np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), np.uint8))  # warm-up

    def chips(self, image: UInt8Image, faces: Sequence[Face]) -> npt.NDArray[np.uint8]:
        """(N, 150, 150, 3) uint8 chips, aligned like dlib's ``get_face_chip(img, shape, 150, 0.25)``."""
        return extract_face_chips(image, self._preprocess(faces))

    def _preprocess(self, faces: Sequence[Face]) -> npt.NDArray[np.float64]:
        """(N, 5, 2) landmark pixels in dlib's order, from each face's named landmarks."""
        try:
            pts = [[face.landmarks[name] for name in self.required_landmarks] for face in faces]
        except KeyError as exc:
            raise ValueError(
                f"face is missing landmark {exc.args[0]!r} needed by {self.embedder_id}"
            ) from exc
        return np.asarray(pts, np.float64).reshape(-1, 5, 2)

    def embed_chips(self, chips: npt.ArrayLike) -> FloatArray:
        """Raw dlib descriptors (N, 128) float32 for (N, 150, 150, 3) RGB chips (uint8 or float 0..255)."""
        x = np.asarray(chips, np.float32).reshape(-1, CHIP_SIZE, CHIP_SIZE, 3)
        if x.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        return self._infer(x)

    def _infer(self, x: npt.NDArray[np.float32]) -> FloatArray:
        out = self._session.run(None, {self._input: np.ascontiguousarray(x)})[0]
        return np.asarray(out, np.float32)

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(N, 128) float32 L2-normalised embeddings of ``faces`` (which carry the 5 dlib landmarks)."""
        if len(faces) == 0:
            return np.zeros((0, self.dim), np.float32)
        chips = self.chips(image, faces)
        return self._postprocess(chips)

    def _postprocess(self, chips: npt.NDArray[np.uint8]) -> FloatArray:
        if not self.flip_tta:
            return l2_normalize(self.embed_chips(chips))
        n = chips.shape[0]
        raw = self.embed_chips(np.concatenate([chips, chips[:, :, ::-1]], 0))
        return l2_normalize((raw[:n] + raw[n:]) / 2)
