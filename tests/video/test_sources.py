"""Video decoding: real files from ../shared/data, small videos written with PyAV, broken inputs, http."""

from __future__ import annotations

import functools
import http.server
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.video.stream
import numpy as np
import pytest

from keeneye.core.errors import InvalidParameter, InvalidVideo, LimitExceeded, NotFound
from keeneye.core.types import Frame
from keeneye.video.sampling import FpsSampler
from keeneye.video.sources import open_video

PETS = "video/pets09_s2l1/vtest_480x360.mp4"
HAMILTON = "video/face_clips/short_hamilton_clip.mp4"
GIF = "video/intel_sample_videos/preview_gifs/people-detection.gif"
FAST_S = 5.0  # bad input must fail (or finish) within this many seconds: never a hang


# ---------------------------------------------------------------------------------------------- sampling


def test_sampler_keeps_first_frame_past_each_instant() -> None:
    s = FpsSampler(2.0)
    pts = [i * 100.0 for i in range(21)]
    assert [p for p in pts if s.keep(p)] == [0.0, 500.0, 1000.0, 1500.0, 2000.0]


def test_sampler_gap_gives_one_frame_not_a_burst() -> None:
    s = FpsSampler(10.0)
    kept = [p for p in [0.0, 100.0, 1000.0, 1001.0, 1100.0] if s.keep(p)]
    assert kept == [0.0, 100.0, 1000.0, 1100.0]


def test_sampler_above_source_rate_keeps_everything_and_none_keeps_all() -> None:
    assert all(FpsSampler(100.0).keep(i * 33.37) for i in range(50))
    assert all(FpsSampler(None).keep(float(i)) for i in range(5))


@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan"), float("inf")])
def test_sampler_rejects_bad_rates(fps: float) -> None:
    with pytest.raises(InvalidParameter):
        FpsSampler(fps)


# ---------------------------------------------------------------------------------------------- real files


@pytest.mark.data
def test_pets_metadata_count_and_pts(shared_data: Path) -> None:
    with open_video(shared_data / PETS) as v:
        md = v.metadata
        assert (md.codec, md.width, md.height, md.fps, md.frame_count) == ("h264", 480, 360, 10.0, 795)
        assert md.format.startswith("mov,mp4") and md.format_long == "QuickTime / MOV"
        assert md.duration_ms == pytest.approx(79_500, abs=1)
        assert md.color_range == "LIMITED"
        frames = list(v.frames())
        assert v.complete and v.problems == []
    assert len(frames) == 795
    assert [f.index for f in frames] == list(range(795))
    pts = np.array([f.pts_ms for f in frames])
    assert pts[0] == 0.0
    np.testing.assert_allclose(np.diff(pts), 100.0, atol=0.01)
    img = frames[10].image
    assert img.shape == (360, 480, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert frames[0].source_id.endswith("vtest_480x360.mp4")


@pytest.mark.data
def test_pets_sampled_to_2fps(shared_data: Path) -> None:
    with open_video(shared_data / PETS, source_id="cam1") as v:
        frames = list(v.frames(target_fps=2.0))
    assert len(frames) == 159
    np.testing.assert_allclose(np.diff([f.pts_ms for f in frames]), 500.0, atol=0.01)
    assert [f.index for f in frames[:3]] == [0, 5, 10]  # index counts every decoded frame
    assert {f.source_id for f in frames} == {"cam1"}


@pytest.mark.data
def test_hamilton_ntsc_rate(shared_data: Path) -> None:
    with open_video(shared_data / HAMILTON) as v:
        assert v.metadata.fps == pytest.approx(29.97, abs=0.01)
        assert (v.metadata.width, v.metadata.height, v.metadata.frame_count) == (640, 360, 275)
        pts = np.array([f.pts_ms for f in v.frames()])
    assert len(pts) == 275 and pts[0] == 0.0
    np.testing.assert_allclose(np.diff(pts), 1001 / 30, atol=0.01)


@pytest.mark.data
def test_gif_preview(shared_data: Path) -> None:
    with open_video(shared_data / GIF) as v:
        assert (v.metadata.codec, v.metadata.width, v.metadata.height) == ("gif", 480, 270)
        frames = list(v.frames())
    assert len(frames) == 23
    assert all(b.pts_ms > a.pts_ms for a, b in itertools.pairwise(frames))
    assert frames[0].image.shape == (270, 480, 3)


@pytest.mark.data
def test_bytes_and_file_object_sources(shared_data: Path) -> None:
    data = (shared_data / HAMILTON).read_bytes()
    with open_video(data) as v:
        assert v.metadata.frame_count == 275
        assert sum(1 for _ in v.frames(target_fps=1.0)) == 10
        assert v.source_id == "bytes"
    with (shared_data / HAMILTON).open("rb") as fh, open_video(fh, source_id="s3://b/k") as v:
        first = next(iter(v.frames()))
    assert first.source_id == "s3://b/k" and first.pts_ms == 0.0


@pytest.mark.data
def test_limits_checked_from_header(shared_data: Path) -> None:
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded, match="over the limit of 60 s"):
        open_video(shared_data / PETS, max_duration_s=60)
    with pytest.raises(LimitExceeded, match="pixels"):
        open_video(shared_data / PETS, max_pixels=320 * 240)
    assert time.perf_counter() - t0 < 1.0  # nothing was decoded
    with open_video(shared_data / PETS, max_duration_s=80, max_pixels=480 * 360):
        pass


