"""Person detection, tracking and line counting on PETS09 S2.L1 (795 frames, 480x360, 10 fps, 79.5 s).

Ground truth: ../shared/data/video/pets09_s2l1/gt/gt_480x360.txt (MOT format; video frame index i, 0-based,
is GT frame i + 1; rows with conf 0 are "ignore": a detection or track box on one is neither a true nor a
false positive) and gt/line_crossings_from_gt.csv (foot-point crossings of two lines, raw, no hysteresis).

1. Detection precision / recall at IoU 0.5 (greedy by score) for CenterNet at several score thresholds
   and for OpenCV HOG (x2 upscale) at several thresholds, on every ``--every``-th analysed frame, with
   ms per frame on 1 and 2 threads (``--speed-frames`` frames, after warm-up).
2. Detector + keeneye's tracker over the whole video (one end-to-end pass: decode, detect, track):
   MOTA, IDF1, ID switches (py-motmetrics, IoU 0.5), HOTA / DetA / AssA (``hota``: a port of TrackEval's,
   py-motmetrics 1.4 has none) and in/out counts on the two lines against the GT
   counts. Lines, in ratio coordinates of the frame: L1 is x = 384/768 = 0.5 and L2 is y = 250/576. The
   in/out rule (issue 4): the anchor crossing from cross(p2 - p1, q - p1) < 0 to > 0 is ``in``. Endpoints
   chosen so that ``in`` is the reading direction: L1 p1 = (0.5, 1) (bottom), p2 = (0.5, 0) (top), so
   left -> right is ``in`` and right -> left ``out``; L2 p1 = (0, y), p2 = (1, y), so top -> bottom is
   ``in`` and bottom -> top ``out``.
3. Total processing time of that pass against the 79.5 s the video plays, with the sampling used.

HOG costs ~130 ms per frame (2 threads), so by default it runs at 5 fps (every 2nd frame) to keep the
benchmark short; its tracking metrics are then on those frames only (``--hog-fps 0`` for every frame).
Detection cache: every full run writes each frame's detections (at the floor the tracker uses) to
``<data_dir>/bench-cache/`` (keyed by detector, model file and floor). ``--cached`` then replays them
through the tracker and line counters in seconds instead of re-running the detector: for iterating on
tracking and counting only. Its output says ``"detections_from_cache": true``, it skips the speed
measurement, and its seconds exclude detection, so the published numbers come from a run without it.
Usage: python bench/pets_tracking.py [--every N] [--detector centernet|hog|both] [--threshold T] [--cached]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from common import SHARED, emit, settings
from detection import iou

from keeneye.core.types import Detections, Frame
from keeneye.models.base import ObjectDetector
from keeneye.models.registry import model_path
from keeneye.tracking.lines import DEFAULT_HYSTERESIS
from keeneye.video.sources import open_video

PETS = SHARED / "video" / "pets09_s2l1"
VIDEO = PETS / "vtest_480x360.mp4"
PLAY_SECONDS = 79.5
IOU = 0.5
CENTERNET_THRESHOLDS = (0.3, 0.4, 0.5)
# HOG scores are logistic(SVM margin): 0.5, 0.62 and 0.73 are margins 0, 0.5 and 1.
HOG_THRESHOLDS = (0.5, 0.62, 0.73)
# Detections kept for tracking and for the threshold sweep: the tracker's low-score stage wants them.
CENTERNET_FLOOR = 0.1
HOG_HIT_THRESHOLD = -0.5  # margin, score 0.38
L2_Y = 250 / 576
# LineCounter hysteresis (fraction of the image diagonal): keeneye's default first (0.01, 6 px here), then
# the trade-off around it; 0 is how the GT CSV was made (raw events, a person walking along a line counts
# back and forth).
HYSTERESIS = (DEFAULT_HYSTERESIS, 0.02, 0.015, 0.0075, 0.005, 0.0)
# LineCounter options switched off one at a time at the default hysteresis, to show what each does.
COUNTER_ABLATIONS: dict[str, dict[str, Any]] = {
    "no_handover": {"handover_ms": 0.0},
    "no_median": {"smoothing": 1},
    "neither": {"handover_ms": 0.0, "smoothing": 1},
}
# name -> (p1, p2) in ratio coordinates, and which CSV direction is ``in`` / ``out`` for that order.
LINES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "L1_vertical_x384": ((0.5, 1.0), (0.5, 0.0)),
    "L2_horizontal_y250": ((0.0, L2_Y), (1.0, L2_Y)),
}
GT_DIRECTION = {
    "left_to_right": "in",
    "right_to_left": "out",
    "top_to_bottom": "in",
    "bottom_to_top": "out",
}


# ------------------------------------------------------------------------------------ ground truth


@dataclass
class GroundTruth:
    """Per GT frame (1-based): active ids (N,), active boxes (N, 4) xyxy and ignore boxes (M, 4) xyxy."""

    ids: dict[int, np.ndarray] = field(default_factory=dict)
    boxes: dict[int, np.ndarray] = field(default_factory=dict)
    ignore: dict[int, np.ndarray] = field(default_factory=dict)
    rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 10)))


def load_gt() -> GroundTruth:
    rows = np.loadtxt(PETS / "gt" / "gt_480x360.txt", delimiter=",")
    gt = GroundTruth(rows=rows)
    # MOT boxes are 1-based pixels: left - 1 is the 0-based x of the box's left edge.
    xyxy = np.c_[rows[:, 2:4] - 1, rows[:, 2:4] - 1 + rows[:, 4:6]].astype(np.float32)
    for f in np.unique(rows[:, 0]).astype(int):
        at = rows[:, 0] == f
        active, ignored = at & (rows[:, 6] == 1), at & (rows[:, 6] == 0)
        gt.ids[f] = rows[active, 1].astype(int)
        gt.boxes[f] = xyxy[active]
        gt.ignore[f] = xyxy[ignored]
    return gt


def gt_line_counts() -> dict[str, dict[str, int]]:
    """GT in/out counts per line from the CSV (raw events), in keeneye's direction terms."""
    out = {name: {"in": 0, "out": 0} for name in LINES}
    with (PETS / "gt" / "line_crossings_from_gt.csv").open() as f:
        for row in csv.DictReader(f):
            out[row["line"]][GT_DIRECTION[row["direction"]]] += 1
    return out


