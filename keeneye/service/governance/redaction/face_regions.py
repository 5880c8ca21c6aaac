"""Face regions: how a face box is enlarged and obscured, the face pipeline redaction runs, the face
region record of images and videos, and the check that nothing was left visible.

Recall comes first (the package docstring, keeneye/service/governance/redaction/__init__.py): the
detector runs at :data:`REDACTION_SCORE_THRESHOLD` and each box is enlarged by :data:`DEFAULT_MARGIN`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import AttributeSettings, DetectorSettings, Settings
from keeneye.core.errors import InvalidParameter
from keeneye.core.geometry import iou_matrix
from keeneye.core.types import Detections, Face, FloatArray, UInt8Image
from keeneye.service.faces.collections import FaceMatch

RedactionMode = Literal["blur", "pixelate", "box"]
REDACTION_MODES: tuple[RedactionMode, ...] = ("blur", "pixelate", "box")

REDACTION_SCORE_THRESHOLD = 0.3
"""Face detector score threshold for redaction (DetectFaces uses 0.65). Measured in docs/redaction.md:
on dlib's 43 labelled faces recall is 42/43 at 0.65 and 43/43 from 0.5 down; in short_hamilton_clip.mp4
the audience's and the pianist's faces score 0.3-0.6 in many frames. What a lower threshold adds are
blurred patches of background, which cost nothing here."""


REDACTION_MTCNN_THRESHOLD = 0.3
"""MTCNN's score threshold for redacting photos (DetectFaces uses 0.9), the lowest swept on the WIDER
FACE tuning half (even events; bench/widerface.py --sweep): recall of the hard list's faces 0.583 (0.495
at 0.9) with 1 false face on the 11 no-face photos; BlazeFace at REDACTION_SCORE_THRESHOLD finds 0.312
there with 15 false faces. Reported on the odd events in docs/redaction.md (bench/redaction_photos.py)."""

DUPLICATE_IOU = 0.3
"""Two detectors' boxes overlapping more than this are one face (:func:`distinct_boxes`)."""

KEPT_OVERLAP_IOU = 0.1
"""A kept face whose box overlaps another face's by more than this IoU is obscured in that frame."""


@dataclass(frozen=True)
class BoxMargin:
    """How much a face box is enlarged before it is obscured, as fractions of its width (left, right)
    and height (top, bottom). BlazeFace's box spans about brows to mouth; the defaults take in the
    forehead and hair (top), the chin (bottom) and the ears (sides)."""

    left: float = 0.25
    right: float = 0.25
    top: float = 0.5
    bottom: float = 0.35

    def __post_init__(self) -> None:
        if min(self.left, self.right, self.top, self.bottom) < 0:
            raise InvalidParameter("box margins must be >= 0")


DEFAULT_MARGIN = BoxMargin()


