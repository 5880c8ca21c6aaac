"""Real check of the tracking logic, separate from any detector: the PETS09-S2L1 ground-truth boxes, with
deterministic noise, dropped and low-score detections, go through the tracker on the real video frames
(for the appearance descriptors), and IDF1 / MOTA are computed with py-motmetrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keeneye.core.types import Detections, Frame
from keeneye.tracking.tracker import PersonTracker

pytestmark = pytest.mark.data

FRAME_MS = 100.0  # the 480x360 mp4 plays at 10 fps


def _load_gt(path: Path) -> dict[int, list[tuple[int, np.ndarray]]]:
    rows = np.loadtxt(path, delimiter=",")
    by_frame: dict[int, list[tuple[int, np.ndarray]]] = {}
    for r in rows:
        if r[6] == 0:
            continue
        x, y, w, h = r[2] - 1, r[3] - 1, r[4], r[5]
        by_frame.setdefault(int(r[0]) - 1, []).append((int(r[1]), np.array([x, y, x + w, y + h], np.float32)))
    return by_frame


def _frames(video: Path) -> list[np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    return frames


def _noisy(gt: list[tuple[int, np.ndarray]], rng: np.random.Generator) -> Detections:
    """GT boxes with ~4 % jitter, 10 % dropped, a fifth of the rest given low scores (ByteTrack stage 2)."""
    boxes, scores = [], []
    for _, box in gt:
        if rng.random() < 0.10:
            continue
        w, h = box[2] - box[0], box[3] - box[1]
        jitter = rng.normal(0.0, 0.04, 4) * np.array([w, h, w, h])
        boxes.append(box + jitter.astype(np.float32))
        scores.append(rng.uniform(0.2, 0.5) if rng.random() < 0.2 else rng.uniform(0.6, 1.0))
    if not boxes:
        return Detections.empty()
    return Detections(np.clip(np.stack(boxes), 0, [480, 360, 480, 360]), np.asarray(scores, np.float32))


def _iou_distance(gt: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    """1 - IoU of xywh boxes, NaN (no match) below IoU 0.5: motmetrics' ``iou_matrix`` semantics (its
    own function calls ``np.asfarray``, gone in NumPy 2)."""
    out = np.full((gt.shape[0], hyp.shape[0]), np.nan)
    for i, g in enumerate(gt):
        for j, h in enumerate(hyp):
            iw = min(g[0] + g[2], h[0] + h[2]) - max(g[0], h[0])
            ih = min(g[1] + g[3], h[1] + h[3]) - max(g[1], h[1])
            inter = max(iw, 0.0) * max(ih, 0.0)
            iou = inter / (g[2] * g[3] + h[2] * h[3] - inter)
            if iou >= 0.5:
                out[i, j] = 1.0 - iou
    return out


def test_pets09_gt_boxes_track_with_high_idf1(shared_data: Path) -> None:
    mm = pytest.importorskip("motmetrics")
    root = shared_data / "video" / "pets09_s2l1"
    gt = _load_gt(root / "gt" / "gt_480x360.txt")
    images = _frames(root / "vtest_480x360.mp4")
    assert len(images) == 795
    rng = np.random.default_rng(2009)
    tracker = PersonTracker()
    acc = mm.MOTAccumulator(auto_id=True)
    for index, image in enumerate(images):
        frame = Frame("pets09", index, index * FRAME_MS, image)
        truth = gt.get(index, [])
        tracks = tracker.update(frame, _noisy(truth, rng))
        gt_boxes = np.array([[b[0], b[1], b[2] - b[0], b[3] - b[1]] for _, b in truth]).reshape(-1, 4)
        hyp = np.array([[t.xyxy[0], t.xyxy[1], t.xyxy[2] - t.xyxy[0], t.xyxy[3] - t.xyxy[1]] for t in tracks])
        dist = _iou_distance(gt_boxes, hyp.reshape(-1, 4))
        acc.update([i for i, _ in truth], [t.track_id for t in tracks], dist)
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"], name="pets")
    idf1 = float(summary["idf1"].iloc[0])
    mota = float(summary["mota"].iloc[0])
    print(f"PETS09 GT+noise: IDF1 {idf1:.3f} MOTA {mota:.3f} switches {int(summary['num_switches'].iloc[0])}")
    assert idf1 >= 0.8
    assert mota >= 0.7
