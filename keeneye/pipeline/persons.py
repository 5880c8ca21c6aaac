"""Person tracking, written once for every frame loop (``keeneye track``, stored-video jobs, live stream
processors): detector + tracker + when to run the detector (:class:`PersonTrackingStage`), and the
steps after it, lines, zones and who the tracks are (:class:`PersonSteps`).

``PersonTrackingStage.update(frame) -> list[Track]`` is the whole per-frame contract. The detector
is the expensive part (CenterNet + NanoDet ~100 ms per 480x360 frame on 2 cores against ~2 ms for the
tracker), so the stage decides per frame whether it runs (:class:`DetectionSchedule`):

* ``detect_every = N``: the detector runs on every Nth analysed frame; the tracker predicts the others
  (``PersonTracker.coast``: Kalman prediction, no track lost or born). Line and zone stages only move
  tracks on frames with an observation, so counts are unaffected except through tracking quality.
* ``motion_gating`` (keeneye.pipeline.schedule, shared with live face search): as Frigate does, a
  frame where nothing moved since the last detection (the share of changed pixels in a small grey,
  blurred copy of the frame is under ``motion_share``) is not detected either; tracks of people standing
  still are not lost meanwhile because coasting loses nothing, and ``max_skip_ms`` forces a detection at
  least that often (a person who stays put keeps being confirmed, and one who appeared without moving
  much is found within that time).

Both only skip work; with ``detect_every = 1`` and no gating the stage is exactly detector + tracker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keeneye.config import PersonsSettings, Settings
from keeneye.core.events import Event, FrameContext, LineCrossed, ZoneVisit
from keeneye.core.types import Detections, Frame, Track
from keeneye.models.base import ObjectDetector
from keeneye.models.registry import build_person_detector
from keeneye.pipeline.identification import PersonFaceIdentities
from keeneye.pipeline.schedule import DetectionSchedule, ScheduleConfig
from keeneye.tracking.lines import Line, LineCounter, LineEvent
from keeneye.tracking.tracker import PersonTracker, TrackerConfig
from keeneye.tracking.zones import Zone, ZoneEvent, ZoneMonitor

DETECTION_FLOOR = 0.1
"""Lowest person score the detector hands the tracker (its low-score stage), for every model but HOG."""

DetectionFilter = Callable[[Frame, Detections], Detections]
"""Which detections of a frame the tracker sees (e.g. only people whose feet are in a region of interest)."""


class PersonTrackingStage:
    """Frames in, tracks out: the detector where the schedule says so, the tracker on every frame.

    update(frame) -> the active tracks (live ``Track`` objects, as ``PersonTracker.update`` returns
    them): on a detected frame those matched in it, on a skipped frame every active track (predicted,
    their ``last_pts_ms`` unchanged). ``tracker`` stays reachable for cuts, faces and the final result.
    ``keep`` filters the detections before the tracker; ``seconds`` sums the time spent detecting and
    tracking.
    """

    def __init__(
        self,
        detector: ObjectDetector,
        tracker: PersonTracker,
        schedule: DetectionSchedule | None = None,
        *,
        keep: DetectionFilter | None = None,
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.schedule = schedule or DetectionSchedule()
        self.keep = keep
        self.frames_detected = 0
        self.seconds = {"detect": 0.0, "track": 0.0}

    def update(self, frame: Frame) -> list[Track]:
        t0 = time.perf_counter()
        if self.schedule.due(frame):
            self.frames_detected += 1
            detections = self.detector.detect(frame.image)
            if self.keep is not None:
                detections = self.keep(frame, detections)
            t1 = time.perf_counter()
            live = self.tracker.update(frame, detections)
        else:
            t1 = time.perf_counter()
            live = self.tracker.coast(frame)
        self.seconds["detect"] += t1 - t0
        self.seconds["track"] += time.perf_counter() - t1
        return live


def schedule_config(persons: PersonsSettings) -> ScheduleConfig:
    """The schedule the ``persons`` settings ask for."""
    return ScheduleConfig(persons.detect_every, persons.motion_gating, persons.max_skip_ms)


def tracker_config(persons: PersonsSettings) -> TrackerConfig:
    """Tracker thresholds for the configured detector: ``score_threshold`` starts and keeps tracks on its
    own; scores down to ``DETECTION_FLOOR`` feed the low-score stage (HOG keeps its own threshold);
    ``birth_score`` (slow births, off when unset) and ``confirm_score`` as configured."""
    high = persons.score_threshold
    floor = high if persons.kind == "hog" else min(DETECTION_FLOOR, high)
    birth = high if persons.birth_score is None else min(max(persons.birth_score, floor), high)
    return TrackerConfig(
        high_score=high,
        new_track_score=high,
        low_score=floor,
        birth_score=birth,
        confirm_score=persons.confirm_score,
    )


def build_tracking_detector(settings: Settings) -> tuple[ObjectDetector, TrackerConfig]:
    """The configured person detector with its low-score floor, and the tracker thresholds to match."""
    config = tracker_config(settings.persons)
    persons = settings.persons.model_copy(update={"score_threshold": config.low_score})
    return build_person_detector(settings.model_copy(update={"persons": persons})), config


def build_person_stage(
    settings: Settings,
    *,
    detector: ObjectDetector | None = None,
    config: TrackerConfig | None = None,
    keep: DetectionFilter | None = None,
) -> PersonTrackingStage:
    """The person stage the ``persons`` settings ask for (``detector`` / ``config``: already built ones,
    e.g. shared by the jobs of a server), with its detection schedule."""
    if detector is None:
        detector, built = build_tracking_detector(settings)
        config = config or built
    config = config or tracker_config(settings.persons)
    schedule = DetectionSchedule(schedule_config(settings.persons))
    return PersonTrackingStage(detector, PersonTracker(config), schedule, keep=keep)


@dataclass(frozen=True)
class PersonUpdate:
    """What one analysed frame gave: the live tracks (do not keep them: their history grows), the line
    crossings and zone enters / exits it confirmed, and the running ``{line: {"in": n, "out": n}}``."""

    frame: Frame
    tracks: Sequence[Track]
    line_events: Sequence[LineEvent]
    zone_events: Sequence[ZoneEvent]
    line_counts: dict[str, dict[str, int]]


class PersonSteps:
    """Person tracking with cuts, lines and zones, once for every use: the stage (detector + tracker),
    then who the tracks are (``identities``: faces searched in a collection), then the line counter and
    the zone monitor, so that crossings after a match carry the name."""

    def __init__(
        self,
        stage: PersonTrackingStage,
        lines: Sequence[Line] = (),
        zones: Sequence[Zone] = (),
        *,
        identities: PersonFaceIdentities | None = None,
    ) -> None:
        self.stage = stage
        self.identities = identities
        self.counter = LineCounter(list(lines))
        self.monitor = ZoneMonitor(list(zones))
        self.seconds_faces = 0.0

    @property
    def tracker(self) -> PersonTracker:
        return self.stage.tracker

    def cut(self) -> None:
        """A shot cut: no track, and no line crossing, continues across it."""
        self.stage.tracker.cut()
        self.counter.cut()

    def step(self, frame: Frame) -> PersonUpdate:
        live = self.stage.update(frame)
        if self.identities is not None:
            t0 = time.perf_counter()
            self.identities.step(frame.image, frame.pts_ms, self.stage.tracker, live)
            self.seconds_faces += time.perf_counter() - t0
        lines = self.counter.update(frame, live)
        zones = self.monitor.update(frame, live)
        counts = {k: dict(v) for k, v in self.counter.counts.items()}
        return PersonUpdate(frame, live, lines, zones, counts)

    def finish(self) -> list[ZoneEvent]:
        """The zone exits of the tracks still inside at the end."""
        return self.monitor.flush()


def person_events(update: PersonUpdate, source_id: str, context: FrameContext) -> list[Event]:
    """The line crossings and zone enters / exits of one update, as events."""
    out = [
        Event(
            "line_crossed",
            source_id,
            e.pts_ms,
            e.track_id,
            LineCrossed(e.line, e.direction, e.identity),
            context,
        )
        for e in update.line_events
    ]
    out += [
        Event(
            "zone_entered" if e.kind == "enter" else "zone_left",
            source_id,
            e.pts_ms,
            e.track_id,
            ZoneVisit(e.zone, e.dwell_ms, e.identity),
            context,
        )
        for e in update.zone_events
    ]
    return out


__all__ = [
    "DETECTION_FLOOR",
    "DetectionSchedule",
    "PersonSteps",
    "PersonTrackingStage",
    "PersonUpdate",
    "ScheduleConfig",
    "build_person_stage",
    "build_tracking_detector",
    "person_events",
    "schedule_config",
    "tracker_config",
]
