"""Live capture: frames from a camera URL, read in a thread into a bounded queue that drops the oldest frames.

A :class:`LiveSource` opens ``rtsp://``, ``rtsps://``, ``rtmp://``, ``rtmps://``, ``http(s)://`` (MJPEG,
HLS) or ``file://`` URLs with PyAV (FFmpeg). A file is played as a camera: at its own speed (see
``pace_files``), and from the start again when it ends, as any stream that ends is reconnected. The source
decodes the first video stream to RGB in a reader thread, samples it to ``target_fps`` with
:class:`~keeneye.video.sampling.FpsSampler` and puts :class:`CapturedFrame` objects into a queue of
``queue_size`` frames. The consumer calls :meth:`LiveSource.get`.

Drop policy: a live camera does not wait. When the queue is full the *oldest* queued frame is dropped to make
room for the newest (counted in ``frames_dropped``), so a slow consumer always sees recent frames and the
queue never grows past its bound.

Reconnect policy: any failure (cannot connect, the connection drops, the camera restarts, the stream ends,
no frame for ``stall_timeout_s`` seconds) closes the container, sets the state to ``reconnecting`` with the
error, waits ``backoff_initial_s`` doubled on each consecutive failure up to ``backoff_max_s``, and opens the
URL again, forever, until :meth:`LiveSource.stop`. The backoff goes back to its initial value once a frame
has been read on the new connection.

Push (listen mode, ``CaptureSettings(listen=True)``): cameras and encoders that push, as Kinesis producers do,
send to keeneye instead of keeneye pulling from them. The URL then names where to listen:
``rtsp://HOST:PORT/NAME`` takes one RTSP publisher (ANNOUNCE/RECORD, what ``ffmpeg -re -i clip.mp4 -c copy
-f rtsp rtsp://HOST:PORT/NAME`` sends; FFmpeg's ``rtsp_flags=listen``) and ``rtmp://HOST:PORT/APP/NAME`` one
RTMP publisher (``-f flv rtmp://...``; FFmpeg's RTMP ``listen``). The source binds HOST:PORT (default ports
554 and 1935 when the URL has none) and waits, in state ``listening``, for a publisher; HOST is the address
bound, so ``127.0.0.1`` takes publishers on this machine only and ``0.0.0.0`` exposes the listener on every
interface (nothing is refused: whoever can reach the port can publish, there is no authentication). One
publisher session is one connection (``CapturedFrame.connection`` counts them) and ``frame.pts_ms``
continues across sessions as across reconnects. When a publisher goes away after sending frames (it ended,
was killed, or stalled for ``stall_timeout_s``) the source listens again at once, back in ``listening``
with ``last_error`` saying why the session ended, and counts it in ``reconnects``; no backoff, a publisher
ending is normal. A session that fails before its first frame (or a port that cannot be bound) is an error:
``reconnecting`` and the backoff, as for a pull. FFmpeg's listen cannot be interrupted either, so the source
listens in ``listen_timeout`` slices of one second (FFmpeg takes whole seconds) and checks the stop flag in
between: a publisher that connects in the few milliseconds between two slices is refused (FFmpeg's CLI
does not retry; most encoders do).

Timestamps: ``captured_at`` is the wall clock (``time.time()``, seconds) when the frame was decoded, for
capture-to-record latency; ``stream_pts_ms`` is the stream's own pts in milliseconds as FFmpeg gives it for
the current connection; ``frame.pts_ms`` is the same on the first connection, shifted on later ones so
that it continues one frame period after the last frame before the reconnect (a restarted camera starts
its pts again), so trackers downstream see one increasing timeline. Frames FFmpeg gives without a pts
before the first one with a pts (the RTP demuxer does this at session start) are skipped.

Egress: a pulled camera is read through a :class:`~keeneye.streams.relay.CameraRelay`, so that every
connection FFmpeg makes (redirects and HLS segments included) goes to an address the egress policy
(keeneye.streams.egress, ``egress``) allows, checked when it is made. Errors before the first frame of a
connection are then one neutral text ("could not connect to the camera or read video from it"), or the
policy's refusal of the camera's host: telling a refused connection from a non-video answer, a timeout or
an HTTP status would make keeneye a port scanner of whatever the URL names. The detail goes to the log.
An unrestricted policy (the operator's ``keeneye watch``) connects directly and reports FFmpeg's errors.

Stopping: :meth:`LiveSource.stop` sets a flag and waits up to ``stop_timeout_s`` for the thread. FFmpeg
cannot be interrupted from another thread, so a thread blocked in an open or a read ends at its next
timeout (``open_timeout_s`` / ``stall_timeout_s``, or the one-second listen slice while waiting for a
publisher); it is a daemon thread and touches nothing shared after the flag is set, so ``stop()`` itself
always returns within its bound.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import av
import av.container
import av.error
import av.video.stream
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Frame
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.relay import RELAYED_SCHEMES, CameraRelay
from keeneye.video.sampling import FpsSampler

log = logging.getLogger(__name__)

CaptureState = Literal["connecting", "listening", "running", "reconnecting", "stopped"]
"""``connecting`` until the first frame, ``running`` while frames arrive, ``reconnecting`` after a failure
(``last_error`` says which) until a frame arrives again, ``stopped`` after :meth:`LiveSource.stop`. In listen
mode ``listening`` replaces ``connecting``: the port is bound and no publisher is sending (yet, or again
after one went away; ``last_error`` then says why its session ended)."""

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "file")
LISTEN_SCHEMES = ("rtsp", "rtmp")
"""Schemes a source can listen on for a publisher (``CaptureSettings.listen``)."""
_LISTEN_SLICE_S = 1
"""Seconds FFmpeg waits for a publisher before the reader thread checks its stop flag and listens again
(FFmpeg's ``listen_timeout`` / RTMP ``timeout`` are whole seconds; 1 is the least)."""
# What FFmpeg may open on behalf of each scheme (an HLS playlist opens its segments over http(s)).
_PROTOCOLS = {
    "rtsp": "rtsp,rtp,udp,tcp",
    "rtsps": "rtsps,rtsp,rtp,udp,tcp,tls",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,rtmp,tcp,tls",
    "http": "http,https,tcp,tls,crypto",
    "https": "http,https,tcp,tls,crypto",
    "file": "file",
}
# Through the relay FFmpeg speaks plain RTSP (interleaved over TCP) / RTMP to 127.0.0.1, and HTTP through
# the relay's proxy ("httpproxy" carries CONNECT for https).
_RELAYED_PROTOCOLS = {
    "rtsp": "rtsp,rtp,tcp",
    "rtsps": "rtsp,rtp,tcp",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmp,tcp",
    "http": "http,https,tcp,tls,crypto,httpproxy",
    "https": "http,https,tcp,tls,crypto,httpproxy",
}
CONNECT_FAILED = "could not connect to the camera or read video from it"
LISTEN_FAILED = "could not listen for the camera on its address"
LOST = "the camera stopped sending video"


class CaptureSettings(BaseModel):
    """How a live source reads its camera (local to this module until issue 5 wires it into the config)."""

    model_config = ConfigDict(extra="forbid")

    target_fps: float | None = Field(
        None, gt=0, description="Frames per second kept (sampled on pts); None keeps every frame."
    )
    queue_size: int = Field(8, ge=1, description="Frames buffered for the consumer; the oldest is dropped.")
    open_timeout_s: float = Field(10.0, gt=0, description="Seconds allowed to open the URL.")
    stall_timeout_s: float = Field(
        5.0, gt=0, description="Read deadline: no frame for this many seconds means the stream stalled."
    )
    backoff_initial_s: float = Field(0.5, gt=0, description="First wait before reconnecting, seconds.")
    backoff_max_s: float = Field(10.0, gt=0, description="Longest wait between reconnects, seconds.")
    backoff_factor: float = Field(2.0, ge=1, description="Wait multiplier after each consecutive failure.")
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp",
        description="RTSP transport when pulling; TCP survives loss and NAT, UDP has less latency on a clean "
        "LAN. In listen mode the publisher chooses (FFmpeg's listener takes either).",
    )
    listen: bool = Field(
        False,
        description="Push instead of pull: bind the rtsp:// or rtmp:// URL's host:port and wait for a "
        "publisher (RTSP ANNOUNCE/RECORD, RTMP publish). The host is the address bound: 127.0.0.1 for this "
        "machine only, 0.0.0.0 exposes the listener on every interface, unauthenticated.",
    )
    threads: int = Field(1, ge=1, description="FFmpeg decode threads.")
    analyze_s: float = Field(
        0.5, gt=0, description="Seconds of stream FFmpeg probes on open (its analyzeduration)."
    )
    stop_timeout_s: float = Field(2.0, gt=0, description="Longest time stop() waits for the reader thread.")
    pace_files: bool = Field(
        True,
        description="Play file:// sources at their own speed (as ffmpeg -re does), as a camera would "
        "send them; False reads them as fast as they decode (frames the consumer cannot keep up with are "
        "dropped).",
    )


