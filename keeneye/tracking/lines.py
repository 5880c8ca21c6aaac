"""Directed counting lines: a track's anchor (bottom-centre of its box) crossing a named line.

Geometry is in ratio coordinates (0-1 of the frame's width and height, like Rekognition's BoundingBox) and
converted to pixels per frame, so the same configuration works at any resolution. For a line p1 -> p2 and
a point q (image coordinates, y down), ``cross(p2 - p1, q - p1) < 0`` is the *outside* and ``> 0`` the
*inside*: moving from outside to inside is an ``in`` crossing, the reverse ``out``.

Hysteresis: a track's side only changes once its anchor is more than ``hysteresis`` (a fraction of the
image diagonal) away from the line, so a person standing on the line, or wobbling back before fully
crossing, produces no event. Only crossings whose intersection with the line lies within the segment
(between p1 and p2) count. The anchor is median-filtered over a track's last few observations (see
``LineCounter``), which removes one-frame jumps of the box bottom, so the band only has to cover the
slower wobble; ``DEFAULT_HYSTERESIS`` (1 % of the diagonal, 6 px at 480x360) was chosen from the
trade-off measured on PETS09 S2.L1 (bench/pets_tracking.py): 2 % also swallowed real crossings of
people walking near and along a line (ground-truth tracks lost 14 of 34 events on one line), while
1 % with the median still counts nothing for a person wobbling on the line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from keeneye.core.geometry import anchor
from keeneye.core.types import Frame, Track, TrackPoint

Direction = Literal["in", "out"]
Point = tuple[float, float]

DEFAULT_HYSTERESIS = 0.01
"""Default half-width of a line's dead band, as a fraction of the image diagonal."""

EDGE_TRAIL = 5
"""Observations whose anchors give a track's direction when it leaves through the frame edge."""


@dataclass(frozen=True)
class Line:
    """A named directed segment p1 -> p2 in ratio coordinates (0-1 of width, height); ``hysteresis`` is a
    fraction of the image diagonal."""

    name: str
    p1: Point
    p2: Point
    hysteresis: float = DEFAULT_HYSTERESIS

    def __post_init__(self) -> None:
        if self.p1 == self.p2:
            raise ValueError(f"line {self.name!r} needs two distinct points")
        if self.hysteresis < 0:
            raise ValueError("hysteresis must be >= 0")


@dataclass(frozen=True)
class LineEvent:
    """A track crossing a line: ``pts_ms`` of the observation that confirmed the crossing (the anchor
    cleared the hysteresis band; it can be earlier than the frame that reported it, see
    ``LineCounter.update``), ``direction`` per the cross-product rule, ``identity`` where known."""

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
class _Seen:
    """What the counter remembers of a track (a few numbers, never the ``Track``, whose history grows):
    the last history point it consumed (pts, box), its recent raw anchors (pixels), and whether it
    already handed its sides over to another track."""

    last_pts_ms: float = -math.inf
    last_xyxy: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    anchors: list[Point] = field(default_factory=list)
    handed_over: bool = False
    trail: list[tuple[float, Point]] = field(default_factory=list)  # recent (pts_ms, raw anchor)
    edge_checked: bool = False

    @property
    def height(self) -> float:
        return self.last_xyxy[3] - self.last_xyxy[1]


