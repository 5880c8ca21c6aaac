"""Person-detection scoring shared by bench/persons.py: greedy matching at IoU 0.5 and P/R summaries.

Matching (per frame, detections by descending score): a detection takes the unmatched counted box it
overlaps most at IoU >= 0.5; otherwise, if it overlaps an ignored box at IoU >= 0.5 (or lies inside
one by >= 50 % of its area: crowd regions), it is ignored; otherwise it is a false positive. Because
a detection's fate depends only on higher-scoring ones, one matching at the lowest score gives the
whole precision / recall curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keeneye.core.types import Detections

IOU = 0.5
HEIGHT_BANDS: tuple[tuple[float, float], ...] = ((0, 40), (40, 80), (80, 160), (160, 1e9))


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: np.ndarray = inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)
    return out


def _inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): share of each box of ``a`` inside each box of ``b``."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-9)
    out: np.ndarray = inter / area_a[:, None]
    return out


@dataclass
class Scored:
    """Every detection's score and fate (1 tp, 0 fp, -1 ignored) and height; every counted box's
    height and the score of the detection that matched it (-1: none)."""

    det_score: np.ndarray
    det_fate: np.ndarray
    det_height: np.ndarray
    gt_height: np.ndarray
    gt_hit_score: np.ndarray


def match_frame(dets: Detections, boxes: np.ndarray, ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fate per detection, matched score per counted box)."""
    order = np.argsort(-dets.score, kind="stable")
    fate = np.zeros(len(dets), np.int64)
    hit = np.full(len(boxes), -1.0)
    m = iou(dets.xyxy, boxes) if len(dets) and len(boxes) else np.zeros((len(dets), len(boxes)))
    ign_iou = iou(dets.xyxy, ignore) if len(dets) and len(ignore) else np.zeros((len(dets), 0))
    ign_in = _inside(dets.xyxy, ignore) if len(dets) and len(ignore) else np.zeros((len(dets), 0))
    for k in order:
        cand = np.where(hit < 0, m[k], -1.0) if len(boxes) else np.zeros(0)
        j = int(np.argmax(cand)) if cand.size else -1
        if j >= 0 and cand[j] >= IOU:
            hit[j] = float(dets.score[k])
            fate[k] = 1
        elif ign_iou.shape[1] and (ign_iou[k].max() >= IOU or ign_in[k].max() >= 0.5):
            fate[k] = -1
    return fate, hit


def score_set(dets: list[Detections], labels: list[Any], min_det_height: float = 0.0) -> Scored:
    """Match every frame; unmatched detections shorter than ``min_det_height`` are ignored (COCO's
    area-range rule: a detection outside the evaluated size range counts only if it is right)."""
    parts: list[tuple[np.ndarray, ...]] = []
    for d, lab in zip(dets, labels, strict=True):
        fate, hit = match_frame(d, lab.boxes, lab.ignore)
        h = d.xyxy[:, 3] - d.xyxy[:, 1]
        fate = np.where((fate == 0) & (h < min_det_height), -1, fate)
        parts.append((d.score, fate, h, lab.boxes[:, 3] - lab.boxes[:, 1], hit))
    cat = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(5)]
    return Scored(*cat)


def at_threshold(s: Scored, t: float) -> dict[str, Any]:
    kept = s.det_score >= t
    tp = int(((s.det_fate == 1) & kept).sum())
    fp = int(((s.det_fate == 0) & kept).sum())
    n = len(s.gt_height)
    out: dict[str, Any] = {
        "threshold": round(t, 3),
        "tp": tp,
        "fp": fp,
        "gt": n,
        "precision": round(tp / max(tp + fp, 1), 4),
        "recall": round(tp / max(n, 1), 4),
    }
    bands = {}
    for lo, hi in HEIGHT_BANDS:
        inb = (s.gt_height >= lo) & (s.gt_height < hi)
        if inb.any():
            rec = float(((s.gt_hit_score >= t) & inb).sum() / inb.sum())
            bands[f"{lo:g}-{hi:g}px" if hi < 1e9 else f">={lo:g}px"] = {
                "gt": int(inb.sum()),
                "recall": round(rec, 4),
            }
    out["recall_by_height"] = bands
    return out


def recall_at_precision(s: Scored, precision: float) -> dict[str, Any]:
    """The highest recall over thresholds whose precision is still >= ``precision``, and that threshold."""
    order = np.argsort(-s.det_score, kind="stable")
    fate = s.det_fate[order]
    tp, fp = np.cumsum(fate == 1), np.cumsum(fate == 0)
    prec = tp / np.maximum(tp + fp, 1)
    rec = tp / max(len(s.gt_height), 1)
    ok = np.flatnonzero((prec >= precision) & (fate != -1))
    if ok.size == 0:
        return {"threshold": None, "recall": 0.0, "precision": None}
    i = ok[np.argmax(rec[ok])]
    return {
        "threshold": round(float(s.det_score[order][i]), 3),
        "recall": round(float(rec[i]), 4),
        "precision": round(float(prec[i]), 4),
    }


def f1_best(s: Scored) -> dict[str, Any]:
    best: dict[str, Any] = {"f1": 0.0}
    for t in np.round(np.arange(0.05, 0.96, 0.05), 2):
        row = at_threshold(s, float(t))
        p, r = row["precision"], row["recall"]
        f1 = 2 * p * r / max(p + r, 1e-9)
        if f1 > best["f1"]:
            best = {"f1": round(f1, 4), "threshold": float(t), "precision": p, "recall": r}
    return best