# ------------------------------------------------------------------------------------- generated videos


def _write_video(path: Path, fmt: str | None, codec: str, n: int = 20, fps: int = 10) -> None:
    """n frames of 64x48 at fps with a moving bright square (frame i has its square at x = 2i)."""
    with av.open(str(path), mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec in ("libx264", "libx265"):
            options: dict[str, object] = {"preset": "ultrafast"}
            if codec == "libx265":
                options["x265-params"] = "log-level=error"
            stream.options = options
        for i in range(n):
            img = np.zeros((48, 64, 3), np.uint8)
            img[10:30, 2 * i : 2 * i + 16] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.mark.parametrize(
    ("name", "fmt", "codec", "decoder"),
    [
        ("h264.mp4", "mp4", "libx264", "h264"),
        ("hevc.mkv", "matroska", "libx265", "hevc"),
        ("mjpeg.avi", "avi", "mjpeg", "mjpeg"),
        ("h264.ts", "mpegts", "libx264", "h264"),
    ],
)
def test_generated_containers(tmp_path: Path, name: str, fmt: str, codec: str, decoder: str) -> None:
    path = tmp_path / name
    _write_video(path, fmt, codec)
    with open_video(path) as v:
        assert (v.metadata.codec, v.metadata.width, v.metadata.height) == (decoder, 64, 48)
        assert v.metadata.fps == pytest.approx(10.0)
        frames = list(v.frames())
        assert v.complete
    assert len(frames) == 20
    np.testing.assert_allclose([f.pts_ms for f in frames], np.arange(20) * 100.0, atol=0.5)
    # The square moved right by 2 px per frame: its left edge is found where it was drawn.
    left = int(np.argmax(frames[7].image[20, :, 1] > 128))
    assert abs(left - 14) <= 2
    if decoder == "mjpeg":
        assert v.metadata.color_range == "FULL"


def test_truncated_mkv_by_duration(tmp_path: Path) -> None:
    full = tmp_path / "full.mkv"
    _write_video(full, "matroska", "libx264", n=60)
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 4])
    with open_video(cut) as v:
        assert v.metadata.frame_count is None and v.metadata.duration_ms is not None
        got: list[float] = []
        with pytest.raises(InvalidVideo, match="truncated"):
            got.extend(f.pts_ms for f in v.frames())
    assert 0 < len(got) < 60


# ---------------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    data = (shared_data / PETS).read_bytes()
    (d / "cut30.mp4").write_bytes(data[: int(len(data) * 0.3)])
    body = data.find(b"mdat") + 4  # the moov box comes first in this file: keep it, garble the media
    garbage = np.random.default_rng(0).integers(0, 256, len(data) - body, dtype=np.uint8).tobytes()
    (d / "garbage_body.mp4").write_bytes(data[:body] + garbage)
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    (d / "header_only.mp4").write_bytes(data[:2000])
    return {p.name: p for p in d.iterdir()}


@pytest.mark.data
def test_truncated_file_yields_prefix_then_raises(bad_files: dict[str, Path]) -> None:
    t0 = time.perf_counter()
    got: list[Frame] = []
    with open_video(bad_files["cut30.mp4"]) as v, pytest.raises(InvalidVideo, match="truncated: decoded"):
        got.extend(v.frames())
    assert time.perf_counter() - t0 < FAST_S
    assert 200 < len(got) < 260  # 30 % of the bytes, the prefix decodes fine
    assert got[-1].pts_ms == (len(got) - 1) * 100.0


