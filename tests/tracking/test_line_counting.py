"""Line counting against what a tracker really hands over: tracks reported only after their tentative
period, tracks that break into two ids at the line, box bottoms that jump for a frame, wobble on the
line. Synthetic trajectories; the last tests run the real PersonTracker on rendered scenes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from keeneye.core.types import Frame, Track, TrackPoint
from keeneye.tracking.lines import DEFAULT_HYSTERESIS, Line, LineCounter, LineEvent
from keeneye.tracking.tracker import PersonTracker

from .scenes import BLUE, FRAME_MS, RED, Person, detections, render, visible

W, H = 400, 300  # diagonal 500 px: the default band (1 %) is 5 px
IMAGE = np.zeros((H, W, 3), np.uint8)
# x = 200, p1 at the bottom and p2 at the top: left -> right is "in" (as in the README's door example).
DOOR = Line("door", (0.5, 1.0), (0.5, 0.0))

Anchor = tuple[float, float] | None  # None: the track is not observed in that frame


def _box(x: float, y: float) -> tuple[float, float, float, float]:
    return (x - 10, y - 50, x + 10, y)


def _run(
    counter: LineCounter, paths: dict[int, Sequence[Anchor]], reported_from: dict[int, int] | None = None
) -> list[LineEvent]:
    """Feeds ``paths`` (track id -> anchor per frame, 100 ms apart) to ``counter`` the way the tracker
    does: every observation goes into the track's history, but a track is only handed to the counter
    from frame ``reported_from[id]`` on (its tentative period before that), and once it is no longer
    observed its state is ``lost``."""
    reported_from = reported_from or {}
    tracks: dict[int, Track] = {}
    events: list[LineEvent] = []
    for i in range(max(len(p) for p in paths.values())):
        pts = i * 100.0
        live = []
        for tid, path in paths.items():
            track = tracks.get(tid)
            anchor = path[i] if i < len(path) else None
            if anchor is None:
                if track is not None:
                    track.state = "lost"
                continue
            if track is None:
                track = tracks[tid] = Track(tid, 0, pts, pts, "tentative")
            track.history.append(TrackPoint(pts, _box(*anchor), 0.9))
            track.last_pts_ms = pts
            if i >= reported_from.get(tid, 0):
                track.state = "active"
                live.append(track)
        events += counter.update(Frame("t", i, pts, IMAGE), live)
    return events


def _walk(xs: Sequence[float | None], y: float = 150.0) -> list[Anchor]:
    return [None if x is None else (x, y) for x in xs]


def _summary(events: Sequence[LineEvent]) -> list[tuple[int, str, float]]:
    return [(e.track_id, e.direction, e.pts_ms) for e in events]


def test_default_band_is_one_percent_of_the_diagonal() -> None:
    assert DOOR.hysteresis == DEFAULT_HYSTERESIS == 0.01


def test_the_median_anchor_confirms_a_crossing_one_frame_later() -> None:
    xs = [150, 170, 190, 210, 230, 250]
    assert _summary(_run(LineCounter([DOOR], smoothing=1), {1: _walk(xs)})) == [(1, "in", 300.0)]
    assert _summary(_run(LineCounter([DOOR]), {1: _walk(xs)})) == [(1, "in", 400.0)]


def test_wobble_on_the_line_at_the_default_band_is_not_counted() -> None:
    """Standing on the line: +-4 px of slow sway, plus single-frame jumps of the box bottom far across
    (a leg occluded for one frame); neither is a crossing."""
    sway = [196, 204, 197, 203, 196, 204, 198, 202, 196, 204]
    spikes = [196, 225, 197, 203, 175, 204, 198, 230, 196, 204, 170, 197]
    for xs in (sway, spikes, sway + spikes + sway):
        assert _run(LineCounter([DOOR]), {1: _walk(xs)}) == []
    # The spikes are what the median removes: on raw anchors they count back and forth.
    assert len(_run(LineCounter([DOOR], smoothing=1), {1: _walk(spikes)})) >= 2


def test_crossing_during_the_tentative_period_counts() -> None:
    """The tracker reports a track from its 3rd observation on; the person crossed before that."""
    xs = [170, 190, 215, 235, 250]
    events = _run(LineCounter([DOOR], smoothing=1), {1: _walk(xs)}, reported_from={1: 2})
    assert _summary(events) == [(1, "in", 200.0)]  # stamped with the observation that confirmed it
    events = _run(LineCounter([DOOR]), {1: _walk(xs)}, reported_from={1: 2})
    assert _summary(events) == [(1, "in", 300.0)]


def test_a_track_seen_again_is_not_replayed() -> None:
    """Only a first sighting replays history: a track already counted adds its newest point only."""
    counter = LineCounter([DOOR])
    xs = [150, 170, 190, 210, 230, 250, 270]
    assert len(_run(counter, {1: _walk(xs)})) == 1
    assert counter.counts["door"] == {"in": 1, "out": 0}


def test_a_track_broken_at_the_line_hands_its_side_to_the_new_id() -> None:
    """Track 1 is lost just before the line; 600 ms later track 2 starts on the far side, near where 1
    ended: one crossing, credited to track 2."""
    first = _walk([120, 140, 160, 180, 190])
    second = _walk([None] * 10 + [222, 232, 242, 252, 262])
    events = _run(LineCounter([DOOR]), {1: first, 2: second}, reported_from={2: 12})
    assert [(e.track_id, e.direction) for e in events] == [(2, "in")]
    # Without hand-over the crossing is lost: track 2 has no side before the line.
    assert _run(LineCounter([DOOR], handover_ms=0), {1: first, 2: second}, reported_from={2: 12}) == []


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (_walk([None] * 10 + [350, 360, 370, 380]), "too far from where the lost track ended"),
        (_walk([None] * 30 + [222, 232, 242, 252]), "too long after it was lost"),
    ],
)
def test_no_hand_over_when_implausible(second: list[Anchor], why: str) -> None:
    first = _walk([120, 140, 160, 180, 190])
    assert _run(LineCounter([DOOR]), {1: first, 2: second}) == [], why


def test_a_lost_track_hands_over_once_and_never_while_observed() -> None:
    first = _walk([120, 140, 160, 180, 190])
    # Two new tracks start on the far side: only the nearer one inherits (one crossing, not two).
    near = _walk([None] * 8 + [222, 232, 242, 252])
    farther = _walk([None] * 8 + [240, 250, 260, 270], y=190.0)
    events = _run(LineCounter([DOOR]), {1: first, 2: near, 3: farther})
    assert [(e.track_id, e.direction) for e in events] == [(2, "in")]
    # A track still observed is someone else: a new track next to it inherits nothing.
    walker = _walk([120, 140, 160, 180, 190, 185, 180, 175, 170, 165, 160, 155])
    beside = _walk([None] * 6 + [222, 232, 242, 252, 262, 272])
    assert _run(LineCounter([DOOR]), {1: walker, 2: beside}) == []


def _feed(counter: LineCounter, track: Track, xs: Sequence[float], start: int) -> list[LineEvent]:
    """Observes ``track`` at ``xs`` in consecutive frames from index ``start``, reporting it each frame."""
    events: list[LineEvent] = []
    for i, x in enumerate(xs, start):
        track.history.append(TrackPoint(i * 100.0, _box(x, 150.0), 0.9))
        track.last_pts_ms = i * 100.0
        events += counter.update(Frame("t", i, i * 100.0, IMAGE), [track])
    return events


def _merge(older: Track, newer: Track) -> Track:
    """What ``PersonTracker.attach_face_embedding`` does: the newer track takes the older id and history."""
    newer.track_id, newer.first_pts_ms = older.track_id, older.first_pts_ms
    newer.history = older.history + newer.history
    return newer


def test_a_face_relink_merge_does_not_count_a_crossing_twice() -> None:
    """Track 1 is lost left of the line; track 2 (far enough away for no hand-over) crosses and is
    counted; then a face match merges 2 into 1. The merged track takes over track 2's side."""
    counter = LineCounter([DOOR], handover_ms=0)
    older = Track(1, 0, 0.0, 0.0, "active")
    assert _feed(counter, older, [120, 140, 160, 170], 0) == []
    older.state = "lost"
    newer = Track(2, 0, 600.0, 600.0, "active")
    events = _feed(counter, newer, [180, 195, 215, 235, 250], 6)
    assert [(e.track_id, e.direction) for e in events] == [(2, "in")]
    merged = _merge(older, newer)
    assert _feed(counter, merged, [260, 270, 280], 11) == []
    assert counter.counts["door"] == {"in": 1, "out": 0}
    # It still counts its next real crossing, back out.
    out = _feed(counter, merged, [230, 200, 180, 160, 150], 14)
    assert [(e.track_id, e.direction) for e in out] == [(1, "out")]


