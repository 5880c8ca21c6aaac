"""Named polygon zones: enter / exit events and dwell time per track.

Polygons are in ratio coordinates (0-1 of width, height) and the tested point is the track's anchor
(bottom-centre of its box, where the person stands), as for lines. Hysteresis: a track counts as inside
only once its anchor is inside by more than ``hysteresis`` (a fraction of the image diagonal) from the
boundary, and outside only once it is that far outside, so a person standing on the edge does not
flicker in and out. Dwell time is measured on ``pts_ms``: from the frame that confirmed the entry to the
frame that confirmed the exit (or the last frame the track was seen inside, for ``flush`` and stale tracks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from keeneye.core.types import Frame, Track

Point = tuple[float, float]
ZoneEventKind = Literal["enter", "exit"]


@dataclass(frozen=True)
class Zone:
    """A named polygon (>= 3 vertices, ratio coordinates); ``hysteresis`` is a fraction of the diagonal."""

    name: str
    polygon: tuple[Point, ...]
    hysteresis: float = 0.01

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r} needs at least 3 points")


@dataclass(frozen=True)
class ZoneEvent:
    """A track entering or leaving a zone at ``pts_ms``; ``dwell_ms`` (exit only) is the time spent inside."""

    zone: str
    track_id: int
    pts_ms: float
    kind: ZoneEventKind
    dwell_ms: float | None = None
    identity: str | None = None


@dataclass
class _Presence:
    entered_pts_ms: float
    last_seen_pts_ms: float


@dataclass
class ZoneMonitor:
    """Follows tracks through zones. ``stale_ms``: a track unseen for that long while inside is exited at
    its last-seen time (it left the picture or was lost); ``dwell_ms`` totals the completed visits."""

    zones: Sequence[Zone]
    stale_ms: float = 5000.0
    dwell_ms: dict[tuple[str, int], float] = field(default_factory=dict)
    _inside: dict[tuple[str, int], _Presence] = field(default_factory=dict)
    _identity: dict[int, str | None] = field(default_factory=dict)

    def update(self, frame: Frame, tracks: Sequence[Track]) -> list[ZoneEvent]:
        """Check each track observed in ``frame`` against every zone; returns enter and exit events."""
        height, width = frame.image.shape[:2]
        diagonal = math.hypot(width, height)
        events: list[ZoneEvent] = []
        for zone in self.zones:
            poly = [(x * width, y * height) for x, y in zone.polygon]
            band = zone.hysteresis * diagonal
            for track in tracks:
                if not track.history or track.last_pts_ms != frame.pts_ms:
                    continue
                self._identity[track.track_id] = track.identity
                depth = signed_depth(poly, track.anchor)
                key = (zone.name, track.track_id)
                presence = self._inside.get(key)
                if presence is None and depth > band:
                    self._inside[key] = _Presence(frame.pts_ms, frame.pts_ms)
                    events.append(
                        ZoneEvent(zone.name, track.track_id, frame.pts_ms, "enter", None, track.identity)
                    )
                elif presence is not None and depth < -band:
                    events.append(self._exit(key, frame.pts_ms))
                elif presence is not None:
                    presence.last_seen_pts_ms = frame.pts_ms
        for key, presence in list(self._inside.items()):
            if frame.pts_ms - presence.last_seen_pts_ms > self.stale_ms:
                events.append(self._exit(key, presence.last_seen_pts_ms))
        return events

    def flush(self) -> list[ZoneEvent]:
        """End of video: exit every track still inside, at the last time it was seen there."""
        return [self._exit(key, p.last_seen_pts_ms) for key, p in list(self._inside.items())]

    def current_dwell_ms(self, zone: str, track_id: int, pts_ms: float) -> float:
        """Time the track has spent in the zone so far: completed visits plus the ongoing one, ms."""
        total = self.dwell_ms.get((zone, track_id), 0.0)
        presence = self._inside.get((zone, track_id))
        if presence is not None:
            total += pts_ms - presence.entered_pts_ms
        return total

    def _exit(self, key: tuple[str, int], pts_ms: float) -> ZoneEvent:
        presence = self._inside.pop(key)
        dwell = pts_ms - presence.entered_pts_ms
        self.dwell_ms[key] = self.dwell_ms.get(key, 0.0) + dwell
        return ZoneEvent(key[0], key[1], pts_ms, "exit", dwell, self._identity.get(key[1]))


def signed_depth(polygon: Sequence[Point], q: Point) -> float:
    """Distance in pixels from q to the polygon's boundary: positive inside, negative outside (even-odd
    rule, so self-intersecting polygons behave like their filled regions)."""
    inside = False
    best = math.inf
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if (a[1] > q[1]) != (b[1] > q[1]):
            x_cross = a[0] + (q[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if q[0] < x_cross:
                inside = not inside
        best = min(best, _segment_distance(a, b, q))
    return best if inside else -best


def _segment_distance(a: Point, b: Point, q: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((q[0] - a[0]) * dx + (q[1] - a[1]) * dy) / length2))
    return math.hypot(q[0] - a[0] - t * dx, q[1] - a[1] - t * dy)
