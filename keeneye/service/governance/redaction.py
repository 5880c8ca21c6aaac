"""Bystander redaction: every face in an image or a video is obscured, except the faces of a collection
the caller asks to keep (docs/redaction.md).

Recall comes first: a face left visible is the failure that matters, an obscured patch of wall is not.

* The face detector runs at :data:`REDACTION_SCORE_THRESHOLD` (below the 0.65 that DetectFaces uses,
  measured in docs/redaction.md) and keeps faces of any size it finds (``min_face_px`` 1).
* Each detected box is enlarged by :data:`DEFAULT_MARGIN` (BlazeFace's boxes are tight: brows to mouth;
  the margin takes in hair, ears and chin) before it is obscured.
* In a video, faces are tracked (keeneye's tracker on face boxes, as StartFaceSearch does). A face the
  detector misses for a few frames keeps being obscured at its track's *predicted* box (the last box moved
  by the track's recent velocity, enlarged further the longer it is unseen) for up to ``keep_lost_ms``
  (1 s). Tracks end at shot cuts, so a prediction never lands on the next shot.
* With ``--fps`` below the video's rate, the frames between two analysed frames are obscured with the boxes
  of *both* (and, for a face seen in both, the box spanning its two positions); every frame is written.

What "kept" means (``search`` given): a face is left visible only when the track it belongs to has been
matched to the collection (:class:`~keeneye.pipeline.identification.TrackFaceIdentifier` embeds a track's
first usable face at once and, while unmatched, retries every :data:`RETRY_MS`, at most 6 times); until
then it is obscured like any other. A newly embedded face of the track must itself match. A kept face is
obscured again when its box overlaps another face (the tracker could swap the two) and, after its track
was lost and found again, until a new search of the re-found face matches again: a person who steps
into the place where a kept person was is not shown on the strength of the other's match. A lost kept
track's predicted box is not obscured (it is the kept person, unseen). A face under ``min_embed_px`` is
never embedded, so never kept.

Nothing un-redacted is written: frames are obscured in memory before they reach the encoder, and the
video is written to a temporary name beside the output and renamed only when complete (deleted on error).
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import decode_image, sniff_format
from keeneye.config import AttributeSettings, ImageLimits, Settings
from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Detections, Face, FloatArray, Frame, Track, UInt8Image
from keeneye.pipeline.faces import FaceSteps
from keeneye.pipeline.identification import (
    Searcher,
    TrackFaceIdentifier,
    face_box_tracker_config,
    faces_on_face_tracks,
    offer_face,
    relink_cosine,
)
from keeneye.service.faces.collections import FaceMatch
from keeneye.tracking.tracker import PersonTracker, TrackerConfig, iou_matrix
from keeneye.video.cuts import DEFAULT_CUT_THRESHOLD, ShotCutDetector
from keeneye.video.sampling import FpsSampler
from keeneye.video.sources import VideoInput, VideoMetadata, open_video
from keeneye.video.writer import VideoCodec, VideoWriter

RedactionMode = Literal["blur", "pixelate", "box"]
REDACTION_MODES: tuple[RedactionMode, ...] = ("blur", "pixelate", "box")

REDACTION_SCORE_THRESHOLD = 0.3
"""Face detector score threshold for redaction (DetectFaces uses 0.65). Measured in docs/redaction.md:
on dlib's 43 labelled faces recall is 42/43 at 0.65 and 43/43 from 0.5 down; in short_hamilton_clip.mp4
the audience's and the pianist's faces score 0.3-0.6 in many frames. What a lower threshold adds are
blurred patches of background, which cost nothing here."""

KEEP_LOST_MS = 1000.0
"""How long a face the detector no longer finds stays obscured at its track's predicted box (ms)."""

RETRY_MS = 300.0
"""With a collection to keep: an unmatched face track is embedded and searched again after this long (ms),
at most 6 times in all (plus a re-check each time a matched track is found again after a gap)."""

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


