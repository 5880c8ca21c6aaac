"""Bystander redaction (keeneye redact): faces the detector finds before and after redaction.

For each video: ``redact_video`` with the defaults (detector at REDACTION_SCORE_THRESHOLD, every frame
analysed, blur), then every ``--every``-th frame of the original and of the redacted output is run
through the face detector at the default threshold (0.65) and at the redaction threshold. Per threshold:
``before`` (faces in the original), ``after`` (boxes the detector finds in the output: mostly hands or
microphones under a blurred patch, see ``keeneye.service.governance.redaction.unobscured``) and ``unobscured``
(faces of the original still findable and not obscured in the output: the number that must be 0).
``--threshold`` redacts at another detector threshold, to compare (the check then runs at the lower one).
Also: faces redacted per frame, face tracks, and milliseconds per frame of the redaction pass.

Videos: short_hamilton_clip.mp4 (640x360, 9.2 s, edited: stage, close-ups, audience) and the first
10 s of PETS09 S2.L1 (480x360, people 40-80 px tall: faces of 5-12 px, under what BlazeFace can see).
Usage: python bench/redaction.py [--every N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from common import SHARED, emit, settings

from keeneye.models.registry import build_detector
from keeneye.service.governance.redaction import (
    REDACTION_SCORE_THRESHOLD,
    build_redaction_analyzer,
    redact_video,
    unobscured,
)
from keeneye.video.sources import open_video

VIDEOS = {
    "short_hamilton_clip": (SHARED / "video/face_clips/short_hamilton_clip.mp4", None),
    "pets09_s2l1_first_10s": (SHARED / "video/pets09_s2l1/vtest_480x360.mp4", 10_000.0),
}
DEFAULT_THRESHOLD = 0.65


def measure(path: Path, max_ms: float | None, every: int, threshold: float, tmp: Path) -> dict[str, Any]:
    cfg = settings()
    analyzer = build_redaction_analyzer(cfg, score_threshold=threshold)
    out = tmp / f"{path.stem}-redacted.mp4"
    t0 = time.perf_counter()
    result = redact_video(path, out, analyzer, score_threshold=threshold, max_duration_ms=max_ms)
    seconds = time.perf_counter() - t0
    floor = min(DEFAULT_THRESHOLD, REDACTION_SCORE_THRESHOLD, threshold)
    detector_cfg = cfg.faces.detector.model_copy(update={"score_threshold": floor})
    detector = build_detector(detector_cfg, cfg.models_dir)
    thresholds = {"default_0.65": DEFAULT_THRESHOLD, f"low_{floor:g}": floor}
    counts = {name: {"before": 0, "after": 0, "unobscured": 0} for name in thresholds}
    checked = 0
    with open_video(path) as original, open_video(result.path) as redacted:
        pairs = zip(original.frames(), redacted.frames(), result.frames, strict=False)
        for i, (src, dst, regions) in enumerate(pairs):
            if i % every:
                continue
            checked += 1
            before, after = detector.detect(src.image), detector.detect(dst.image)
            for name, t in thresholds.items():
                b, a = before.select(before.score >= t), after.select(after.score >= t)
                counts[name]["before"] += len(b)
                counts[name]["after"] += len(a)
                counts[name]["unobscured"] += len(unobscured(b, a, regions.faces))
    per_frame = [f.redacted for f in result.frames]
    return {
        "frames": len(result.frames),
        "frames_checked": checked,
        "faces_detected": counts,
        "faces_redacted_per_frame": {
            "min": min(per_frame),
            "mean": round(sum(per_frame) / len(per_frame), 2),
            "max": max(per_frame),
        },
        "face_tracks": result.tracks,
        "ms_per_frame": round(seconds / len(result.frames) * 1000, 1),
        "ms_per_frame_detection": round(result.seconds["detect"] / len(result.frames) * 1000, 1),
        "ms_per_frame_encoding": round(result.seconds["encode"] / len(result.frames) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="check every N-th frame (default: all)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=REDACTION_SCORE_THRESHOLD,
        help="detector threshold of the redaction (to compare choices; the check still runs at the lower "
        f"of it and {REDACTION_SCORE_THRESHOLD:g})",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        videos = {
            name: measure(p, max_ms, args.every, args.threshold, Path(tmp))
            for name, (p, max_ms) in VIDEOS.items()
        }
    emit(
        {
            "redaction_threshold": args.threshold,
            "default_threshold": DEFAULT_THRESHOLD,
            "mode": "blur",
            "videos": videos,
        }
    )


if __name__ == "__main__":
    main()
