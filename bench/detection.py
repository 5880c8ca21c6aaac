"""Face-detection precision and recall on dlib's annotated PASCAL VOC photos, and false positives on
photos with no human face.

Ground truth: faces/dlib/faces/{training,testing}.xml (43 faces in 9 photos, boxes in pixels).
A detection matches a ground-truth face at IoU >= 0.5 (also reported at 0.3, since annotators'
box conventions differ: dlib's boxes are tight squares); greedy matching by score.
Usage: python bench/detection.py
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import numpy as np
from common import SHARED, emit, settings

from keeneye.analysis.images import read_image_file
from keeneye.models.registry import build_detector


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,4) x (M,4) xyxy -> (N,M)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def ground_truth() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for xml in ("training.xml", "testing.xml"):
        root = ET.parse(SHARED / "faces/dlib/faces" / xml).getroot()
        for image in root.iter("image"):
            boxes = [
                [
                    float(b.get("left", 0)),
                    float(b.get("top", 0)),
                    float(b.get("left", 0)) + float(b.get("width", 0)),
                    float(b.get("top", 0)) + float(b.get("height", 0)),
                ]
                for b in image.iter("box")
            ]
            out[str(image.get("file"))] = np.array(boxes, np.float32).reshape(-1, 4)
    return out


def match(dets: np.ndarray, scores: np.ndarray, gt: np.ndarray, thr: float) -> int:
    if len(dets) == 0 or len(gt) == 0:
        return 0
    m = iou(dets[np.argsort(-scores)], gt)
    used: set[int] = set()
    tp = 0
    for row in m:
        cand = [j for j in np.argsort(-row) if row[j] >= thr and j not in used]
        if cand:
            used.add(int(cand[0]))
            tp += 1
    return tp


def main() -> None:
    s = settings()
    detector = build_detector(s.faces.detector, s.models_dir)
    gt = ground_truth()
    totals = {0.5: [0, 0, 0], 0.3: [0, 0, 0]}  # tp, detections, gt
    per_image, times = {}, []
    for name, boxes in gt.items():
        image = read_image_file(SHARED / "faces/dlib/faces" / name)
        t0 = time.perf_counter()
        dets = detector.detect(image)
        times.append(time.perf_counter() - t0)
        per_image[name] = {"faces": len(boxes), "detections": len(dets)}
        for thr, acc in totals.items():
            tp = match(dets.xyxy, dets.score, boxes, thr)
            acc[0] += tp
            acc[1] += len(dets)
            acc[2] += len(boxes)
            per_image[name][f"matched_iou{thr}"] = tp
    negatives = [*sorted((SHARED / "faces/no_face").glob("*")), SHARED / "faces/dlib/faces/dogs.jpg"]
    false_pos = {p.name: len(detector.detect(read_image_file(p))) for p in negatives}
    res = {
        "detector": s.faces.detector.kind,
        "score_threshold": s.faces.detector.score_threshold,
        "ground_truth_faces": totals[0.5][2],
    }
    for thr, (tp, nd, ng) in totals.items():
        res[f"iou_{thr}"] = {"recall": tp / ng, "precision": tp / max(nd, 1), "tp": tp, "detections": nd}
    res["per_image"] = per_image
    res["no_face_images"] = {
        "images": len(negatives),
        "false_positives": sum(false_pos.values()),
        "by_image": false_pos,
    }
    res["ms_per_image_median"] = round(1000 * float(np.median(times)), 1)
    emit(res)


if __name__ == "__main__":
    main()