def obscure(image: UInt8Image, boxes: Iterable[tuple[int, int, int, int]], mode: RedactionMode) -> UInt8Image:
    """A copy of ``image`` (HxWx3 uint8 RGB) with every box (whole pixels, clipped) obscured.

    blur: a Gaussian blur with a radius of a third of the box's shorter side (at least 6 px): no facial
    detail survives, the scene still reads. pixelate: blocks of a sixth of the box's longer side (at least
    4 px), at most 6 x 6 blocks over a face. box: filled with black, nothing of the face remains (the one
    mode that cannot be partly inverted)."""
    out = image.copy()
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
    """``settings`` with the detector at ``score_threshold``, no size floor, and no attribute models
    (redaction needs boxes; with a collection to keep, also the embedder, pose and sharpness, which the
    detector's points give without the face mesh)."""
    faces = settings.faces
    detector = faces.detector.model_copy(update={"score_threshold": score_threshold, "min_face_px": 1})
    attributes = AttributeSettings(expression="none", age_gender=False, mesh=False)
    return settings.model_copy(
        update={"faces": faces.model_copy(update={"detector": detector, "attributes": attributes})}
    )


def build_redaction_analyzer(
    settings: Settings, *, score_threshold: float = REDACTION_SCORE_THRESHOLD, with_embedder: bool = False
) -> FaceAnalyzer:
    """The face pipeline for redaction (see :func:`redaction_settings`); ``with_embedder`` for
    ``search`` (keeping a collection's faces)."""
    from keeneye.models.registry import build_face_analyzer

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


def _name(match: FaceMatch) -> str:
    face = match.face
    return face.user_id or face.external_image_id or face.face_id


def _kept(face: Face, matches: Sequence[FaceMatch], track_id: int | None = None) -> RedactedFace:
    return RedactedFace(
        _tuple(face.xyxy),
        None,
        round(float(face.score), 4),
        track_id=track_id,
        identity=_name(matches[0]),
        similarity=round(float(matches[0].similarity), 2),
    )


def _tuple(xyxy: Sequence[float] | FloatArray) -> tuple[float, float, float, float]:
    return (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))


def _overlapping(faces: Sequence[Face], max_iou: float = KEPT_OVERLAP_IOU) -> set[int]:
    """Indices of faces whose box overlaps another face's by more than ``max_iou``."""
    if len(faces) < 2:
        return set()
    boxes = np.array([f.xyxy for f in faces], np.float32).reshape(-1, 4)
    iou = iou_matrix(boxes, boxes)
    np.fill_diagonal(iou, 0.0)
    return {int(i) for i in np.flatnonzero(iou.max(axis=1) > max_iou)}


# -- images ------------------------------------------------------------------------------------------------


@dataclass
class ImageRedaction:
    """A redacted image: ``image`` the encoded bytes (``format`` JPEG or PNG: the input's, unless asked
    otherwise; EXIF and other metadata are not carried over), its size, and every face region."""

    image: bytes
    format: str
    width: int
    height: int
    faces: list[RedactedFace]

    @property
    def redacted(self) -> list[RedactedFace]:
        return [f for f in self.faces if not f.kept]

    @property
    def kept(self) -> list[RedactedFace]:
        return [f for f in self.faces if f.kept]


def redact_pixels(
    image: UInt8Image,
    analyzer: FaceAnalyzer,
    *,
    mode: RedactionMode = "blur",
    margin: BoxMargin = DEFAULT_MARGIN,
    search: Searcher | None = None,
    min_embed_px: int = 16,
) -> tuple[UInt8Image, list[RedactedFace]]:
    """Redact one decoded image (HxWx3 uint8 RGB); returns the obscured copy and the face regions.
    ``search``: faces whose embedding matches it are kept visible (faces under ``min_embed_px`` on a side,
    and faces overlapping another face, are always obscured)."""
    height, width = image.shape[:2]
    faces = analyzer.analyze(image, attributes="none")
    overlapping = _overlapping(faces)
    matches: dict[int, list[FaceMatch]] = {}
    if search is not None:
        candidates = [
            i for i, f in enumerate(faces) if i not in overlapping and _min_side(f.xyxy) >= min_embed_px
        ]
        analyzer.embed(image, [faces[i] for i in candidates])
        for i in candidates:
            emb, embedder_id = faces[i].embedding, faces[i].embedder_id
            assert emb is not None and embedder_id is not None
            found = search(emb, embedder_id)
            if found:
                matches[i] = found
    out: list[RedactedFace] = []
    for i, face in enumerate(faces):
        if i in matches:
            out.append(_kept(face, matches[i]))
        else:
            box = enlarge(face.xyxy, margin, width, height)
            out.append(RedactedFace(_tuple(face.xyxy), box, round(float(face.score), 4)))
    return obscure(image, [f.box for f in out if f.box is not None], mode), out


