"""A running stream processor's live view and snapshots through the native API, on a real server with a
real worker process reading a real RTSP camera (PETS09 S2.L1 over GStreamer's RTSP server on 127.0.0.1):
views arrive under 1 s behind capture, as JPEGs of the expected size with the configured line's counts
and the person tracks; snapshots of a running processor, of a stopped one and of a camera; a camera
that refuses (a closed port of 127.0.0.1) fails quickly with the worker's neutral words."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from keeneye.streams.capture import CONNECT_FAILED
from tests.contract.conftest import RunningServer
from tests.contract.test_stream_processors import (
    AUTH,
    START_S,
    _create,
    _index_hamilton,
    _person_settings,
    _wait_status,
)
from tests.receivers import free_port, wait_until
from tests.rtsp.rig import rtsp_server

pytestmark = [pytest.mark.models, pytest.mark.data]

MAX_LAG_S = 1.0
SAMPLES = 12


def _get(server: RunningServer, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=AUTH, timeout=15)


def _jpeg_shape(r: httpx.Response) -> tuple[int, ...]:
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (r.status_code, r.text[:300])
    image = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return tuple(image.shape)


def test_live_view_and_snapshots(server: RunningServer, shared_data: Path) -> None:
    client = server.client()
    clip = shared_data / "video" / "pets09_s2l1" / "vtest_480x360.mp4"
    with rtsp_server(clip, loop=True) as camera:
        r = httpx.put(f"{server.url}/v1/cameras/yard", json={"url": camera.url}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert _jpeg_shape(_get(server, "/v1/cameras/yard/snapshot")) == (360, 480, 3)  # read from the camera
        _create(client, "yard", r.json()["arn"], "file://yard.jsonl", _person_settings())
        options = {"lines": [{"name": "door", "p1": [0.0, 0.45], "p2": [1.0, 0.45]}]}
        r = httpx.put(f"{server.url}/v1/stream-processors/yard/options", json=options, headers=AUTH)
        assert r.status_code == 200, r.text
        assert _jpeg_shape(_get(server, "/v1/stream-processors/yard/snapshot")) == (360, 480, 3)
        r = _get(server, "/v1/stream-processors/yard/live")
        assert r.status_code == 409 and "STOPPED" in r.json()["error"]["message"], r.text

        client.start_stream_processor(Name="yard")
        _wait_status(client, "yard", "RUNNING")
        wait_until(
            lambda: _get(server, "/v1/stream-processors/yard/live").status_code == 200, START_S, "a view"
        )
        lags: list[float] = []
        metas: list[dict[str, Any]] = []
        for _ in range(SAMPLES):
            r = _get(server, "/v1/stream-processors/yard/live")
            lags.append(time.time() - float(r.headers["X-Keeneye-Captured-At"]))
            assert _jpeg_shape(r) == (360, 480, 3)  # under the 640 px cap: the frame's own size
            assert json.loads(r.headers["X-Keeneye-Counts"]).keys() == {"door"}
            metas.append(_get(server, "/v1/stream-processors/yard/live.json").json())
            time.sleep(0.25)
        stats = _get(server, "/v1/stream-processors/yard/stats").json()
        print(
            f"live view lag: median {statistics.median(lags):.3f} s, max {max(lags):.3f} s; records' "
            f"capture-to-sink latency p50 {stats['latency_p50_s']} s; frames {stats['frames_processed']}, "
            f"dropped {stats['frames_dropped']}"
        )
        assert statistics.median(lags) < MAX_LAG_S, lags
        last = metas[-1]
        assert set(last["counts"]["door"]) == {"in", "out"}, last
        assert len({m["pts_ms"] for m in metas}) > SAMPLES // 2, "the view does not move"
        persons = [t for m in metas for t in m["tracks"] if t["kind"] == "person"]
        assert persons, "no person box in any view"
        assert all(0 <= v <= 1 for t in persons for v in t["box"]) and persons[0]["label"].startswith("#")

        # A running processor's snapshot is its latest frame, from the worker.
        t0 = time.monotonic()
        assert _jpeg_shape(_get(server, "/v1/stream-processors/yard/snapshot")) == (360, 480, 3)
        assert time.monotonic() - t0 < 2.0
        assert _jpeg_shape(_get(server, "/v1/cameras/yard/snapshot")) == (360, 480, 3)
        client.stop_stream_processor(Name="yard")
        _wait_status(client, "yard", "STOPPED", 30)
        assert _get(server, "/v1/stream-processors/yard/live.json").status_code == 409

    # A camera that does not answer: a clear, quick error that says no more than a worker's status.
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # a closed port of this machine
    r = httpx.put(f"{server.url}/v1/cameras/gone", json={"url": url}, headers=AUTH)
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    r = _get(server, "/v1/cameras/gone/snapshot")
    assert time.monotonic() - t0 < 6.0
    assert r.status_code == 503 and CONNECT_FAILED in r.json()["error"]["message"], r.text
    assert _get(server, "/v1/cameras/nobody/snapshot").status_code == 404
    assert _get(server, "/v1/stream-processors/nobody/live").status_code == 404


def test_live_view_names_a_matched_face(server: RunningServer, shared_data: Path) -> None:
    """FaceSearch: the view's face box says who matched (the Hamilton clip: Lin-Manuel Miranda from 2.8 s)."""
    client = server.client()
    _index_hamilton(client, shared_data)
    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    with rtsp_server(clip) as camera:
        settings = {"FaceSearch": {"CollectionId": "hamilton", "FaceMatchThreshold": 80}}
        _create(client, "stage", camera.url, "file://stage.jsonl", settings)
        client.start_stream_processor(Name="stage")
        _wait_status(client, "stage", "RUNNING")
        labels: set[str] = set()

        def named() -> bool:
            r = _get(server, "/v1/stream-processors/stage/live.json")
            if r.status_code == 200:
                labels.update(t["label"] for t in r.json()["tracks"] if t["kind"] == "face")
            return any(label.startswith("lin-manuel-miranda ") for label in labels)

        wait_until(named, START_S, f"a named face in the view (labels seen: {labels})")
        client.stop_stream_processor(Name="stage")
        _wait_status(client, "stage", "STOPPED", 30)
    assert all(label.startswith(("lin-manuel-miranda ", "unknown")) for label in labels), labels
