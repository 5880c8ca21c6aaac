"""VideoWriter: H.264 MP4 or the MJPEG AVI fallback, odd sizes, timing from pts_ms."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from keeneye.core.errors import InvalidParameter
from keeneye.video import writer


def _frames(path: Path) -> tuple[str, int, int, list[float]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [float(f.time or 0.0) for f in c.decode(s)]
        return s.codec_context.name, s.width, s.height, times


@pytest.mark.parametrize("h264", [True, False])
def test_writes_playable_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, h264: bool) -> None:
    if not h264:
        monkeypatch.setattr(writer, "h264_available", lambda: False)
    elif not writer.h264_available():
        pytest.skip("this PyAV has no libx264")
    # 5 fps sampling of a 10 fps video: frames every 200 ms play back at real speed.
    with writer.VideoWriter(tmp_path / "out.mp4", 64, 48, fps=5) as w:
        for i in range(10):
            w.write(np.full((48, 64, 3), i * 20, np.uint8), pts_ms=i * 200.0)
    assert w.path == tmp_path / ("out.mp4" if h264 else "out.avi")
    codec, width, height, times = _frames(w.path)
    assert codec == w.codec and (width, height) == (64, 48)
    assert len(times) == 10
    assert times[-1] - times[0] == pytest.approx(1.8, abs=0.01)


def test_odd_size_is_padded_for_h264(tmp_path: Path) -> None:
    if not writer.h264_available():
        pytest.skip("this PyAV has no libx264")
    with writer.VideoWriter(tmp_path / "odd.mp4", 63, 47, fps=10) as w:
        w.write(np.zeros((47, 63, 3), np.uint8), 0.0)
    _, width, height, times = _frames(w.path)
    assert (width, height) == (64, 48) and len(times) == 1


def test_wrong_frame_size_is_refused(tmp_path: Path) -> None:
    with writer.VideoWriter(tmp_path / "x.mp4", 64, 48, fps=10) as w, pytest.raises(InvalidParameter):
        w.write(np.zeros((10, 10, 3), np.uint8), 0.0)