def redact_image(
    data: bytes,
    analyzer: FaceAnalyzer,
    *,
    mode: RedactionMode = "blur",
    margin: BoxMargin = DEFAULT_MARGIN,
    search: Searcher | None = None,
    output_format: Literal["JPEG", "PNG"] | None = None,
    limits: ImageLimits | None = None,
    jpeg_quality: int = 92,
) -> ImageRedaction:
    """Image bytes (JPEG/PNG) in, redacted image bytes out: what a native API endpoint calls.

    output_format: JPEG or PNG (default: the input's). Raises InvalidImage / ImageTooLarge for bad input
    (``limits``: the service's image limits)."""
    lim = limits or ImageLimits()
    fmt = output_format or sniff_format(data)
    pixels = decode_image(data, max_bytes=lim.max_bytes, max_pixels=lim.max_pixels)
    redacted, faces = redact_pixels(pixels, analyzer, mode=mode, margin=margin, search=search)
    buffer = io.BytesIO()
    img = Image.fromarray(redacted)
    if fmt == "JPEG":
        img.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        img.save(buffer, format="PNG")
    return ImageRedaction(buffer.getvalue(), fmt, int(pixels.shape[1]), int(pixels.shape[0]), faces)


def _min_side(xyxy: Sequence[float] | FloatArray) -> float:
    return min(float(xyxy[2]) - float(xyxy[0]), float(xyxy[3]) - float(xyxy[1]))


# -- videos ------------------------------------------------------------------------------------------------


def redaction_tracker_config(
    score_threshold: float, keep_lost_ms: float = KEEP_LOST_MS, reid_face_similarity: float = 2.0
) -> TrackerConfig:
    """Face-box tracking for redaction (``face_identity.face_box_tracker_config``, as StartFaceSearch):
    a lost face is forgotten after ``keep_lost_ms`` (its predicted box is obscured until then).
    ``reid_face_similarity``: cosine at which embedded faces re-link tracks (2.0: never; with a
    collection, RELINK_SIMILARITY's cosine)."""
    return face_box_tracker_config(
        score_threshold, max_lost_ms=keep_lost_ms, relink_cosine=reid_face_similarity
    )


@dataclass
class FrameRedaction:
    """One output frame: decoded index, pts (ms), whether the detector ran on it, its face regions."""

    index: int
    pts_ms: float
    analysed: bool
    faces: list[RedactedFace]

    @property
    def redacted(self) -> int:
        return sum(1 for f in self.faces if not f.kept)


@dataclass
class KeptTrack:
    """A face track matched to the collection: the match, and when it was found (ms)."""

    track_id: int
    identity: str
    similarity: float
    face_id: str
    matched_pts_ms: float | None


@dataclass
class VideoRedaction:
    """A redacted video: where it went (``path``, ``codec``: h264 MP4, else MJPEG AVI), every frame's
    face regions, the kept tracks, shot cuts and timings (seconds)."""

    metadata: VideoMetadata
    path: Path
    codec: VideoCodec
    frames: list[FrameRedaction]
    kept: list[KeptTrack]
    tracks: int
    cuts_ms: list[float] = field(default_factory=list)
    embeddings: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def frames_analysed(self) -> int:
        return sum(1 for f in self.frames if f.analysed)


@dataclass(frozen=True)
class RedactionProgress:
    """Where a video redaction is: pts (ms) of the last frame written, the video's duration (None when
    unknown), frames written so far."""

    pts_ms: float
    end_ms: float | None
    frames: int


