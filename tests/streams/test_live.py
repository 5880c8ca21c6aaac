"""The live view and snapshots of keeneye.streams.live: JPEG bounds, what a view draws and lists, the
publisher's rate and demand, and one frame grabbed from a real RTSP camera (or refused, quickly)."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from keeneye.config import Settings
from keeneye.core.errors import BackendUnavailable
from keeneye.core.types import Face, Frame, Track, TrackPoint
from keeneye.pipeline.faces import FaceUpdate, TrackedFace
from keeneye.pipeline.identification import TrackIdentity
from keeneye.pipeline.persons import PersonUpdate
from keeneye.store.collections import FaceMatch, StoredFace
from keeneye.streams.capture import CONNECT_FAILED, CapturedFrame
from keeneye.streams.egress import EgressPolicy, EgressRefused
from keeneye.streams.live import (
    MAX_VIEW_BYTES,
    VIEW_WIDTH,
    LiveBox,
    LiveFrame,
    LivePublisher,
    encode_jpeg,
    grab_frame,
    render_view,
)
from keeneye.streams.runtime import StreamProcessorRuntime
from keeneye.tracking.lines import Line
from keeneye.tracking.zones import Zone
from tests.factories import loopback_egress
from tests.receivers import free_port, wait_until
from tests.rtsp.rig import RtspServer, hamilton_rtsp

__all__ = ["hamilton_rtsp"]  # the fixture, imported to be used here


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return np.asarray(image)


def _noise(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("size", "max_width", "max_bytes", "want_width"),
    [
        ((360, 640), 640, 1_000_000, 640),
        ((1080, 1920), 640, 1_000_000, 640),
        ((100, 120), 640, 1_000_000, 120),  # never upscaled
        ((1080, 1920), 1920, 60_000, None),  # noise does not fit 60 kB at 1920 px: quality, then size
    ],
)
def test_encode_jpeg_caps_width_and_bytes(
    size: tuple[int, int], max_width: int, max_bytes: int, want_width: int | None
) -> None:
    jpeg = encode_jpeg(_noise(*size), max_width=max_width, max_bytes=max_bytes)
    image = _decode(jpeg)
    assert len(jpeg) <= max_bytes
    assert image.shape[1] <= max_width
    if want_width is not None:
        assert image.shape[1] == want_width
        assert abs(image.shape[0] - round(size[0] * want_width / size[1])) <= 1


def test_a_view_draws_boxes_lines_and_counts_and_lists_them_as_ratios() -> None:
    image = np.full((720, 1280, 3), 40, np.uint8)
    frame = LiveFrame(
        image,
        captured_at=1000.5,
        pts_ms=1234.6,
        boxes=[
            LiveBox("face", (100.0, 100.0, 300.0, 340.0), 3, "lin-manuel-miranda 99%"),
            LiveBox("person", (640.0, 0.0, 1280.0, 720.0), 7, "#7"),
        ],
        counts={"door": {"in": 2, "out": 1}},
    )
    line = Line("door", (0.0, 0.5), (1.0, 0.5))
    zone = Zone("desk", ((0.1, 0.1), (0.4, 0.1), (0.4, 0.4)))
    view = render_view(frame, [line], [zone])
    drawn = _decode(view["jpeg"])
    assert drawn.shape == (360, VIEW_WIDTH, 3) and len(view["jpeg"]) <= MAX_VIEW_BYTES
    assert drawn.std() > 5, "nothing drawn on a flat frame"
    assert view["captured_at"] == 1000.5 and view["pts_ms"] == 1234
    assert view["counts"] == {"door": {"in": 2, "out": 1}}
    assert view["tracks"] == [
        {
            "kind": "face",
            "track_id": 3,
            "box": [0.0781, 0.1389, 0.2344, 0.4722],
            "label": "lin-manuel-miranda 99%",
        },
        {"kind": "person", "track_id": 7, "box": [0.5, 0.0, 1.0, 1.0], "label": "#7"},
    ]


class _Pipe:
    """What a publisher sends, with when."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def send(self, message: tuple[str, dict[str, Any]]) -> None:
        with self.lock:
            self.sent.append((time.monotonic(), *message))

    def of(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(at, m) for at, k, m in self.sent if k == kind]


def _feed(publisher: LivePublisher, seconds: float, fps: float = 30.0) -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        publisher.offer(LiveFrame(image, time.time(), i * 1000 / fps, (), {"door": {"in": 0, "out": 0}}))
        i += 1
        time.sleep(1 / fps)


