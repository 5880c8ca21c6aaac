"""Person tracking over a whole video: decode -> person detection -> tracker -> lines and zones.

The use case behind ``keeneye track`` and, later, the stored-video jobs (StartPersonTracking): it knows
nothing of the command line or HTTP. It returns plain results in pixels and milliseconds (``Track`` with
its box history, ``LineEvent``, ``ZoneEvent``, the video's metadata and the time spent per stage); each
adapter converts them to its own shape (ratio boxes, Rekognition's PersonDetection, ...).

Detection threshold: the detector runs with a low floor (``DETECTION_FLOOR`` for CenterNet) so that the
tracker's second, low-score association stage (ByteTrack) has the occluded half-people to work with, and
``settings.persons.score_threshold`` is the tracker's high score: the score a box needs to start or keep a
track on its own. This is the configuration ``bench/pets_tracking.py`` measures (MOTA / IDF1 on PETS09).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Frame, Track
from keeneye.models.base import ObjectDetector
from keeneye.pipeline.identification import PersonFaceIdentities
from keeneye.tracking.lines import Line, LineCounter, LineEvent
from keeneye.tracking.tracker import PersonTracker, TrackerConfig
from keeneye.tracking.zones import Zone, ZoneEvent, ZoneMonitor
from keeneye.video.cuts import ShotCutDetector
from keeneye.video.sources import VideoInput, VideoMetadata, open_video

DETECTION_FLOOR = 0.1
"""Lowest CenterNet person score handed to the tracker (its low-score stage); HOG keeps its threshold."""


@dataclass(frozen=True)
class Progress:
    """Where a run is: ``pts_ms`` of the last analysed frame, ``end_ms`` where it will stop (the video's
    duration or the ``max_duration_ms`` cut; None when unknown), frames analysed so far."""

    pts_ms: float
    end_ms: float | None
    frames_analysed: int


@dataclass(frozen=True)
class FrameUpdate:
    """What one analysed frame produced, for live consumers (annotation, streaming sinks).

    tracks: the active tracks matched in this frame (live objects: do not keep them, their history
    grows); line_counts: running ``{line: {"in": n, "out": n}}`` after this frame (a copy).
    """

    frame: Frame
    tracks: Sequence[Track]
    line_events: Sequence[LineEvent]
    zone_events: Sequence[ZoneEvent]
    line_counts: dict[str, dict[str, int]]


@dataclass
class TrackingResult:
    """Everything a run found. Boxes in pixels of ``metadata.width`` x ``metadata.height``; times in ms.

    tracks: every confirmed track ordered by id (``history``: its boxes over time); line_counts:
    ``{line: {"in": n, "out": n}}``; zone_dwell_ms: ``{zone: {track_id: ms}}`` summed over visits;
    frames_decoded / frames_analysed: before / after fps sampling; end_pts_ms: pts of the last analysed
    frame; seconds: wall time per stage (``decode``, ``detect``, ``track``, ``faces``) and ``total``.
    """

    metadata: VideoMetadata
    target_fps: float | None
    tracks: list[Track]
    line_events: list[LineEvent]
    line_counts: dict[str, dict[str, int]]
    zone_events: list[ZoneEvent]
    zone_dwell_ms: dict[str, dict[int, float]]
    frames_decoded: int
    frames_analysed: int
    end_pts_ms: float | None
    seconds: dict[str, float] = field(default_factory=dict)


def tracking_thresholds(settings: Settings) -> TrackerConfig:
    """The tracker thresholds for the configured person detector (its low-score floor included)."""
    threshold = settings.persons.score_threshold
    floor = min(DETECTION_FLOOR, threshold) if settings.persons.kind == "centernet" else threshold
    return TrackerConfig(high_score=threshold, new_track_score=threshold, low_score=floor)


def build_tracking_detector(settings: Settings) -> tuple[ObjectDetector, TrackerConfig]:
    """The configured person detector with its low-score floor, and the tracker thresholds to match."""
    from keeneye.models.registry import build_person_detector

    config = tracking_thresholds(settings)
    persons = settings.persons.model_copy(update={"score_threshold": config.low_score})
    detector = build_person_detector(settings.model_copy(update={"persons": persons}))
    return detector, config


def track_video(
    source: VideoInput,
    settings: Settings,
    lines: Sequence[Line] = (),
    zones: Sequence[Zone] = (),
    *,
    target_fps: float | None = None,
    max_duration_ms: float | None = None,
    detector: ObjectDetector | None = None,
    tracker_config: TrackerConfig | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_frame: Callable[[FrameUpdate], None] | None = None,
    identities: PersonFaceIdentities | None = None,
    max_pixels: int | None = None,
) -> TrackingResult:
    """Track people through ``source`` (a path, http(s) URL, bytes or binary file object).

    lines / zones: in ratio coordinates (see keeneye.tracking.lines / zones for the in/out rule and the
    hysteresis). target_fps: frames per second analysed (default ``settings.persons.target_fps``; None:
    every frame). max_duration_ms: stop after this much video (pts), e.g. for a preview. detector /
    tracker_config: override what ``build_tracking_detector`` makes from ``settings`` (tests, reuse across
    jobs). on_progress is called after each analysed frame, on_frame with what the frame produced.
    identities: who the tracks are (faces searched in a collection, see keeneye.pipeline.identification);
    its tracker settings must come with it (``tracker_config`` with a calibrated ``reid_face_similarity``).
    max_pixels: largest frame (width x height) accepted, in the header and in every frame (LimitExceeded).

    The video is opened (and its header checked) before the detector is loaded, so bad input fails fast.
    Raises NotFound, InvalidVideo (also mid-way, for a corrupt or truncated body), LimitExceeded,
    InvalidParameter, BackendUnavailable (model missing).
    """
    if target_fps is None:
        target_fps = settings.persons.target_fps
    if target_fps is not None and not target_fps > 0:
        raise InvalidParameter(f"target fps must be > 0, got {target_fps}")
    if max_duration_ms is not None and not max_duration_ms > 0:
        raise InvalidParameter(f"max duration must be > 0 ms, got {max_duration_ms}")
    started = time.perf_counter()
    with open_video(source, max_pixels=max_pixels) as video:
        if detector is None:
            detector, default_config = build_tracking_detector(settings)
            tracker_config = tracker_config or default_config
        tracker = PersonTracker(tracker_config)
        cut_threshold = settings.persons.shot_cut_threshold
        cuts = None if cut_threshold is None else ShotCutDetector(cut_threshold)
        counter = LineCounter(list(lines))
        monitor = ZoneMonitor(list(zones))
        line_events: list[LineEvent] = []
        zone_events: list[ZoneEvent] = []
        duration = video.metadata.duration_ms
        end_ms = duration if max_duration_ms is None else min(max_duration_ms, duration or max_duration_ms)
        seconds = {"decode": 0.0, "detect": 0.0, "track": 0.0, "faces": 0.0}
        analysed = 0
        last_pts: float | None = None
        frames = video.frames(target_fps)
        t0 = time.perf_counter()
        for frame in frames:
            if max_duration_ms is not None and frame.pts_ms >= max_duration_ms:
                break
            if cuts is not None and cuts.is_cut(frame.image):
                tracker.cut()
                counter.cut()
            t1 = time.perf_counter()
            dets = detector.detect(frame.image)
            t2 = time.perf_counter()
            live = tracker.update(frame, dets)
            t_faces = time.perf_counter()
            if identities is not None:
                identities.step(frame.image, frame.pts_ms, tracker, live)
            faces_s = time.perf_counter() - t_faces
            new_lines = counter.update(frame, live)
            new_zones = monitor.update(frame, live)
            line_events += new_lines
            zone_events += new_zones
            t3 = time.perf_counter()
            seconds["decode"] += t1 - t0
            seconds["detect"] += t2 - t1
            seconds["track"] += t3 - t2 - faces_s
            seconds["faces"] += faces_s
            analysed += 1
            last_pts = frame.pts_ms
            if on_frame is not None:
                counts = {k: dict(v) for k, v in counter.counts.items()}
                on_frame(FrameUpdate(frame, live, new_lines, new_zones, counts))
            if on_progress is not None:
                on_progress(Progress(frame.pts_ms, end_ms, analysed))
            t0 = time.perf_counter()
        zone_events += monitor.flush()
        frames_decoded = video.frames_decoded
        metadata = video.metadata
    dwell: dict[str, dict[int, float]] = {zone.name: {} for zone in zones}
    for (name, track_id), ms in monitor.dwell_ms.items():
        dwell[name][track_id] = ms
    seconds["total"] = time.perf_counter() - started
    return TrackingResult(
        metadata=metadata,
        target_fps=target_fps,
        tracks=tracker.all_tracks(),
        line_events=line_events,
        line_counts=counter.counts,
        zone_events=sorted(zone_events, key=lambda e: (e.pts_ms, e.track_id)),
        zone_dwell_ms=dwell,
        frames_decoded=frames_decoded,
        frames_analysed=analysed,
        end_pts_ms=last_pts,
        seconds=seconds,
    )