class _FaceKeeper:
    """Which face tracks stay visible: a track's match (TrackFaceIdentifier) holds while the track is seen
    in every analysed frame; a track re-found after being lost needs a new matching search first."""

    def __init__(self, analyzer: FaceAnalyzer, search: Searcher, min_embed_px: int) -> None:
        self.analyzer, self.search, self.min_embed_px = analyzer, search, min_embed_px
        # Retrying sooner than StartFaceSearch's once a second: here every frame before the match shows
        # the kept person obscured.
        self.identifier = TrackFaceIdentifier(analyzer, search, max_embeddings=6, retry_ms=RETRY_MS)
        self.verified: set[int] = set()  # tracks whose current run of sightings is matched
        self.first_match_ms: dict[int, float] = {}
        self._last_check: dict[int, float] = {}
        self.rechecks = 0

    def step(
        self, frame: Frame, tracker: PersonTracker, pairs: list[tuple[Track, Face]], continued: set[int]
    ) -> dict[int, list[FaceMatch]]:
        """Offer this frame's tracked faces; returns ``{track_id: matches}`` for the faces to keep
        (keys are the ids after any re-linking). ``continued``: tracks also seen in the last analysed
        frame."""
        self.verified &= continued
        keep: dict[int, list[FaceMatch]] = {}
        for track, face in pairs:
            track_id = track.track_id
            if _min_side(face.xyxy) < self.min_embed_px:
                self.verified.discard(track_id)
                continue
            track_id, offered = offer_face(
                frame.image, frame.pts_ms, tracker, self.identifier, track_id, face
            )
            ident = self.identifier.identity(track_id)
            if ident is None or not ident.matches:
                continue
            if offered:
                # This very face was embedded: it must match itself (the track's best match may come from
                # an earlier face; a vector search costs nothing next to the embedding).
                assert face.embedding is not None and face.embedder_id is not None
                if self.search(face.embedding, face.embedder_id):
                    self.verified.add(track_id)
                else:
                    self.verified.discard(track_id)
            elif track_id not in self.verified:
                # Re-found after a gap: search this face before showing it (at most once per RETRY_MS, so a
                # face that no longer matches, turned away, costs no embedding per frame).
                if frame.pts_ms - self._last_check.get(track_id, -math.inf) < RETRY_MS:
                    continue
                self._last_check[track_id] = frame.pts_ms
                self.rechecks += 1
                self.analyzer.embed(frame.image, [face])
                assert face.embedding is not None and face.embedder_id is not None
                if self.search(face.embedding, face.embedder_id):
                    self.verified.add(track_id)
            if track_id in self.verified:
                self.first_match_ms.setdefault(track_id, frame.pts_ms)
                keep[track_id] = ident.matches
        return keep

    def kept_tracks(self) -> list[KeptTrack]:
        out = []
        for track_id, ident in sorted(self.identifier.identities.items()):
            if ident.matches and track_id in self.first_match_ms:
                best = ident.matches[0]
                out.append(
                    KeptTrack(
                        track_id,
                        _name(best),
                        round(float(best.similarity), 2),
                        best.face.face_id,
                        self.first_match_ms[track_id],
                    )
                )
        return out


def predicted_box(track: Track, now_ms: float) -> tuple[float, float, float, float]:
    """Where a lost face track's face should be at ``now_ms``: its last box moved at the velocity of its
    centre over the last ~0.5 s of history (at most one box width per second), grown by 50 % per second
    unseen (the longer it is unseen, the less sure the place)."""
    last = track.history[-1]
    x1, y1, x2, y2 = last.xyxy
    w, h = x2 - x1, y2 - y1
    earlier = next((p for p in reversed(track.history[:-1]) if last.pts_ms - p.pts_ms >= 500.0), None)
    if earlier is None and len(track.history) > 1:
        earlier = track.history[0]
    vx = vy = 0.0
    if earlier is not None and last.pts_ms > earlier.pts_ms:
        dt_s = (last.pts_ms - earlier.pts_ms) / 1000.0
        vx = ((x1 + x2) - (earlier.xyxy[0] + earlier.xyxy[2])) / 2.0 / dt_s
        vy = ((y1 + y2) - (earlier.xyxy[1] + earlier.xyxy[3])) / 2.0 / dt_s
        speed = math.hypot(vx, vy)
        if speed > w > 0:
            vx, vy = vx * w / speed, vy * w / speed
    gap_s = max(now_ms - last.pts_ms, 0.0) / 1000.0
    grow = 1.0 + 0.5 * gap_s
    cx, cy = (x1 + x2) / 2.0 + vx * gap_s, (y1 + y2) / 2.0 + vy * gap_s
    return (cx - w * grow / 2, cy - h * grow / 2, cx + w * grow / 2, cy + h * grow / 2)