# -------------------------------------------------------------------------------------- matching


def greedy_matches(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Bool (N,): detection matched a GT box at IoU >= 0.5, greedily by descending score."""
    matched = np.zeros(len(boxes), bool)
    if len(boxes) == 0 or len(gt) == 0:
        return matched
    m = iou(boxes, gt)
    used: set[int] = set()
    for k in np.argsort(-scores, kind="stable"):
        for j in np.argsort(-m[k]):
            if m[k, j] < IOU:
                break
            if int(j) not in used:
                used.add(int(j))
                matched[k] = True
                break
    return matched


def on_ignored(boxes: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """Bool (N,): box overlaps an "ignore" GT box at IoU >= 0.5."""
    if len(boxes) == 0 or len(ignore) == 0:
        return np.zeros(len(boxes), bool)
    return np.asarray(iou(boxes, ignore).max(axis=1) >= IOU)


def detection_pr(
    dets: dict[int, Detections], gt: GroundTruth, thresholds: Iterable[float], every: int
) -> list[dict[str, Any]]:
    """Precision / recall / F1 at IoU 0.5 over the frames whose index is a multiple of ``every``."""
    frames = [i for i in sorted(dets) if i % every == 0]
    out = []
    for t in thresholds:
        tp = fp = n_gt = 0
        for i in frames:
            d = dets[i]
            keep = d.score >= t
            boxes, scores = d.xyxy[keep], d.score[keep]
            g = gt.boxes.get(i + 1, np.zeros((0, 4), np.float32))
            hit = greedy_matches(boxes, scores, g)
            miss = ~hit & ~on_ignored(boxes, gt.ignore.get(i + 1, np.zeros((0, 4), np.float32)))
            tp, fp, n_gt = tp + int(hit.sum()), fp + int(miss.sum()), n_gt + len(g)
        p, r = tp / max(tp + fp, 1), tp / max(n_gt, 1)
        out.append(
            {
                "threshold": t,
                "frames": len(frames),
                "gt_boxes": n_gt,
                "tp": tp,
                "fp": fp,
                "precision": round(p, 4),
                "recall": round(r, 4),
                "f1": round(2 * p * r / max(p + r, 1e-9), 4),
            }
        )
    return out


# --------------------------------------------------------------------------------------- detectors


def make_detector(kind: str, threads: int, floor: bool = True) -> ObjectDetector:
    """A person detector on ``threads`` threads, keeping low scores (the floor) for the sweep and tracker."""
    if kind == "hog":
        from keeneye.models.hog import HogPersonDetector

        cv2.setNumThreads(threads)
        return HogPersonDetector(upscale=2.0, hit_threshold=HOG_HIT_THRESHOLD if floor else 0.0)
    from keeneye.models import onnx_runtime
    from keeneye.models.human import CenterNetPersonDetector

    onnx_runtime.configure(threads)
    path = model_path(settings().models_dir, "human-centernet")
    return CenterNetPersonDetector(
        path, class_thresholds={"person": CENTERNET_FLOOR if floor else 0.4}, default_threshold=2.0
    )


def speed(kind: str, n_frames: int) -> dict[str, float]:
    """Mean ms per frame of ``detect`` on the first ``n_frames`` frames, 1 and 2 threads."""
    with open_video(VIDEO) as video:
        images = [f.image for _, f in zip(range(n_frames), video.frames(), strict=False)]
    out = {}
    for threads in (1, 2):
        det = make_detector(kind, threads)
        det.detect(images[0])
        t0 = time.perf_counter()
        for im in images:
            det.detect(im)
        out[f"ms_per_frame_{threads}_threads"] = round((time.perf_counter() - t0) * 1000 / len(images), 1)
    cv2.setNumThreads(2)
    return out


# ---------------------------------------------------------------------------------- end-to-end pass


@dataclass
class PassResult:
    dets: dict[int, Detections]
    tracks: dict[int, list[tuple[int, tuple[float, float, float, float]]]]
    line_counts: dict[Any, dict[str, dict[str, int]]]  # hysteresis or ablation -> line -> {"in", "out"}
    seconds: dict[str, float]
    frames: int
    size: tuple[int, int]


def run_pass(
    detector: ObjectDetector | None,
    target_fps: float | None,
    tracker: Any | None,
    cached: dict[int, Detections] | None = None,
) -> PassResult:
    """Decode, detect (and track and count line crossings) the whole video once, timing each stage.

    With ``cached`` (frame index -> detections) the detector is not run: ``seconds["detect"]`` is then 0.
    """

    from keeneye.video.cuts import ShotCutDetector

    counters = _counters()
    cuts = ShotCutDetector()  # as keeneye.service.video.tracking.track_video does (timed under "track")
    seconds = {"decode": 0.0, "detect": 0.0, "track": 0.0}
    dets: dict[int, Detections] = {}
    tracks: dict[int, list[tuple[int, tuple[float, float, float, float]]]] = {}
    size = (0, 0)
    with open_video(VIDEO) as video:
        it = video.frames(target_fps)
        t = time.perf_counter()
        for frame in it:
            t1 = time.perf_counter()
            seconds["decode"] += t1 - t
            if cached is not None:
                d = cached[frame.index]
            else:
                assert detector is not None
                d = detector.detect(frame.image)
            t2 = time.perf_counter()
            seconds["detect"] += t2 - t1
            dets[frame.index] = d
            size = (frame.image.shape[1], frame.image.shape[0])
            if tracker is not None:
                if cuts.is_cut(frame.image):  # none in this fixed-camera video; timed like the product
                    tracker.cut()
                    for counter in counters.values():
                        counter.cut()
                live = tracker.update(frame, d)
                for counter in counters.values():
                    counter.update(frame, live)
                tracks[frame.index] = [(int(t.track_id), tuple(float(v) for v in t.xyxy)) for t in live]
            t = time.perf_counter()
            seconds["track"] += t - t2
    counts = {h: c.counts for h, c in counters.items()}
    return PassResult(dets, tracks, counts, seconds, len(dets), size)


# ------------------------------------------------------------------------------------ detection cache


def cache_path(kind: str, fps: float | None) -> Path:
    """Where a detector's per-frame detections on this video are cached: keyed by detector kind, the
    model file's content (CenterNet), the floor and the sampling rate."""
    if kind == "hog":
        key = f"hog-m{HOG_HIT_THRESHOLD}"
    else:
        model = model_path(settings().models_dir, "human-centernet")
        files = sorted(model.rglob("*")) if model.is_dir() else [model]
        digest = hashlib.sha256()
        for f in files:
            if f.is_file():
                digest.update(f.name.encode())
                digest.update(f.read_bytes())
        key = f"centernet-{digest.hexdigest()[:12]}-floor{CENTERNET_FLOOR}"
    return settings().data_dir / "bench-cache" / f"pets09-{key}-fps{fps or 0}.npz"


def save_detections(path: Path, dets: dict[int, Detections]) -> None:
    """Frame indices, per-frame box counts and the concatenated boxes, scores and labels."""
    index = np.array(sorted(dets), np.int64)
    parts = [dets[int(i)] for i in index]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        index=index,
        count=np.array([len(d) for d in parts], np.int64),
        xyxy=np.concatenate([d.xyxy for d in parts]).reshape(-1, 4),
        score=np.concatenate([d.score for d in parts]),
        label=np.concatenate([d.label for d in parts]),
    )


