"""Directed counting lines: a track's anchor (bottom-centre of its box) crossing a named line.

Geometry is in ratio coordinates (0-1 of the frame's width and height, like Rekognition's BoundingBox) and
converted to pixels per frame, so the same configuration works at any resolution. For a line p1 -> p2 and
a point q (image coordinates, y down), ``cross(p2 - p1, q - p1) < 0`` is the *outside* and ``> 0`` the
*inside*: moving from outside to inside is an ``in`` crossing, the reverse ``out``.

Hysteresis: a track's side only changes once its anchor is more than ``hysteresis`` (a fraction of the
image diagonal) away from the line, so a person standing on the line, or wobbling back before fully
crossing, produces no event. Only crossings whose intersection with the line lies within the segment
(between p1 and p2) count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from keeneye.core.types import Frame, Track

Direction = Literal["in", "out"]
Point = tuple[float, float]


@dataclass(frozen=True)
class Line:
    """A named directed segment p1 -> p2 in ratio coordinates (0-1 of width, height); ``hysteresis`` is a
    fraction of the image diagonal."""

    name: str
    p1: Point
    p2: Point
    hysteresis: float = 0.02

    def __post_init__(self) -> None:
        if self.p1 == self.p2:
            raise ValueError(f"line {self.name!r} needs two distinct points")
        if self.hysteresis < 0:
            raise ValueError("hysteresis must be >= 0")


@dataclass(frozen=True)
class LineEvent:
    """A track crossing a line: ``pts_ms`` of the frame where the crossing was confirmed (the anchor
    cleared the hysteresis band), ``direction`` per the cross-product rule, ``identity`` where known."""

    line: str
    track_id: int
    pts_ms: float
    direction: Direction
    identity: str | None = None


@dataclass
class _Side:
    side: int  # -1 outside, +1 inside, 0 not yet known (first seen inside the hysteresis band)
    last_clear: Point  # last anchor (pixels) that was clearly on ``side``


@dataclass
class LineCounter:
    """Counts crossings of several lines; ``counts[name] = {"in": n, "out": n}``.

    Feed it every frame's tracks (``update``); only tracks observed in that frame move (a lost track's
    predicted box never crosses anything).
    """

    lines: Sequence[Line]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _state: dict[tuple[str, int], _Side] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [line.name for line in self.lines]
        if len(set(names)) != len(names):
            raise ValueError("line names must be unique")
        self.counts = {name: {"in": 0, "out": 0} for name in names}

    def update(self, frame: Frame, tracks: Sequence[Track]) -> list[LineEvent]:
        """Check each track observed in ``frame`` against every line; returns the crossings it confirms."""
        height, width = frame.image.shape[:2]
        events: list[LineEvent] = []
        for line in self.lines:
            p1 = (line.p1[0] * width, line.p1[1] * height)
            p2 = (line.p2[0] * width, line.p2[1] * height)
            band = line.hysteresis * math.hypot(width, height)
            for track in tracks:
                if not track.history or track.last_pts_ms != frame.pts_ms:
                    continue
                direction = self._step(line.name, track.track_id, p1, p2, band, track.anchor)
                if direction is not None:
                    self.counts[line.name][direction] += 1
                    events.append(
                        LineEvent(line.name, track.track_id, frame.pts_ms, direction, track.identity)
                    )
        return events

    def _step(
        self, name: str, track_id: int, p1: Point, p2: Point, band: float, q: Point
    ) -> Direction | None:
        d = signed_distance(p1, p2, q)
        side = 1 if d > band else -1 if d < -band else 0
        key = (name, track_id)
        state = self._state.get(key)
        if state is None:
            self._state[key] = _Side(side, q)
            return None
        if side == 0:
            return None
        if state.side == 0 or side == state.side:
            state.side, state.last_clear = side, q
            return None
        start = state.last_clear
        state.side, state.last_clear = side, q
        if not _crosses_within(p1, p2, start, q):
            return None
        return "in" if side > 0 else "out"


def signed_distance(p1: Point, p2: Point, q: Point) -> float:
    """cross(p2 - p1, q - p1) / |p2 - p1|: distance of q from the line in pixels, positive on the ``in``
    side (image coordinates, y down)."""
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    return (dx * (q[1] - p1[1]) - dy * (q[0] - p1[0])) / math.hypot(dx, dy)


def _crosses_within(p1: Point, p2: Point, a: Point, b: Point) -> bool:
    """Whether the path a -> b (on opposite sides of the line) meets the line between p1 and p2."""
    da, db = signed_distance(p1, p2, a), signed_distance(p1, p2, b)
    if da == db:
        return False
    t = da / (da - db)
    x = a[0] + t * (b[0] - a[0])
    y = a[1] + t * (b[1] - a[1])
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    u = ((x - p1[0]) * dx + (y - p1[1]) * dy) / (dx * dx + dy * dy)
    return 0.0 <= u <= 1.0
