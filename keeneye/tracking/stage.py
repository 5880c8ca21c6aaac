"""Person tracking as one stage: detector + tracker + when to run the detector, written once for every
frame loop (``keeneye track``, stored-video jobs, live stream processors).

``PersonTrackingStage.update(frame) -> list[Track]`` is the whole per-frame contract. The detector
is the expensive part (CenterNet + NanoDet ~100 ms per 480x360 frame on 2 cores against ~2 ms for the
tracker), so the stage decides per frame whether it runs (:class:`DetectionSchedule`):

* ``detect_every = N``: the detector runs on every Nth analysed frame; the tracker predicts the others
  (``PersonTracker.coast``: Kalman prediction, no track lost or born). Line and zone stages only move
  tracks on frames with an observation, so counts are unaffected except through tracking quality.
* ``motion_gating``: as Frigate does, a frame where nothing moved since the last detection (the share
  of changed pixels in a small grey, blurred copy of the frame is under ``motion_share``) is not
  detected either; tracks of people standing still are not lost meanwhile because coasting loses
  nothing, and ``max_skip_ms`` forces a detection at least that often (a person who stays put keeps
  being confirmed, and one who appeared without moving much is found within that time).

Both only skip work; with ``detect_every = 1`` and no gating the stage is exactly detector + tracker.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from keeneye.config import PersonsSettings
from keeneye.core.types import Frame, Track, UInt8Image
from keeneye.models.base import ObjectDetector
from keeneye.tracking.tracker import PersonTracker, TrackerConfig

DETECTION_FLOOR = 0.1
"""Lowest person score the detector hands the tracker (its low-score stage), for every model but HOG."""

MOTION_WIDTH = 160  # the motion test runs on a grey copy this wide (PETS: 160x120)
MOTION_PIXEL_DELTA = 25  # grey levels (0-255) a blurred pixel must change to count as moving
MOTION_SHARE = 0.002  # share of pixels that must change: 0.2 % (about 38 pixels of 160x120)


@dataclass(frozen=True)
class ScheduleConfig:
    """When the detector runs: every ``detect_every``-th frame; with ``motion_gating`` also not when
    nothing moved; but never more than ``max_skip_ms`` after the previous detection."""

    detect_every: int = 1
    motion_gating: bool = False
    max_skip_ms: float = 1000.0
    motion_share: float = MOTION_SHARE


class DetectionSchedule:
    """Decides, frame by frame, whether the detector runs (see the module docstring)."""

    def __init__(self, config: ScheduleConfig | None = None) -> None:
        self.config = config or ScheduleConfig()
        if self.config.detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        self._count = 0
        self._last_pts_ms: float | None = None
        self._reference: UInt8Image | None = None

    def due(self, frame: Frame) -> bool:
        """True when the detector should run on ``frame`` (call once per analysed frame, in order)."""
        cfg = self.config
        small = _motion_image(frame.image) if cfg.motion_gating else None
        index, self._count = self._count, self._count + 1
        overdue = self._last_pts_ms is None or frame.pts_ms - self._last_pts_ms >= cfg.max_skip_ms
        run = overdue or index % cfg.detect_every == 0
        if run and not overdue and small is not None and self._reference is not None:
            run = _moving_share(small, self._reference) >= cfg.motion_share
        if run:
            self._last_pts_ms = frame.pts_ms
            self._reference = small
        return run


def _motion_image(image: UInt8Image) -> UInt8Image:
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (MOTION_WIDTH, max(1, round(h * MOTION_WIDTH / w))), interpolation=cv2.INTER_AREA
    )
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return np.asarray(cv2.GaussianBlur(grey, (5, 5), 0), np.uint8)


def _moving_share(a: UInt8Image, b: UInt8Image) -> float:
    return float((cv2.absdiff(a, b) > MOTION_PIXEL_DELTA).mean())


class PersonTrackingStage:
    """Frames in, tracks out: the detector where the schedule says so, the tracker on every frame.

    update(frame) -> the active tracks (live ``Track`` objects, as ``PersonTracker.update`` returns
    them): on a detected frame those matched in it, on a skipped frame every active track (predicted,
    their ``last_pts_ms`` unchanged). ``tracker`` stays reachable for cuts, faces and the final result.
    """

    def __init__(
        self, detector: ObjectDetector, tracker: PersonTracker, schedule: DetectionSchedule | None = None
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.schedule = schedule or DetectionSchedule()
        self.frames_detected = 0

    def update(self, frame: Frame) -> list[Track]:
        if self.schedule.due(frame):
            self.frames_detected += 1
            return self.tracker.update(frame, self.detector.detect(frame.image))
        return self.tracker.coast(frame)


def schedule_config(persons: PersonsSettings) -> ScheduleConfig:
    """The schedule the ``persons`` settings ask for."""
    return ScheduleConfig(persons.detect_every, persons.motion_gating, persons.max_skip_ms)


def tracker_config(persons: PersonsSettings) -> TrackerConfig:
    """Tracker thresholds for the configured detector: ``score_threshold`` starts and keeps tracks on its
    own; scores down to ``DETECTION_FLOOR`` feed the low-score stage (HOG keeps its own threshold)."""
    high = persons.score_threshold
    floor = high if persons.kind == "hog" else min(DETECTION_FLOOR, high)
    return TrackerConfig(
        high_score=high,
        new_track_score=high,
        low_score=floor,
        birth_score=min(TrackerConfig.birth_score, high),
    )


__all__ = [
    "DETECTION_FLOOR",
    "DetectionSchedule",
    "PersonTrackingStage",
    "ScheduleConfig",
    "schedule_config",
    "tracker_config",
]