def load_detections(path: Path) -> dict[int, Detections]:
    with np.load(path) as z:
        ends = np.cumsum(z["count"])
        starts = ends - z["count"]
        return {
            int(i): Detections(z["xyxy"][a:b], z["score"][a:b], z["label"][a:b])
            for i, a, b in zip(z["index"], starts, ends, strict=True)
        }


# ------------------------------------------------------------------------------------- MOT metrics


def mot_metrics(result: PassResult, gt: GroundTruth) -> dict[str, Any]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    seq: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for i in sorted(result.tracks):
        f = i + 1
        g = gt.boxes.get(f, np.zeros((0, 4), np.float32))
        hyp = result.tracks[i]
        h = np.array([b for _, b in hyp], np.float32).reshape(-1, 4)
        hid = np.array([k for k, _ in hyp], int)
        # Track boxes on "ignore" people that match no active GT box are dropped (neither TP nor FP).
        drop = on_ignored(h, gt.ignore.get(f, np.zeros((0, 4), np.float32))) & ~greedy_matches(
            h, np.ones(len(h), np.float32), g
        )
        h, hid = h[~drop], hid[~drop]
        # motmetrics' own iou_matrix uses np.asfarray (gone in numpy 2): distance 1 - IoU, NaN below 0.5.
        dist = 1.0 - iou(g, h) if len(g) and len(h) else np.zeros((len(g), len(h)))
        dist = np.where(dist <= 1 - IOU, dist, np.nan)
        gid = gt.ids.get(f, np.zeros(0, int))
        acc.update(gid.tolist(), hid.tolist(), dist, frameid=f)
        seq.append((gid, g, hid, h))
    mh = mm.metrics.create()
    names = ["mota", "motp", "idf1", "num_switches", "precision", "recall", "mostly_tracked", "mostly_lost"]
    names += ["num_false_positives", "num_misses", "num_unique_objects", "num_fragmentations"]
    summary = mh.compute(acc, metrics=names, name="pets")
    row = summary.loc["pets"]
    out: dict[str, Any] = {}
    for n in names:
        v = row[n]
        out[n] = int(v) if n.startswith(("num_", "mostly_")) else round(float(v), 4)
    out["motp_iou"] = round(1 - out.pop("motp"), 4)  # motmetrics' MOTP is the mean 1 - IoU distance
    out["hypothesis_ids"] = len({k for v in result.tracks.values() for k, _ in v})
    out.update(hota(seq))
    return out


