"""LiveSource in listen mode: publishers push to it on 127.0.0.1 (tests/rtsp/push.py, FFmpeg's muxers)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeneye.core.errors import InvalidParameter
from keeneye.streams.capture import LISTEN_FAILED, CapturedFrame, CaptureSettings, LiveSource
from tests.receivers import free_port, wait_until
from tests.rtsp.rig import write_h264_clip
from tests.streams.frames import take

LISTEN = CaptureSettings(
    listen=True,
    open_timeout_s=3.0,
    stall_timeout_s=2.0,
    backoff_initial_s=0.2,
    backoff_max_s=1.0,
    stop_timeout_s=2.0,
    queue_size=1000,  # keep every frame: the tests look at the whole timeline
)


@pytest.fixture
def hamilton(shared_data: Path) -> Path:
    """The Hamilton face clip: 640x360, 29.97 fps, 10 s, first pts 852 ms."""
    return shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"


@contextlib.contextmanager
def publisher(video: Path, url: str, transport: str = "tcp") -> Iterator[subprocess.Popen[bytes]]:
    """``python -m tests.rtsp.push video url`` running (as ``ffmpeg -re -i video -c copy -f rtsp url``
    would), always killed at the end."""
    cmd = [sys.executable, "-m", "tests.rtsp.push", str(video), url, "--transport", transport]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as a publisher losing power: no teardown, the kernel closes its sockets."""
    if process.poll() is None:
        process.kill()
    process.wait(5.0)
    if process.stderr is not None:
        process.stderr.close()


def url_of(scheme: str, port: int) -> str:
    return f"rtsp://127.0.0.1:{port}/cam" if scheme == "rtsp" else f"rtmp://127.0.0.1:{port}/live/cam"


def drain(source: LiveSource) -> list[CapturedFrame]:
    frames = []
    while (item := source.get(0)) is not None:
        frames.append(item)
    return frames


def increasing(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


@pytest.mark.data
@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_pushed_frames_arrive_and_a_second_publisher_continues_the_timeline(
    scheme: str, hamilton: Path
) -> None:
    url = url_of(scheme, free_port())
    with LiveSource(url, LISTEN, source_id="pushed") as source:
        assert source.status().state == "listening"
        with publisher(hamilton, url) as first_publisher:
            before = take(source, 20)
            assert source.status().state == "running"
            kill(first_publisher)  # mid-stream
            wait_until(lambda: source.status().state == "listening", 5.0, "listening again")
        down = source.status()
        before += drain(source)  # what came before the kill
        with publisher(hamilton, url):
            after = take(source, 10)
            status = source.status()
    assert down.reconnects == 1 and down.last_error, down
    assert f"waiting for a publisher on {url}" in down.last_error
    assert status.state == "running" and status.last_error is None and status.frames_dropped == 0
    assert before[0].frame.image.shape == (360, 640, 3) and before[0].frame.source_id == "pushed"
    assert {f.connection for f in before} == {0} and {f.connection for f in after} == {1}
    # The clip's own pts (it starts at 852 ms) on each connection; one increasing timeline across both.
    assert 800 < before[0].stream_pts_ms < 900 and 800 < after[0].stream_pts_ms < 900
    pts = [f.frame.pts_ms for f in before + after]
    assert increasing(pts), pts
    assert 25 < after[0].frame.pts_ms - before[-1].frame.pts_ms < 45  # one frame period on
    captured = [f.captured_at for f in before + after]
    assert increasing(captured) and abs(time.time() - captured[-1]) < 10


@pytest.mark.parametrize(
    ("scheme", "transport"),
    [("rtsp", "tcp"), ("rtsp", "udp"), ("rtmp", "tcp")],  # udp: what `ffmpeg -f rtsp` tries first
)
def test_publisher_that_ends_leaves_the_source_listening_without_backoff(
    scheme: str, transport: str, tmp_path: Path
) -> None:
    clip = write_h264_clip(tmp_path / "one_second.mp4", seconds=1.0, fps=25)
    url = url_of(scheme, free_port())
    # A backoff longer than the whole test: a publisher ending must not wait for it.
    settings = LISTEN.model_copy(update={"backoff_initial_s": 30.0, "backoff_max_s": 30.0})
    with LiveSource(url, settings) as source:
        with publisher(clip, url, transport) as process:
            first = take(source, 10)
            assert process.wait(5.0) == 0  # sent the whole clip and tore down
        wait_until(lambda: source.status().reconnects == 1, 5.0, "the session's end")
        ended = source.status()
        first += drain(source)
        with publisher(clip, url, transport):
            second = take(source, 10)
    assert ended.state == "listening" and ended.last_error, ended
    assert "publisher went away" in ended.last_error
    # FFmpeg's RTSP receiver loses the clip's last frame when the publisher tears down; RTMP gets all 25.
    assert len(first) >= 24, len(first)
    assert {f.connection for f in second} == {1}
    assert increasing([f.frame.pts_ms for f in first + second])


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_a_session_that_fails_before_any_frame_backs_off_then_listens_again(scheme: str) -> None:
    port = free_port()
    with LiveSource(url_of(scheme, port), LISTEN) as source:
        time.sleep(0.3)  # bound and waiting
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as peer:
            peer.sendall(b"GET / HTTP/1.0\r\n\r\n" * 3)  # not a publisher
        wait_until(lambda: source.status().state == "reconnecting", 5.0, "an error")
        failed = source.status()
        wait_until(lambda: source.status().state == "listening", 5.0, "listening after the backoff")
    assert failed.last_error and failed.reconnects == 1 and failed.frames_read == 0, failed
    assert "waiting for a publisher" not in failed.last_error


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_a_port_in_use_is_an_error_with_backoff(scheme: str, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with LiveSource(url_of(scheme, taken.getsockname()[1]), LISTEN) as source:
            wait_until(lambda: source.status().state == "reconnecting", 5.0, "an error")
            status = source.status()
    # Whether a port of the server is taken is not told to whoever registered the camera: the log says.
    assert status.last_error == LISTEN_FAILED, status
    assert "in use" in caplog.text


def test_stop_while_listening_returns_within_its_bound() -> None:
    port = free_port()
    source = LiveSource(url_of("rtsp", port), LISTEN, source_id=f"idle-{port}")
    source.start()
    try:
        time.sleep(1.3)  # inside FFmpeg's wait for a publisher, past one listen slice
        status = source.status()
        assert status.state == "listening" and status.last_error is None, status
        assert source.get(0.05) is None
    finally:
        t0 = time.monotonic()
        source.stop()
        took = time.monotonic() - t0
    assert took <= LISTEN.stop_timeout_s + 0.5
    assert source.status().state == "stopped"
    name = f"capture:{source.source_id}"
    wait_until(lambda: all(t.name != name for t in threading.enumerate()), 3.0, "thread end")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # the listener let go of its port


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/cam", "rtsps://127.0.0.1:8322/cam", "file:///tmp/x.mp4"]
)
def test_listen_takes_only_rtsp_and_rtmp(url: str) -> None:
    with pytest.raises(InvalidParameter, match="listen mode"):
        LiveSource(url, LISTEN)


def test_rtmp_is_a_pull_scheme_too() -> None:
    source = LiveSource("rtmp://user:secret@127.0.0.1:1935/live/cam")
    assert source.status().state == "connecting"
    assert source.source_id == "rtmp://user:***@127.0.0.1:1935/live/cam"
