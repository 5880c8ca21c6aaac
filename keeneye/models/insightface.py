"""User-supplied InsightFace ONNX models: the SCRFD face detector and ArcFace-style embedders.

keeneye ships no InsightFace weights; users point the config at their own files (e.g. ``det_10g.onnx``,
``scrfd_2.5g_bnkps.onnx``, ``w600k_r50.onnx``). Pre- and post-processing follow InsightFace's
``python-package/insightface/model_zoo/scrfd.py`` and ``arcface_onnx.py``:

SCRFD
  * letterbox: resize keeping aspect ratio to fit ``input_size`` (up- or down-scaling), paste at the
    top-left of a black canvas, so detections map back by a plain division;
  * blob = ``(pixel - 127.5) / 128``, NCHW float32, **RGB** (InsightFace feeds ``cv2.imread`` BGR through
    ``blobFromImage(..., swapRB=True)``; keeneye images are RGB already, so no swap here);
  * outputs per stride: scores (N, 1), distance boxes (N, 4) and, for ``*kps`` models, keypoints (N, 10),
    each optionally with a leading batch dim of 1; N = rows * cols * anchors, anchor centres laid out
    row-major with the anchors of one location adjacent; distances are in stride units;
  * 6/9 outputs: strides 8, 16, 32 with 2 anchors; 10/15 outputs: strides 8..128 with 1 anchor.
    InsightFace relies on the output *order* (all scores, then boxes, then keypoints); here each tensor
    is classified by its shape instead, so exports that interleave per stride also load;
  * keypoints come in the ArcFace template order: image-left eye first (``FIVE_POINT_NAMES``).

ArcFace
  * 5-point similarity alignment to the 112x112 ``arcface_dst`` template (``keeneye.models.align``);
  * blob = ``(pixel - 127.5) / 127.5``, NCHW float32, RGB. InsightFace switches to raw pixels (mean 0,
    std 1) when the graph itself starts with ``Sub``/``_minus`` and ``Mul``/``_mul`` nodes (converted
    MXNet models); ``input_mean=None`` reproduces that check;
  * output (N, D), L2-normalised here (InsightFace normalises at comparison time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from keeneye.core.errors import BackendUnavailable, InvalidParameter
from keeneye.core.types import Detections, Face, FloatArray, UInt8Image
from keeneye.models.align import (
    FIVE_POINT_NAMES,
    Letterbox,
    align_5point,
    check_rgb_image,
    face_points,
    fit_size,
    letterbox,
    nms_xyxy,
)
from keeneye.models.base import l2_normalize
from keeneye.models.onnx_runtime import create_session

_SCRFD_VARIANTS: dict[int, tuple[tuple[int, ...], int, bool]] = {
    # number of outputs -> (strides, anchors per location, has keypoints); as InsightFace's _init_vars
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}
_SCRFD_ROLES: dict[int, str] = {1: "score", 4: "bbox", 10: "kps"}
_EMBED_MAX_BATCH = 32


def fixed_input_wh(shape: Sequence[Any]) -> tuple[int, int] | None:
    """(width, height) of an NCHW input whose spatial dims are fixed ints, else None (dynamic)."""
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return int(shape[3]), int(shape[2])
    return None


def _rows(out: npt.NDArray[Any]) -> FloatArray:
    """An SCRFD output as (N, C) float32, dropping a leading batch dim of 1."""
    arr = np.asarray(out, dtype=np.float32)
    return arr[0] if arr.ndim == 3 else arr


@dataclass(frozen=True)
class ScrfdLayout:
    """Which output index holds what, per stride. ``kps_idx`` is None for models without keypoints."""

    strides: tuple[int, ...]
    num_anchors: int
    score_idx: tuple[int, ...]
    bbox_idx: tuple[int, ...]
    kps_idx: tuple[int, ...] | None


def _stride_for_rows(
    rows: int, strides: Sequence[int], anchors: int, input_hw: tuple[int, int]
) -> int | None:
    h, w = input_hw
    for s in strides:
        if math.ceil(h / s) * math.ceil(w / s) * anchors == rows:
            return s
    return None


def detect_scrfd_layout(shapes: Sequence[tuple[int, ...]], input_hw: tuple[int, int]) -> ScrfdLayout:
    """Classify SCRFD outputs by their actual shapes for an input of ``input_hw`` (height, width) pixels.

    shapes: the output array shapes in session order, each (N, C) or (1, N, C). The role comes from C
    (1 score, 4 box, 10 keypoints), the stride from N. Raises BackendUnavailable for anything else.
    """
    if len(shapes) not in _SCRFD_VARIANTS:
        raise BackendUnavailable(f"not an SCRFD model: expected 6, 9, 10 or 15 outputs, got {len(shapes)}")
    strides, anchors, has_kps = _SCRFD_VARIANTS[len(shapes)]
    found: dict[tuple[str, int], int] = {}
    for i, shape in enumerate(shapes):
        core = shape[1:] if len(shape) == 3 and shape[0] == 1 else shape
        role = _SCRFD_ROLES.get(core[-1]) if len(core) == 2 else None
        stride = _stride_for_rows(core[0], strides, anchors, input_hw) if role else None
        if role is None or stride is None or (role, stride) in found:
            raise BackendUnavailable(f"SCRFD output {i} has unexpected shape {shape} for input {input_hw}")
        found[(role, stride)] = i
    roles = ("score", "bbox", "kps") if has_kps else ("score", "bbox")
    if len(found) != len(roles) * len(strides) or any(r not in roles for r, _ in found):
        raise BackendUnavailable(
            f"SCRFD outputs {list(shapes)} do not form one score/bbox/kps set per stride"
        )
    idx = {r: tuple(found[(r, s)] for s in strides) for r in roles}
    return ScrfdLayout(strides, anchors, idx["score"], idx["bbox"], idx.get("kps"))


def anchor_centers(input_hw: tuple[int, int], stride: int, anchors: int) -> FloatArray:
    """(rows * cols * anchors, 2) anchor centres (x, y) in input pixels, in SCRFD's output order."""
    rows, cols = math.ceil(input_hw[0] / stride), math.ceil(input_hw[1] / stride)
    ys, xs = np.mgrid[:rows, :cols]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, anchors, axis=0)


