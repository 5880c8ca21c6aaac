"""A real RTSP server on 127.0.0.1 for tests: GStreamer's RTSP server in a separate ``/usr/bin/python3``.

:class:`RtspServer` starts ``tests/rtsp/rtsp_server.py`` (which see) on a free port, waits (bounded) until
it answers an RTSP ``OPTIONS``, and can :meth:`~RtspServer.stop` and :meth:`~RtspServer.start` again on the
same port to simulate a camera restart; the :func:`rtsp_server` context manager and the ``rtsp_rig``
fixture always kill it. GStreamer's RTSP server only imports under Debian's Python (``python3-gi``), hence
the separate process; when it is missing the tests that need it fail (never skip) naming the packages
and the command.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.receivers import free_port
from tests.system import install_hint

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
# Debian packages the rig needs (tools/system-deps.sh installs them; tests/test_system_deps.py keeps the two
# lists in step): the RTSP server and its GObject bindings, and plugins-good for qtdemux and rtph264pay.
# Nothing is parsed, decoded or encoded on the server side, so plugins-bad (h264parse), -ugly and -libav are
# not needed (checked with only core, base and good loaded).
PACKAGES = ("gir1.2-gst-rtsp-server-1.0", "python3-gi", "gstreamer1.0-plugins-good")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@functools.cache
def _rig_problem() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None (checked once per test session)."""
    check = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')\n"
        "from gi.repository import Gst; Gst.init(None)\n"
        "missing = [e for e in ('qtdemux', 'rtph264pay') if Gst.ElementFactory.find(e) is None]\n"
        "assert not missing, f'GStreamer elements missing: {missing}'"
    )
    try:
        result = subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if result.returncode != 0:
        return (result.stderr.strip().splitlines() or ["failed"])[-1]
    return None


def require_rig() -> None:
    """Fail (not skip) with the install command when GStreamer's RTSP server is not importable."""
    problem = _rig_problem()
    if problem is not None:
        pytest.fail(
            f"GStreamer's RTSP server is not available to {SYSTEM_PYTHON} ({problem}): "
            + install_hint(*PACKAGES),
            pytrace=False,
        )


def rtsp_answers(port: int, timeout_s: float = 1.0) -> bool:
    """True when 127.0.0.1:``port`` answers an RTSP OPTIONS request with an RTSP status line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(f"OPTIONS rtsp://127.0.0.1:{port}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            return sock.recv(64).startswith(b"RTSP/1.0")
    except OSError:
        return False


class RtspServer:
    """One video file served at :attr:`url` (``rtsp://127.0.0.1:PORT/NAME``) in real time.

    loop: play the file again at its end (else the stream ends with the file). Not started on construction:
    call :meth:`start` (or use :func:`rtsp_server`). The port stays the same across stop/start.
    """

    def __init__(
        self, video: Path, *, name: str = "cam", port: int | None = None, loop: bool = False
    ) -> None:
        require_rig()
        assert video.is_file(), f"video {video} not found"
        self.video = video
        self.name = name
        self.port = port if port is not None else free_port()
        self.loop = loop
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.name}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the server process and wait (bounded) until it answers RTSP on its port."""
        assert not self.running, "the RTSP server is already running"
        cmd = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--name",
            self.name,
            str(self.video),
        ]
        if self.loop:
            cmd.append("--loop")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while not rtsp_answers(self.port, 0.5):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise AssertionError(f"the RTSP server exited ({self.process.returncode}): {err[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the RTSP server did not answer on port {self.port} in {timeout_s} s")
            time.sleep(0.05)

    def stop(self, *, hard: bool = False) -> None:
        """Stop the server: SIGTERM (SIGKILL after a bound), or SIGKILL at once with ``hard`` (a camera
        that loses power: no RTSP teardown, the kernel closes its sockets)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)  # a paused server could not act on SIGTERM
            os.killpg(process.pid, signal.SIGKILL if hard else signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_S)
        if process.stderr is not None:
            process.stderr.close()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing is sent, a stalled camera."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port (a camera reboot)."""
        self.stop()
        time.sleep(down_s)
        self.start()


def write_h264_clip(
    path: Path, *, seconds: float = 1.0, fps: int = 25, size: tuple[int, int] = (160, 120)
) -> Path:
    """Write a small H.264 mp4 (a moving gradient, no audio) for tests that want a short clip to loop."""
    import av
    import numpy as np

    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        ramp = np.linspace(0, 255, width, dtype=np.uint8)
        for i in range(round(seconds * fps)):
            image = np.empty((height, width, 3), dtype=np.uint8)
            image[:] = np.roll(ramp, i * 4)[None, :, None]
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@contextlib.contextmanager
def rtsp_server(video: Path, *, name: str = "cam", loop: bool = False) -> Iterator[RtspServer]:
    """A started :class:`RtspServer`, always stopped (killed) at the end."""
    server = RtspServer(video, name=name, loop=loop)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def hamilton_rtsp(shared_data: Path) -> Iterator[RtspServer]:
    """The Hamilton face clip (640x360, 29.97 fps, 10 s) over RTSP, not looping."""
    with rtsp_server(shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4") as server:
        yield server
