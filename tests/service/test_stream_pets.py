"""Live ConnectedHome PERSON tracking over RTSP counts the same line crossings as stored-video tracking.

PETS09 S2.L1 (480x360, 10 fps, 795 frames, 79.5 s; see ../shared/data/MANIFEST.md) with the two lines of
bench/pets_tracking.py. Streaming plays in real time, so to keep the test short only a prefix is used:
the file is remuxed (packets copied, nothing re-encoded, so the decoded frames are bit-identical) up to
its keyframe at ``PREFIX_S`` seconds, so the prefix ends on a GOP boundary and every frame in it decodes.
That prefix is served by the real RTSP rig (GStreamer, loopback) to a StreamProcessorRuntime with every
frame kept (no fps sampling), and tracked as a stored video with ``track_video`` with the same detector,
the same tracker thresholds (MinConfidence raises the runtime's, so the stored run gets the same) and the
same lines.

Tolerance: none. The same frames through the same detector, tracker and line counter give the same
crossings; the only differences live streaming could make are frames missing (dropped from a full
capture queue, or the first frames of the RTSP session, which FFmpeg gives without a pts and the capture
skips) and the pts timeline (RTP's 90 kHz clock rebased by FFmpeg instead of the mp4's). So the test first
asserts that no frame was dropped (the queue holds the whole prefix, so a slow processor falls behind
rather than drops) and that the live run analysed every frame but the very first (t = 0: the one frame
the RTP session start costs, measured), then asserts identical per-line in/out counts and the same
crossings in the same order, each crossing's timestamp within one frame (100 ms) of the stored one.
Missing frame 0 only changes, by one frame, the start of the tracks already in view at t = 0 (their
confirmation and the smoothing window of their anchor); measured: identical counts and tracks, one
crossing 100 ms earlier live.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

from keeneye.aws import stream_records
from keeneye.aws.stream_records import shape_problems
from keeneye.service.video.tracking import build_tracking_detector, track_video
from keeneye.streams.capture import CaptureSettings
from keeneye.streams.runtime import StreamProcessorRuntime
from keeneye.tracking.lines import Line
from tests.factories import loopback_egress, settings_with_models
from tests.rtsp.rig import rtsp_server

pytestmark = [pytest.mark.models, pytest.mark.data]

PREFIX_S = 40.0  # a keyframe of the file (one every 8 s): 400 frames, 40 s of streaming
MIN_CONFIDENCE = 50.0
# bench/pets_tracking.py's lines: L1 is x = 384/768, L2 is y = 250/576 of the original 768x576 frame.
L2_Y = 250 / 576
LINES = [
    Line("L1_vertical_x384", (0.5, 1.0), (0.5, 0.0)),
    Line("L2_horizontal_y250", (0.0, L2_Y), (1.0, L2_Y)),
]
FRAME_MS = 100  # the file's frame period (10 fps)
END_SLACK_S = 40.0  # beyond the prefix's play time: RTSP setup, model warm-up, the processor catching up


def _prefix(video: Path, dst: Path, seconds: float) -> Path:
    """``video``'s packets up to (not including) its first keyframe at or after ``seconds``, remuxed."""
    with av.open(str(video)) as src, av.open(str(dst), mode="w") as out:
        stream = src.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue  # the demuxer's end-of-file flush packet
            assert packet.pts is not None and packet.time_base is not None
            if packet.is_keyframe and packet.pts * packet.time_base >= seconds:
                break
            packet.stream = copy
            out.mux(packet)
    return dst


