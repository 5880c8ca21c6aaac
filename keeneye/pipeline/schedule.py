"""When a frame loop runs its detector: every Nth analysed frame, not when nothing moved, and at least every
``max_skip_ms`` (:class:`DetectionSchedule`). Written once for person tracking (keeneye.pipeline.persons)
and live face search (keeneye.pipeline.faces); the trackers predict the frames it skips.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from keeneye.core.types import Frame, UInt8Image

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
        index, self._count = self._count, self._count + 1
        overdue = self._last_pts_ms is None or frame.pts_ms - self._last_pts_ms >= cfg.max_skip_ms
        if not (overdue or index % cfg.detect_every == 0):
            return False  # not an Nth frame: no motion image needed (the hot path of a live camera)
        small = _motion_image(frame.image) if cfg.motion_gating else None
        still = (
            not overdue
            and small is not None
            and self._reference is not None
            and _moving_share(small, self._reference) < cfg.motion_share
        )
        if still:
            return False  # nothing moved since the last detection
        self._last_pts_ms = frame.pts_ms
        self._reference = small
        return True


def _motion_image(image: UInt8Image) -> UInt8Image:
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (MOTION_WIDTH, max(1, round(h * MOTION_WIDTH / w))), interpolation=cv2.INTER_AREA
    )
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return np.asarray(cv2.GaussianBlur(grey, (5, 5), 0), np.uint8)


def _moving_share(a: UInt8Image, b: UInt8Image) -> float:
    return float((cv2.absdiff(a, b) > MOTION_PIXEL_DELTA).mean())
