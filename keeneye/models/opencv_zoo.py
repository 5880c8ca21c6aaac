"""User-supplied OpenCV-zoo ONNX models: the YuNet face detector and the SFace embedder.

keeneye ships no weights; users point the config at ``face_detection_yunet_2023mar.onnx`` and
``face_recognition_sface_2021dec.onnx`` (or compatible files). The processing mirrors OpenCV's own
wrappers in ``modules/objdetect/src``:

YuNet (``face_detect.cpp``, ``FaceDetectorYN``)
  * input ``input``: **BGR** float32 NCHW, raw 0-255 (``blobFromImage`` with no scaling or swap), the
    image padded bottom/right with zeros to multiples of 32;
  * outputs ``cls_{s}``, ``obj_{s}`` (rows*cols, 1), ``bbox_{s}`` (rows*cols, 4), ``kps_{s}``
    (rows*cols, 10) for strides 8, 16, 32 (optionally with a batch dim of 1), one anchor per cell, row-major;
  * score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1)); box centre = ((col, row) + bbox[:2]) * stride,
    size = exp(bbox[2:]) * stride; keypoint = ((col, row) + kps) * stride;
  * keypoints are "right eye, left eye, nose tip, right mouth corner, left mouth corner" of the
    *subject*, which for an upright frontal face are image-left first: the same order as the ArcFace
    template (FaceRecognizerSF.alignCrop pairs them index by index), so they map onto
    ``FIVE_POINT_NAMES`` (eyeLeft = YuNet's "right eye") unchanged.
  FaceDetectorYN runs at the caller's image size; here an image larger than ``input_size`` is first
  shrunk to fit it (never enlarged), and a model with fixed spatial input dims is padded to those.

SFace (``face_recognize.cpp``, ``FaceRecognizerSF``)
  * ``alignCrop``: Umeyama similarity to the ArcFace 112x112 template, bilinear warp;
  * ``feature``: ``blobFromImage(aligned, 1, (112, 112), 0, swapRB=true)`` on a BGR crop, so the network
    sees **RGB**, raw 0-255, no mean or scale; output (1, 128); ``match`` L2-normalises (done here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from keeneye.core.errors import BackendUnavailable, InvalidParameter
from keeneye.core.types import Detections, Face, FloatArray, UInt8Image
from keeneye.models.align import FIVE_POINT_NAMES, Letterbox, check_rgb_image, fit_size, letterbox, nms_xyxy
from keeneye.models.insightface import ArcFaceEmbedder, fixed_input_wh
from keeneye.models.onnx_runtime import create_session

YUNET_STRIDES: tuple[int, ...] = (8, 16, 32)
YUNET_OUTPUTS: tuple[str, ...] = tuple(
    f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in YUNET_STRIDES
)
_DIVISOR = 32


def _round_up(v: int, m: int = _DIVISOR) -> int:
    return ((v - 1) // m + 1) * m


def yunet_blob(
    image: UInt8Image, input_size: tuple[int, int], fixed_wh: tuple[int, int] | None
) -> tuple[FloatArray, Letterbox]:
    """YuNet input for an HxWx3 uint8 RGB image: (1, 3, Hp, Wp) float32 BGR 0-255, and the letterbox.

    The image is shrunk (never enlarged) to fit ``input_size`` (width, height), or ``fixed_wh`` when the
    model's input is fixed, then padded bottom/right to (Wp, Hp): ``fixed_wh``, or the next multiples of
    32 as FaceDetectorYN's ``padWithDivisor`` does.
    """
    h, w = image.shape[:2]
    box_wh = fixed_wh or input_size
    resized = fit_size((w, h), box_wh, allow_upscale=False)
    canvas_wh = fixed_wh or (_round_up(resized[0]), _round_up(resized[1]))
    box = letterbox(image, resized, canvas_wh)
    blob = box.canvas[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(blob), box


def _flat(out: npt.NDArray[Any] | None, cells: int, width: int, name: str) -> FloatArray:
    arr = np.asarray(out, dtype=np.float32)
    if arr.size != cells * width:
        raise BackendUnavailable(f"YuNet output {name} has shape {arr.shape}, expected {cells} x {width}")
    return arr.reshape(cells, width)


def decode_yunet_stride(
    outs: Mapping[str, npt.NDArray[Any]], stride: int, blob_hw: tuple[int, int], score_threshold: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One stride's cells at or above ``score_threshold``, in blob pixels.

    Returns scores (M,), xyxy (M, 4) and keypoints (M, 5, 2) in YuNet's point order.
    """
    rows, cols = blob_hw[0] // stride, blob_hw[1] // stride
    cells = rows * cols
    cls = np.clip(_flat(outs.get(f"cls_{stride}"), cells, 1, f"cls_{stride}")[:, 0], 0.0, 1.0)
    obj = np.clip(_flat(outs.get(f"obj_{stride}"), cells, 1, f"obj_{stride}")[:, 0], 0.0, 1.0)
    score = np.sqrt(cls * obj)
    idx = np.nonzero(score >= score_threshold)[0]
    cell = np.stack([idx % cols, idx // cols], axis=1).astype(np.float32)  # (col, row) = (x, y)
    bbox = _flat(outs.get(f"bbox_{stride}"), cells, 4, f"bbox_{stride}")[idx]
    center = (cell + bbox[:, :2]) * stride
    half = np.exp(bbox[:, 2:]) * stride / 2.0
    kps = _flat(outs.get(f"kps_{stride}"), cells, 10, f"kps_{stride}")[idx].reshape(-1, 5, 2)
    kps = (kps + cell[:, None, :]) * stride
    return score[idx].astype(np.float32), np.concatenate([center - half, center + half], axis=1), kps


class YuNetDetector:
    """YuNet (2023mar output format) face detector from a user-supplied ONNX file; see the module docstring.

    input_size: (width, height) pixels the image is shrunk to fit (ignored for fixed-size models).
    score_threshold in [0, 1] (OpenCV zoo's default 0.6 is ours too); nms_iou as FaceDetectorYN's
    ``nms_threshold``; top_k caps the detections kept after NMS.
    """

    name: str = "yunet"
    landmark_names: tuple[str, ...] = FIVE_POINT_NAMES

    def __init__(
        self,
        onnx_path: Path | str,
        score_threshold: float = 0.6,
        nms_iou: float = 0.3,
        input_size: tuple[int, int] = (640, 640),
        *,
        top_k: int = 5000,
        threads: int | None = None,
    ) -> None:
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.top_k = int(top_k)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if min(self.input_size) <= 0:
            raise InvalidParameter(f"input_size must be positive (width, height), got {input_size}")
        self._session = create_session(onnx_path, threads)
        inp = self._session.get_inputs()[0]
        self._input_name: str = inp.name
        names = {o.name for o in self._session.get_outputs()}
        missing = [n for n in YUNET_OUTPUTS if n not in names]
        if missing:
            raise BackendUnavailable(f"not a YuNet 2023mar model: outputs {', '.join(missing)} are missing")
        self._fixed_wh = fixed_input_wh(inp.shape)
        if self._fixed_wh is not None and any(v % _DIVISOR for v in self._fixed_wh):
            raise BackendUnavailable(f"YuNet input size {self._fixed_wh} is not a multiple of {_DIVISOR}")
        warm_w, warm_h = self._fixed_wh or (_round_up(self.input_size[0]), _round_up(self.input_size[1]))
        self._infer(np.zeros((1, 3, warm_h, warm_w), dtype=np.float32))

    def detect(self, image: UInt8Image) -> Detections:
        """Faces in an HxWx3 uint8 RGB image, best score first, with 5 named landmarks."""
        check_rgb_image(image)
        blob, box = yunet_blob(image, self.input_size, self._fixed_wh)
        return self._postprocess(self._infer(blob), (blob.shape[2], blob.shape[3]), box)

    def _infer(self, blob: FloatArray) -> dict[str, npt.NDArray[Any]]:
        outs = self._session.run(list(YUNET_OUTPUTS), {self._input_name: blob})
        return dict(zip(YUNET_OUTPUTS, outs, strict=True))

    def _postprocess(
        self, outs: Mapping[str, npt.NDArray[Any]], blob_hw: tuple[int, int], box: Letterbox
    ) -> Detections:
        parts = [decode_yunet_stride(outs, s, blob_hw, self.score_threshold) for s in YUNET_STRIDES]
        score = np.concatenate([p[0] for p in parts])
        if score.size == 0:
            return Detections.empty(FIVE_POINT_NAMES)
        xyxy = box.to_original(np.concatenate([p[1] for p in parts]).reshape(-1, 2, 2)).reshape(-1, 4)
        kps = box.to_original(np.concatenate([p[2] for p in parts]))
        keep = nms_xyxy(xyxy, score, self.nms_iou, self.top_k)
        return Detections(xyxy[keep], score[keep], np.zeros(keep.size, np.int64), kps[keep], FIVE_POINT_NAMES)


class SFaceEmbedder:
    """SFace recogniser (OpenCV zoo) on ArcFace-template 112x112 crops; see the module docstring.

    Identical alignment to ArcFace, so the shared 5-point embedder does the work with SFace's input
    scaling: RGB, raw 0-255 (mean 0, std 1). ``embed`` returns (N, dim) float32 unit rows; dim is 128
    for the zoo's model and is read from the file.
    """

    required_landmarks: tuple[str, ...] = FIVE_POINT_NAMES

    def __init__(self, onnx_path: Path | str, embedder_id: str, *, threads: int | None = None) -> None:
        self._inner = ArcFaceEmbedder(onnx_path, embedder_id, input_mean=0.0, input_std=1.0, threads=threads)
        self.embedder_id = embedder_id
        self.dim = self._inner.dim

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(len(faces), dim) float32 L2-normalised embeddings of the faces in an HxWx3 uint8 RGB image."""
        return self._inner.embed(image, faces)