@pytest.mark.data
def test_truncated_file_non_strict_stops_cleanly(bad_files: dict[str, Path]) -> None:
    with open_video(bad_files["cut30.mp4"]) as v:
        n = sum(1 for _ in v.frames(strict=False))
        assert not v.complete and v.problems and "truncated" in v.problems[0]
    assert n == v.frames_decoded > 200


@pytest.mark.data
@pytest.mark.parametrize("strict", [True, False])
def test_garbage_body(bad_files: dict[str, Path], strict: bool) -> None:
    t0 = time.perf_counter()
    with open_video(bad_files["garbage_body.mp4"]) as v:
        if strict:
            with pytest.raises(InvalidVideo, match="corrupt data after 0 frames"):
                list(v.frames())
        else:
            n = sum(1 for _ in v.frames(strict=False))
            assert n == 0 and v.problems and not v.complete
    assert time.perf_counter() - t0 < FAST_S


@pytest.mark.data
@pytest.mark.parametrize("name", ["empty.mp4", "text.mp4", "header_only.mp4"])
def test_unreadable_files_raise_on_open(bad_files: dict[str, Path], name: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(InvalidVideo) as info, open_video(bad_files[name]) as v:
        list(v.frames())
    assert info.value.code == "InvalidVideo" and name in info.value.message
    assert time.perf_counter() - t0 < FAST_S


@pytest.mark.parametrize("data", [b"", b"\x00" * 4096, b"GIF89a" + b"\xff" * 100])
def test_unreadable_bytes(data: bytes) -> None:
    with pytest.raises(InvalidVideo), open_video(data) as v:
        list(v.frames())


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        open_video(tmp_path / "nope.mp4")
    with pytest.raises(InvalidParameter):
        open_video("file:///etc/passwd")
    with pytest.raises(InvalidParameter):
        open_video("rtsp://127.0.0.1/x")
    with pytest.raises(InvalidParameter):
        open_video(b"x", threads=0)


def test_one_pass_only(tmp_path: Path) -> None:
    path = tmp_path / "a.avi"
    _write_video(path, "avi", "mjpeg", n=3)
    with open_video(path) as v:
        assert len(list(v.frames())) == 3
        with pytest.raises(RuntimeError):
            list(v.frames())


# ---------------------------------------------------------------------------------------------- http


@pytest.fixture
def http_root(shared_data: Path) -> Iterator[str]:
    """A plain http.server on 127.0.0.1 serving the PETS folder; shut down after the test."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str((shared_data / PETS).parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.data
def test_http_source(http_root: str) -> None:
    with open_video(f"{http_root}/vtest_480x360.mp4", timeout_s=5) as v:
        assert v.metadata.frame_count == 795 and v.source_id.startswith("http://127.0.0.1")
        frames = []
        for f in v.frames(target_fps=2.0):
            frames.append(f)
            if len(frames) == 10:
                break
    assert [f.pts_ms for f in frames] == [i * 500.0 for i in range(10)]


@pytest.mark.data
def test_http_404(http_root: str) -> None:
    with pytest.raises(InvalidVideo, match="could not be opened"):
        open_video(f"{http_root}/missing.mp4", timeout_s=5)


def test_dead_url_fails_fast() -> None:
    with socket.socket() as s:  # a port nobody listens on: bind, read the number, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(InvalidVideo, match="could not be opened"):
        open_video(f"http://127.0.0.1:{port}/x.mp4", timeout_s=2)
    assert time.perf_counter() - t0 < FAST_S


def test_silent_server_times_out() -> None:
    """A server that accepts the connection (kernel backlog) and never answers: the timeout ends it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        t0 = time.perf_counter()
        with pytest.raises(InvalidVideo):
            open_video(f"http://127.0.0.1:{port}/x.mp4", timeout_s=1)
        assert time.perf_counter() - t0 < FAST_S


def test_playlist_cannot_pull_other_files(tmp_path: Path) -> None:
    """A file is handed to FFmpeg as a Python file object: an HLS playlist naming local files opens none."""
    _write_video(tmp_path / "secret.ts", "mpegts", "mpeg2video")
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{tmp_path / 'secret.ts'}\n#EXT-X-ENDLIST\n"
    )
    with pytest.raises(InvalidVideo, match=r"other files|self-contained"):
        open_video(playlist)