def test_a_merge_into_a_known_id_before_the_new_id_was_reported_counts_once() -> None:
    """Track 2 was still tentative (never handed to the counter) when merged into track 1: its points
    are replayed from track 1's side, so the crossing counts once, under id 1."""
    counter = LineCounter([DOOR], handover_ms=0)
    older = Track(1, 0, 0.0, 0.0, "active")
    assert _feed(counter, older, [120, 140, 160, 170], 0) == []
    newer = Track(2, 0, 600.0, 600.0, "tentative")
    for i, x in enumerate([185, 205, 225], 6):
        newer.history.append(TrackPoint(i * 100.0, _box(x, 150.0), 0.9))
    merged = _merge(older, newer)
    events = _feed(counter, merged, [240, 250], 9)
    assert [(e.track_id, e.direction) for e in events] == [(1, "in")]


def test_no_hand_over_across_a_shot_cut() -> None:
    counter = LineCounter([DOOR])
    _run(counter, {1: _walk([120, 140, 160, 180, 190])})
    counter.cut()
    tracks = {2: Track(2, 0, 600.0, 600.0, "active")}
    for i, x in enumerate([222, 232, 242, 252]):
        pts = 600.0 + i * 100
        tracks[2].history.append(TrackPoint(pts, _box(x, 150.0), 0.9))
        tracks[2].last_pts_ms = pts
        assert counter.update(Frame("t", 6 + i, pts, IMAGE), [tracks[2]]) == []


