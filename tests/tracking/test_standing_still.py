"""A person who stands still at a modest detector score becomes a track (issue 12's slow births).

Real data: PETS09-S2L1 ground-truth person 1 stands in place from frame 555 to 615 (6 s at 10 fps,
her box centre moves < 6 px). Her GT boxes, on the real frames, are given a score of 0.3: under the
tracker's high score (0.4, what a new track needed before), as the issue's woman standing still at
0.24-0.3 was. The tracker must confirm her after ``slow_birth_ms`` and keep one id to the end; with
slow births switched off (birth score = the high score) she is never tracked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keeneye.core.types import Detections, Frame
from keeneye.tracking.tracker import PersonTracker, TrackerConfig
from keeneye.video.sources import open_video

pytestmark = pytest.mark.data

FIRST, LAST = 555, 615  # GT frames (1-based) where person 1 stands still
SCORE = 0.3


def _scene(shared_data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB frame, her GT box xyxy) for each still frame."""
    root = shared_data / "video" / "pets09_s2l1"
    rows = np.loadtxt(root / "gt" / "gt_480x360.txt", delimiter=",")
    her = {
        int(r[0]): np.array([r[2] - 1, r[3] - 1, r[2] - 1 + r[4], r[3] - 1 + r[5]], np.float32)
        for r in rows
        if r[1] == 1
    }
    out = []
    with open_video(root / "vtest_480x360.mp4") as video:
        for frame in video.frames():
            if frame.index + 1 > LAST:
                break
            if frame.index + 1 >= FIRST:
                out.append((frame.image, her[frame.index + 1]))
    return out


def _run(scene: list[tuple[np.ndarray, np.ndarray]], config: TrackerConfig) -> list[set[int]]:
    tracker = PersonTracker(config)
    ids = []
    for i, (image, box) in enumerate(scene):
        dets = Detections(box[None], np.array([SCORE], np.float32))
        live = tracker.update(Frame("pets09", FIRST - 1 + i, i * 100.0, image), dets)
        ids.append({t.track_id for t in live})
    return ids


def test_person_standing_still_at_a_modest_score_becomes_one_track(shared_data: Path) -> None:
    scene = _scene(shared_data)
    assert len(scene) == LAST - FIRST + 1
    centres = np.array([(b[:2] + b[2:]) / 2 for _, b in scene])
    assert np.ptp(centres, axis=0).max() < 8  # she really stands still
    config = TrackerConfig(high_score=0.4, new_track_score=0.4, low_score=0.1, birth_score=0.25)
    ids = _run(scene, config)
    confirmed_at = next(i for i, s in enumerate(ids) if s)
    assert confirmed_at * 100.0 <= config.slow_birth_ms + 100.0  # tracked after about a second
    assert all(len(s) == 1 for s in ids[confirmed_at:])  # every later frame, one track
    assert len(set().union(*ids)) == 1  # and one id for the whole 6 s


def test_without_slow_births_she_is_never_tracked(shared_data: Path) -> None:
    config = TrackerConfig(high_score=0.4, new_track_score=0.4, low_score=0.1, birth_score=0.4)
    assert not any(_run(_scene(shared_data), config))