def _checked_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise InvalidParameter(f"input_size must be positive (width, height), got {size}")
    return w, h


class ScrfdDetector:
    """SCRFD face detector from a user-supplied InsightFace ONNX file (see the module docstring).

    input_size: (width, height) pixels the image is letterboxed into; a model with fixed spatial input
    dims uses those instead (as InsightFace does). score_threshold in [0, 1]; nms_iou is the IoU above
    which a lower-scoring overlapping box is dropped. ``detect`` returns xyxy pixels of the original
    image and, for keypoint models, (N, 5, 2) landmarks named ``FIVE_POINT_NAMES``.
    """

    name: str = "scrfd"

    def __init__(
        self,
        onnx_path: Path | str,
        score_threshold: float = 0.5,
        nms_iou: float = 0.4,
        input_size: tuple[int, int] = (640, 640),
        *,
        threads: int | None = None,
    ) -> None:
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self._session = create_session(onnx_path, threads)
        inp = self._session.get_inputs()[0]
        self._input_name: str = inp.name
        self._output_names: list[str] = [o.name for o in self._session.get_outputs()]
        self.input_size = fixed_input_wh(inp.shape) or _checked_size(input_size)
        w, h = self.input_size
        warm = self._infer(np.zeros((1, 3, h, w), dtype=np.float32))
        self.layout = detect_scrfd_layout([o.shape for o in warm], (h, w))
        self.landmark_names: tuple[str, ...] = FIVE_POINT_NAMES if self.layout.kps_idx else ()
        self._centers = {s: anchor_centers((h, w), s, self.layout.num_anchors) for s in self.layout.strides}

    def detect(self, image: UInt8Image) -> Detections:
        """Faces in an HxWx3 uint8 RGB image, best score first."""
        check_rgb_image(image)
        blob, box = self._preprocess(image)
        return self._postprocess(self._infer(blob), box)

    def _preprocess(self, image: UInt8Image) -> tuple[FloatArray, Letterbox]:
        """Letterbox into ``input_size``; blob (1, 3, H, W) float32 RGB, ``(x - 127.5) / 128``."""
        h, w = image.shape[:2]
        box = letterbox(image, fit_size((w, h), self.input_size), self.input_size)
        blob = (box.canvas.astype(np.float32) - 127.5) / 128.0
        return np.ascontiguousarray(blob.transpose(2, 0, 1)[None]), box

    def _infer(self, blob: FloatArray) -> list[npt.NDArray[Any]]:
        return list(self._session.run(self._output_names, {self._input_name: blob}))

    def _decode_stride(self, outs: Sequence[npt.NDArray[Any]], k: int) -> tuple[FloatArray, ...]:
        """Scores (M,), boxes (M, 4) and keypoints (M, 5, 2) in input pixels above the threshold."""
        lay, stride = self.layout, self.layout.strides[k]
        score = _rows(outs[lay.score_idx[k]]).reshape(-1)
        keep = np.nonzero(score >= self.score_threshold)[0]
        centers = self._centers[stride][keep]
        dist = _rows(outs[lay.bbox_idx[k]])[keep] * stride
        boxes = np.concatenate([centers - dist[:, :2], centers + dist[:, 2:]], axis=1)
        if lay.kps_idx is None:
            return score[keep], boxes
        kps = _rows(outs[lay.kps_idx[k]])[keep].reshape(-1, 5, 2) * stride + centers[:, None, :]
        return score[keep], boxes, kps

    def _postprocess(self, outs: Sequence[npt.NDArray[Any]], box: Letterbox) -> Detections:
        parts = [self._decode_stride(outs, k) for k in range(len(self.layout.strides))]
        score = np.clip(np.concatenate([p[0] for p in parts]), 0.0, 1.0).astype(np.float32)
        if score.size == 0:
            return Detections.empty(self.landmark_names)
        xyxy = box.to_original(np.concatenate([p[1] for p in parts]).reshape(-1, 2, 2)).reshape(-1, 4)
        keep = nms_xyxy(xyxy, score, self.nms_iou)
        landmarks = None
        if self.layout.kps_idx is not None:
            landmarks = box.to_original(np.concatenate([p[2] for p in parts]))[keep]
        return Detections(
            xyxy[keep], score[keep], np.zeros(keep.size, np.int64), landmarks, self.landmark_names
        )


