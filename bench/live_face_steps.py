"""What a live camera's face-search step costs per frame, and whom it names, for each way of running it.

The Hamilton clip (``video/face_clips/short_hamilton_clip.mp4``: 640x360, a performer on stage with the
camera moving, three shot cuts) sampled to 10 fps as a stream processor samples a camera, through the
stages a face-search processor runs (keeneye.pipeline.faces.FaceSteps: the live detector, the face
tracker, TrackFaceIdentifier searching a "hamilton" collection of Lin-Manuel Miranda and Alex Lacamoire,
one photo each, at FaceMatchThreshold 80), with shot cuts, in one process on one thread (ONNX Runtime
and OpenCV), so the times are one core's. For each setting: milliseconds per analysed frame (cut scoring,
detection, description, tracking, embedding and search), frames detected, faces embedded, and each name
matched with the first time (s of video) and the number of frames it was shown on.

Settings: ``before`` is what processors did until December 2026 (the face mesh on every face of every
frame, detection on every frame); the others use the "basic" description (no mesh) and detect on every
1st / 2nd / 3rd frame with motion gating (streams.face_detect_every, streams.face_motion_gating).

Usage: python bench/live_face_steps.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
from common import SHARED, emit
from stream_latency import make_data_dir

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import AttributeLevel
from keeneye.config import Settings
from keeneye.core.types import Frame
from keeneye.pipeline.faces import FaceSteps, face_tracker_config
from keeneye.pipeline.identification import TrackFaceIdentifier
from keeneye.pipeline.schedule import DetectionSchedule, ScheduleConfig
from keeneye.service.streams.processors import open_collection_search
from keeneye.tracking.tracker import PersonTracker
from keeneye.video.cuts import ShotCutDetector
from keeneye.video.sources import open_video

CLIP = SHARED / "video" / "face_clips" / "short_hamilton_clip.mp4"
SETTINGS: tuple[tuple[str, AttributeLevel, int, bool], ...] = (
    ("before: every frame, face mesh", "default", 1, False),
    ("every frame, basic", "basic", 1, False),
    ("every 2nd frame, basic, motion gating (default)", "basic", 2, True),
    ("every 3rd frame, basic, motion gating", "basic", 3, True),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2, help="passes over the clip per setting (time: the best)")
    ap.add_argument(
        "--retry-s",
        type=float,
        default=0.4,
        help="how soon an unmatched track's face is embedded again (processors: 0.4 s)",
    )
    args = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="keeneye-live-faces-") as tmp:
        settings = make_data_dir(Path(tmp), Settings().models_dir, 1).model_copy(update={"threads": 1})
        analyzer = build_face_analyzer(settings, with_embedder=True, live_frames=True)
        search = open_collection_search(settings, analyzer, "hamilton")
        with open_video(CLIP) as video:
            frames = list(video.frames(10.0))
        results = []
        for label, attributes, every, gating in SETTINGS:
            runs = [
                _run(analyzer, search, frames, attributes, every, gating, args.retry_s)
                for _ in range(args.repeat)
            ]
            best = min(runs, key=lambda r: r["ms_per_frame"])
            results.append({"setting": label, **best})
    emit(
        {
            "benchmark": "live face-search step per analysed frame (one thread)",
            "source": f"{CLIP.name}, {len(frames)} frames at 10 fps",
            "retry_s": args.retry_s,
            "results": results,
        }
    )


def _run(
    analyzer: Any,
    search: Any,
    frames: list[Frame],
    attributes: AttributeLevel,
    every: int,
    gating: bool,
    retry_s: float,
) -> dict[str, Any]:
    identifier = TrackFaceIdentifier(
        analyzer, lambda e, i: search(e, i, 80.0), retry_ms=retry_s * 1000, fuse=Settings().faces.track_fusion
    )
    steps = FaceSteps(
        analyzer,
        PersonTracker(face_tracker_config(0.65, analyzer)),
        identifier,
        attributes=attributes,
        schedule=DetectionSchedule(ScheduleConfig(every, gating, 1000.0)),
    )
    cuts = ShotCutDetector()
    named: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for frame in frames:
        if cuts.is_cut(frame.image):
            steps.cut()
        for seen in steps.step(frame).tracked:
            if seen.identity is not None and seen.identity.matches and seen.identity.name is not None:
                named.setdefault(seen.identity.name, []).append(frame.pts_ms / 1000.0)
    ms = (time.perf_counter() - t0) / len(frames) * 1000.0
    return {
        "ms_per_frame": round(ms, 2),
        "frames_detected": steps.frames_detected,
        "faces_embedded": identifier.embeddings_total,
        "named": {k: {"first_s": round(v[0], 1), "frames": len(v)} for k, v in sorted(named.items())},
    }


if __name__ == "__main__":
    main()
