"""track_video on a synthetic video with a fake detector: no model, fast, exact expectations."""

from __future__ import annotations

from pathlib import Path

import pytest

from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter
from keeneye.models.fake import BrightBoxDetector
from keeneye.service.video.tracking import FrameUpdate, Progress, track_video
from keeneye.tracking.lines import Line
from keeneye.tracking.tracker import TrackerConfig
from keeneye.tracking.zones import Zone
from tests.factories import walking_box_frames, write_video

WIDTH, HEIGHT, FRAMES = 160, 120, 30


@pytest.fixture(scope="module")
def walker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s, 10 fps video: a 10x30 white box walking left -> right across the middle."""
    path = tmp_path_factory.mktemp("video") / "walker.mp4"
    return write_video(path, walking_box_frames(FRAMES, WIDTH, HEIGHT), fps=10)


def test_one_person_crosses_in_and_enters_the_zone(walker: Path) -> None:
    progress: list[Progress] = []
    updates: list[FrameUpdate] = []
    result = track_video(
        walker,
        Settings(),
        [Line("middle", (0.5, 1.0), (0.5, 0.0))],
        [Zone("right", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))],
        detector=BrightBoxDetector(),
        tracker_config=TrackerConfig(min_hits=1),
        on_progress=progress.append,
        on_frame=updates.append,
    )
    assert result.frames_analysed == FRAMES == len(progress) == len(updates)
    assert progress[-1].end_ms == pytest.approx(3000, abs=100)
    assert [t.track_id for t in result.tracks] == [1]
    history = result.tracks[0].history
    # The default schedule at 10 fps: the detector on every 2nd frame, the tracker predicting between.
    assert [p.pts_ms for p in history] == [i * 100.0 for i in range(0, FRAMES, 2)]
    assert result.line_counts == {"middle": {"in": 1, "out": 0}}
    assert [(e.track_id, e.direction) for e in result.line_events] == [(1, "in")]
    assert [e.kind for e in result.zone_events] == ["enter", "exit"]  # exit: flushed at the end
    assert result.zone_dwell_ms["right"][1] > 0
    assert updates[-1].line_counts == {"middle": {"in": 1, "out": 0}}
    assert set(result.seconds) == {"decode", "detect", "track", "faces", "total"}


def test_max_duration_and_fps(walker: Path) -> None:
    result = track_video(walker, Settings(), detector=BrightBoxDetector(), target_fps=5, max_duration_ms=1000)
    assert result.frames_analysed == 5
    assert result.end_pts_ms is not None and result.end_pts_ms < 1000


def test_bad_parameters(walker: Path) -> None:
    with pytest.raises(InvalidParameter):
        track_video(walker, Settings(), detector=BrightBoxDetector(), max_duration_ms=0)
