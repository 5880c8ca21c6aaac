"""Latency on ONE core: detection + alignment + embedding of a 640x480 photo with one face.

Pins the process to one CPU and ONNX Runtime to one thread, warms up, then reports the median and
p90 over --runs runs for each stage and the total, for the default pipeline and its variants.
Usage: python bench/speed.py [--runs 50] [--detector mtcnn|blazeface] [--only dlib+faceres]
"""

from __future__ import annotations

import argparse
import os

os.environ["KEENEYE_INTRA_OP_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import time

import cv2
import numpy as np
from common import SHARED, emit, settings
from variants import VARIANTS

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.images import read_image_file


def photo_640x480() -> np.ndarray:
    img = read_image_file(SHARED / "faces/face_recognition/obama-480p.jpg")
    h, w = img.shape[:2]
    x0 = max(0, (w - 640 * h // 480) // 2)
    crop = img[:, x0 : x0 + 640 * h // 480]
    return cv2.resize(crop, (640, 480), interpolation=cv2.INTER_AREA)


def timed(fn, runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median and p90 wall time, and the median thread CPU time (with one ONNX Runtime thread the work
    runs in this thread, so CPU time is what a neighbour's load on the shared machine cannot inflate)."""
    fn()
    fn()
    t, c = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        t.append(1000 * (time.perf_counter() - t0))
        c.append(1000 * (time.thread_time() - c0))
    return {
        "median_ms": round(float(np.median(t)), 2),
        "p90_ms": round(float(np.percentile(t, 90)), 2),
        "cpu_median_ms": round(float(np.median(c)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--detector", default=None, help="faces.detector.kind (default: the configured one)")
    ap.add_argument("--only", nargs="*", default=None, help="variants to time (default: all)")
    args = ap.parse_args()
    detector = {"detector": {"kind": args.detector}} if args.detector else {}
    image = photo_640x480()
    res: dict[str, object] = {
        "image": "faces/face_recognition/obama-480p.jpg cropped+resized to 640x480",
        "detector": settings(**detector).faces.detector.model_dump(mode="json"),
        "variants": {},
    }
    for name in args.only or ("dlib+faceres", "dlib-resnet", "dlib-resnet+flip", "human-faceres"):
        analyzer = build_face_analyzer(settings(**VARIANTS[name], **detector))
        faces = analyzer.detect(image)
        assert len(faces) == 1, f"expected one face, got {len(faces)}"

        def detect(analyzer=analyzer):  # type: ignore[no-untyped-def]
            return analyzer.detect(image)

        def embed(analyzer=analyzer, first=faces[0]):  # type: ignore[no-untyped-def]
            from keeneye.core.types import Face

            f = Face(xyxy=first.xyxy.copy(), score=1.0, landmarks=dict(first.landmarks))
            analyzer.embed(image, [f])

        def total(analyzer=analyzer):  # type: ignore[no-untyped-def]
            analyzer.analyze(image, attributes="none", embed=True)

        res["variants"][name] = {  # type: ignore[index]
            "detect": timed(detect, args.runs),
            "align_and_embed": timed(embed, args.runs),
            "detect_align_embed": timed(total, args.runs),
        }
    full = build_face_analyzer(settings(**detector))
    res["default_attributes_all_plus_embedding"] = timed(
        lambda: full.analyze(image, attributes="all", embed=True), max(5, args.runs // 5)
    )
    emit(res)


if __name__ == "__main__":
    main()
