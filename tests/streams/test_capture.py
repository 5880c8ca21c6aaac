"""LiveSource against a real RTSP server on 127.0.0.1 (GStreamer's, see tests/rtsp/rig.py)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeneye.core.errors import InvalidParameter
from keeneye.streams.capture import CONNECT_FAILED, CaptureSettings, LiveSource
from tests.factories import loopback_egress
from tests.receivers import free_port, wait_until
from tests.rtsp.rig import RtspServer, hamilton_rtsp, rtsp_server, write_h264_clip
from tests.streams.frames import take

__all__ = ["hamilton_rtsp"]  # the fixture, imported to be used here

pytestmark = pytest.mark.data

FAST = CaptureSettings(
    open_timeout_s=3.0, stall_timeout_s=2.0, backoff_initial_s=0.2, backoff_max_s=1.0, stop_timeout_s=2.0
)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port of 127.0.0.1 that accepts connections and never says anything."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_frames_arrive_over_rtsp_with_increasing_pts(hamilton_rtsp: RtspServer) -> None:
    with LiveSource(hamilton_rtsp.url, FAST, source_id="cam", egress=loopback_egress()) as source:
        frames = take(source, 30)
    status = source.status()
    assert status.state == "stopped"
    assert status.frames_read >= 30 and status.reconnects == 0
    pts = [f.frame.pts_ms for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts
    # 29.97 fps: consecutive frames ~33 ms apart in stream time.
    assert 25 < (pts[-1] - pts[0]) / (len(pts) - 1) < 45
    assert frames[0].frame.image.shape == (360, 640, 3) and frames[0].frame.source_id == "cam"
    assert all(f.connection == 0 for f in frames)
    assert all(abs(time.time() - f.captured_at) < 30 for f in frames)


def test_target_fps_samples_on_pts(hamilton_rtsp: RtspServer) -> None:
    with LiveSource(
        hamilton_rtsp.url, FAST.model_copy(update={"target_fps": 5.0}), egress=loopback_egress()
    ) as source:
        frames = take(source, 6)
    pts = [f.frame.pts_ms for f in frames]
    gaps = [b - a for a, b in itertools.pairwise(pts)]
    # Never closer than the 200 ms period; 1/29.97 s frames put the kept ones 200.2 ms apart.
    assert all(g > 199 for g in gaps) and sorted(gaps)[len(gaps) // 2] < 240, gaps


def test_slow_consumer_drops_oldest_and_queue_stays_bounded(hamilton_rtsp: RtspServer) -> None:
    settings = FAST.model_copy(update={"queue_size": 4})
    with LiveSource(hamilton_rtsp.url, settings, egress=loopback_egress()) as source:
        first = take(source, 1)[0]
        largest = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # a consumer that does not keep up: looks every 0.1 s
            largest = max(largest, source.queued())
            time.sleep(0.1)
        status = source.status()
        frames = take(source, 4)
    assert largest <= 4
    assert status.frames_dropped >= 30, status  # ~60 frames came in 2 s, 4 fit
    # What is left is the newest: the queued frames follow each other, well after the first one.
    pts = [f.frame.pts_ms for f in frames]
    assert all(0 < b - a < 45 for a, b in itertools.pairwise(pts)), pts
    assert pts[0] - first.frame.pts_ms > 1500
    assert status.frames_read >= status.frames_dropped + 4


def test_camera_restart_resumes_without_manual_action(hamilton_rtsp: RtspServer) -> None:
    states: list[str] = []
    with LiveSource(hamilton_rtsp.url, FAST, egress=loopback_egress()) as source:
        before = take(source, 10)
        hamilton_rtsp.stop(hard=True)  # killed mid-stream (SIGKILL)
        wait_until(lambda: source.status().state == "reconnecting", 8.0, "state reconnecting")
        down = source.status()
        states.append(down.state)
        assert down.last_error, down
        time.sleep(0.5)  # stays down a moment, as a rebooting camera would
        while source.get(0) is not None:  # frames received before the kill
            pass
        hamilton_rtsp.start()
        wait_until(lambda: source.status().state == "running", 15.0, "state running again")
        after = take(source, 10)
        status = source.status()
    assert status.reconnects >= 1 and status.last_error is None
    assert after[0].connection >= 1
    pts = [f.frame.pts_ms for f in before + after]
    assert all(b > a for a, b in itertools.pairwise(pts)), "the timeline goes on across reconnects"


def test_stalled_stream_is_detected_and_resumed(hamilton_rtsp: RtspServer) -> None:
    settings = FAST.model_copy(update={"stall_timeout_s": 1.0})
    with LiveSource(hamilton_rtsp.url, settings, egress=loopback_egress()) as source:
        take(source, 5)
        hamilton_rtsp.pause()  # the connection stays open, nothing comes
        try:
            wait_until(lambda: source.status().state == "reconnecting", 5.0, "state reconnecting")
            assert source.status().last_error
        finally:
            hamilton_rtsp.resume()
        wait_until(lambda: source.status().state == "running", 10.0, "state running again")
        # Frames of the first connection may still be queued: the new connection's come after them.
        assert any(f.connection >= 1 for f in take(source, 8 + 5))


def test_looping_server_keeps_the_timeline_going(tmp_path: Path) -> None:
    clip = write_h264_clip(tmp_path / "one_second.mp4", seconds=1.0, fps=25)
    with (
        rtsp_server(clip, loop=True) as server,
        LiveSource(server.url, FAST, egress=loopback_egress()) as source,
    ):
        frames = take(source, 60)  # 2.4 s of a 1 s clip
        status = source.status()
    assert status.reconnects == 0 and status.state == "running", status
    pts = [f.frame.pts_ms for f in frames]
    assert all(30 < b - a < 50 for a, b in itertools.pairwise(pts)), pts


def test_stream_end_without_loop_reconnects(tmp_path: Path) -> None:
    clip = write_h264_clip(tmp_path / "one_second.mp4", seconds=1.0, fps=25)
    with rtsp_server(clip) as server, LiveSource(server.url, FAST, egress=loopback_egress()) as source:
        take(source, 10)
        wait_until(lambda: source.status().reconnects >= 1, 8.0, "a reconnect at the end of the stream")
        assert source.status().last_error


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_url_that_never_answers_reconnects_with_an_error_and_stops_promptly(
    kind: str, silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port() if kind == "refused" else silent_port
    settings = FAST.model_copy(update={"open_timeout_s": 1.0, "stall_timeout_s": 1.0})
    source = LiveSource(f"rtsp://user:secret@127.0.0.1:{port}/cam", settings, egress=loopback_egress())
    assert source.source_id == f"rtsp://user:***@127.0.0.1:{port}/cam"
    source.start()
    try:
        wait_until(lambda: source.status().state == "reconnecting", 6.0, "state reconnecting")
        status = source.status()
        assert status.last_error and status.frames_read == 0, status
        # A closed port and one that says nothing read the same: the status is not a port scanner.
        assert status.last_error == CONNECT_FAILED, status
        assert source.get(0.1) is None
    finally:
        t0 = time.monotonic()
        source.stop()
        took = time.monotonic() - t0
    assert took <= settings.stop_timeout_s + 0.5
    assert source.status().state == "stopped"
    assert "secret" not in caplog.text  # the detail is logged, without the password
    wait_until(
        lambda: not any(t.name.startswith("capture:") for t in threading.enumerate()), 3.0, "thread end"
    )


def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(InvalidParameter):
        LiveSource("ftp://127.0.0.1/cam")


def test_file_url_is_read(shared_data: Path) -> None:
    clip = shared_data / "video" / "pets09_s2l1" / "vtest_480x360.mp4"
    settings = FAST.model_copy(update={"queue_size": 1000})
    with LiveSource(f"file://{clip}", settings, egress=loopback_egress()) as source:
        frames = take(source, 50)
    assert frames[0].frame.image.shape == (360, 480, 3)
    assert [f.frame.index for f in frames] == list(range(50))
    # Played at its own speed (10 fps): 50 frames take about 4.9 s of wall clock, not a burst.
    wall = frames[-1].captured_at - frames[0].captured_at
    media = (frames[-1].frame.pts_ms - frames[0].frame.pts_ms) / 1000.0
    assert media - 0.3 <= wall <= media + 1.5, (wall, media)