def test_counter_validation() -> None:
    with pytest.raises(ValueError):
        LineCounter([DOOR], smoothing=0)
    with pytest.raises(ValueError):
        LineCounter([DOOR], handover_ms=-1)


# ------------------------------------------------------------------------ with the real tracker

SCENE_DOOR = Line("door", (0.5, 1.0), (0.5, 0.0))  # x = 320 in the 640x360 scenes


def _count_scene(person: Person, n_frames: int, hidden: set[int]) -> dict[str, int]:
    tracker = PersonTracker()
    counter = LineCounter([SCENE_DOOR])
    for i in range(n_frames):
        box = person.box(i * FRAME_MS)
        shown = [(box, person)] if visible(box) and i not in hidden else []
        frame = render(shown, i)
        counter.update(frame, tracker.update(frame, detections([b for b, _ in shown])))
    return counter.counts["door"]


def test_tracker_person_appearing_just_before_the_line_is_counted() -> None:
    """Hidden (behind something) until 0.2 s before the line: the crossing happens while its track is
    still tentative."""
    person = Person(RED, BLUE, start=(100, 200), velocity=(120, 0))  # anchor reaches x = 320 at 1.83 s
    assert _count_scene(person, 40, hidden=set(range(16))) == {"in": 1, "out": 0}


def test_tracker_person_occluded_while_crossing_is_counted_once() -> None:
    person = Person(RED, BLUE, start=(560, 200), velocity=(-120, 0))  # reaches x = 320 at 2 s
    assert _count_scene(person, 50, hidden=set(range(15, 26))) == {"in": 0, "out": 1}