def test_the_publisher_sends_views_only_when_watched_and_at_most_4_a_second() -> None:
    pipe = _Pipe()
    publisher = LivePublisher(pipe.send, lines=[Line("door", (0, 0.5), (1, 0.5))], ttl_s=1.0)
    publisher.start()
    try:
        _feed(publisher, 0.5)
        assert pipe.of("view") == [], "a view nobody asked for"
        publisher.want()
        _feed(publisher, 1.5)  # watched for 1 s (ttl_s) of it
        views = pipe.of("view")
        assert 3 <= len(views) <= 5, len(views)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(views)]
        assert min(gaps) >= 0.24, gaps
        assert all(m["counts"] == {"door": {"in": 0, "out": 0}} for _, m in views)
        assert all(time.time() - m["captured_at"] < 2.0 for _, m in views)

        publisher.request_snapshot(41)
        wait_until(lambda: bool(pipe.of("snapshot")), 2.0, "a snapshot")
        answer = pipe.of("snapshot")[0][1]
        assert answer["id"] == 41 and _decode(answer["jpeg"]).shape == (360, 640, 3)
        assert len(pipe.of("view")) == len(views), "views went on after the watch ended"
    finally:
        publisher.stop()
    assert publisher.views == len(pipe.of("view"))


def test_a_snapshot_before_any_frame_says_so() -> None:
    pipe = _Pipe()
    publisher = LivePublisher(pipe.send)
    publisher.start()
    try:
        publisher.request_snapshot(1)
        wait_until(lambda: bool(pipe.of("snapshot")), 2.0, "an answer")
        assert pipe.of("snapshot")[0][1] == {"id": 1, "jpeg": None}
    finally:
        publisher.stop()


@pytest.mark.data
def test_grab_frame_reads_one_frame_of_a_camera(hamilton_rtsp: RtspServer) -> None:
    t0 = time.monotonic()
    image = grab_frame(hamilton_rtsp.url, loopback_egress())
    assert image.shape == (360, 640, 3) and image.dtype == np.uint8
    assert time.monotonic() - t0 < 5.0


def test_grab_frame_fails_quickly_and_neutrally_for_a_closed_port() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nobody listens
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        grab_frame(url, loopback_egress(), timeout_s=3.0)
    assert time.monotonic() - t0 < 3.5
    assert CONNECT_FAILED in info.value.message and "refused" not in info.value.message.lower()
    with pytest.raises(EgressRefused):  # loopback is refused by the default policy, before any connection
        grab_frame(url, EgressPolicy())


def test_the_runtime_hands_on_each_frame_with_its_names_and_counts(tmp_path: Path) -> None:
    """What StreamProcessorRuntime gives its on_frame: tracked faces named by their best match (or
    ``unknown``), active person tracks by id, the line counts; the frame's own image, not a copy."""
    runtime = StreamProcessorRuntime(
        "rtsp://127.0.0.1:1/cam",
        Settings(data_dir=tmp_path),
        face_search=(lambda *_: [], 80.0),
        connected_home=(["PERSON"], 50.0),
        encode=lambda _: {},
    )
    image = np.zeros((360, 640, 3), np.uint8)
    frame = Frame("cam", 7, 700.0, image)
    face = Face(np.array([10, 20, 50, 80], np.float32), 0.99)
    stored = StoredFace(
        "f-1", "c", "i-1", "lin", (0, 0, 1, 1), 1, 1, 1.0, datetime.now(UTC), "e", user_id="lin-manuel"
    )
    tracked = [
        TrackedFace(3, face, True, TrackIdentity(3, matches=[FaceMatch(stored, 99.4)])),
        TrackedFace(4, face, True, TrackIdentity(4)),
        TrackedFace(5, face, False, None),
    ]
    runtime._face_update = FaceUpdate(frame, [face], [], tracked, {})
    person = Track(9, 0, 0.0, 700.0, "active", [TrackPoint(700.0, (100.0, 50.0, 200.0, 350.0), 0.9)])
    lost = Track(10, 0, 0.0, 600.0, "lost", [TrackPoint(600.0, (0.0, 0.0, 9.0, 9.0), 0.9)])
    runtime._person_update = PersonUpdate(frame, [person, lost], [], [], {"door": {"in": 1, "out": 0}})
    live = runtime._live_frame(CapturedFrame(frame, 1000.0, 700.0, 0))
    assert live.image is image and live.captured_at == 1000.0 and live.pts_ms == 700.0
    assert live.counts == {"door": {"in": 1, "out": 0}}
    assert [(b.kind, b.track_id, b.label) for b in live.boxes] == [
        ("face", 3, "lin-manuel 99%"),
        ("face", 4, "unknown"),
        ("face", 5, "unknown"),
        ("person", 9, "#9"),
    ]
    assert live.boxes[0].xyxy == (10.0, 20.0, 50.0, 80.0)
