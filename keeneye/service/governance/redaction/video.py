"""Redacting a video: faces tracked, a missed face's predicted box obscured, frames between analysed
frames obscured with the boxes of both ends, a collection's faces kept once their track matched (the
rules are in the package docstring, keeneye/service/governance/redaction/__init__.py)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.core.types import Face, Frame, Track
from keeneye.pipeline.faces import FaceSteps
from keeneye.pipeline.identification import (
    Searcher,
    TrackFaceIdentifier,
    face_box_tracker_config,
    faces_on_face_tracks,
    offer_face,
    relink_cosine,
)
from keeneye.pipeline.loop import run_frames
from keeneye.service.faces.collections import FaceMatch
from keeneye.service.governance.redaction.face_regions import (
    DEFAULT_MARGIN,
    REDACTION_SCORE_THRESHOLD,
    BoxMargin,
    RedactedFace,
    RedactionMode,
    enlarge,
    face_name,
    kept_face,
    min_side,
    obscure,
    overlapping_faces,
    xyxy_tuple,
)
from keeneye.tracking.tracker import PersonTracker, TrackerConfig
from keeneye.video.cuts import DEFAULT_CUT_THRESHOLD, ShotCutDetector
from keeneye.video.sampling import FpsSampler
from keeneye.video.sources import VideoInput, VideoMetadata, open_video
from keeneye.video.writer import VideoCodec, VideoWriter

KEEP_LOST_MS = 1000.0
"""How long a face the detector no longer finds stays obscured at its track's predicted box (ms)."""

RETRY_MS = 300.0
"""With a collection to keep: an unmatched face track is embedded and searched again after this long (ms),
at most 6 times in all (plus a re-check each time a matched track is found again after a gap)."""


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
        # fuse=1: each face searched alone (the fused search of face tracks, faces.track_fusion, was
        # measured for face search, not for what redaction keeps visible).
        self.identifier = TrackFaceIdentifier(analyzer, search, max_embeddings=6, retry_ms=RETRY_MS, fuse=1)
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
            if min_side(face.xyxy) < self.min_embed_px:
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
                        face_name(best),
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
        overlapping = overlapping_faces(faces)
        height, width = frame.image.shape[:2]
        out: list[RedactedFace] = []
        for i, face in enumerate(faces):
            track = track_of.get(id(face))
            tid = None if track is None else track.track_id
            if tid is not None and tid in keep and i not in overlapping:
                out.append(kept_face(face, keep[tid], tid))
                continue
            box = enlarge(face.xyxy, self.margin, width, height)
            out.append(RedactedFace(xyxy_tuple(face.xyxy), box, round(float(face.score), 4), track_id=tid))
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
    out: _RedactedOutput | None = None
    try:
        with open_video(source) as video:
            md = video.metadata
            end_ms = (
                md.duration_ms
                if max_duration_ms is None
                else min(md.duration_ms or math.inf, max_duration_ms)
            )
            out = _RedactedOutput(output, md.fps or 25.0, margin, mode)
            writer = out

            def step(frame: Frame) -> None:
                # Every frame is written; the detector runs on target_fps of them, and shot cuts are
                # looked for on those (the redactor's own), not by the loop.
                if not sampler.keep(frame.pts_ms):
                    writer.hold(frame)
                    return
                t = time.perf_counter()
                regions = redactor.analyse(frame)
                writer.seconds["detect"] += time.perf_counter() - t
                writer.analysed(frame, regions)
                if on_progress is not None:
                    on_progress(RedactionProgress(frame.pts_ms, end_ms, len(writer.frames)))

            run_frames(video.frames(), step, max_duration_ms=max_duration_ms)
            out.end()
            if on_progress is not None and out.frames:
                on_progress(RedactionProgress(out.frames[-1].pts_ms, end_ms, len(out.frames)))
        final, codec = out.finish()
    except BaseException:
        if out is not None:
            out.discard()
        raise
    out.seconds["total"] = time.perf_counter() - t0
    keeper = redactor.keeper
    return VideoRedaction(
        metadata=md,
        path=final,
        codec=codec,
        frames=out.frames,
        kept=[] if keeper is None else keeper.kept_tracks(),
        tracks=len(redactor.tracker.all_tracks()),
        cuts_ms=redactor.cuts_ms,
        embeddings=0 if keeper is None else keeper.identifier.embeddings_total + keeper.rechecks,
        seconds={k: round(v, 3) for k, v in out.seconds.items()},
    )


class _RedactedOutput:
    """The redacted video on its way to ``output``: frames between two analysed frames wait in memory
    (never on disk) for the second one, then are obscured with the regions of both ends; every frame
    written is recorded (:class:`FrameRedaction`) and the encoding timed. The video is written to a
    hidden partial name beside ``output`` and renamed only when complete (:meth:`finish`)."""

    def __init__(self, output: Path, fps: float, margin: BoxMargin, mode: RedactionMode) -> None:
        self.output, self.fps, self.margin, self.mode = output, fps, margin, mode
        self.frames: list[FrameRedaction] = []
        self.seconds = {"detect": 0.0, "encode": 0.0}
        self._writer: VideoWriter | None = None
        self._pending: list[Frame] = []
        self._last: list[RedactedFace] = []

    def _writer_for(self, frame: Frame) -> VideoWriter:
        if self._writer is None:  # opened at the first frame: its size is the video's
            partial = self.output.with_name(f".{self.output.stem}.partial{self.output.suffix}")
            height, width = frame.image.shape[:2]
            self._writer = VideoWriter(partial, width, height, self.fps)
        return self._writer

    def hold(self, frame: Frame) -> None:
        """A frame the detector skips: written once the next analysed frame gives its other end."""
        self._writer_for(frame)
        self._pending.append(frame)

    def analysed(self, frame: Frame, regions: list[RedactedFace]) -> None:
        """An analysed frame and its face regions: the frames held before it go out, then it."""
        writer = self._writer_for(frame)
        self._flush(writer, regions)
        self._write(writer, frame, regions, True)
        self._last = regions

    def end(self) -> None:
        """The video ended: the frames held since the last analysed frame get its regions."""
        if self._writer is not None:
            self._flush(self._writer, self._last)

    def finish(self) -> tuple[Path, VideoCodec]:
        """Close the file and give it its name (MJPEG AVI: ``output`` with the writer's suffix)."""
        assert self._writer is not None  # open_video raises when no frame decodes
        writer = self._writer
        writer.close()
        final = (
            self.output
            if writer.path.suffix == self.output.suffix
            else self.output.with_suffix(writer.path.suffix)
        )
        os.replace(writer.path, final)
        return final, writer.codec

    def discard(self) -> None:
        """On error: nothing partial is left behind."""
        if self._writer is not None:
            self._writer.close()
            self._writer.path.unlink(missing_ok=True)

    def _flush(self, writer: VideoWriter, after: list[RedactedFace]) -> None:
        """Write the frames waiting between the last analysed frame and one with regions ``after``."""
        if not self._pending:
            return
        height, width = self._pending[0].image.shape[:2]
        regions = between(self._last, after, width, height, self.margin)
        for frame in self._pending:
            self._write(writer, frame, regions, False)
        self._pending = []

    def _write(self, writer: VideoWriter, frame: Frame, regions: list[RedactedFace], analysed: bool) -> None:
        t = time.perf_counter()
        writer.write(
            obscure(frame.image, [r.box for r in regions if r.box is not None], self.mode), frame.pts_ms
        )
        self.seconds["encode"] += time.perf_counter() - t
        self.frames.append(FrameRedaction(frame.index, frame.pts_ms, analysed, list(regions)))
