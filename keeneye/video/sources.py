"""Video sources: files, http(s) URLs and in-memory bytes decoded with PyAV (the FFmpeg in its wheel).

``open_video`` reads the container header, checks the limits (duration, pixels) before any frame is decoded
and returns a :class:`VideoSource` with the metadata (Rekognition's ``VideoMetadata`` fields) and a
one-pass :meth:`VideoSource.frames` iterator of RGB :class:`~keeneye.core.types.Frame`.

Timestamps: ``pts_ms = (pts - stream start_time) x time_base x 1000``, from the container, never the wall
clock; the first frame of a stream that starts at 0 has pts_ms 0. ``Frame.index`` counts decoded frames in
output order (0-based) *before* sampling, so a sampled frame keeps its position in the full video.

Bad input policy (what a stored-video job turns into ``FAILED`` with a ``StatusMessage``):

* not a video, empty, unreadable header, unreachable URL, no video stream: :class:`InvalidVideo` from
  ``open_video``; a missing local file: :class:`NotFound`.
* limits exceeded per the header: :class:`LimitExceeded` from ``open_video``; a duration the header did not
  declare is checked while decoding (``LimitExceeded`` raised from ``frames()``).
* corrupt or truncated *body*: the frames decoded before the damage are yielded, then ``frames()`` raises
  :class:`InvalidVideo` naming how far it got (``strict=True``, the default). With ``strict=False`` damaged
  packets are skipped (up to a run of ``_MAX_CONSECUTIVE_ERRORS``), the iterator stops cleanly and
  :attr:`VideoSource.problems` lists what went wrong, for callers that prefer partial results.
  A truncation is detected when the demuxer ends before the frame count (or duration) the header declared.
* only self-contained videos: files and bytes reach FFmpeg as Python file objects with an ``io_open`` that
  refuses nested opens, and playlist/list demuxers (HLS, DASH, concat) are refused, so an input cannot make
  FFmpeg read other files; URLs are limited to http(s) (``protocol_whitelist``).
* nothing can hang: reads from files and URLs go through FFmpeg's interrupt callback with ``timeout_s``
  per open and per read, and http(s) also gets FFmpeg's socket ``timeout`` option.

Threading: FFmpeg decodes with ``threads`` threads (frame and slice threading, ``thread_type="AUTO"``);
the default is 1 because decoding is cheap next to detection (the 480x360 PETS H.264 decodes to RGB at
~800-1,200 frames/s on one thread of this 2-core machine, ~1,100 on two idle cores, *slower* on two threads
when the other core is busy) and detection's ONNX Runtime wants the cores. Use 2 for large (1080p+) videos.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal
from urllib.parse import urlsplit

import av
import av.container
import av.error
import av.video.stream
import numpy as np

from keeneye.core.errors import InvalidParameter, InvalidVideo, LimitExceeded, NotFound
from keeneye.core.types import Frame
from keeneye.video.sampling import FpsSampler

VideoInput = str | Path | bytes | bytearray | memoryview | IO[bytes]

DEFAULT_TIMEOUT_S = 10.0
# A run of this many packets failing to decode ends a non-strict decode: the body is garbage, not a glitch.
_MAX_CONSECUTIVE_ERRORS = 25
# Tolerances of the truncation check: decoders may drop a frame or two at the end (edit lists, B-frames).
_MISSING_FRAMES_TOLERATED = 2
_MISSING_DURATION_FRACTION = 0.05
_URL_SCHEMES = ("http", "https")
# Nested opens FFmpeg may do on behalf of a container (HLS playlists, mov data references) stay inside these.
_FILE_PROTOCOLS = "file"
_URL_PROTOCOLS = "http,https,tcp,tls"


# Demuxers whose input names other resources (playlists, manifests, lists of files).
_CHAINING_FORMATS = frozenset({"hls", "dash", "concat", "image2"})


class _NestedOpenRefused(Exception):
    """Raised by the io_open callback: FFmpeg tried to open a resource the input named."""


def _refuse_nested_open(url: str, flags: int, options: dict[str, str]) -> None:
    raise _NestedOpenRefused(f"it names {url!r}")


@dataclass(frozen=True)
class VideoMetadata:
    """What the container header says about the video stream (Rekognition's ``VideoMetadata``).

    codec: FFmpeg decoder name (``h264``, ``hevc``, ``mjpeg``, ...); format: FFmpeg demuxer name
    (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``, ``avi``, ``mpegts``, ``gif``) and format_long its
    description; duration_ms: milliseconds or None when unknown; fps: average frames per second or None;
    width/height: pixels; frame_count: frames the header declares, None when it declares none;
    color_range: ``FULL`` / ``LIMITED`` / None when unspecified.
    """

    codec: str
    format: str
    format_long: str
    duration_ms: float | None
    fps: float | None
    width: int
    height: int
    frame_count: int | None
    color_range: Literal["FULL", "LIMITED"] | None


class VideoSource:
    """An opened video: header metadata plus a one-pass frame iterator. Close it (or use ``with``)."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        metadata: VideoMetadata,
        *,
        source_id: str,
        max_duration_s: float | None,
        max_pixels: int | None,
        keepalive: object | None = None,
    ) -> None:
        self._container = container
        self._stream = stream
        self.metadata = metadata
        self.source_id = source_id
        self._max_duration_ms = None if max_duration_s is None else max_duration_s * 1000.0
        self._max_pixels = max_pixels
        # The BytesIO or file object behind a source must outlive the container; files are closed with it.
        self._keepalive = keepalive
        self._started = False
        self._finished = False
        self.frames_decoded = 0
        """Frames decoded so far (before sampling)."""
        self.problems: list[str] = []
        """What went wrong in a ``strict=False`` decode (truncation, skipped packets); empty when clean."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()
        _close(self._keepalive)

    @property
    def complete(self) -> bool:
        """True once ``frames()`` ran to the end with no problem."""
        return self._started and not self.problems and self._finished

    def frames(self, target_fps: float | None = None, *, strict: bool = True) -> Iterator[Frame]:
        """Decode the video stream into RGB frames, optionally sampled to ``target_fps`` (frames/s).

        Sampling follows :class:`~keeneye.video.sampling.FpsSampler` on pts: a frame is kept when its pts
        passes the next sampling instant. Yields ``Frame(source_id, index, pts_ms, image)`` with image
        HxWx3 uint8 RGB. One pass only: open the video again for a second pass.
        Raises InvalidVideo on corrupt or truncated data after yielding the frames before the damage
        (``strict=True``), or records the problem in :attr:`problems` and stops (``strict=False``).
        """
        if self._started:
            raise RuntimeError("VideoSource.frames() is one pass; open the video again")
        self._started = True
        sampler = FpsSampler(target_fps)
        last_pts_ms: float | None = None
        for frame in self._decode(strict):
            pts_ms = self._pts_ms(frame, last_pts_ms)
            last_pts_ms = pts_ms
            index = self.frames_decoded
            self.frames_decoded += 1
            if self._max_duration_ms is not None and pts_ms > self._max_duration_ms:
                raise LimitExceeded(
                    f"video {self.source_id!r} is longer than the limit of {self._max_duration_ms / 1000:g} s"
                )
            if self._max_pixels is not None and frame.width * frame.height > self._max_pixels:
                raise LimitExceeded(
                    f"video {self.source_id!r} has {frame.width}x{frame.height} frames, over the limit of "
                    f"{self._max_pixels} pixels"
                )
            if sampler.keep(pts_ms):
                image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                yield Frame(self.source_id, index, pts_ms, image)
        self._check_complete(last_pts_ms, strict)
        self._finished = True

    def _decode(self, strict: bool) -> Iterator[av.VideoFrame]:
        """Demux and decode packet by packet so that one bad packet is attributed and handled."""
        consecutive = 0
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except (av.error.InvalidDataError, av.error.PatchWelcomeError, av.error.BugError) as e:
                    consecutive += 1
                    problem = f"corrupt data after {self.frames_decoded} frames: {e.strerror or e}"
                    if strict:
                        raise InvalidVideo(f"video {self.source_id!r}: {problem}") from e
                    if not self.problems or self.problems[-1] != problem:
                        self.problems.append(problem)
                    if consecutive >= _MAX_CONSECUTIVE_ERRORS:
                        return
                    continue
                consecutive = 0
                for frame in decoded:
                    if isinstance(frame, av.VideoFrame):
                        yield frame
        except _NestedOpenRefused as e:
            self._fail(f"refers to other files ({e})", strict, e)
        except av.error.ExitError as e:  # FFmpeg's interrupt callback: a read took longer than timeout_s
            self._fail(f"reading stopped after {self.frames_decoded} frames: timed out", strict, e)
        except av.error.FFmpegError as e:
            self._fail(f"read error after {self.frames_decoded} frames: {e.strerror or e}", strict, e)

    def _fail(self, problem: str, strict: bool, cause: Exception) -> None:
        if strict:
            raise InvalidVideo(f"video {self.source_id!r}: {problem}") from cause
        self.problems.append(problem)

    def _pts_ms(self, frame: av.VideoFrame, last_pts_ms: float | None) -> float:
        """Container pts in milliseconds from the stream start; a frame without pts follows the last one."""
        if frame.pts is None or frame.time_base is None:
            step = 1000.0 / self.metadata.fps if self.metadata.fps else 0.0
            return 0.0 if last_pts_ms is None else last_pts_ms + step
        start = self._stream.start_time or 0
        return float((frame.pts - start) * frame.time_base * 1000)

    def _check_complete(self, last_pts_ms: float | None, strict: bool) -> None:
        """Flag a truncated body: the demuxer ran out before the frames or duration the header declared."""
        md = self.metadata
        problem = None
        if self.frames_decoded == 0:
            problem = "no frame could be decoded"
        elif md.frame_count is not None:
            if self.frames_decoded < md.frame_count - _MISSING_FRAMES_TOLERATED:
                problem = (
                    f"truncated: decoded {self.frames_decoded} of the {md.frame_count} frames the header "
                    f"declares (up to {last_pts_ms or 0:.0f} ms)"
                )
        elif md.duration_ms is not None and last_pts_ms is not None and md.format != "mpegts":
            # mpegts durations are estimates from the bit rate; other containers declare theirs.
            frame_ms = 1000.0 / md.fps if md.fps else 0.0
            if last_pts_ms + frame_ms < md.duration_ms * (1 - _MISSING_DURATION_FRACTION) - frame_ms:
                problem = (
                    f"truncated: decoded up to {last_pts_ms:.0f} ms of the {md.duration_ms:.0f} ms the "
                    "header declares"
                )
        if problem is not None:
            self._fail(problem, strict, InvalidVideo(problem))


def open_video(
    source: VideoInput,
    *,
    source_id: str | None = None,
    max_duration_s: float | None = None,
    max_pixels: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    threads: int = 1,
) -> VideoSource:
    """Open a video file path, an http(s) URL, bytes (e.g. an S3 object already read) or a binary file
    object, read its header and check the limits before decoding anything.

    max_duration_s: longest video accepted (seconds); max_pixels: largest width x height accepted;
    timeout_s: seconds allowed for opening and for each read (FFmpeg interrupt callback; for URLs also the
    socket timeout), so a dead server or a stalled pipe cannot hang a worker; threads: FFmpeg decode threads.
    source_id: the ``Frame.source_id`` (defaults to the path or URL, ``"bytes"`` for in-memory input).
    Raises NotFound (missing file), InvalidVideo (unreadable, not a video), LimitExceeded, InvalidParameter.
    """
    if threads < 1:
        raise InvalidParameter(f"threads must be >= 1, got {threads}")
    if not timeout_s > 0:
        raise InvalidParameter(f"timeout_s must be > 0, got {timeout_s}")
    target, options, default_id, keepalive = _resolve(source, timeout_s)
    sid = source_id if source_id is not None else default_id
    # Inputs handed over as file objects (files, bytes) get an io_open that refuses every further open, so a
    # playlist or concat list cannot make FFmpeg read other files; URLs are limited by protocol_whitelist.
    io_open = None if isinstance(target, str) else _refuse_nested_open
    try:
        container = av.open(
            target,
            mode="r",
            options=options,
            timeout=(timeout_s, timeout_s),
            io_open=io_open,
            # Container and stream tags are the sender's bytes: invalid UTF-8 must not stop the decode.
            metadata_errors="replace",
        )
    except _NestedOpenRefused as e:
        _close(keepalive)
        raise InvalidVideo(f"video {sid!r} refers to other files ({e}); only self-contained videos") from e
    except av.error.ExitError as e:
        _close(keepalive)
        raise InvalidVideo(f"video {sid!r}: opening timed out after {timeout_s:g} s") from e
    except av.error.FFmpegError as e:
        _close(keepalive)
        raise InvalidVideo(f"video {sid!r} could not be opened: {e.strerror or e}") from e
    try:
        if container.format.name in _CHAINING_FORMATS:
            raise InvalidVideo(
                f"video {sid!r} is a {container.format.long_name}; only self-contained videos are accepted"
            )
        if not container.streams.video:
            raise InvalidVideo(f"video {sid!r} has no video stream (format {container.format.name})")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a damaged header: PyAV found the stream but no codec for it
            raise InvalidVideo(f"video {sid!r}: the video stream has no usable codec parameters")
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        metadata = _metadata(container, stream)
        _check_limits(sid, metadata, max_duration_s, max_pixels)
    except BaseException:
        container.close()
        _close(keepalive)
        raise
    return VideoSource(
        container,
        stream,
        metadata,
        source_id=sid,
        max_duration_s=max_duration_s,
        max_pixels=max_pixels,
        keepalive=keepalive,
    )


def _close(obj: object | None) -> None:
    if isinstance(obj, io.IOBase):
        obj.close()


def _resolve(source: VideoInput, timeout_s: float) -> tuple[Any, dict[str, str], str, object | None]:
    """What to hand av.open, its FFmpeg options, a default source id, and an object to keep alive."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise InvalidVideo("video 'bytes' is empty")
        buffer = io.BytesIO(bytes(source))
        return buffer, {"protocol_whitelist": _FILE_PROTOCOLS}, "bytes", buffer
    if isinstance(source, str) and "://" in source:
        scheme = urlsplit(source).scheme.lower()
        if scheme not in _URL_SCHEMES:
            raise InvalidParameter(f"video URLs must be http(s), got scheme {scheme!r}")
        timeout_us = str(int(timeout_s * 1_000_000))
        options = {"timeout": timeout_us, "rw_timeout": timeout_us, "protocol_whitelist": _URL_PROTOCOLS}
        return source, options, source, None
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"video file {str(path)!r} not found")
        if os.path.getsize(path) == 0:
            raise InvalidVideo(f"video {str(path)!r} is empty (0 bytes)")
        # Handed over as a Python file object, not a name: FFmpeg then cannot open further resources on the
        # file's behalf (an HLS playlist or concat list naming other local files), exactly as for bytes.
        fh = path.open("rb")
        return fh, {"protocol_whitelist": _FILE_PROTOCOLS}, str(path), fh
    if hasattr(source, "read"):
        return source, {"protocol_whitelist": _FILE_PROTOCOLS}, "stream", None
    raise InvalidParameter(f"cannot open a video from {type(source).__name__}")


