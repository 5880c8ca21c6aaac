"""StreamProcessorRuntime end to end: the Hamilton clip over real RTSP -> face search -> JSONL and a webhook.

The collection (one photo each of Lin-Manuel Miranda and Alex Lacamoire) is built in a temporary data
directory as tests/cli/test_track_collection.py does. The clip's 2.8-7.0 s shot shows Lin-Manuel singing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.aws import stream_records
from keeneye.aws.stream_records import shape_problems
from keeneye.config import Settings
from keeneye.core.types import FloatArray
from keeneye.service.faces.collections import FaceCollections, FaceMatch
from keeneye.store.db import Store
from keeneye.streams.capture import CaptureSettings
from keeneye.streams.runtime import StreamProcessorRuntime
from keeneye.streams.sinks import JsonlSink, Sink, SinkError, WebhookSink, WebhookTarget
from tests.factories import index_photos, loopback_egress, settings_with_models
from tests.receivers import webhook_receiver
from tests.rtsp.rig import RtspServer, hamilton_rtsp

__all__ = ["hamilton_rtsp"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.models, pytest.mark.data]

LIN_SINGS_S = 2.8  # his first clear appearance in the clip
MAX_DELAY_S = 2.0


class _TimedSink:
    """Wraps a sink and notes the wall time each record was delivered through it."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.delivered: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def send(self, message: Mapping[str, Any]) -> None:
        self.inner.send(message)
        with self._lock:
            self.delivered.append((time.time(), dict(message)))

    def close(self) -> None:
        self.inner.close()


class _BrokenSink:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: Mapping[str, Any]) -> None:
        self.calls += 1
        raise SinkError("down")

    def close(self) -> None:
        return None


def _collections(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> tuple[Settings, Store, FaceCollections]:
    settings = settings_with_models(tmp_path, models_dir)
    store = Store.open(settings.data_dir, settings.database_url)
    collections = FaceCollections(store, build_face_analyzer(settings, with_embedder=True), settings.images)
    index_photos(collections, "hamilton", shared_data, ("lin-manuel-miranda", "alex-lacamoire"))
    return settings, store, collections


def test_lin_manuel_is_matched_live_over_rtsp(
    tmp_path: Path, models_dir: Path, shared_data: Path, hamilton_rtsp: RtspServer
) -> None:
    settings, store, collections = _collections(tmp_path, models_dir, shared_data)
    analyzer = build_face_analyzer(settings, with_embedder=True)

    def search(embedding: FloatArray, embedder_id: str, threshold: float) -> list[FaceMatch]:
        return collections.search_faces_by_vector("hamilton", embedding, embedder_id, threshold)

    jsonl = JsonlSink(tmp_path / "records.jsonl")
    broken = _BrokenSink()
    capture = CaptureSettings(target_fps=5, queue_size=2, open_timeout_s=5.0, stall_timeout_s=2.0)
    try:
        with webhook_receiver() as receiver:
            webhook = _TimedSink(
                WebhookSink(WebhookTarget(url=receiver.url), timeout_s=2.0, egress=loopback_egress())
            )
            runtime = StreamProcessorRuntime(
                hamilton_rtsp.url,
                settings,
                encode=stream_records.encode,
                face_search=(search, 80.0),
                connected_home=None,
                sinks=[jsonl, webhook, broken],
                record_interval_s=60.0,
                capture=capture,
                analyzer=analyzer,
                egress=loopback_egress(),
            )
            started = time.monotonic()
            runtime.start()
            try:
                # The clip is 10 s, served in real time; stop when it has ended (or at a bound).
                while time.monotonic() - started < 14.0:
                    status = runtime.stats()
                    if status.capture.state == "reconnecting" and status.frames_processed > 0:
                        break
                    time.sleep(0.1)
            finally:
                stopping = time.monotonic()
                runtime.stop()
                stop_s = time.monotonic() - stopping
            stats = runtime.stats()
            received = receiver.messages()
    finally:
        collections.close()
        store.close()

    assert stats.state == "stopped" and stats.error is None, stats
    assert stats.frames_processed >= 20, stats
    assert stop_s < 3.0, f"stop() took {stop_s:.2f} s"
    lines = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert lines and [r.body for r in received] == lines == [r for _, r in webhook.delivered]
    for record in lines:
        assert shape_problems(record) == [], record
    # Stream start on the wall clock: a frame's decode time minus its offset (the earliest estimate).
    stream_start = min(
        r["InputInformation"]["KinesisVideo"]["ServerTimestamp"]
        - r["InputInformation"]["KinesisVideo"]["FrameOffsetInSeconds"]
        for r in lines
    )
    matched = [(t, r) for t, r in webhook.delivered if r["FaceSearchResponse"][0]["MatchedFaces"]]
    names = {
        m["Face"]["ExternalImageId"] for _, r in matched for m in r["FaceSearchResponse"][0]["MatchedFaces"]
    }
    assert names == {"lin-manuel-miranda"}, names
    first_at = matched[0][0] - stream_start
    assert first_at <= LIN_SINGS_S + MAX_DELAY_S, f"first match delivered {first_at:.2f} s into the stream"
    # He is also matched (small, at 86 %) on the stage shot before 2.8 s; the close-up must be matched too.
    close_up = [t for t, r in matched if r["InputInformation"]["KinesisVideo"]["FrameOffsetInSeconds"] >= 2.8]
    assert close_up, "no match from the close-up shot"
    close_up_at = close_up[0] - stream_start
    assert close_up_at <= LIN_SINGS_S + MAX_DELAY_S, f"close-up matched {close_up_at:.2f} s into the stream"
    # One match record per track and identity (the interval is longer than the clip).
    keys = [(r["Keeneye"]["TrackId"], r["Keeneye"]["Identity"]) for _, r in matched]
    assert len(keys) == len(set(keys)), keys
    assert all(r["Keeneye"]["Identity"] == "lin-manuel-miranda" for _, r in matched)
    unknown = [r for r in lines if not r["FaceSearchResponse"][0]["MatchedFaces"]]
    assert all(r["Keeneye"]["Identity"] is None for r in unknown)
    # Latency and counters; the broken sink was tried for every record and counted.
    assert stats.records == len(lines) == broken.calls == stats.sink_errors
    assert stats.latency_p50_s is not None and stats.latency_p95_s is not None
    assert 0 < stats.latency_p50_s <= stats.latency_p95_s < MAX_DELAY_S
    assert stats.capture.frames_read > 0
    print(  # shown with -s: what the run measured
        f"first match {first_at:.2f} s, close-up {close_up_at:.2f} s into the stream; "
        f"{len(matched)} match / {len(unknown)} unknown records; "
        f"{stats.frames_processed} frames, {stats.frames_dropped} dropped; "
        f"latency p50 {stats.latency_p50_s:.3f} s p95 {stats.latency_p95_s:.3f} s"
    )