@dataclass(frozen=True)
class CapturedFrame:
    """A frame with its capture times: ``captured_at`` wall clock seconds (``time.time()``) at decode,
    ``stream_pts_ms`` the stream's pts (ms) on connection number ``connection`` (0-based); ``frame.pts_ms``
    is the timeline that keeps increasing across reconnects."""

    frame: Frame
    captured_at: float
    stream_pts_ms: float
    connection: int


@dataclass(frozen=True)
class CaptureStatus:
    """A snapshot of a live source: state, last error (None once running again), counters."""

    state: CaptureState
    last_error: str | None
    frames_read: int
    frames_dropped: int
    reconnects: int


class _Stalled(Exception):
    """No frame within the read deadline although packets may be arriving."""


class _NoPublisher(Exception):
    """Listen mode: no publisher connected within one listen slice."""


class LiveSource:
    """Reads a live URL in a thread into a bounded, drop-oldest queue and reconnects on failure.

    Use ``start()`` (or ``with``), then :meth:`get` frames; :meth:`status` for state and counters;
    :meth:`stop` to end. ``source_id`` is the ``Frame.source_id`` (defaults to the URL without its
    password; camera URLs often carry credentials, which never reach ids, thread names or errors).
    ``egress``: where the source may connect (default: the default policy; see the module notes).
    """

    def __init__(
        self,
        url: str,
        settings: CaptureSettings | None = None,
        *,
        source_id: str | None = None,
        egress: EgressPolicy | None = None,
    ):
        scheme = urlsplit(url).scheme.lower()
        if scheme not in LIVE_SCHEMES:
            raise InvalidParameter(f"live sources must be one of {', '.join(LIVE_SCHEMES)}; got {scheme!r}")
        self.settings = settings or CaptureSettings()
        if self.settings.listen and scheme not in LISTEN_SCHEMES:
            raise InvalidParameter(
                f"listen mode takes one of {', '.join(LISTEN_SCHEMES)} URLs (rtsp://HOST:PORT/NAME, "
                f"rtmp://HOST:PORT/APP/NAME); got {scheme!r}"
            )
        self.url = url
        self.safe_url = _without_password(url)
        """The URL with its password (if any) replaced by ``***``: for ids, names and messages."""
        self.source_id = source_id if source_id is not None else self.safe_url
        self._scheme = scheme
        self._queue: collections.deque[CapturedFrame] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: CaptureState = "listening" if self.settings.listen else "connecting"
        self._last_error: str | None = None
        self._frames_read = 0
        self._frames_dropped = 0
        self._reconnects = 0
        self._session_frames = 0  # frames read on the current connection (the reader thread's own)
        self._pts_offset_ms = 0.0
        self._last_pts_ms: float | None = None
        self._egress = egress or EgressPolicy()
        self._relay: CameraRelay | None = None
        self._logged_error: str | None = None

    def __enter__(self) -> LiveSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the reader thread (once)."""
        if self._thread is not None:
            raise RuntimeError("LiveSource.start() was already called")
        if self._egress.enforced and not self.settings.listen and self._scheme in RELAYED_SCHEMES:
            self._relay = CameraRelay(self.url, self._egress, timeout_s=self.settings.open_timeout_s).start()
        self._thread = threading.Thread(target=self._run, name=f"capture:{self.source_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; returns within ``stop_timeout_s`` (see the module notes). Queued frames stay."""
        self._stop.set()
        with self._cond:
            self._state = "stopped"
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.settings.stop_timeout_s)
        if self._relay is not None:
            self._relay.close()

    def status(self) -> CaptureStatus:
        with self._cond:
            return CaptureStatus(
                self._state, self._last_error, self._frames_read, self._frames_dropped, self._reconnects
            )

    def get(self, timeout_s: float | None = None) -> CapturedFrame | None:
        """The oldest queued frame, waiting up to ``timeout_s`` seconds (None: until one comes or stop);
        None on timeout or once stopped with an empty queue."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._queue:
                if self._state == "stopped":
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._queue.popleft()

    def queued(self) -> int:
        """Frames waiting in the queue (never more than ``queue_size``)."""
        with self._cond:
            return len(self._queue)

    # -- reader thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._reconnect_forever()
        except BaseException as e:
            # A bug, not a camera problem: never die silently. The source reports it and stops (consumers
            # waiting in get() wake up), then the exception goes on to threading's excepthook.
            with self._cond:
                self._state = "stopped"
                self._last_error = f"capture crashed: {type(e).__name__}: {e}"
                self._cond.notify_all()
            raise

    def _reconnect_forever(self) -> None:
        s = self.settings
        backoff = s.backoff_initial_s
        connection = 0
        while not self._stop.is_set():
            self._session_frames = 0
            try:
                self._read_connection(connection)
                error = "the stream ended"
            except _NoPublisher:
                continue  # a listen slice passed with no publisher: check the stop flag, listen again
            except _Stalled as e:
                error = str(e)
            except av.error.ExitError:
                error = "timed out (no data within the deadline)"
            except av.error.FFmpegError as e:
                error = f"{type(e).__name__}: {e.strerror or e}"
            except (OSError, ValueError, RuntimeError) as e:  # PyAV raises these for some broken inputs too
                error = f"{type(e).__name__}: {e}"
            if self._stop.is_set():
                break
            if self.safe_url != self.url:
                error = error.replace(self.url, self.safe_url)
            error = self._shown_error(error)
            if self._session_frames:
                backoff = s.backoff_initial_s
            connection += 1
            if s.listen and self._session_frames:
                # A publisher going away is the normal end of a push: listen again at once.
                with self._cond:
                    if self._state != "stopped":
                        self._state = "listening"
                        self._last_error = (
                            f"the publisher went away ({error}); waiting for a publisher on {self.safe_url}"
                        )
                        self._reconnects += 1
                continue
            with self._cond:
                if self._state != "stopped":
                    self._state = "reconnecting"
                    self._last_error = error
                    self._reconnects += 1
            if self._stop.wait(backoff):
                break
            backoff = min(s.backoff_max_s, backoff * s.backoff_factor)

    def _shown_error(self, detail: str) -> str:
        """What the status says of a failed connection: FFmpeg's ``detail`` for the operator's own
        commands, else a neutral text (see the module notes); the detail is logged when it changes."""
        if not self._egress.enforced:
            return detail
        if self._relay is not None:  # FFmpeg names the URL it was given: the relay's, with the password
            detail = detail.replace(self._relay.ffmpeg_url, self.safe_url)
        if detail != self._logged_error:
            self._logged_error = detail
            log.warning("camera %s: %s", self.safe_url, detail)
        if self._session_frames:
            return detail if detail == "the stream ended" or detail.startswith("stalled") else LOST
        if self.settings.listen:
            return LISTEN_FAILED
        if self._relay is not None and self._relay.refusal is not None:
            return self._relay.refusal
        return CONNECT_FAILED

    def _options(self) -> dict[str, str]:
        s = self.settings
        options = {"protocol_whitelist": _PROTOCOLS[self._scheme]}
        if s.listen:
            return options | self._listen_options()
        if self._relay is not None:
            options = {"protocol_whitelist": _RELAYED_PROTOCOLS[self._scheme], **self._relay.ffmpeg_options}
        io_timeout_us = str(int(s.stall_timeout_s * 1_000_000))
        # FFmpeg probes 5 s of a live stream by default before the first frame; the SDP or the first
        # keyframe says enough, and every probed second is a second of latency at start.
        options["analyzeduration"] = str(int(s.analyze_s * 1_000_000))
        if self._scheme in ("rtsp", "rtsps"):
            # Through the relay, TCP only: with UDP FFmpeg sends to where the camera's answer says.
            transport = "tcp" if self._relay is not None else s.rtsp_transport
            options |= {"rtsp_transport": transport, "timeout": io_timeout_us}
        elif self._scheme in ("http", "https"):
            options |= {"timeout": io_timeout_us, "rw_timeout": io_timeout_us, "reconnect": "0"}
        # rtmp(s) pull: no option: FFmpeg's RTMP "timeout" is the *listen* timeout and turns listening on;
        # PyAV's open/read deadlines bound a pull.
        return options

    def _listen_options(self) -> dict[str, str]:
        s = self.settings
        options = {"analyzeduration": str(int(s.analyze_s * 1_000_000))}
        if self._scheme == "rtsp":
            # The publisher picks the transport in its SETUP; "timeout" bounds socket I/O once it is in.
            stall_us = str(int(s.stall_timeout_s * 1_000_000))
            return options | {
                "rtsp_flags": "listen",
                "listen_timeout": str(_LISTEN_SLICE_S),
                "timeout": stall_us,
            }
        return options | {"listen": "1", "timeout": str(_LISTEN_SLICE_S)}

    def _open(self) -> av.container.InputContainer:
        """Open the URL (pull), or listen one slice for a publisher and open its session (listen mode:
        :class:`_NoPublisher` when none came)."""
        s = self.settings
        target = self.url[len("file://") :] if self._scheme == "file" else self.url
        if self._relay is not None:
            target = self._relay.ffmpeg_url
        # In listen mode the open deadline starts before the wait for a publisher: allow both.
        open_timeout_s = s.open_timeout_s + (_LISTEN_SLICE_S if s.listen else 0)
        if s.listen:
            with self._cond:
                if self._state == "reconnecting":  # back from an error's backoff, bound and waiting again
                    self._state = "listening"
        try:
            return av.open(
                target,
                mode="r",
                options=self._options(),
                timeout=(open_timeout_s, s.stall_timeout_s),
                metadata_errors="replace",
            )
        except av.error.TimeoutError as e:  # FFmpeg's listen timeout: nobody connected in this slice
            if s.listen:
                raise _NoPublisher from e
            raise

    def _read_connection(self, connection: int) -> None:
        """Open the URL and read frames until it fails or stop (``_session_frames`` counts them)."""
        s = self.settings
        container = self._open()
        try:
            if not container.streams.video:
                raise av.error.InvalidDataError(0, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = s.threads
            sampler = FpsSampler(s.target_fps)
            first_pts: float | None = None
            session_start = last_frame_at = time.monotonic()
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return
                for decoded in packet.decode():
                    if not isinstance(decoded, av.VideoFrame):
                        continue
                    now = time.monotonic()
                    last_frame_at = now
                    pts_ms = _pts_ms(decoded)
                    if pts_ms is None:
                        # FFmpeg's RTP demuxer gives the first frame(s) of a session no pts: nothing to place
                        # them on yet, so they are skipped; a later one follows the previous frame.
                        if first_pts is None:
                            continue
                        pts_ms = (self._last_pts_ms or 0.0) - self._pts_offset_ms + _period_ms(stream)
                    if first_pts is None:
                        first_pts = pts_ms
                        session_start = time.monotonic()
                        # A new connection restarts its pts: continue the timeline one frame period on.
                        if self._last_pts_ms is not None:
                            self._pts_offset_ms = self._last_pts_ms + _period_ms(stream) - pts_ms
                    elif self._scheme == "file" and s.pace_files:
                        # A file plays at its own speed: wait until this frame is due (stop interrupts).
                        due = session_start + (pts_ms - first_pts) / 1000.0
                        if self._stop.wait(max(0.0, due - time.monotonic())):
                            return
                        last_frame_at = time.monotonic()
                    self._session_frames += 1
                    self._on_frame(decoded, pts_ms, sampler, connection)
                if time.monotonic() - last_frame_at > s.stall_timeout_s:
                    raise _Stalled(f"stalled: no frame for {s.stall_timeout_s:g} s")
        finally:
            container.close()

    def _on_frame(
        self,
        decoded: av.VideoFrame,
        pts_ms: float,
        sampler: FpsSampler,
        connection: int,
    ) -> None:
        timeline_ms = pts_ms + self._pts_offset_ms
        if self._last_pts_ms is not None and timeline_ms <= self._last_pts_ms:
            timeline_ms = self._last_pts_ms + 1e-3  # never back, even on a camera's pts glitch
        self._last_pts_ms = timeline_ms
        with self._cond:
            index = self._frames_read
            self._frames_read += 1
            if self._state != "stopped":
                self._state = "running"
                self._last_error = None
        if not sampler.keep(timeline_ms):
            return
        image = np.ascontiguousarray(decoded.to_ndarray(format="rgb24"), dtype=np.uint8)
        item = CapturedFrame(
            Frame(self.source_id, index, timeline_ms, image), time.time(), pts_ms, connection
        )
        with self._cond:
            if len(self._queue) >= self.settings.queue_size:
                self._queue.popleft()
                self._frames_dropped += 1
            self._queue.append(item)
            self._cond.notify()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _pts_ms(frame: av.VideoFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base * 1000)


def _period_ms(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1000.0 / float(rate) if rate else 1.0