def _metadata(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> VideoMetadata:
    ctx = stream.codec_context
    duration_ms: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration_ms = float(stream.duration * stream.time_base * 1000)
    elif container.duration is not None:
        duration_ms = container.duration / av.time_base * 1000
    rate: Fraction | None = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    pix_fmt = ctx.format.name if ctx.format is not None else ""
    color_range: Literal["FULL", "LIMITED"] | None = None
    if ctx.color_range == 2 or pix_fmt.startswith("yuvj"):
        color_range = "FULL"
    elif ctx.color_range == 1:
        color_range = "LIMITED"
    return VideoMetadata(
        codec=ctx.name,
        format=container.format.name,
        format_long=container.format.long_name,
        duration_ms=duration_ms,
        fps=fps,
        width=int(ctx.width),
        height=int(ctx.height),
        frame_count=int(stream.frames) if stream.frames > 0 else None,
        color_range=color_range,
    )


def _check_limits(sid: str, md: VideoMetadata, max_duration_s: float | None, max_pixels: int | None) -> None:
    if md.width <= 0 or md.height <= 0:
        raise InvalidVideo(f"video {sid!r}: the header gives no frame size (codec {md.codec})")
    if max_pixels is not None and md.width * md.height > max_pixels:
        raise LimitExceeded(
            f"video {sid!r} has {md.width}x{md.height} frames, over the limit of {max_pixels} pixels"
        )
    if max_duration_s is not None and md.duration_ms is not None and md.duration_ms > max_duration_s * 1000:
        raise LimitExceeded(
            f"video {sid!r} lasts {md.duration_ms / 1000:.1f} s, over the limit of {max_duration_s:g} s"
        )
