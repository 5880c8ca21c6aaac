"""Write RGB frames to a video file with PyAV: H.264 in MP4 when the wheel's FFmpeg has libx264, else
Motion JPEG in AVI (every FFmpeg build has the mjpeg encoder).

Frames are timed by their source ``pts_ms`` mapped onto a constant frame rate (the analysed rate), so a
video sampled down to 5 fps plays back at real speed. H.264's yuv420p needs even sizes: an odd width or
height is padded by one edge pixel (MJPEG keeps the exact size).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal

import av
import av.container
import av.video.stream
import numpy as np

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import UInt8Image

VideoCodec = Literal["h264", "mjpeg"]


def h264_available() -> bool:
    """Whether this PyAV's FFmpeg can encode H.264 (libx264 is GPL and missing from some builds)."""
    try:
        av.codec.Codec("libx264", "w")
    except (av.error.FFmpegError, ValueError):  # pragma: no cover - depends on the wheel
        return False
    return True


class VideoWriter:
    """Encode RGB frames (HxWx3 uint8) of one size into ``path``; use as a context manager.

    ``path`` is where the caller asked; :attr:`path` is where the video goes (``.avi`` instead of ``.mp4``
    when falling back to MJPEG) and :attr:`codec` what encodes it. fps: the playback frame rate.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        if width <= 0 or height <= 0 or not fps > 0:
            raise InvalidParameter(f"cannot write a {width}x{height} video at {fps} fps")
        self.codec: VideoCodec = "h264" if h264_available() else "mjpeg"
        self.path = path if self.codec == "h264" else path.with_suffix(".avi")
        self.width, self.height = width, height
        self._rate = Fraction(fps).limit_denominator(1001)
        self._last_pts = -1
        self._closed = False
        try:
            self._container: av.container.OutputContainer = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError) as e:
            raise InvalidParameter(f"cannot write {self.path}: {e}") from e
        if self.codec == "h264":
            stream = self._container.add_stream("libx264", rate=self._rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "23", "preset": "veryfast"}
            self._pad = (height % 2, width % 2)
        else:
            stream = self._container.add_stream("mjpeg", rate=self._rate)
            stream.pix_fmt = "yuvj420p"
            self._pad = (0, 0)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = width + self._pad[1], height + self._pad[0]
        self._stream = stream

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write(self, image: UInt8Image, pts_ms: float) -> None:
        """Encode one RGB frame shown at ``pts_ms`` (ms from the start); frames must come in time order."""
        if image.shape[:2] != (self.height, self.width):
            raise InvalidParameter(
                f"frame is {image.shape[1]}x{image.shape[0]}, not {self.width}x{self.height}"
            )
        if any(self._pad):
            image = np.pad(image, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        pts = max(self._last_pts + 1, round(pts_ms / 1000.0 * float(self._rate)))
        frame.pts, frame.time_base = pts, 1 / self._rate
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._closed:
            return
        self._closed = True
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
