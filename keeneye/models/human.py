"""Backends for the @vladmandic/human TF.js models, converted to ONNX (``keeneye.models.convert.tfjs``).

The pre- and post-processing is a Python port of human 3.x (MIT): ``src/face/blazeface.ts``,
``src/face/facemeshutil.ts``, ``src/face/faceres.ts``, ``src/gear/emotion.ts``, ``src/face/antispoof.ts``,
``src/face/liveness.ts``, ``src/object/centernet.ts`` and ``src/face/mobilefacenet.ts``. The converted
graphs keep TF.js's layout: NHWC float32 input, the same output shapes.

How human feeds its face models: blazeface gives a tight face box; human enlarges it 1.4x about its
centre, makes it square (``enlargeBox`` + ``squarifyBox``), cuts that square out of the image
(zero outside) and resizes it to 256x256 with values in 0..1 (``cutAndResize``). Emotion, faceres,
antispoof and liveness each resize that face tensor to their own input size. ``face_tensor`` does the
same from ``Face.xyxy``, so these classifiers need no landmarks; they expect a *tight* face box such
as blazeface gives (a detector whose boxes are much larger or smaller shifts their inputs).

One module of ~850 lines, on purpose: it is a port of one upstream code base whose backends share its
pre-processing (``face_tensor``, ``crop_and_resize``) and conventions, and reading it side by side with
human's sources is how it is checked; split, each part would import the others' helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from keeneye.core.errors import InvalidParameter
from keeneye.core.geometry import box_iou as box_iou  # re-exported
from keeneye.core.types import (
    EYE_LEFT,
    EYE_RIGHT,
    MOUTH_CENTER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE,
    Detections,
    Face,
    FloatArray,
    UInt8Image,
)
from keeneye.models.align import align_5point, face_points, nms_xyxy
from keeneye.models.base import l2_normalize
from keeneye.models.letterbox import Placement, canvas_size, letterbox
from keeneye.models.onnx_runtime import create_session

# Blazeface's outer points are the ear tragions; not a Rekognition type, so named here.
EAR_LEFT = "earLeft"
EAR_RIGHT = "earRight"
# Blazeface keypoint order (human's ``blazeFaceLandmarks``: leftEye, rightEye, nose, mouth, leftEar,
# rightEar). Human's "leftEye" is keypoint 0, which lies at the smaller x on an upright face, i.e.
# the *image*-left eye, so it maps straight onto keeneye's ``eyeLeft`` (checked on real photos).
BLAZEFACE_LANDMARK_NAMES: tuple[str, ...] = (EYE_LEFT, EYE_RIGHT, NOSE, MOUTH_CENTER, EAR_LEFT, EAR_RIGHT)

# Label order of human's grayscale (oarriaga) emotion model, from ``src/gear/emotion.ts``.
EMOTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The 80 COCO classes in the order of human's ``src/object/labels.ts`` (class id = index).
COCO_CLASS_NAMES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

# Mouth-corner half-spread per unit of eye vector in the ArcFace 112x112 template (keeneye.models.align):
# (70.73 - 41.55) / (73.53 - 38.29) / 2.
_MOUTH_HALF_WIDTH_PER_EYE_DISTANCE = 0.414

FACE_CROP_SIZE = 256  # human's face tensor (facemesh input size) that the face classifiers resize from
FACE_CROP_SCALE = 1.4  # human's ``face.detector.scale``


# ----------------------------------------------------------------------------------------- helpers


def _warmup(session: Any) -> None:
    """Run the session once on zeros so the first real call is not slow (shapes from the model)."""
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feeds[inp.name] = np.zeros(shape, np.float32)
    session.run(None, feeds)


def _input_hw(session: Any) -> tuple[int, int]:
    """(height, width) of the session's NHWC image input."""
    shape = session.get_inputs()[0].shape
    return int(shape[1]), int(shape[2])


def _batch_is_dynamic(session: Any) -> bool:
    dim = session.get_inputs()[0].shape[0]
    return not (isinstance(dim, int) and dim > 0)


def _resize(image: npt.NDArray[Any], width: int, height: int) -> FloatArray:
    """Bilinear resize to ``width x height`` (like ``tf.image.resizeBilinear``, no antialias), float32."""
    out = cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(out, dtype=np.float32)


