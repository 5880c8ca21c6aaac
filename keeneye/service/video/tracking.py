"""Person tracking over a whole video: decode -> person detection -> tracker -> lines and zones.

The use case behind ``keeneye track`` and, later, the stored-video jobs (StartPersonTracking): it knows
nothing of the command line or HTTP. It returns plain results in pixels and milliseconds (``Track`` with
its box history, ``LineEvent``, ``ZoneEvent``, the video's metadata and the time spent per stage); each
adapter converts them to its own shape (ratio boxes, Rekognition's PersonDetection, ...).

The frames go through the one frame loop (keeneye.pipeline.loop) and the person steps written once for
every use (keeneye.pipeline.persons: detector + tracker on the detection schedule, identities, lines,
zones). Detection threshold: the detector runs with a low floor (``DETECTION_FLOOR``, every model but
HOG) so that the tracker's second, low-score association stage (ByteTrack) has the occluded half-people
to work with, and ``settings.persons.score_threshold`` is the tracker's high score: the score a box
needs to start or keep a track on its own. ``bench/persons.py`` measures this configuration.
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
from keeneye.pipeline.loop import Progress as Progress  # re-exported: what on_progress receives
from keeneye.pipeline.loop import run_frames
from keeneye.pipeline.persons import PersonSteps, build_person_stage
from keeneye.pipeline.persons import build_tracking_detector as build_tracking_detector  # re-exported
from keeneye.pipeline.persons import tracker_config as persons_tracker_config
from keeneye.tracking.lines import Line, LineEvent
from keeneye.tracking.tracker import TrackerConfig
from keeneye.tracking.zones import Zone, ZoneEvent
from keeneye.video.sources import VideoInput, VideoMetadata, open_video


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
    return persons_tracker_config(settings.persons)


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
    target_fps = _checked_rate(settings, target_fps, max_duration_ms)
    started = time.perf_counter()
    with open_video(source, max_pixels=max_pixels) as video:
        if detector is not None and tracker_config is None:
            tracker_config = TrackerConfig()  # a detector of the caller's: the tracker's own defaults
        stage = build_person_stage(settings, detector=detector, config=tracker_config)
        steps = PersonSteps(stage, lines, zones, identities=identities)
        line_events: list[LineEvent] = []
        zone_events: list[ZoneEvent] = []
        duration = video.metadata.duration_ms
        end_ms = duration if max_duration_ms is None else min(max_duration_ms, duration or max_duration_ms)

        loop = run_frames(
            video.frames(target_fps),
            _stepper(steps, line_events, zone_events, on_frame),
            cut=steps.cut,
            cut_threshold=settings.persons.shot_cut_threshold,
            max_duration_ms=max_duration_ms,
            on_progress=on_progress,
            end_ms=end_ms,
        )
        zone_events += steps.finish()
        frames_decoded = video.frames_decoded
        metadata = video.metadata
    dwell: dict[str, dict[int, float]] = {zone.name: {} for zone in zones}
    for (name, track_id), ms in steps.monitor.dwell_ms.items():
        dwell[name][track_id] = ms
    seconds = {
        "decode": loop.seconds["decode"],
        "detect": stage.seconds["detect"],
        "track": loop.seconds["step"] - stage.seconds["detect"] - steps.seconds_faces,
        "faces": steps.seconds_faces,
        "total": time.perf_counter() - started,
    }
    return TrackingResult(
        metadata=metadata,
        target_fps=target_fps,
        tracks=steps.tracker.all_tracks(),
        line_events=line_events,
        line_counts=steps.counter.counts,
        zone_events=sorted(zone_events, key=lambda e: (e.pts_ms, e.track_id)),
        zone_dwell_ms=dwell,
        frames_decoded=frames_decoded,
        frames_analysed=loop.frames_analysed,
        end_pts_ms=loop.end_pts_ms,
        seconds=seconds,
    )


def _checked_rate(
    settings: Settings, target_fps: float | None, max_duration_ms: float | None
) -> float | None:
    """The frames per second to analyse (``settings.persons.target_fps`` unless given); InvalidParameter
    for a rate or a duration that is not > 0."""
    if target_fps is None:
        target_fps = settings.persons.target_fps
    if target_fps is not None and not target_fps > 0:
        raise InvalidParameter(f"target fps must be > 0, got {target_fps}")
    if max_duration_ms is not None and not max_duration_ms > 0:
        raise InvalidParameter(f"max duration must be > 0 ms, got {max_duration_ms}")
    return target_fps


def _stepper(
    steps: PersonSteps,
    line_events: list[LineEvent],
    zone_events: list[ZoneEvent],
    on_frame: Callable[[FrameUpdate], None] | None,
) -> Callable[[Frame], None]:
    """One analysed frame through the person steps; its line and zone events are appended to the lists."""

    def step(frame: Frame) -> None:
        update = steps.step(frame)
        line_events.extend(update.line_events)
        zone_events.extend(update.zone_events)
        if on_frame is not None:
            on_frame(
                FrameUpdate(frame, update.tracks, update.line_events, update.zone_events, update.line_counts)
            )

    return step
