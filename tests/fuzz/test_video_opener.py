"""Fuzzing the video opener: damaged videos end in InvalidVideo (or a limit), never anything else.

Inputs are a tiny H.264 MP4 and MJPEG AVI encoded here (keeneye.video.writer and PyAV) and the first
kilobytes of a real clip, with bytes overwritten, cut, duplicated or inserted, or cut short. Each
example opens the bytes with :func:`open_video` and reads every frame; a stored-video job does the
same, so anything but InvalidVideo / LimitExceeded here is a job that fails with "internal error".
"""

from __future__ import annotations

import time
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import av.video.stream
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeneye.core.errors import InvalidVideo, LimitExceeded
from keeneye.video.sources import open_video
from tests.factories import write_video
from tests.fuzz.strategies import SHARED_DATA, fuzz_settings, mutated

SHARED_CLIP = SHARED_DATA / "video" / "face_clips" / "short_hamilton_clip.mp4"
MAX_PIXELS = 640 * 480


def _frames(n: int = 8, width: int = 64, height: int = 48) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        img[8:24, 4 * i : 4 * i + 16] = (255, 128, 0)
        out.append(img)
    return out


@cache
def seeds(folder: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    out["writer"] = write_video(folder / "tiny.mp4", _frames()).read_bytes()
    avi = folder / "tiny.avi"
    with av.open(str(avi), mode="w") as container:
        stream = container.add_stream("mjpeg", rate=Fraction(10))
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i, img in enumerate(_frames()):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out["mjpeg-avi"] = avi.read_bytes()
    if SHARED_CLIP.is_file():
        # The real clip keeps its index (moov) up front, so its first 48 KB open and decode a few frames.
        out["real-prefix"] = SHARED_CLIP.read_bytes()[: 48 * 1024]
    return out


@pytest.fixture(scope="module")
def seed_bytes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return seeds(tmp_path_factory.mktemp("videos"))


def check(data: bytes) -> None:
    """open_video + every frame: frames, then the end or InvalidVideo / LimitExceeded; under 5 s."""
    started = time.perf_counter()
    try:
        with open_video(data, max_pixels=MAX_PIXELS, timeout_s=5.0) as video:
            for frame in video.frames():
                assert frame.image.dtype == np.uint8 and frame.image.ndim == 3
                assert frame.image.shape[0] * frame.image.shape[1] <= MAX_PIXELS
    except (InvalidVideo, LimitExceeded) as exc:
        assert exc.message
    assert time.perf_counter() - started < 5.0


def test_seeds_decode(seed_bytes: dict[str, bytes]) -> None:
    for name, data in seed_bytes.items():
        if name == "real-prefix":
            continue  # cut short on purpose
        with open_video(data) as video:
            assert len(list(video.frames())) == 8, name


@fuzz_settings(max_examples=120, deadline_s=5.0)
@given(data=st.data())
def test_mutated_videos(seed_bytes: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(seed_bytes)))
    check(data.draw(mutated(seed_bytes[name])))


@fuzz_settings(max_examples=60, deadline_s=5.0)
@given(data=st.data())
def test_truncated_videos(seed_bytes: dict[str, bytes], data: st.DataObject) -> None:
    seed = seed_bytes[data.draw(st.sampled_from(sorted(seed_bytes)))]
    check(seed[: data.draw(st.integers(0, len(seed) - 1))])


@fuzz_settings(max_examples=60, deadline_s=5.0)
@given(st.binary(min_size=1, max_size=4096))
def test_random_bytes(data: bytes) -> None:
    check(data)