def _linear_taps(dst: int, src: int, canvas: int, offset: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """cv2's INTER_LINEAR along one axis, from a ``canvas`` of pixels (the image's ``src`` of them start
    at ``offset``, the rest are zeros) to ``dst``: per output pixel its two source pixels (image
    indices, clipped) and their weights (zero for canvas pixels outside the image)."""
    where = (np.arange(dst, dtype=np.float64) + 0.5) * (canvas / dst) - 0.5
    first = np.floor(where).astype(np.int64)
    frac = (where - first).astype(np.float32)
    frac[first < 0] = 0
    first[first < 0] = 0
    frac[first >= canvas - 1] = 0
    first[first >= canvas - 1] = canvas - 1
    taps = np.stack([first, np.minimum(first + 1, canvas - 1)], axis=1) - offset
    weights = np.stack([1 - frac, frac], axis=1).astype(np.float32)
    weights[(taps < 0) | (taps >= src)] = 0
    return np.clip(taps, 0, src - 1), weights


def resize_on_canvas(
    image: UInt8Image, size: int, canvas_w: int, canvas_h: int, pad_x: int, pad_y: int
) -> FloatArray:
    """(size, size, 3) float32: what :func:`_resize` gives for ``image`` placed at (``pad_x``, ``pad_y``)
    on a black ``canvas_w x canvas_h`` canvas (the same numbers, to float rounding), computed from the
    2 x 2 source pixels each output pixel reads, so no padded or float copy of the whole image is made:
    for a 7900x5000 photo that copy was 750 MB, for a 256-pixel model input."""
    h, w = image.shape[:2]
    xs, wx = _linear_taps(size, w, canvas_w, pad_x)
    ys, wy = _linear_taps(size, h, canvas_h, pad_y)
    if w <= 4 * size:
        return _resize_separable(image, size, xs, wx, ys, wy)
    picked = image[ys.reshape(-1)][:, xs.reshape(-1)].astype(np.float32)  # (2 size, 2 size, 3)
    grid = picked.reshape(size, 2, size, 2, -1)
    rows = grid[:, :, :, 0] * wx[None, None, :, 0, None] + grid[:, :, :, 1] * wx[None, None, :, 1, None]
    out: FloatArray = (rows[:, 0] * wy[:, 0, None, None] + rows[:, 1] * wy[:, 1, None, None]).astype(
        np.float32, copy=False
    )
    return out


def _resize_separable(
    image: UInt8Image,
    size: int,
    xs: npt.NDArray[np.int64],
    wx: FloatArray,
    ys: npt.NDArray[np.int64],
    wy: FloatArray,
) -> FloatArray:
    """:func:`resize_on_canvas` for images at most 4 x ``size`` wide (video frames): rows first, then
    columns, over the output rows and columns that fall on the image only (the letterbox's bands stay
    zero). The same numbers (the two weighted sums commute); ~3x faster on a 640x360 frame for BlazeFace's
    256 input (5 -> 1.7 ms), whose float copy of 2 x ``size`` source rows is then at most ~6 MB."""
    w = image.shape[1]
    out = np.zeros((size, size, image.shape[2]), np.float32)
    rows, cols = np.flatnonzero(wy.any(axis=1)), np.flatnonzero(wx.any(axis=1))
    if rows.size == 0 or cols.size == 0:
        return out
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    n = r1 - r0
    g = image[ys[r0:r1].reshape(-1)].astype(np.float32).reshape(n, 2, w, -1)
    v = g[:, 0] * wy[r0:r1, 0, None, None] + g[:, 1] * wy[r0:r1, 1, None, None]  # (n, w, 3)
    c = v[:, xs[c0:c1].reshape(-1)].reshape(n, c1 - c0, 2, -1)
    out[r0:r1, c0:c1] = c[:, :, 0] * wx[None, c0:c1, 0, None] + c[:, :, 1] * wx[None, c0:c1, 1, None]
    return out


def crop_and_resize(image: UInt8Image, xyxy: npt.ArrayLike, size: int) -> FloatArray:
    """``tf.image.cropAndResize`` of one box: (size, size, 3) float32 in 0..255, zeros outside the image.

    TF samples the box corners exactly: source x = x1n*(W-1) + u*(x2n-x1n)*(W-1)/(size-1) for output
    column u, with x1n = x1/W (and likewise for y), so it is one affine map.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(xyxy, np.float64).reshape(4))
    sx = (x2 - x1) / w * (w - 1) / max(size - 1, 1)
    sy = (y2 - y1) / h * (h - 1) / max(size - 1, 1)
    m = np.array([[sx, 0.0, x1 / w * (w - 1)], [0.0, sy, y1 / h * (h - 1)]], dtype=np.float64)
    out = cv2.warpAffine(
        image,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return out.astype(np.float32)


def human_face_box(xyxy: npt.ArrayLike, scale: float = FACE_CROP_SCALE) -> tuple[float, float, float, float]:
    """Human's face crop box: ``xyxy`` enlarged ``scale`` times about its centre, then squared and rounded.

    Port of ``enlargeBox`` followed by ``squarifyBox`` (facemeshutil.ts). Pixels in, pixels out.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(xyxy, np.float64).reshape(4))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = scale * max(abs(x2 - x1), abs(y2 - y1)) / 2
    return (
        float(round(cx - half)),
        float(round(cy - half)),
        float(round(cx + half)),
        float(round(cy + half)),
    )


def face_tensor(image: UInt8Image, xyxy: npt.ArrayLike, size: int = FACE_CROP_SIZE) -> FloatArray:
    """Human's face tensor for one face: (size, size, 3) float32 RGB in 0..1 (``cutAndResize``)."""
    return crop_and_resize(image, human_face_box(xyxy), size) / np.float32(255.0)