def insightface_input_scaling(onnx_path: Path | str) -> tuple[float, float]:
    """(mean, std) InsightFace's ``ArcFaceONNX`` would use for this file.

    Converted MXNet models normalise inside the graph (their first nodes are named ``Sub``/``_minus``
    and ``Mul``/``_mul``) and take raw pixels: (0, 1); every other model gets (127.5, 127.5).
    """
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    names = [node.name for node in graph.node[:8]]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 127.5)


class ArcFaceEmbedder:
    """ArcFace-style recogniser on 5-point aligned crops (InsightFace conventions; module docstring).

    Crop size comes from the model's input (112 when dynamic); ``dim`` from its output. input_mean /
    input_std: pixel scaling ``(x - mean) / std`` on RGB; both None means InsightFace's own choice
    (``insightface_input_scaling``). ``embed`` returns (N, dim) float32 rows of unit L2 norm.
    """

    required_landmarks: tuple[str, ...] = FIVE_POINT_NAMES

    def __init__(
        self,
        onnx_path: Path | str,
        embedder_id: str,
        *,
        input_mean: float | None = None,
        input_std: float | None = None,
        threads: int | None = None,
    ) -> None:
        self.embedder_id = embedder_id
        if input_mean is None or input_std is None:
            input_mean, input_std = insightface_input_scaling(onnx_path)
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self._session = create_session(onnx_path, threads)
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self._input_name: str = inp.name
        self._output_name: str = out.name
        self.crop_size = self._crop_size(inp.shape)
        self._max_batch = inp.shape[0] if isinstance(inp.shape[0], int) else _EMBED_MAX_BATCH
        warm = self._infer(np.zeros((1, 3, self.crop_size, self.crop_size), dtype=np.float32))
        declared = out.shape[-1] if out.shape else None
        self.dim = int(declared) if isinstance(declared, int) else int(warm.shape[1])
        if warm.shape[1] != self.dim:
            raise BackendUnavailable(
                f"embedder output has {warm.shape[1]} values, the model declares {self.dim}"
            )

    @staticmethod
    def _crop_size(shape: Sequence[Any]) -> int:
        fixed = fixed_input_wh(shape)
        if fixed is None:
            return 112
        if fixed[0] != fixed[1]:
            raise BackendUnavailable(f"embedder input must be square, got {fixed}")
        return fixed[0]

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(len(faces), dim) float32 L2-normalised embeddings of the faces in an HxWx3 uint8 RGB image."""
        check_rgb_image(image)
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        blob = self._preprocess(image, faces)
        step = max(1, self._max_batch)
        out = np.concatenate([self._infer(blob[i : i + step]) for i in range(0, len(blob), step)])
        return l2_normalize(out)

    def _preprocess(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(N, 3, S, S) float32 RGB blob of aligned crops, ``(x - input_mean) / input_std``."""
        crops = np.stack(
            [align_5point(image, face_points(f.landmarks, FIVE_POINT_NAMES), self.crop_size) for f in faces]
        )
        blob = (crops.astype(np.float32) - self.input_mean) / self.input_std
        return np.ascontiguousarray(blob.transpose(0, 3, 1, 2))

    def _infer(self, blob: FloatArray) -> FloatArray:
        """(n, D) float32 raw outputs for an (n, 3, S, S) blob."""
        out = self._session.run([self._output_name], {self._input_name: blob})[0]
        return np.asarray(out, dtype=np.float32).reshape(blob.shape[0], -1)
