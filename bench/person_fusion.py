"""How the person ensemble's members' boxes are merged (issue 12): fusion rules compared offline on the
cached per-member detections of bench/persons.py (CenterNet letterboxed 512 = the primary, NanoDet-g).

Rules (each a function of one frame's member detections, members cut at the tracker's detection
floor 0.1 first, as keeneye's ensemble sees them):

* ``nms``: today's merge, the members' boxes pooled, greedy NMS at IoU ``t``.
* ``wbf``: weighted box fusion (Solovyev et al.): boxes best first join the cluster whose fused box
  overlaps them at IoU >= ``t``; a cluster's box is the score-weighted mean of its boxes; its score
  ``avg``: the mean score times the share of members in the cluster, ``max``: the highest score,
  ``max_agree``: the highest score times the share of members in it.
* ``primary``: CenterNet's boxes kept as they are; a NanoDet box is added only when no CenterNet box
  overlaps it at IoU >= ``t``, its score times ``scale``; with ``boost`` a CenterNet box overlapping a
  NanoDet box at IoU >= ``t`` takes the higher of the two scores (CenterNet's box, the pair's score).

Protocol (no set both tunes and judges): every rule and parameter is scored on the **COCO photos only**
(recall at precision >= 0.8, IoU 0.5, people >= 40 px); the chosen one is the highest recall there,
rules within one person (1/249) of the best counting as tied, ties going to today's rule, then to the
rule with fewer parameters; its threshold is the exact threshold where its COCO precision is 0.8,
rounded up to a multiple of 0.05. Only then are the chosen rule and today's NMS run on the judge sets
(PETS09, MOT17-mini, CAVIAR): detection P / R at the threshold, tracking (MOTA / IDF1 / HOTA, every
frame and every 3rd) and line counts exactly as bench/persons.py does. The chosen rule would replace
NMS only if, detector on every frame (criterion fixed before the judge runs): PETS09 MOTA and IDF1
are both at least NMS's and one of them 0.01 higher; CAVIAR's door exit and entry are each counted
once; MOT17-mini's mean MOTA is not more than 0.05 lower; PETS's line counts are off the GT events by
at most 2 more in total.

Measured (README, docs/models.md): chosen on COCO ``wbf:0.6:avg`` (recall at
precision 0.8: 0.803 against NMS's 0.787, threshold 0.25); judged: PETS09 MOTA 0.300 / IDF1 0.571
(NMS 0.528 / 0.643), CAVIAR door 2 in / 0 out: NMS stays.

Usage: python bench/person_fusion.py [--rules nms:0.55 primary:0.5:1.0:1] [--skip-grid]
Prints JSON.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import person_eval as pe
import person_sets as ps
import persons as bp
from common import emit

from keeneye.core.types import Detections
from keeneye.models.align import nms_xyxy

PRIMARY, FILL = "centernet-letterbox512", "nanodet"
FLOOR = 0.1  # keeneye.pipeline.persons.DETECTION_FLOOR: what the ensemble's members hand over
Rule = Callable[[Detections, Detections], Detections]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9), np.float32)


def nms(t: float) -> Rule:
    def rule(p: Detections, f: Detections) -> Detections:
        xyxy = np.concatenate([p.xyxy, f.xyxy])
        score = np.concatenate([p.score, f.score])
        keep = nms_xyxy(xyxy, score, t)
        return Detections(xyxy[keep], score[keep])

    return rule


def wbf(t: float, mode: str) -> Rule:
    def rule(p: Detections, f: Detections) -> Detections:
        xyxy = np.concatenate([p.xyxy, f.xyxy]).astype(np.float64)
        score = np.concatenate([p.score, f.score]).astype(np.float64)
        member = np.r_[np.zeros(len(p), int), np.ones(len(f), int)]
        clusters: list[list[int]] = []
        fused: list[np.ndarray] = []
        for i in np.argsort(-score, kind="stable"):
            if fused:
                ious = _iou(xyxy[i : i + 1], np.array(fused))[0]
                j = int(np.argmax(ious))
                if ious[j] >= t:
                    clusters[j].append(i)
                    w = score[clusters[j]]
                    fused[j] = (xyxy[clusters[j]] * w[:, None]).sum(0) / w.sum()
                    continue
            clusters.append([i])
            fused.append(xyxy[i].copy())
        out_s = []
        for c in clusters:
            share = len(set(member[c].tolist())) / 2
            s = score[c]
            out_s.append(
                s.mean() * share if mode == "avg" else s.max() * (share if mode == "max_agree" else 1)
            )
        if not clusters:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        order = np.argsort(-np.array(out_s), kind="stable")
        return Detections(np.array(fused, np.float32)[order], np.array(out_s, np.float32)[order])

    return rule


def primary(t: float, scale: float, boost: bool) -> Rule:
    def rule(p: Detections, f: Detections) -> Detections:
        ious = _iou(p.xyxy, f.xyxy)
        covered = (ious >= t).any(0) if len(p) else np.zeros(len(f), bool)
        pscore = p.score.copy()
        if boost and len(p) and len(f):
            pscore = np.maximum(pscore, np.where(ious >= t, f.score[None, :], 0).max(1))
        xyxy = np.concatenate([p.xyxy, f.xyxy[~covered]])
        score = np.concatenate([pscore, f.score[~covered] * scale]).astype(np.float32)
        order = np.argsort(-score, kind="stable")
        return Detections(xyxy[order], score[order])

    return rule


def parse(spec: str) -> tuple[Rule, int]:
    """A rule from its name (``nms:0.55``, ``wbf:0.55:avg``, ``primary:0.5:0.8:1``) and its number of
    parameters (for the tie-break)."""
    kind, *a = spec.split(":")
    if kind == "nms":
        return nms(float(a[0])), 1
    if kind == "wbf":
        return wbf(float(a[0]), a[1]), 2
    if kind == "primary":
        scale, boost = float(a[1]), a[2] == "1"
        return primary(float(a[0]), scale, boost), 1 + (scale != 1.0) + boost
    raise ValueError(spec)


def grid() -> list[str]:
    out = [f"nms:{t}" for t in (0.45, 0.55, 0.65)]
    out += [f"wbf:{t}:{m}" for t in (0.4, 0.5, 0.55, 0.6, 0.7) for m in ("avg", "max", "max_agree")]
    out += [
        f"primary:{t}:{s}:{b}"
        for t in (0.3, 0.4, 0.5, 0.6)
        for s in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
        for b in (0, 1)
    ]
    return out


def fused(spec: str, seq: ps.Sequence) -> list[Detections]:
    rule, _ = parse(spec)
    p, _ = bp.detections(PRIMARY, seq, False)
    f, _ = bp.detections(FILL, seq, False)
    cut = [(a.select(a.score >= FLOOR), b.select(b.score >= FLOOR)) for a, b in zip(p, f, strict=True)]
    return [rule(a, b) for a, b in cut]


def threshold_for(rap: dict[str, Any]) -> float:
    """The exact COCO threshold at precision 0.8, rounded up to a multiple of 0.05."""
    return round(math.ceil(round(rap["threshold"] / 0.05, 6)) * 0.05, 2)


def coco_rows(specs: list[str], coco: ps.Sequence) -> list[dict[str, Any]]:
    rows = []
    for spec in specs:
        scored = pe.score_set(fused(spec, coco), coco.labels, ps.COCO_MIN_HEIGHT)
        rap = pe.recall_at_precision(scored, 0.8)
        at = pe.at_threshold(scored, threshold_for(rap)) if rap["threshold"] is not None else {}
        rows.append(
            {
                "rule": spec,
                "params": parse(spec)[1],
                "recall_at_precision_0.8": rap,
                "threshold": at.get("threshold"),
                "at_threshold": {k: at.get(k) for k in ("precision", "recall", "tp", "fp")},
            }
        )
    return rows


def choose(rows: list[dict[str, Any]], today: str = "nms:0.55") -> dict[str, Any]:
    best = max(r["recall_at_precision_0.8"]["recall"] for r in rows)
    tied = [r for r in rows if r["recall_at_precision_0.8"]["recall"] >= best - 1 / 249 - 1e-9]
    return min(tied, key=lambda r: (r["rule"] != today, r["params"], -r["recall_at_precision_0.8"]["recall"]))


def judge(
    spec: str, threshold: float, sets: dict[str, list[ps.Sequence]], every: list[int]
) -> dict[str, Any]:
    """Detection P / R at ``threshold`` per judge set, tracking and lines per sequence (bench/persons.py)."""
    bp.THRESHOLD = threshold  # bench/persons.py's track() starts tracks at its THRESHOLD
    out: dict[str, Any] = {"threshold": threshold, "detection": {}, "tracking": {}}
    for key, seqs in sets.items():
        dets, labels = [], []
        per_seq = {}
        for seq in seqs:
            d = fused(spec, seq)
            per_seq[seq.name] = d
            dets += d
            labels += seq.labels
        scored = pe.score_set(dets, labels, ps.COCO_MIN_HEIGHT if key == "coco" else 0.0)
        at = pe.at_threshold(scored, threshold)
        out["detection"][key] = {
            "precision": at["precision"],
            "recall": at["recall"],
            "recall_at_precision_0.8": pe.recall_at_precision(scored, 0.8)["recall"],
        }
        if key == "coco":
            continue
        for seq in seqs:
            lines = bp.lines_for(seq)
            row: dict[str, Any] = {}
            for n in every:
                result, counts = bp.track(per_seq[seq.name], seq, n, lines)
                m = bp.mot(result, seq)
                row[f"every_{n}"] = {
                    **{k: m[k] for k in ("mota", "idf1", "hota", "num_switches", "num_false_positives")},
                    "num_misses": m["num_misses"],
                    "lines": counts,
                }
            out["tracking"][seq.name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--rules", nargs="*", default=None, help="judge these (rule:threshold) instead of choosing"
    )
    ap.add_argument("--every", type=int, nargs="*", default=[1, 3])
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--coco-only", action="store_true", help="the COCO grid and the choice, no judging")
    args = ap.parse_args()
    sets = ps.all_sets()
    coco = sets["coco"][0]
    out: dict[str, Any] = {"primary": PRIMARY, "fill": FILL, "floor": FLOOR}
    if not args.skip_grid:
        rows = coco_rows(grid(), coco)
        out["coco_grid"] = sorted(rows, key=lambda r: -r["recall_at_precision_0.8"]["recall"])
        chosen = choose(rows)
        out["chosen_on_coco"] = chosen
        today = next(r for r in rows if r["rule"] == "nms:0.55")
        specs = [(chosen["rule"], chosen["threshold"]), ("nms:0.55", 0.4)]
        if today["rule"] == chosen["rule"]:
            specs = specs[:1]
        if args.coco_only:
            specs = []
    else:
        specs = [(s.rsplit(":", 1)[0], float(s.rsplit(":", 1)[1])) for s in args.rules or []]
    out["judged"] = {f"{s}@{t}": judge(s, t, sets, args.every) for s, t in specs}
    emit(out)


if __name__ == "__main__":
    main()