class _Records:
    """The runtime's on_record: keeps every record (called from the processing thread)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.records.append(dict(record))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r["Keeneye"]["Kind"] == kind]


def test_live_line_counts_match_stored_video(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    settings = settings_with_models(tmp_path, models_dir)
    # The detector on every frame: the live run loses frame 0 (above), which would shift an every-2nd
    # schedule (the default) by one frame and compare detections of different frames.
    settings = settings.model_copy(
        update={"persons": settings.persons.model_copy(update={"detect_every": 1})}
    )
    clip = _prefix(
        shared_data / "video" / "pets09_s2l1" / "vtest_480x360.mp4", tmp_path / "pets.mp4", PREFIX_S
    )
    detector, config = build_tracking_detector(settings)
    # What the runtime does with MinConfidence: it raises the score that starts and confirms a track.
    floor = MIN_CONFIDENCE / 100.0
    config = replace(
        config, high_score=max(config.high_score, floor), new_track_score=max(config.new_track_score, floor)
    )

    t0 = time.monotonic()
    stored = track_video(clip, settings, LINES, target_fps=None, detector=detector, tracker_config=config)
    stored_s = time.monotonic() - t0

    got = _Records()
    capture = CaptureSettings(
        target_fps=None,
        queue_size=int(PREFIX_S * 10) + 50,  # the whole prefix: a slow processor falls behind, never drops
        open_timeout_s=5.0,
        stall_timeout_s=3.0,
        backoff_initial_s=600.0,  # the stream ends once: no reconnect (it would play the file again)
        backoff_max_s=600.0,
    )
    with rtsp_server(clip) as server:
        runtime = StreamProcessorRuntime(
            server.url,
            settings,
            encode=stream_records.encode,
            face_search=None,
            connected_home=(["PERSON"], MIN_CONFIDENCE),
            lines=LINES,
            capture=capture,
            person_detector=detector,
            on_record=got,
            egress=loopback_egress(),
        )
        t0 = time.monotonic()
        runtime.start()
        try:
            deadline = t0 + PREFIX_S + END_SLACK_S
            while time.monotonic() < deadline:
                s = runtime.stats()
                ended = s.capture.state == "reconnecting" and s.capture.frames_read > 0
                caught_up = s.frames_processed + s.frames_dropped >= s.capture.frames_read
                if s.state == "failed" or (ended and caught_up):
                    break
                time.sleep(0.2)
        finally:
            runtime.stop()
        live_s = time.monotonic() - t0
    stats = runtime.stats()

    assert stats.state == "stopped" and stats.error is None, stats
    assert stats.frames_dropped == 0, stats
    assert stats.capture.reconnects == 1, stats  # the end of the stream, and nothing before it
    # Every frame but the session's first (its keyframe, which FFmpeg's RTP demuxer gives without a pts
    # and the capture skips, see keeneye.streams.capture) was analysed live.
    assert stats.frames_processed == stats.capture.frames_read == stored.frames_analysed - 1, (
        stats,
        stored.frames_analysed,
    )
    first = min(r["InputInformation"]["KinesisVideo"]["FrameOffsetInSeconds"] for r in got.records)
    assert first >= 0.1, first
    for record in got.records:
        assert shape_problems(record) == [], record

    crossings = [c for r in got.of_kind("line") for c in r["Keeneye"]["LineCrossings"]]
    live_counts = {x.name: {"in": 0, "out": 0} for x in LINES}
    for c in crossings:
        live_counts[c["Line"]][c["Direction"]] += 1
    print(  # shown with -s: what the run measured
        f"stored {stored.frames_analysed} frames in {stored_s:.1f} s: {stored.line_counts}, "
        f"{len(stored.tracks)} tracks; live {stats.frames_processed} frames in {live_s:.1f} s: "
        f"{live_counts}, "
        f"{len({r['Keeneye']['TrackId'] for r in got.of_kind('person')})} person tracks; "
        f"latency p50 {stats.latency_p50_s} p95 {stats.latency_p95_s}"
    )
    assert live_counts == stored.line_counts
    assert sum(n for c in live_counts.values() for n in c.values()) > 0, "the prefix must have crossings"
    # The same crossings in the same order, on the same timeline (RTSP pts rebased by FFmpeg equal the mp4's
    # here), each at most one frame (100 ms) apart: a crossing's time is that of the observation that
    # confirmed it, and for a track in view from t = 0 the missing first frame shifts its smoothing window.
    live_events = [(c["Line"], c["Direction"], c["Timestamp"]) for c in crossings]
    stored_events = [(e.line, e.direction, round(e.pts_ms)) for e in stored.line_events]
    assert [e[:2] for e in live_events] == [e[:2] for e in stored_events]
    offsets = [live[2] - st[2] for live, st in zip(live_events, stored_events, strict=True)]
    assert all(abs(d) <= FRAME_MS for d in offsets), offsets
    # Person records: every track that crossed a line was reported as a person, once per track at least.
    person_ids = Counter(r["Keeneye"]["TrackId"] for r in got.of_kind("person"))
    assert {c["TrackId"] for c in crossings} <= set(person_ids), (crossings, person_ids)
    assert all(r["Keeneye"]["PersonBoundingBox"] for r in got.of_kind("person"))
    assert len(person_ids) == len(stored.tracks), (sorted(person_ids), [t.track_id for t in stored.tracks])
