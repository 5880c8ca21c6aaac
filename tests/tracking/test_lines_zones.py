"""Lines (direction by the cross-product rule, hysteresis, segment extent) and zones (enter, exit, dwell)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from keeneye.core.types import Frame, Track, TrackPoint
from keeneye.tracking.lines import Line, LineCounter, signed_distance
from keeneye.tracking.zones import Zone, ZoneMonitor

W, H = 400, 300  # diagonal 500 px
IMAGE = np.zeros((H, W, 3), np.uint8)


def _walk(
    anchors: Sequence[tuple[float, float]], track_id: int = 7, identity: str | None = None
) -> Iterator[tuple[Frame, Track]]:
    """Frames and the (live) track as seen in each, for a path of anchor (foot) points in pixels, 100 ms
    apart; consume in order."""
    track = Track(track_id, 0, 0.0, 0.0, "active", identity=identity)
    for i, (x, y) in enumerate(anchors):
        track.history.append(TrackPoint(i * 100.0, (x - 10, y - 50, x + 10, y), 0.9))
        track.last_pts_ms = i * 100.0
        yield Frame("t", i, i * 100.0, IMAGE), track


def _line_events(
    line: Line, anchors: Sequence[tuple[float, float]], smoothing: int = 1
) -> list[tuple[str, float]]:
    """Events for one track walking ``anchors``; ``smoothing=1`` (raw anchors) tests the rule itself."""
    counter = LineCounter([line], smoothing=smoothing)
    events: list[tuple[str, float]] = []
    for frame, track in _walk(anchors, identity="alice"):
        for e in counter.update(frame, [track]):
            assert e.identity == "alice" and e.track_id == 7 and e.line == line.name
            events.append((e.direction, e.pts_ms))
    assert counter.counts[line.name]["in"] == sum(d == "in" for d, _ in events)
    return events


# Vertical line at x = 200 (ratio 0.5) from top to bottom: p2 - p1 = (0, +), so cross < 0 for x > 200.
# In image coordinates (y down) the right side is "outside": walking right-to-left is "in".
VERTICAL = Line("door", (0.5, 0.0), (0.5, 1.0), hysteresis=0.02)  # band 10 px


def test_cross_product_sides() -> None:
    assert signed_distance((200, 0), (200, 300), (250, 100)) < 0
    assert signed_distance((200, 0), (200, 300), (150, 100)) > 0


@pytest.mark.parametrize(
    ("xs", "expected"),
    [
        ([260, 240, 220, 205, 195, 180, 160], [("in", 500.0)]),
        ([140, 160, 180, 195, 205, 220, 240], [("out", 500.0)]),
        ([260, 220, 180, 140, 180, 220, 260], [("in", 200.0), ("out", 500.0)]),
    ],
)
def test_line_direction(xs: list[float], expected: list[tuple[str, float]]) -> None:
    assert _line_events(VERTICAL, [(x, 150.0) for x in xs]) == expected


def test_jitter_on_the_line_yields_nothing() -> None:
    xs = [215, 205, 195, 203, 192, 208, 197, 206, 194, 215, 214]
    assert _line_events(VERTICAL, [(x, 150.0) for x in xs]) == []


def test_wobbling_back_without_fully_crossing_yields_nothing() -> None:
    xs = [240, 220, 200, 194, 205, 230, 250]
    assert _line_events(VERTICAL, [(x, 150.0) for x in xs]) == []


def test_crossing_outside_the_segment_does_not_count() -> None:
    short = Line("short", (0.5, 0.0), (0.5, 0.4))  # x = 200 for y in [0, 120]
    below = [(x, 200.0) for x in (260, 220, 180, 140)]
    assert _line_events(short, below) == []
    above = [(x, 100.0) for x in (260, 220, 180, 140)]
    assert _line_events(short, above) == [("in", 200.0)]


def test_untouched_tracks_do_not_move() -> None:
    """A track not observed in this frame (lost) is skipped, so a stale box cannot cross."""
    counter = LineCounter([VERTICAL])
    frame, track = next(_walk([(260.0, 150.0)]))
    later = Frame("t", 5, 500.0, IMAGE)
    assert counter.update(frame, [track]) == []
    track.history[-1] = TrackPoint(0.0, (140, 100, 160, 150), 0.9)
    assert counter.update(later, [track]) == []


def test_line_validation() -> None:
    with pytest.raises(ValueError):
        Line("dot", (0.1, 0.1), (0.1, 0.1))
    with pytest.raises(ValueError):
        LineCounter([VERTICAL, VERTICAL])


SQUARE = Zone("counter", ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)), hysteresis=0.01)  # 5 px


def test_zone_enter_exit_and_dwell() -> None:
    monitor = ZoneMonitor([SQUARE])
    xs = [50, 90, 103, 110, 150, 200, 250, 290, 297, 310, 350]  # zone spans x 100-300 at y = 150
    events = []
    for frame, track in _walk([(float(x), 150.0) for x in xs], identity="bob"):
        events += monitor.update(frame, [track])
    assert [(e.kind, e.pts_ms) for e in events] == [("enter", 300.0), ("exit", 900.0)]
    assert events[1].dwell_ms == pytest.approx(600.0)
    assert events[1].identity == "bob"
    assert monitor.dwell_ms[("counter", 7)] == pytest.approx(600.0)


def test_zone_edge_jitter_and_flush() -> None:
    monitor = ZoneMonitor([SQUARE])
    xs = [96, 103, 98, 102, 97, 120, 130, 103, 99, 140]
    events = []
    for frame, track in _walk([(float(x), 150.0) for x in xs]):
        events += monitor.update(frame, [track])
    assert [(e.kind, e.pts_ms) for e in events] == [("enter", 500.0)]
    assert monitor.current_dwell_ms("counter", 7, 1000.0) == pytest.approx(500.0)
    (final,) = monitor.flush()
    assert final.kind == "exit" and final.pts_ms == 900.0 and final.dwell_ms == pytest.approx(400.0)


def test_zone_exits_stale_tracks_at_their_last_sighting() -> None:
    monitor = ZoneMonitor([SQUARE], stale_ms=1000.0)
    frame, track = next(_walk([(200.0, 150.0)]))
    assert [e.kind for e in monitor.update(frame, [track])] == ["enter"]
    (event,) = monitor.update(Frame("t", 30, 3000.0, IMAGE), [])
    assert event.kind == "exit" and event.pts_ms == 0.0 and event.dwell_ms == 0.0