def _sigmoid(x: npt.NDArray[Any]) -> FloatArray:
    out: FloatArray = (1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))).astype(np.float32)
    return out


def _clip_boxes(xyxy: FloatArray, width: int, height: int) -> FloatArray:
    out = xyxy.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


# ---------------------------------------------------------------------------------------- blazeface


def blazeface_anchors(input_size: int = 256) -> FloatArray:
    """Anchor centres in input pixels, (A, 2) x, y: strides size/16 and size/8 with 2 and 6 anchors.

    Port of ``generateAnchors`` (facemeshutil.ts); for 256 this is 16*16*2 + 8*8*6 = 896 anchors.
    """
    rows: list[tuple[float, float]] = []
    for stride, per_cell in ((input_size // 16, 2), (input_size // 8, 6)):
        cells = (input_size + stride - 1) // stride
        for gy in range(cells):
            for gx in range(cells):
                rows.extend([(stride * (gx + 0.5), stride * (gy + 0.5))] * per_cell)
    return np.asarray(rows, dtype=np.float32)


@dataclass(frozen=True)
class _Letterbox:
    """How an image was placed in the square model input: input = (image + pad) * scale (per axis)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float


class BlazeFaceDetector:
    """MediaPipe BlazeFace "back" (256x256) face detector as packaged by human.

    detect(image HxWx3 uint8 RGB) -> Detections with xyxy (N, 4) tight face boxes in original pixels
    (clipped to the image), score (N,) sigmoid in [0, 1], landmarks (N, 6, 2) pixels named
    ``BLAZEFACE_LANDMARK_NAMES`` (eyeLeft, eyeRight, nose, mouthCenter, earLeft, earRight).

    ``resize``: human squashes the whole image to 256x256 ("stretch"); "letterbox" pads the short side
    with black first, which keeps faces' aspect ratio (human's optional ``detector.square``).
    Limits: the whole image is seen at 256x256. A synthetic test (one face shrunk into a 1024 px
    canvas) found faces down to ~3% of the long side (~8 model pixels, score 0.78), 2.5% at 0.58 and
    none at 1.6%: in a 1920 px frame faces under ~60 px wide are lost (tile big frames if needed).

    ``score_threshold`` 0.65 is chosen from data (letterbox): on the 43 labelled faces of dlib's
    testing + training photos the true faces score 0.54-0.96 (recall 42/43 at 0.65, 43/43 at 0.5);
    on the 11 images of faces/no_face it leaves one detection, a cat's face (0.78), where 0.5 also
    keeps a coffee cup (0.60), the rocket (0.53) and the horse (0.50).
    """

    name = "human-blazeface"
    landmark_names = BLAZEFACE_LANDMARK_NAMES

    def __init__(
        self,
        onnx_path: Path | str,
        score_threshold: float = 0.65,
        nms_iou: float = 0.3,
        max_faces: int = 100,
        resize: Literal["letterbox", "stretch"] = "letterbox",
    ) -> None:
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_faces = max_faces
        self.resize = resize
        self._session = create_session(onnx_path)
        self._input_name = self._session.get_inputs()[0].name
        self._size = _input_hw(self._session)[0]
        self._anchors = blazeface_anchors(self._size)
        _warmup(self._session)

    def detect(self, image: UInt8Image) -> Detections:
        """Faces in ``image`` (HxWx3 uint8 RGB), best first."""
        tensor, placement = self._preprocess(image)
        raw = self._infer(tensor)
        return self._postprocess(raw, placement, image.shape[1], image.shape[0])

    def _preprocess(self, image: UInt8Image) -> tuple[FloatArray, _Letterbox]:
        """(1, S, S, 3) float32 in [-1, 1] (x / 127.5 - 1) and where the image sits in it."""
        h, w = image.shape[:2]
        s = self._size
        if self.resize == "letterbox":  # the image centred on a black square
            side = max(h, w)
            pad_x, pad_y = (side - w) // 2, (side - h) // 2
            resized = resize_on_canvas(image, s, side, side, pad_x, pad_y)
            placement = _Letterbox(s / side, s / side, float(pad_x), float(pad_y))
        else:
            resized = resize_on_canvas(image, s, w, h, 0, 0)
            placement = _Letterbox(s / w, s / h, 0.0, 0.0)
        return (resized / np.float32(127.5) - np.float32(1.0))[None], placement

    def _infer(self, tensor: FloatArray) -> FloatArray:
        """(A, 17) rows: logit, box (dx, dy, w, h), 6 keypoints (dx, dy); rows in anchor order.

        The model has four outputs (scores and regressors for the 16x16 and 8x8 grids); like human we
        tell them apart by size and put the 16x16 grid (512 rows) first.
        """
        outs = sorted(self._session.run(None, {self._input_name: tensor}), key=lambda a: a.size)
        scores_small, scores_big, regs_small, regs_big = (
            np.asarray(o, np.float32).reshape(-1, o.shape[-1]) for o in outs
        )
        big = np.concatenate([scores_big, regs_big], axis=1)
        small = np.concatenate([scores_small, regs_small], axis=1)
        return np.concatenate([big, small], axis=0)

    def _postprocess(self, raw: FloatArray, placement: _Letterbox, width: int, height: int) -> Detections:
        scores = _sigmoid(raw[:, 0])
        centers = raw[:, 1:3] + self._anchors
        half = raw[:, 3:5] / 2
        boxes = np.concatenate([centers - half, centers + half], axis=1)
        candidates = np.flatnonzero(scores > self.score_threshold)
        keep = candidates[nms_xyxy(boxes[candidates], scores[candidates], self.nms_iou, self.max_faces)]
        if keep.size == 0:
            return Detections.empty(BLAZEFACE_LANDMARK_NAMES)
        points = raw[keep, 5:17].reshape(-1, 6, 2) + self._anchors[keep, None, :]
        xyxy = self._to_image(boxes[keep].reshape(-1, 2, 2), placement).reshape(-1, 4)
        landmarks = self._to_image(points, placement)
        return Detections(
            _clip_boxes(xyxy, width, height),
            scores[keep],
            np.zeros(keep.size, np.int64),
            landmarks,
            BLAZEFACE_LANDMARK_NAMES,
        )

    @staticmethod
    def _to_image(points: FloatArray, placement: _Letterbox) -> FloatArray:
        """Model-input pixels (..., 2) -> original image pixels."""
        out = np.empty_like(points)
        out[..., 0] = points[..., 0] / placement.scale_x - placement.pad_x
        out[..., 1] = points[..., 1] / placement.scale_y - placement.pad_y
        return out


# ------------------------------------------------------------------------------------ face models


class _FaceCropModel:
    """Shared plumbing: one ONNX session fed human's face tensor, resized to the model's input."""

    def __init__(self, onnx_path: Path | str) -> None:
        self._session = create_session(onnx_path)
        self._input_name = self._session.get_inputs()[0].name
        self._input_h, self._input_w = _input_hw(self._session)
        self._batched = _batch_is_dynamic(self._session)
        _warmup(self._session)

    def _face_inputs(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(N, H, W, 3) float32 in 0..1: human's face tensor per face, resized to the model input."""
        crops = [_resize(face_tensor(image, f.xyxy), self._input_w, self._input_h) for f in faces]
        return np.stack(crops).astype(np.float32)

    def _run(self, batch: FloatArray) -> list[FloatArray]:
        """Outputs for a batch (N, ...), one session call per face when the model's batch is fixed."""
        if self._batched:
            return [np.asarray(o, np.float32) for o in self._session.run(None, {self._input_name: batch})]
        per_face = [self._session.run(None, {self._input_name: x[None]}) for x in batch]
        return [
            np.concatenate([np.asarray(r[k], np.float32) for r in per_face]) for k in range(len(per_face[0]))
        ]


def _decode_age(probs: FloatArray) -> float:
    """Age in years from FaceRes's 100-bin softmax (bin i = i years): the mean of the distribution, rounded
    to 0.1 years.

    human's own decode (faceres.ts) takes the argmax bin nudged toward its larger neighbour,
    ``(10*i -+ 100*p[i-+1]) / 10``, which ignores the rest of the distribution: on UTKFace (every other
    even-indexed file, bench/attributes.py) its mean absolute error was 7.96 years against 7.14 for the mean
    (7.12 for the median). Parameter-free; the mean is what minimises the expected squared error.
    """
    p = np.clip(np.asarray(probs, np.float64).reshape(-1), 0.0, None)
    total = float(p.sum())
    if total <= 0.0:
        return 0.0
    return round(float(np.dot(p, np.arange(p.size))) / total, 1)


def _decode_gender(p_male: float) -> tuple[str, float]:
    """Human's gender from the sigmoid: <= 0.5 is female; confidence = probability of the chosen value
    (0.5..1), the same convention as the other two-valued attributes (analysis/faces.py)."""
    p = float(min(1.0, max(0.0, p_male)))
    return ("Female", 1.0 - p) if p <= 0.5 else ("Male", p)


class FaceResEmbedder(_FaceCropModel):
    """HSE FaceRes (human ``faceres``, or human-models ``faceres-deep``: same graph, float32 weights).

    Input: human's face crop (box x1.4, squared) resized to 224x224, values 0..255 (faceres.ts
    multiplies the 0..1 face tensor by 255). Outputs: descriptor (1024,) -> L2-normalised embedding;
    age softmax (100,) -> ``age`` in years; gender sigmoid (1,) -> ``gender``
    ("Female"|"Male", confidence 0.5..1).
    Works from ``Face.xyxy`` alone (a tight, blazeface-like box), so ``required_landmarks`` is empty.

    ``channel_order``: human feeds RGB, but on 600 LFW View-2 pairs BGR verified better for both
    files (faceres 97.2% vs 95.2%, faceres-deep 92.3% vs 90.3%, 2-fold threshold), consistent with
    the HSE models being trained on OpenCV (BGR) images; so BGR is the default here. Gender is as good
    either way (116 LFW photos of 30 well-known people: 98.3% BGR, 99.1% RGB, one photo apart).
    """

    dim = 1024
    required_landmarks: tuple[str, ...] = ()
    provides: tuple[str, ...] = ("age", "gender")

    def __init__(
        self,
        onnx_path: Path | str,
        embedder_id: str = "human-faceres",
        channel_order: Literal["rgb", "bgr"] = "bgr",
    ) -> None:
        super().__init__(onnx_path)
        self.embedder_id = embedder_id
        self.name = embedder_id
        self.channel_order = channel_order

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(N, 1024) float32 L2-normalised descriptors, one per face."""
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        return self._postprocess(self._infer(self._preprocess(image, faces)))["embedding"]

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """Per face: {"age": years (float), "gender": ("Female"|"Male", confidence 0.5..1)}."""
        if not faces:
            return []
        out = self._postprocess(self._infer(self._preprocess(image, faces)))
        return [
            {"age": _decode_age(a), "gender": _decode_gender(float(g[0]))}
            for a, g in zip(out["age"], out["gender"], strict=True)
        ]

    def _preprocess(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(N, 224, 224, 3) float32 in 0..255, channels in ``channel_order``."""
        batch = self._face_inputs(image, faces) * np.float32(255.0)
        return np.ascontiguousarray(batch[..., ::-1]) if self.channel_order == "bgr" else batch

    def _infer(self, batch: FloatArray) -> list[FloatArray]:
        return self._run(batch)

    @staticmethod
    def _postprocess(outputs: list[FloatArray]) -> dict[str, FloatArray]:
        """Outputs told apart by width, as faceres.ts does: 1 gender, 100 age, 1024 descriptor."""
        by_width = {o.shape[-1]: o.reshape(o.shape[0], -1) for o in outputs}
        return {"embedding": l2_normalize(by_width[1024]), "age": by_width[100], "gender": by_width[1]}


class HumanEmotionClassifier(_FaceCropModel):
    """Oarriaga mini-Xception emotion model (human ``emotion``): provides ``emotions``.

    Input: the face tensor resized to 64x64, grayscale with weights (0.2989, 0.5870, 0.1140) of the
    0..1 RGB values, then (g - 0.5) * 2 in [-1, 1]. Output: softmax over ``EMOTION_LABELS``.
    """

    name = "human-emotion"
    provides: tuple[str, ...] = ("emotions",)
    _rgb_weights = np.array([0.2989, 0.5870, 0.1140], np.float32)

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """Per face: {"emotions": {label: probability}}, probabilities summing to 1."""
        if not faces:
            return []
        probs = self._postprocess(self._infer(self._preprocess(image, faces)))
        return [
            {"emotions": {lab: float(p) for lab, p in zip(EMOTION_LABELS, row, strict=True)}} for row in probs
        ]

    def _preprocess(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        gray = (self._face_inputs(image, faces) * self._rgb_weights).sum(axis=-1, keepdims=True)
        out: FloatArray = ((gray - np.float32(0.5)) * np.float32(2.0)).astype(np.float32)
        return out

    def _infer(self, batch: FloatArray) -> FloatArray:
        return self._run(batch)[0].reshape(batch.shape[0], -1)

    @staticmethod
    def _postprocess(probs: FloatArray) -> FloatArray:
        """(N, 7) rows renormalised to sum to 1 (the model ends in a softmax; this only fixes rounding)."""
        p = np.clip(probs, 0.0, None)
        out: FloatArray = (p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return out


class _SingleScoreClassifier(_FaceCropModel):
    """A face model whose first output value is a 0..1 score; the face tensor resized to its input."""

    attribute: str = ""

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """Per face: {attribute: score in [0, 1]}."""
        if not faces:
            return []
        scores = self._postprocess(self._infer(self._preprocess(image, faces)))
        return [{self.attribute: float(s)} for s in scores]

    def _preprocess(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        return self._face_inputs(image, faces)

    def _infer(self, batch: FloatArray) -> FloatArray:
        return self._run(batch)[0].reshape(batch.shape[0], -1)

    @staticmethod
    def _postprocess(raw: FloatArray) -> FloatArray:
        """(N,) first output column, clipped to [0, 1] (human reads ``data[0]``)."""
        return np.clip(raw[:, 0], 0.0, 1.0).astype(np.float32)


class AntiSpoofClassifier(_SingleScoreClassifier):
    """Human ``antispoof`` (128x128 input, one sigmoid): ``antispoof_real``, higher = a real face.

    Human reports it as ``face.real`` and its faceid demo passes faces whose value is high enough
    (the Kaggle source model's sigmoid is P(real)). Measured on 39 faces in ordinary photos (no spoof
    data here): 0.42-0.89, mean 0.65, so it separates weakly; treat it as a hint, not a gate.
    """

    name = "human-antispoof"
    provides: tuple[str, ...] = ("antispoof_real",)
    attribute = "antispoof_real"


class LivenessClassifier(_SingleScoreClassifier):
    """Human ``liveness`` (livenessnet, 32x32 input, 2-way softmax): ``liveness``, higher = live.

    Human reports output[0] as ``face.live`` and its faceid demo passes faces whose value is high.
    Measured on 39 faces in ordinary photos: mean 0.92, 33 of 39 above 0.9 (consistent with output[0]
    being "live"; no spoof images were available to check the other side).
    """

    name = "human-liveness"
    provides: tuple[str, ...] = ("liveness",)
    attribute = "liveness"


# ----------------------------------------------------------------------------------------- centernet


class CenterNetPersonDetector:
    """MB3-CenterNet (human ``centernet``, 80 COCO classes) object detector.

    detect(image HxWx3 uint8 RGB) -> Detections: xyxy (N, 4) original pixels, score (N,) in [0, 1],
    label (N,) indexing ``class_names`` (COCO, labels.ts order). The graph's heat-map and size heads are
    decoded in numpy like its own top-100 tail (``centernet_decode``), then filtered by per-class
    thresholds and NMS.

    ``resize``: human squashes every image to 512x512 ("stretch"); "letterbox" scales both axes by one
    factor so the long side is ``input_size`` and pads the rest (people keep their shape: on the COCO
    photos, recall of people >= 40 px at precision 0.8 rose from 0.69 to 0.70, bench/persons.py). When the
    installed graph has dynamic H and W (``keeneye models install`` converts it so) the canvas is just
    the scaled image rounded up to 32 px, e.g. 512x384 for a 4:3 frame: 25 % less work than 512x512;
    with a fixed 512x512 graph the letterbox is square.
    """

    name = "human-centernet"
    class_names = COCO_CLASS_NAMES
    stride = 32  # the backbone's total stride: dynamic inputs are multiples of it

    def __init__(
        self,
        onnx_path: Path | str,
        class_thresholds: dict[str, float] | None = None,
        default_threshold: float = 0.4,
        max_results: int = 100,
        nms_iou: float = 0.5,
        resize: Literal["letterbox", "stretch"] = "letterbox",
        input_size: int = 512,
        threads: int | None = None,
    ) -> None:
        unknown = set(class_thresholds or {}) - set(COCO_CLASS_NAMES)
        if unknown:
            raise InvalidParameter(f"unknown COCO classes in class_thresholds: {sorted(unknown)}")
        if input_size < self.stride or input_size % self.stride:
            raise InvalidParameter(f"input_size must be a positive multiple of {self.stride}")
        self._thresholds = np.array(
            [(class_thresholds or {}).get(c, default_threshold) for c in COCO_CLASS_NAMES], np.float32
        )
        self.max_results = max_results
        self.nms_iou = nms_iou
        self.resize = resize
        self._session = create_session(onnx_path, threads)
        self._input_name = self._session.get_inputs()[0].name
        shape = self._session.get_inputs()[0].shape
        self._fixed = isinstance(shape[1], int) and shape[1] > 0
        self._size = int(shape[1]) if self._fixed else input_size
        if not self._fixed:
            self.name = f"human-centernet@{input_size}"
        _warmup_image(self, self._size)

    def detect(self, image: UInt8Image) -> Detections:
        """Objects in ``image`` (HxWx3 uint8 RGB), best first."""
        tensor, placement = self._preprocess(image)
        raw = self._infer(tensor)
        return self._postprocess(raw, placement, image.shape[1], image.shape[0])

    def _preprocess(self, image: UInt8Image) -> tuple[FloatArray, Placement]:
        """(1, H, W, 3) float32 in 0..255 (the graph normalises) and where the image sits in it."""
        h, w = image.shape[:2]
        if self.resize == "stretch":
            return _resize(image, self._size, self._size)[None], Placement(
                self._size / w, self._size / h, self._size, self._size
            )
        cw, ch = (self._size, self._size) if self._fixed else canvas_size(w, h, self._size, self.stride)
        canvas, placement = letterbox(image, cw, ch)
        return canvas.astype(np.float32)[None], placement

    def _infer(self, tensor: FloatArray) -> FloatArray:
        """(K, 6) candidate rows x1, y1, x2, y2 (input pixels), score, class id."""
        outs = [np.asarray(o, np.float32) for o in self._session.run(None, {self._input_name: tensor})]
        for o in outs:
            if o.ndim == 3 and o.shape[-1] == 6:
                rows: FloatArray = o[0]
                return rows
        heatmap = next(o for o in outs if o.ndim == 4 and o.shape[-1] == len(COCO_CLASS_NAMES))
        wh = next(o for o in outs if o.ndim == 4 and o.shape[-1] == 4)
        # Rows under every class's threshold are dropped by _postprocess anyway: not ranked at all.
        return centernet_decode(
            heatmap[0],
            wh[0],
            stride=tensor.shape[1] // heatmap.shape[1],
            min_score=float(self._thresholds.min()),
        )

    def _postprocess(self, rows: FloatArray, placement: Placement, width: int, height: int) -> Detections:
        rows = rows[np.isfinite(rows).all(axis=1)]
        classes = rows[:, 5].astype(np.int64)
        valid = (classes >= 0) & (classes < len(COCO_CLASS_NAMES))
        rows, classes = rows[valid], classes[valid]
        keep = rows[:, 4] >= self._thresholds[classes]
        rows, classes = rows[keep], classes[keep]
        order = nms_xyxy(rows[:, :4], rows[:, 4], self.nms_iou, self.max_results)
        rows, classes = rows[order], classes[order]
        xyxy = placement.to_image(rows[:, :4])
        return Detections(_clip_boxes(xyxy, width, height), np.clip(rows[:, 4], 0, 1), classes)


def _warmup_image(detector: Any, size: int) -> None:
    """One detection on a black image (loads kernels, sizes buffers) so the first real call is fast."""
    detector.detect(np.zeros((size * 3 // 4, size, 3), np.uint8))


def _max_pool3(x: FloatArray) -> FloatArray:
    """3x3 stride-1 SAME max-pool of (H, W, C) (padding never wins).

    OpenCV's dilation with a 3x3 square is exactly this max-pool (its default border never wins a
    max), and is ~4x faster than stacking nine shifted numpy views over CenterNet's 80 class maps.
    """
    out = np.asarray(cv2.dilate(np.ascontiguousarray(x, np.float32), np.ones((3, 3), np.uint8)), np.float32)
    pooled: FloatArray = out.reshape(x.shape)
    return pooled


def centernet_decode(
    heatmap: FloatArray, wh: FloatArray, stride: int, top_k: int = 100, min_score: float = 0.0
) -> FloatArray:
    """The graph's CenterNet tail in numpy: (top_k, 6) rows x1, y1, x2, y2 (input pixels), score, class.

    heatmap: (H, W, C) sigmoid scores; wh: (H, W, 4) distances (left, top, right, bottom) in input
    pixels. Peaks are cells equal to their 3x3 max-pool; the top_k peak scores over all classes win.
    ``min_score`` > 0: the winners scoring under it are left out (fewer rows), and only the cells
    scoring at least it are ranked, which gives the same rows as ranking all of them and dropping
    those under ``min_score`` afterwards (every left-out cell ranks below every kept one), ~20x faster
    on a 128x96x80 map (a PETS09 frame: 21.8 -> 1.0 ms of CPU), where nearly all cells score ~0.
    """
    pooled = _max_pool3(heatmap)
    if min_score > 0:
        flat = heatmap.reshape(-1)
        cand = np.flatnonzero(flat >= min_score)
        cand = cand[flat[cand] == pooled.reshape(-1)[cand]]
        scores = flat[cand]
    else:
        scores = np.where(heatmap == pooled, heatmap, 0.0).reshape(-1)
        cand = np.arange(scores.size)
    k = min(top_k, scores.size)
    if k == 0:
        return np.zeros((0, 6), np.float32)
    # Top-k without sorting all values: partition, then order the k winners by score (ties by index).
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((part, -scores[part]))]
    idx, peak_scores = cand[order], scores[order]
    n_cls, width = heatmap.shape[2], heatmap.shape[1]
    cls, cell = idx % n_cls, idx // n_cls
    y, x = cell // width, cell % width
    d = wh.reshape(-1, 4)[cell]
    cx, cy = x * stride, y * stride
    return np.stack(
        [cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3], peak_scores, cls], axis=1
    ).astype(np.float32)


# ------------------------------------------------------------------------------- aligned embedders


def estimate_mouth_corners(
    eye_left: FloatArray, eye_right: FloatArray, mouth_center: FloatArray
) -> FloatArray:
    """(2, 2) mouthLeft, mouthRight estimated from blazeface's eyes and mouth centre (pixels).

    The corners are placed on a line through the mouth centre parallel to the eyes, spread as in the
    ArcFace template (mouth width = 0.83 x eye distance). Real mouths vary (smiles widen them), so
    this only approximates what a 5-point detector would give; alignment tolerates it.
    """
    half = (
        np.asarray(eye_right, np.float32) - np.asarray(eye_left, np.float32)
    ) * _MOUTH_HALF_WIDTH_PER_EYE_DISTANCE
    m = np.asarray(mouth_center, np.float32)
    return np.stack([m - half, m + half]).astype(np.float32)


def five_points(face: Face) -> FloatArray:
    """(5, 2) eyeLeft, eyeRight, nose, mouthLeft, mouthRight pixels from ``face.landmarks``.

    Uses the mouth corners when present, otherwise estimates them from ``mouthCenter`` (blazeface).
    Raises InvalidParameter when neither is present.
    """
    lm = face.landmarks
    eyes_nose = face_points(lm, (EYE_LEFT, EYE_RIGHT, NOSE))
    if MOUTH_LEFT in lm and MOUTH_RIGHT in lm:
        mouth = np.array([lm[MOUTH_LEFT], lm[MOUTH_RIGHT]], np.float32)
    elif MOUTH_CENTER in lm:
        mouth = estimate_mouth_corners(
            np.array(lm[EYE_LEFT]), np.array(lm[EYE_RIGHT]), np.array(lm[MOUTH_CENTER])
        )
    else:
        raise InvalidParameter("alignment needs mouthLeft/mouthRight or mouthCenter landmarks")
    return np.concatenate([eyes_nose, mouth]).astype(np.float32)


def align_arcface(image: UInt8Image, points: FloatArray, size: int = 112) -> UInt8Image:
    """(size, size, 3) uint8 RGB face warped so ``points`` (5, 2) land on the ArcFace template."""
    return align_5point(image, points, size=size)


Normalisation = Literal["minus1_1", "zero_1", "zero_255", "arcface"]


def normalise(faces: FloatArray, how: Normalisation) -> FloatArray:
    """Pixel scaling for (N, H, W, 3) float RGB in 0..255.

    "minus1_1": x / 127.5 - 1; "arcface": (x - 127.5) / 128; "zero_1": x / 255; "zero_255": unchanged.
    """
    if how == "minus1_1":
        return faces / np.float32(127.5) - np.float32(1.0)
    if how == "arcface":
        return (faces - np.float32(127.5)) / np.float32(128.0)
    if how == "zero_1":
        return faces / np.float32(255.0)
    return faces


class HumanAlignedEmbedder:
    """An embedder fed ArcFace-aligned crops (human-models ``mobilefacenet``, 112x112, 192-d).

    Each face is warped with a 5-point similarity onto the ArcFace template at ``input_size`` (needs
    eyeLeft, eyeRight, nose and mouth corners, or blazeface's mouthCenter, from which the corners are
    estimated), scaled by ``normalisation`` and embedded; the output is L2-normalised (N, dim).
    The default "zero_1" is what mobilefacenet.ts feeds (human's 0..1 face tensor).

    Caveat, measured: the published ``mobilefacenet`` graph gives near-constant vectors (cosine ~0.999
    between different people) whatever the alignment or scaling; TF.js itself gives the same numbers,
    so it is the model, not the conversion. 64-70% on 200 LFW pairs (best threshold, any scaling):
    not fit for recognition.
    """

    required_landmarks: tuple[str, ...] = (EYE_LEFT, EYE_RIGHT, NOSE)

    def __init__(
        self,
        onnx_path: Path | str,
        embedder_id: str = "human-mobilefacenet",
        input_size: int = 112,
        normalisation: Normalisation = "zero_1",
    ) -> None:
        self.embedder_id = embedder_id
        self.name = embedder_id
        self.input_size = input_size
        self.normalisation: Normalisation = normalisation
        self._session = create_session(onnx_path)
        self._input_name = self._session.get_inputs()[0].name
        self._batched = _batch_is_dynamic(self._session)
        out_dim = self._session.get_outputs()[0].shape[-1]
        _warmup(self._session)
        self.dim = int(out_dim) if isinstance(out_dim, int) else self._probe_dim()

    def _probe_dim(self) -> int:
        x = np.zeros((1, self.input_size, self.input_size, 3), np.float32)
        return int(np.asarray(self._session.run(None, {self._input_name: x})[0]).reshape(1, -1).shape[1])

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(N, dim) float32 L2-normalised embeddings of the aligned faces."""
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        return self._postprocess(self._infer(self._preprocess(image, faces)))

    def _preprocess(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        crops = np.stack([align_arcface(image, five_points(f), self.input_size) for f in faces])
        return normalise(crops.astype(np.float32), self.normalisation).astype(np.float32)

    def _infer(self, batch: FloatArray) -> FloatArray:
        if self._batched:
            out = self._session.run(None, {self._input_name: batch})[0]
            return np.asarray(out, np.float32).reshape(batch.shape[0], -1)
        rows = [
            np.asarray(self._session.run(None, {self._input_name: x[None]})[0]).reshape(-1) for x in batch
        ]
        return np.stack(rows).astype(np.float32)

    @staticmethod
    def _postprocess(raw: FloatArray) -> FloatArray:
        return l2_normalize(raw)


def face_from_detections(dets: Detections, i: int) -> Face:
    """The i-th detection as a ``Face`` (box, score, named landmarks)."""
    lm: dict[str, tuple[float, float]] = {}
    if dets.landmarks is not None:
        lm = {
            n: (float(p[0]), float(p[1])) for n, p in zip(dets.landmark_names, dets.landmarks[i], strict=True)
        }
    return Face(xyxy=dets.xyxy[i].copy(), score=float(dets.score[i]), landmarks=lm)


__all__ = [
    "BLAZEFACE_LANDMARK_NAMES",
    "COCO_CLASS_NAMES",
    "EAR_LEFT",
    "EAR_RIGHT",
    "EMOTION_LABELS",
    "AntiSpoofClassifier",
    "BlazeFaceDetector",
    "CenterNetPersonDetector",
    "FaceResEmbedder",
    "HumanAlignedEmbedder",
    "HumanEmotionClassifier",
    "LivenessClassifier",
    "blazeface_anchors",
    "box_iou",
    "centernet_decode",
    "crop_and_resize",
    "estimate_mouth_corners",
    "face_from_detections",
    "face_tensor",
    "five_points",
    "human_face_box",
    "resize_on_canvas",
]
