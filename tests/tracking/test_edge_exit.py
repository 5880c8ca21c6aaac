"""A person who walks out through the frame edge across a line near it is counted (LineCounter's
edge-exit rule), on real data: PETS09-S2L1 ground-truth person 15 walks right and leaves through the
right edge at frame 206. A vertical line at x = 0.96 of the width (461 px), p1 at the bottom, so
left -> right is ``in``. A detector drops a person whose box the edge cuts; here the GT boxes stop
once the box's right side passes 470 px, when her feet are still inside the line's band (the
counter cannot see her clear it). With the rule the crossing is counted once; without it, never.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keeneye.core.types import Frame, Track, TrackPoint
from keeneye.tracking.lines import Line, LineCounter

pytestmark = pytest.mark.data

WIDTH, HEIGHT = 480, 360
LINE = Line("exit", (0.96, 1.0), (0.96, 0.0))
CUT_X2 = 470.0


def _boxes(shared_data: Path) -> list[tuple[int, tuple[float, float, float, float]]]:
    rows = np.loadtxt(shared_data / "video" / "pets09_s2l1" / "gt" / "gt_480x360.txt", delimiter=",")
    rows = rows[rows[:, 1] == 15]
    rows = rows[np.argsort(rows[:, 0])]
    out = []
    for r in rows:
        box = (float(r[2] - 1), float(r[3] - 1), float(r[2] - 1 + r[4]), float(r[3] - 1 + r[5]))
        if box[2] > CUT_X2:
            break
        out.append((int(r[0]) - 1, box))
    return out


def _count(shared_data: Path, counter: LineCounter) -> dict[str, int]:
    blank = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    boxes = _boxes(shared_data)
    track = Track(15, 0, boxes[0][0] * 100.0, boxes[0][0] * 100.0, "active")
    for index, box in boxes:
        pts = index * 100.0
        track.history.append(TrackPoint(pts, box, 0.9))
        track.last_pts_ms = pts
        counter.update(Frame("pets09", index, pts, blank), [track])
    last = boxes[-1][0]
    for index in range(last + 1, last + 21):  # two more seconds without her
        counter.update(Frame("pets09", index, index * 100.0, blank), [])
    return counter.counts["exit"]


def test_person_leaving_through_the_edge_is_counted_once(shared_data: Path) -> None:
    boxes = _boxes(shared_data)
    last = boxes[-1][1]
    feet_x = (last[0] + last[2]) / 2
    band = LINE.hysteresis * np.hypot(WIDTH, HEIGHT)
    assert abs(feet_x - LINE.p1[0] * WIDTH) <= band  # lost inside the band: no ordinary crossing
    assert _count(shared_data, LineCounter([LINE])) == {"in": 1, "out": 0}


def test_without_the_edge_rule_the_exit_is_missed(shared_data: Path) -> None:
    assert _count(shared_data, LineCounter([LINE], edge_exit_ms=0.0)) == {"in": 0, "out": 0}