def enlarge(
    xyxy: Sequence[float] | FloatArray, margin: BoxMargin, width: int, height: int
) -> tuple[int, int, int, int]:
    """A face box (x1, y1, x2, y2 pixels) grown by ``margin`` and clipped to the image, as whole pixels
    (rounded outwards)."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    return (
        max(0, math.floor(x1 - margin.left * w)),
        max(0, math.floor(y1 - margin.top * h)),
        min(width, math.ceil(x2 + margin.right * w)),
        min(height, math.ceil(y2 + margin.bottom * h)),
    )


def obscure(
    image: UInt8Image,
    boxes: Iterable[tuple[int, int, int, int]],
    mode: RedactionMode,
    *,
    in_place: bool = False,
) -> UInt8Image:
    """A copy of ``image`` (HxWx3 uint8 RGB; ``in_place``: ``image`` itself, for a caller that owns it)
    with every box (whole pixels, clipped) obscured.

    blur: a Gaussian blur with a radius of a third of the box's shorter side (at least 6 px): no facial
    detail survives, the scene still reads. pixelate: blocks of a sixth of the box's longer side (at least
    4 px), at most 6 x 6 blocks over a face. box: filled with black, nothing of the face remains (the one
    mode that cannot be partly inverted)."""
    out = image if in_place else image.copy()
    for x1, y1, x2, y2 in boxes:
        if x2 <= x1 or y2 <= y1:
            continue
        region = out[y1:y2, x1:x2]
        if mode == "box":
            region[:] = 0
        elif mode == "pixelate":
            region[:] = _pixelate(region)
        else:
            region[:] = _blur(region)
    return out


def _pixelate(region: UInt8Image) -> UInt8Image:
    h, w = region.shape[:2]
    block = max(4, math.ceil(max(h, w) / 6))
    small = Image.fromarray(region).resize(
        (max(1, math.ceil(w / block)), max(1, math.ceil(h / block))), Image.Resampling.BOX
    )
    return np.asarray(small.resize((w, h), Image.Resampling.NEAREST), np.uint8)


def _blur(region: UInt8Image) -> UInt8Image:
    h, w = region.shape[:2]
    radius = max(6.0, min(h, w) / 3.0)
    # Blurring the crop alone (edges extended) keeps pixels from outside the box out of it and the face
    # out of its surroundings; two passes of a large radius leave no edge a detector could use.
    img = Image.fromarray(region)
    for _ in range(2):
        img = img.filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(img, np.uint8)


# -- the face pipeline -------------------------------------------------------------------------------------


def redaction_settings(settings: Settings, score_threshold: float = REDACTION_SCORE_THRESHOLD) -> Settings:
    """``settings`` with the video detector (``faces.video_detector``) at ``score_threshold``, no size
    floor, and no attribute models (redaction needs boxes; with a collection to keep, also the embedder,
    pose and sharpness, which the detector's points give without the face mesh).

    Photos: when the photo detector is MTCNN (the default), it runs at ``REDACTION_MTCNN_THRESHOLD`` and
    the video detector's faces that it did not find are added (:func:`photo_faces`); any other photo
    detector is replaced by the video detector, whose threshold is the one measured (bench/redaction.py)."""
    faces = settings.faces
    video = faces.video_detector.model_copy(update={"score_threshold": score_threshold, "min_face_px": 1})
    photo: DetectorSettings = video
    if faces.detector.kind == "mtcnn" and video.kind != "mtcnn":
        photo = faces.detector.model_copy(
            update={"score_threshold": REDACTION_MTCNN_THRESHOLD, "min_face_px": 1}
        )
    attributes = AttributeSettings(expression="none", age_gender="none", mesh=False)
    update = {"detector": photo, "video_detector": video, "attributes": attributes}
    return settings.model_copy(update={"faces": faces.model_copy(update=update)})


def photo_faces(analyzer: FaceAnalyzer, image: UInt8Image) -> list[Face]:
    """The faces to obscure in a photo: the photo detector's (MTCNN: small faces, crowds) and, when the
    analyzer has a different video detector (BlazeFace at the redaction threshold: large, turned and
    low-scoring faces), the faces of that one which are not the same face again (:func:`distinct_boxes`).
    Redaction wants every face; a false region only blurs a patch of background."""
    faces = analyzer.analyze(image, attributes="none")
    if analyzer.video_detector is None or analyzer.video_detector is analyzer.detector:
        return faces
    extra = analyzer.analyze(image, attributes="none", video_frame=True)
    if not extra:
        return faces
    kept = np.array([f.xyxy for f in faces], np.float32).reshape(-1, 4)
    new = distinct_boxes(np.array([f.xyxy for f in extra], np.float32).reshape(-1, 4), kept)
    return faces + [f for f, is_new in zip(extra, new, strict=True) if is_new]


def distinct_boxes(
    extra: FloatArray, kept: FloatArray, max_iou: float = DUPLICATE_IOU
) -> npt.NDArray[np.bool_]:
    """For each box of ``extra`` (N, 4 xyxy), whether it is another face than every box of ``kept``: its
    IoU with each is at most ``max_iou`` and its centre lies in none of them (two detectors' boxes of one
    face differ in size and shape, so IoU alone would count some faces twice)."""
    if len(kept) == 0 or len(extra) == 0:
        return np.ones(len(extra), bool)
    iou = iou_matrix(extra, kept)
    cx, cy = (extra[:, 0] + extra[:, 2]) / 2, (extra[:, 1] + extra[:, 3]) / 2
    inside = (
        (cx[:, None] >= kept[None, :, 0])
        & (cx[:, None] <= kept[None, :, 2])
        & (cy[:, None] >= kept[None, :, 1])
        & (cy[:, None] <= kept[None, :, 3])
    )
    return np.asarray(~((iou > max_iou) | inside).any(axis=1), bool)


def build_redaction_analyzer(
    settings: Settings, *, score_threshold: float = REDACTION_SCORE_THRESHOLD, with_embedder: bool = False
) -> FaceAnalyzer:
    """The face pipeline for redaction (see :func:`redaction_settings`); ``with_embedder`` for
    ``search`` (keeping a collection's faces)."""
    return build_face_analyzer(redaction_settings(settings, score_threshold), with_embedder=with_embedder)


@dataclass
class RedactedFace:
    """One face region in one frame.

    xyxy: the face's box (pixels; for a predicted or interpolated region, where the face is expected);
    box: the region obscured (``xyxy`` enlarged, whole pixels), or None when the face was kept visible;
    score: detector score (0 for predicted regions); source: ``detected``, ``predicted`` (a lost track),
    ``interpolated`` (a frame between analysed frames); track_id: the face track (None for images);
    identity / similarity: the collection match that kept it visible (kept faces only).
    """

    xyxy: tuple[float, float, float, float]
    box: tuple[int, int, int, int] | None
    score: float
    source: Literal["detected", "predicted", "interpolated"] = "detected"
    track_id: int | None = None
    identity: str | None = None
    similarity: float | None = None

    @property
    def kept(self) -> bool:
        return self.box is None


def face_name(match: FaceMatch) -> str:
    face = match.face
    return face.user_id or face.external_image_id or face.face_id


def kept_face(face: Face, matches: Sequence[FaceMatch], track_id: int | None = None) -> RedactedFace:
    return RedactedFace(
        xyxy_tuple(face.xyxy),
        None,
        round(float(face.score), 4),
        track_id=track_id,
        identity=face_name(matches[0]),
        similarity=round(float(matches[0].similarity), 2),
    )


def xyxy_tuple(xyxy: Sequence[float] | FloatArray) -> tuple[float, float, float, float]:
    return (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))


def overlapping_faces(faces: Sequence[Face], max_iou: float = KEPT_OVERLAP_IOU) -> set[int]:
    """Indices of faces whose box overlaps another face's by more than ``max_iou``."""
    if len(faces) < 2:
        return set()
    boxes = np.array([f.xyxy for f in faces], np.float32).reshape(-1, 4)
    iou = iou_matrix(boxes, boxes)
    np.fill_diagonal(iou, 0.0)
    return {int(i) for i in np.flatnonzero(iou.max(axis=1) > max_iou)}


def min_side(xyxy: Sequence[float] | FloatArray) -> float:
    return min(float(xyxy[2]) - float(xyxy[0]), float(xyxy[3]) - float(xyxy[1]))


# -- verification ------------------------------------------------------------------------------------------


def unobscured(
    original: Detections,
    redacted: Detections,
    regions: Sequence[RedactedFace],
    *,
    min_covered: float = 0.5,
    min_iou: float = 0.3,
) -> list[int]:
    """Faces left visible in a redacted frame, for checking an output (bench/redaction.py, the tests).

    original / redacted: the face detector's boxes on the original frame and on the redacted one; regions:
    that frame's face regions. Returns the indices of ``redacted`` boxes that show a face of the original:
    less than ``min_covered`` of the box lies in obscured regions, it is not a kept face (IoU below
    ``min_iou``), and a face was found at the same place (IoU >= ``min_iou``) in the original. The last
    condition drops what the detector finds in the redacted frame only (a hand or a microphone under a
    blurred patch scores 0.3-0.7 at times: the patch reads as a head above them): false positives.
    """
    if len(redacted) == 0:
        return []
    boxes = [r.box for r in regions if r.box is not None]
    kept = np.array([r.xyxy for r in regions if r.kept], np.float32).reshape(-1, 4)
    same_place = iou_matrix(redacted.xyxy, original.xyxy)
    near_kept = iou_matrix(redacted.xyxy, kept)
    out = []
    for i, xyxy in enumerate(redacted.xyxy):
        if _covered(xyxy, boxes) >= min_covered:
            continue
        if near_kept.shape[1] and near_kept[i].max() >= min_iou:
            continue
        if same_place.shape[1] and same_place[i].max() >= min_iou:
            out.append(i)
    return out


def _covered(xyxy: FloatArray, boxes: Sequence[tuple[int, int, int, int]]) -> float:
    """Fraction of the box ``xyxy`` (pixels) inside the union of ``boxes``."""
    x1, y1 = math.floor(float(xyxy[0])), math.floor(float(xyxy[1]))
    x2, y2 = math.ceil(float(xyxy[2])), math.ceil(float(xyxy[3]))
    if x2 <= x1 or y2 <= y1:
        return 1.0
    mask = np.zeros((y2 - y1, x2 - x1), bool)
    for bx1, by1, bx2, by2 in boxes:
        mask[max(by1 - y1, 0) : max(by2 - y1, 0), max(bx1 - x1, 0) : max(bx2 - x1, 0)] = True
    return float(mask.mean())