@dataclass
class LineCounter:
    """Counts crossings of several lines; ``counts[name] = {"in": n, "out": n}``.

    Feed it every frame's tracks (``update``); only tracks observed in that frame move (a lost track's
    predicted box never crosses anything). Three things make the count robust to what a tracker does:

    * A track seen for the first time is replayed from the start of its ``history``, so the positions
      it had while still tentative (before the tracker reported it) count; without this a person whose
      track is confirmed just after the line has no side before it. A track that took over another
      id's observations (the tracker merged two ids) takes over that id's sides instead.
    * Hand-over: when a new track starts within ``handover_ms`` of a *lost* track's last sighting and
      near its last anchor (``handover_reach`` box heights, plus ``handover_reach`` heights per second
      of the gap: about walking speed), it inherits that track's side of every line, once. A person
      whose track broke while crossing (occlusion, a missed detection) and came back under a new id is
      then still counted. The price: a different person who appears there, on the other side of a
      line from where the lost one was, is counted as crossing it (on PETS09, 7 of the 8 hand-overs
      joined two pieces of the same person; the wrong one counted nothing). ``handover_ms = 0``
      disables it.
    * The anchor is the per-coordinate median of the last ``smoothing`` observed anchors: a one-frame
      jump of the box bottom (legs occluded for a frame) neither crosses nor uses up the band. The
      window is in observations, so a crossing is confirmed one observation later, and a person seen
      only once beyond the band before leaving the picture is not counted (rarer the higher the fps).
    * Edge exits: a person walking out of the picture across a line drawn near the frame edge is
      often lost before their feet clear the line's band (the box is cut by the edge, the detector
      drops it). When a track has not been seen for ``edge_exit_ms``, its last box lies within
      ``edge_margin`` (a fraction of the frame's width / height) of an edge, and its anchor was moving
      toward that edge (over its last ``EDGE_TRAIL`` observations), the anchor's path is extended in a
      straight line to the frame border; every line that path crosses (beyond the band, within the
      segment) counts, once, at the last sighting's ``pts_ms``. ``edge_exit_ms = 0`` disables it.
      Measured: tests/tracking/test_edge_exit.py (a PETS09 person walking out through the right
      edge past a line near it: counted with the rule, missed without) and bench/persons.py.
      The price: a person who stops just past the border of the picture and comes back is counted
      out (and back in, when they cross again).
    """

    lines: Sequence[Line]
    smoothing: int = 3
    handover_ms: float = 1500.0
    handover_reach: float = 1.0
    edge_exit_ms: float = 1000.0
    edge_margin: float = 0.03
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _state: dict[tuple[str, int], _Side] = field(default_factory=dict)
    _seen: dict[int, _Seen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [line.name for line in self.lines]
        if len(set(names)) != len(names):
            raise ValueError("line names must be unique")
        if self.smoothing < 1:
            raise ValueError("smoothing must be >= 1")
        if self.handover_ms < 0 or self.handover_reach < 0:
            raise ValueError("handover_ms and handover_reach must be >= 0")
        self.counts = {name: {"in": 0, "out": 0} for name in names}

    def update(self, frame: Frame, tracks: Sequence[Track]) -> list[LineEvent]:
        """Check each track observed in ``frame`` against every line; returns the crossings it confirms.

        An event's ``pts_ms`` is that of the observation that confirmed it: for a track seen for the first
        time it may be earlier than ``frame.pts_ms`` (a point from its tentative period).
        """
        height, width = frame.image.shape[:2]
        diagonal = math.hypot(width, height)
        geometry = [
            (
                line.name,
                (line.p1[0] * width, line.p1[1] * height),
                (line.p2[0] * width, line.p2[1] * height),
                line.hysteresis * diagonal,
            )
            for line in self.lines
        ]
        events: list[LineEvent] = []
        observed = [t for t in tracks if t.history and t.last_pts_ms == frame.pts_ms]
        present = {t.track_id for t in observed}
        for track in observed:
            seen = self._seen.get(track.track_id)
            first_sighting = seen is None
            if seen is None:
                seen = self._seen[track.track_id] = _Seen()
            points = _unconsumed(track, seen.last_pts_ms)
            if len(points) > 1 and self._take_over(track, seen, points[-2]):
                points = points[-1:]
            elif first_sighting:
                self._hand_over(track, present)
            for point in points:
                seen.anchors = [*seen.anchors[-(self.smoothing - 1) :], _anchor(point.xyxy)]
                seen.trail = [*seen.trail[-(EDGE_TRAIL - 1) :], (point.pts_ms, _anchor(point.xyxy))]
                seen.edge_checked = False
                seen.last_pts_ms, seen.last_xyxy = point.pts_ms, point.xyxy
                q = _median(seen.anchors) if self.smoothing > 1 else seen.anchors[-1]
                for name, p1, p2, band in geometry:
                    direction = self._step(name, track.track_id, p1, p2, band, q)
                    if direction is not None:
                        self.counts[name][direction] += 1
                        events.append(
                            LineEvent(name, track.track_id, point.pts_ms, direction, track.identity)
                        )
        if self.edge_exit_ms > 0:
            events += self._edge_exits(frame.pts_ms, present, width, height, geometry)
        return events

    def _edge_exits(
        self,
        now: float,
        present: set[int],
        width: int,
        height: int,
        geometry: list[tuple[str, Point, Point, float]],
    ) -> list[LineEvent]:
        """Crossings of tracks that left through the frame edge (see the class doc)."""
        events: list[LineEvent] = []
        for track_id, seen in self._seen.items():
            if seen.edge_checked or seen.handed_over or track_id in present:
                continue
            if now - seen.last_pts_ms < self.edge_exit_ms or len(seen.trail) < 2:
                continue
            seen.edge_checked = True
            end = _exit_point(seen, width, height, self.edge_margin)
            if end is None:
                continue
            start = _median(seen.anchors) if self.smoothing > 1 else seen.anchors[-1]
            for name, p1, p2, band in geometry:
                state = self._state.get((name, track_id))
                d_end = signed_distance(p1, p2, end)
                side = 1 if d_end > band else -1 if d_end < -band else 0
                if state is None or state.side == 0 or side in (0, state.side):
                    continue
                if not _crosses_within(p1, p2, state.last_clear, end) and not _crosses_within(
                    p1, p2, start, end
                ):
                    continue
                state.side, state.last_clear = side, end
                direction: Direction = "in" if side > 0 else "out"
                self.counts[name][direction] += 1
                events.append(LineEvent(name, track_id, seen.last_pts_ms, direction))
        return events

    def _take_over(self, track: Track, seen: _Seen, before: TrackPoint) -> bool:
        """Whether ``track`` carries observations the counter consumed under another id, ``before``
        being the newest of them: the tracker merged that id into this one (a face re-link,
        ``PersonTracker.attach_face_embedding``). The other id's sides are then the current ones, so
        this track takes them over instead of replaying (and counting again) what was counted."""
        for track_id, other in self._seen.items():
            if track_id == track.track_id or (other.last_pts_ms, other.last_xyxy) != (
                before.pts_ms,
                before.xyxy,
            ):
                continue
            other.handed_over = True
            seen.anchors = list(other.anchors)
            seen.last_pts_ms, seen.last_xyxy = other.last_pts_ms, other.last_xyxy
            for line in self.lines:
                state = self._state.get((line.name, track_id))
                if state is not None:
                    self._state[(line.name, track.track_id)] = _Side(state.side, state.last_clear)
            return True
        return False

    def cut(self) -> None:
        """A shot cut (see ``PersonTracker.cut``): no track after it continues one before it, so none
        may inherit a side across it; counts and the sides of tracks that go on are kept."""
        for seen in self._seen.values():
            seen.handed_over = True

    def _hand_over(self, track: Track, present: set[int]) -> None:
        """Give a new track the sides of the lost track it most plausibly continues (see the class doc).

        A donor is a track not observed in this frame (``present``) and last observed before the new
        track's first observation (so the tracker has lost it), within ``handover_ms`` and reach; the
        nearest one wins.
        """
        if self.handover_ms <= 0:
            return
        first = track.history[0]
        start = _anchor(first.xyxy)
        first_height = first.xyxy[3] - first.xyxy[1]
        best: tuple[float, int] | None = None
        for track_id, other in self._seen.items():
            gap_ms = first.pts_ms - other.last_pts_ms
            if (
                other.handed_over
                or track_id in present
                or track_id == track.track_id
                or not 0 < gap_ms <= self.handover_ms
            ):
                continue
            reach = max(first_height, other.height, 1.0) * self.handover_reach * (1.0 + gap_ms / 1000.0)
            dist = math.dist(start, other.anchors[-1])
            if dist <= reach and (best is None or dist < best[0]):
                best = (dist, track_id)
        if best is None:
            return
        donor = best[1]
        self._seen[donor].handed_over = True
        for line in self.lines:
            state = self._state.get((line.name, donor))
            if state is not None:
                self._state[(line.name, track.track_id)] = _Side(state.side, state.last_clear)

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


def _exit_point(seen: _Seen, width: int, height: int, margin: float) -> Point | None:
    """Where the track's anchor path meets the frame border, if its last box is within ``margin`` of an
    edge and it was moving toward that edge; else None."""
    (t0, a0), (t1, a1) = seen.trail[0], seen.trail[-1]
    if t1 <= t0:
        return None
    vx, vy = (a1[0] - a0[0]) / (t1 - t0), (a1[1] - a0[1]) / (t1 - t0)
    x1, y1, x2, y2 = seen.last_xyxy
    mx, my = margin * width, margin * height
    toward = (x1 <= mx and vx < 0) or (x2 >= width - mx and vx > 0) or (y2 >= height - my and vy > 0)
    toward = toward or (y1 <= my and vy < 0)
    if not toward:
        return None
    ax, ay = a1
    steps = [
        s
        for s in (
            (width - ax) / vx if vx > 0 else -ax / vx if vx < 0 else math.inf,
            (height - ay) / vy if vy > 0 else -ay / vy if vy < 0 else math.inf,
        )
        if s >= 0
    ]
    step = min(steps, default=math.inf)
    if not math.isfinite(step):
        return None
    return (ax + vx * step, ay + vy * step)


def _unconsumed(track: Track, after_pts_ms: float) -> list[TrackPoint]:
    """The track's observations later than ``after_pts_ms`` (normally just the newest one)."""
    n = len(track.history)
    while n > 0 and track.history[n - 1].pts_ms > after_pts_ms:
        n -= 1
    return track.history[n:]


def _anchor(xyxy: tuple[float, float, float, float]) -> Point:
    """Bottom-centre of a box (pixels): where the person stands."""
    return anchor(xyxy)


def _median(points: Sequence[Point]) -> Point:
    xs = sorted(p[0] for p in points)
    ys = sorted(p[1] for p in points)
    n = len(points)
    if n % 2:
        return (xs[n // 2], ys[n // 2])
    return ((xs[n // 2 - 1] + xs[n // 2]) / 2.0, (ys[n // 2 - 1] + ys[n // 2]) / 2.0)


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