class _VideoRedactor:
    """Per analysed frame: faces -> tracker -> (keeper) -> face regions; frames between analysed frames
    wait in memory (never on disk) until the next analysed frame gives both ends."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        *,
        score_threshold: float,
        search: Searcher | None,
        keep_lost_ms: float,
        cut_threshold: float | None,
        min_embed_px: int,
        margin: BoxMargin,
    ) -> None:
        relink = 2.0 if search is None else relink_cosine(analyzer)
        self.analyzer = analyzer
        self.tracker = PersonTracker(redaction_tracker_config(score_threshold, keep_lost_ms, relink))
        self.keeper = None if search is None else _FaceKeeper(analyzer, search, min_embed_px)
        # Detection and tracking of face boxes as every use does; which tracks stay visible is the
        # keeper's (a re-found track is searched again before it is shown).
        self.faces = FaceSteps(
            analyzer, self.tracker, attributes="none" if self.keeper is None else "default"
        )
        self.cuts = None if cut_threshold is None else ShotCutDetector(cut_threshold)
        self.keep_lost_ms = keep_lost_ms
        self.margin = margin
        self.cuts_ms: list[float] = []
        self._last_seen: set[int] = set()

    def analyse(self, frame: Frame) -> list[RedactedFace]:
        """Face regions of one analysed frame (detected, kept, predicted)."""
        if self.cuts is not None and self.cuts.is_cut(frame.image):
            self.tracker.cut()
            self.cuts_ms.append(frame.pts_ms)
            self._last_seen = set()
        update = self.faces.step(frame)
        faces = list(update.faces)
        pairs = faces_on_face_tracks(update.tracks, faces)
        track_of = {id(f): t for t, f in pairs}
        keep: dict[int, list[FaceMatch]] = {}
        if self.keeper is not None:
            keep = self.keeper.step(frame, self.tracker, pairs, self._last_seen)
        self._last_seen = {t.track_id for t, _ in pairs}
        overlapping = _overlapping(faces)
        height, width = frame.image.shape[:2]
        out: list[RedactedFace] = []
        for i, face in enumerate(faces):
            track = track_of.get(id(face))
            tid = None if track is None else track.track_id
            if tid is not None and tid in keep and i not in overlapping:
                out.append(_kept(face, keep[tid], tid))
                continue
            box = enlarge(face.xyxy, self.margin, width, height)
            out.append(RedactedFace(_tuple(face.xyxy), box, round(float(face.score), 4), track_id=tid))
        for track in self.tracker.tracks:
            if track.state != "lost" or frame.pts_ms - track.last_pts_ms > self.keep_lost_ms:
                continue
            if track.track_id in keep or self._is_kept_lost(track.track_id):
                continue
            xyxy = predicted_box(track, frame.pts_ms)
            box = enlarge(xyxy, self.margin, width, height)
            out.append(RedactedFace(xyxy, box, 0.0, "predicted", track.track_id))
        return out

    def _is_kept_lost(self, track_id: int) -> bool:
        """A lost track whose last run was matched: the kept person, unseen; not obscured."""
        return self.keeper is not None and track_id in self.keeper.verified


def between(
    before: Sequence[RedactedFace], after: Sequence[RedactedFace], width: int, height: int, margin: BoxMargin
) -> list[RedactedFace]:
    """Face regions of a frame between two analysed frames: every obscured region of both, and for a track
    obscured in both, the box spanning its two positions (a face moving between them stays covered)."""
    out = [_interpolated(f.xyxy, f.box, f.track_id) for f in (*before, *after) if f.box is not None]
    ends = {f.track_id: f for f in before if f.box is not None and f.track_id is not None}
    for f in after:
        start = ends.get(f.track_id) if f.track_id is not None else None
        if start is None or f.box is None:
            continue
        xyxy = (
            min(start.xyxy[0], f.xyxy[0]),
            min(start.xyxy[1], f.xyxy[1]),
            max(start.xyxy[2], f.xyxy[2]),
            max(start.xyxy[3], f.xyxy[3]),
        )
        out.append(_interpolated(xyxy, enlarge(xyxy, margin, width, height), f.track_id))
    return out


def _interpolated(
    xyxy: tuple[float, float, float, float], box: tuple[int, int, int, int] | None, track_id: int | None
) -> RedactedFace:
    return RedactedFace(xyxy, box, 0.0, "interpolated", track_id)


def redact_video(
    source: VideoInput,
    output: Path,
    analyzer: FaceAnalyzer,
    *,
    mode: RedactionMode = "blur",
    margin: BoxMargin = DEFAULT_MARGIN,
    score_threshold: float = REDACTION_SCORE_THRESHOLD,
    search: Searcher | None = None,
    target_fps: float | None = None,
    keep_lost_ms: float = KEEP_LOST_MS,
    max_duration_ms: float | None = None,
    cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
    min_embed_px: int = 16,
    on_progress: Callable[[RedactionProgress], None] | None = None,
) -> VideoRedaction:
    """Redact every frame of ``source`` into ``output`` (H.264 MP4, or MJPEG AVI when this FFmpeg has no
    H.264 encoder: ``VideoRedaction.path`` says where it went). The audio track is not copied.

    analyzer: from :func:`build_redaction_analyzer` (``score_threshold`` must be the threshold it was built
    with: the tracker associates at the same score); search: keep the faces that match it (the analyzer
    then needs its embedder); target_fps: run the detector on this many frames a second (None: every
    frame), every frame is still written; keep_lost_ms: how long a missed face's predicted box stays
    obscured; max_duration_ms: stop there; cut_threshold: shot cuts end tracks (None: never).
    Raises NotFound / InvalidVideo / LimitExceeded for bad input (no output file is left behind).
    """
    t0 = time.perf_counter()
    redactor = _VideoRedactor(
        analyzer,
        score_threshold=score_threshold,
        search=search,
        keep_lost_ms=keep_lost_ms,
        cut_threshold=cut_threshold,
        min_embed_px=min_embed_px,
        margin=margin,
    )
    sampler = FpsSampler(target_fps)
    frames: list[FrameRedaction] = []
    seconds = {"detect": 0.0, "encode": 0.0}
    writer: VideoWriter | None = None
    partial: Path | None = None
    try:
        with open_video(source) as video:
            md = video.metadata
            end_ms = (
                md.duration_ms
                if max_duration_ms is None
                else min(md.duration_ms or math.inf, max_duration_ms)
            )
            pending: list[Frame] = []
            last: list[RedactedFace] = []
            for frame in video.frames():
                if max_duration_ms is not None and frame.pts_ms >= max_duration_ms:
                    break
                if writer is None:
                    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
                    height, width = frame.image.shape[:2]
                    writer = VideoWriter(partial, width, height, md.fps or 25.0)
                if not sampler.keep(frame.pts_ms):
                    pending.append(frame)
                    continue
                t = time.perf_counter()
                regions = redactor.analyse(frame)
                seconds["detect"] += time.perf_counter() - t
                _flush(writer, pending, last, regions, margin, mode, frames, seconds)
                _write(writer, frame, regions, mode, True, frames, seconds)
                last, pending = regions, []
                if on_progress is not None:
                    on_progress(RedactionProgress(frame.pts_ms, end_ms, len(frames)))
            if writer is not None:
                _flush(writer, pending, last, last, margin, mode, frames, seconds)
                if on_progress is not None and frames:
                    on_progress(RedactionProgress(frames[-1].pts_ms, end_ms, len(frames)))
        assert writer is not None and partial is not None  # open_video raises when no frame decodes
        writer.close()
        final = output if writer.path.suffix == output.suffix else output.with_suffix(writer.path.suffix)
        os.replace(writer.path, final)
    except BaseException:
        if writer is not None:
            writer.close()
            writer.path.unlink(missing_ok=True)
        raise
    seconds["total"] = time.perf_counter() - t0
    keeper = redactor.keeper
    return VideoRedaction(
        metadata=md,
        path=final,
        codec=writer.codec,
        frames=frames,
        kept=[] if keeper is None else keeper.kept_tracks(),
        tracks=len(redactor.tracker.all_tracks()),
        cuts_ms=redactor.cuts_ms,
        embeddings=0 if keeper is None else keeper.identifier.embeddings_total + keeper.rechecks,
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )


def _flush(
    writer: VideoWriter,
    pending: list[Frame],
    before: list[RedactedFace],
    after: list[RedactedFace],
    margin: BoxMargin,
    mode: RedactionMode,
    frames: list[FrameRedaction],
    seconds: dict[str, float],
) -> int:
    """Write the frames waiting between two analysed frames; returns how many."""
    if not pending:
        return 0
    height, width = pending[0].image.shape[:2]
    regions = between(before, after, width, height, margin)
    for frame in pending:
        _write(writer, frame, regions, mode, False, frames, seconds)
    return len(pending)


def _write(
    writer: VideoWriter,
    frame: Frame,
    regions: list[RedactedFace],
    mode: RedactionMode,
    analysed: bool,
    frames: list[FrameRedaction],
    seconds: dict[str, float],
) -> None:
    t = time.perf_counter()
    writer.write(obscure(frame.image, [r.box for r in regions if r.box is not None], mode), frame.pts_ms)
    seconds["encode"] += time.perf_counter() - t
    frames.append(FrameRedaction(frame.index, frame.pts_ms, analysed, list(regions)))


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