def hota(seq: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """HOTA, DetA, AssA (Luiten et al. 2021), a port of TrackEval's ``HOTA.eval_sequence``.

    seq: per frame (gt ids, gt xyxy, track ids, track xyxy), after the same ignore-region filtering as
    MOTA. Averaged over localisation thresholds alpha = 0.05 ... 0.95; matching per frame maximises
    IoU weighted by each (gt id, track id) pair's global alignment score, as TrackEval does.
    """
    from scipy.optimize import linear_sum_assignment

    alphas = np.arange(0.05, 0.99, 0.05)
    gt_index = {k: n for n, k in enumerate(sorted({int(x) for s in seq for x in s[0]}))}
    tr_index = {k: n for n, k in enumerate(sorted({int(x) for s in seq for x in s[2]}))}
    pot = np.zeros((len(gt_index), len(tr_index)))
    gt_count, tr_count = np.zeros(len(gt_index)), np.zeros(len(tr_index))
    frames = []
    for gid, g, hid, h in seq:
        gi = np.array([gt_index[int(x)] for x in gid], int)
        ti = np.array([tr_index[int(x)] for x in hid], int)
        sim = iou(g, h) if len(g) and len(h) else np.zeros((len(g), len(h)))
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        pot[np.ix_(gi, ti)] += np.divide(sim, denom, out=np.zeros_like(sim), where=denom > 1e-9)
        gt_count[gi] += 1
        tr_count[ti] += 1
        frames.append((gi, ti, sim))
    align = pot / np.maximum(gt_count[:, None] + tr_count[None, :] - pot, 1e-9)
    tp, fn, fp = np.zeros(len(alphas)), np.zeros(len(alphas)), np.zeros(len(alphas))
    matches = np.zeros((len(alphas), len(gt_index), len(tr_index)))
    for gi, ti, sim in frames:
        if len(gi) == 0 or len(ti) == 0:
            fn += len(gi)
            fp += len(ti)
            continue
        rows, cols = linear_sum_assignment(-(align[np.ix_(gi, ti)] * sim))
        for a, alpha in enumerate(alphas):
            ok = sim[rows, cols] >= alpha - 1e-9
            n = int(ok.sum())
            tp[a] += n
            fn[a] += len(gi) - n
            fp[a] += len(ti) - n
            matches[a, gi[rows[ok]], ti[cols[ok]]] += 1
    ass = matches / np.maximum(gt_count[None, :, None] + tr_count[None, None, :] - matches, 1e-9)
    ass_a = (matches * ass).sum(axis=(1, 2)) / np.maximum(tp, 1)
    det_a = tp / np.maximum(tp + fn + fp, 1)
    return {
        "hota": round(float(np.mean(np.sqrt(det_a * ass_a))), 4),
        "deta": round(float(np.mean(det_a)), 4),
        "assa": round(float(np.mean(ass_a)), 4),
    }


# ------------------------------------------------------------------------------------------- lines


def _counters() -> dict[Any, Any]:
    """One LineCounter over both lines per hysteresis value (keys: the hysteresis), and one per
    ablation at the default hysteresis (keys: the ablation's name)."""
    from keeneye.tracking.lines import Line, LineCounter

    def lines(h: float) -> list[Line]:
        return [Line(n, p1, p2, hysteresis=h) for n, (p1, p2) in LINES.items()]

    out: dict[Any, Any] = {h: LineCounter(lines(h)) for h in HYSTERESIS}
    out.update({name: LineCounter(lines(DEFAULT_HYSTERESIS), **kw) for name, kw in COUNTER_ABLATIONS.items()})
    return out


def gt_tracks_line_counts(gt_rows: np.ndarray) -> dict[Any, dict[str, dict[str, int]]]:
    """The GT tracks (every row, conf 0 included, as the CSV was made) through keeneye's LineCounter,
    hysteresis included: what a perfect tracker would count with our rule. (GT tracks never break, so
    the counter's hand-over has nothing to do here; the median does apply.)"""
    from keeneye.core.types import Track, TrackPoint

    counters = _counters()
    blank = np.zeros((360, 480, 3), np.uint8)
    tracks: dict[int, Track] = {}
    for f in np.unique(gt_rows[:, 0]).astype(int):
        pts = (f - 1) * 100.0
        live = []
        for row in gt_rows[gt_rows[:, 0] == f]:
            x, y, w, h = (float(v) for v in row[2:6])
            box = (x - 1, y - 1, x - 1 + w, y - 1 + h)
            t = tracks.setdefault(int(row[1]), Track(int(row[1]), 0, pts, pts, "active"))
            t.history.append(TrackPoint(pts, box, 1.0))
            t.last_pts_ms = pts
            live.append(t)
        for counter in counters.values():
            counter.update(Frame("gt", f - 1, pts, blank), live)
    return {h: c.counts for h, c in counters.items()}


def compare_counts(ours: dict[str, dict[str, int]], gt: dict[str, dict[str, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in LINES:
        row: dict[str, Any] = {}
        for direction in ("in", "out"):
            g, o = gt[name][direction], ours[name][direction]
            rel = (o - g) / g if g else float("nan")
            row[direction] = {
                "gt": g,
                "ours": o,
                "relative_error": round(rel, 3),
                "within_20pct": abs(rel) <= 0.2,
            }
        out[name] = row
    return out


# -------------------------------------------------------------------------------------------- main


def evaluate(kind: str, args: argparse.Namespace, gt: GroundTruth) -> dict[str, Any]:
    from keeneye.tracking.tracker import PersonTracker, TrackerConfig

    hog = kind == "hog"
    fps = (args.hog_fps or None) if hog else (args.centernet_fps or None)
    high = args.hog_threshold if hog else args.threshold
    floor = HOG_HIT_THRESHOLD if hog else CENTERNET_FLOOR
    tracker = PersonTracker(TrackerConfig(high_score=high, new_track_score=high, low_score=0.0))
    path = cache_path(kind, fps)
    from_cache = bool(args.cached and path.exists())
    if from_cache:
        result = run_pass(None, fps, tracker, cached=load_detections(path))
    else:
        result = run_pass(make_detector(kind, threads=2), fps, tracker)
        save_detections(path, result.dets)
    total = sum(result.seconds.values())
    out: dict[str, Any] = {
        "detector": "opencv-hog-people" if hog else "human-centernet",
        "detections_from_cache": from_cache,
        "sampling": {"target_fps": fps or 10.0, "frames_analysed": result.frames, "frames_in_video": 795},
        "detection": detection_pr(
            result.dets, gt, HOG_THRESHOLDS if hog else CENTERNET_THRESHOLDS, args.every
        ),
        "detection_every_nth_analysed_frame": args.every,
        "speed": None if from_cache else speed(kind, args.speed_frames),
        "tracking": {
            "tracker_high_score": high,
            "tracker_low_score": round(float(1 / (1 + np.exp(-floor))) if hog else floor, 3),
            **mot_metrics(result, gt),
        },
        "processing": {
            "seconds_total": round(total, 2),
            "seconds_by_stage": {k: round(v, 2) for k, v in result.seconds.items()},
            "video_seconds": PLAY_SECONDS,
            "realtime_factor": None if from_cache else round(PLAY_SECONDS / total, 2),
            "faster_than_realtime": None if from_cache else total < PLAY_SECONDS,
            "threads": 2,
        },
    }
    out["lines"] = compare_counts(result.line_counts[HYSTERESIS[0]], gt_line_counts())
    out["lines_vs_gt_tracks_same_rule"] = compare_counts(
        result.line_counts[HYSTERESIS[0]], gt_tracks_line_counts(gt.rows)[HYSTERESIS[0]]
    )
    out["line_counts_by_hysteresis"] = {str(h): result.line_counts[h] for h in HYSTERESIS}
    raw = gt_line_counts()
    out["line_relative_error_vs_gt_events_by_hysteresis"] = {
        str(h): {
            name: {d: v["relative_error"] for d, v in row.items()}
            for name, row in compare_counts(result.line_counts[h], raw).items()
        }
        for h in HYSTERESIS
    }
    out["line_counts_ablations_at_default_hysteresis"] = {k: result.line_counts[k] for k in COUNTER_ABLATIONS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", choices=("centernet", "hog", "both"), default="both")
    ap.add_argument("--every", type=int, default=1, help="detection P/R on every Nth analysed frame")
    ap.add_argument("--threshold", type=float, default=0.4, help="CenterNet: tracker high score")
    ap.add_argument("--hog-threshold", type=float, default=0.62, help="HOG: tracker high score (margin 0.5)")
    ap.add_argument("--centernet-fps", type=float, default=0.0, help="0: every frame (10 fps)")
    ap.add_argument("--hog-fps", type=float, default=5.0, help="0: every frame (10 fps)")
    ap.add_argument("--speed-frames", type=int, default=40, help="frames timed on 1 and 2 threads")
    ap.add_argument(
        "--cached",
        action="store_true",
        help="replay cached detections (tracking and counting only; seconds exclude detection)",
    )
    args = ap.parse_args()
    gt = load_gt()
    kinds = ("centernet", "hog") if args.detector == "both" else (args.detector,)
    t0 = time.perf_counter()
    results = {kind: evaluate(kind, args, gt) for kind in kinds}
    emit(
        {
            "video": str(VIDEO.relative_to(SHARED)),
            "iou": IOU,
            "gt_line_counts": gt_line_counts(),
            "gt_tracks_through_our_line_counter_by_hysteresis": {
                str(h): c for h, c in gt_tracks_line_counts(gt.rows).items() if h in HYSTERESIS
            },
            "line_hysteresis_used": HYSTERESIS[0],
            "line_endpoints_ratio": {k: {"p1": v[0], "p2": v[1]} for k, v in LINES.items()},
            "direction_mapping": GT_DIRECTION,
            "targets": {"mota": 0.6, "idf1": 0.6, "line_counts_relative_error": 0.2, "realtime": True},
            "results": results,
            "bench_seconds": round(time.perf_counter() - t0, 1),
        }
    )


if __name__ == "__main__":
    main()
