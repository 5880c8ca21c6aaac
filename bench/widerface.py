"""Face detection on hard faces: the WIDER FACE val subset with the official protocol, per group.

Data: ``../shared/data/faces/widerface_val/`` (427 val images, 7 per event, at original resolution;
the official ground truth ``.mat`` files; Amazon's perceived-demographics labels) and the 11 photos
without a human face of ``bench/detection.py`` (``faces/no_face/`` and dlib's ``dogs.jpg``).

What it reports, per detector configuration (``CANDIDATES``):

* **AP at IoU 0.5 for easy / medium / hard**, computed the way the official evaluation
  (``wider_eval.m`` and its Python port ``widerface_evaluate/evaluation.py``) does it: scores are
  normalised to [0, 1] over the whole set, each detection (best score first) is matched to the face
  it overlaps most (IoU with the +1-pixel convention); a face outside the setting's ``gt_list`` is an
  *ignore* region, so a detection matched to it is neither true nor false positive; a second
  detection on an already-found face is a false positive; precision and recall at 1,000 score
  thresholds give the PR curve and AP is the area under its precision envelope (VOC style).
* **recall per face-height band and per perceived skin tone** (Fitzpatrick-style I..VI, grouped
  I-II, III-IV, V-VI too) at the detector's operating threshold: a face is found when a detection
  overlaps it at IoU >= 0.5 (greedy by score); faces are those of the hard list (all valid faces).
* **false faces** on the 11 no-face photos at the operating threshold.
* **ms per 640x480 and per 1920x1080 image on one core** (``--timing``: this process pinned to
  one CPU, ONNX Runtime with one intra-op thread; the median of ``--repeats`` rounds of ``--runs``
  runs, each round's median kept, so a neighbour's load on the shared machine shows as spread).

Splits (``--split``): WIDER's 61 events are halved by event number: ``tune`` = even numbers (used to
choose models and thresholds), ``test`` = odd numbers (held out), ``all`` = both (427 images).
Detections are cached per configuration under ``<data_dir>/bench-cache/widerface-<name>.npz`` (at
the low ``EVAL_FLOOR`` threshold, so PR curves and operating points come from one pass).

Usage::

    python bench/widerface.py                                  # default detector, all three splits
    python bench/widerface.py --detectors blazeface mtcnn --timing
    python bench/widerface.py --detectors mtcnn --sweep        # recall / false faces per threshold
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, SHARED, emit, settings

from keeneye.analysis.images import read_image_file
from keeneye.config import DetectorSettings
from keeneye.core.types import Detections, UInt8Image

WIDER = SHARED / "faces" / "widerface_val"
NO_FACE = [*sorted((SHARED / "faces" / "no_face").glob("*")), SHARED / "faces/dlib/faces/dogs.jpg"]
SETTINGS = ("easy", "medium", "hard")
IOU = 0.5
THRESH_NUM = 1000  # the official evaluation's number of score thresholds
EVAL_FLOOR = 0.05  # detections kept for the PR curves (each candidate also has its operating threshold)
HEIGHT_BANDS = ((0, 10), (10, 16), (16, 24), (24, 32), (32, 48), (48, 64), (64, 128), (128, 100_000))
SKIN_TYPES = ("I", "II", "III", "IV", "V", "VI")
SKIN_GROUPS = {"I-II": ("I", "II"), "III-IV": ("III", "IV"), "V-VI": ("V", "VI")}

# name -> faces.detector settings (the operating threshold is score_threshold; the AP run lowers it).
CANDIDATES: dict[str, dict[str, Any]] = {
    "blazeface": {"kind": "blazeface", "score_threshold": 0.65},
    "blazeface-tiles512": {"kind": "blazeface", "tile_px": 512, "score_threshold": 0.65},
    "blazeface-tiles384": {"kind": "blazeface", "tile_px": 384, "score_threshold": 0.65},
    # dlib's MMOD CNN run by dlib itself, a reference only: use --sample 14 (7-14 s per 1024 px image here)
    "dlib-mmod-reference": {"kind": "dlib-mmod-reference", "upsample": 0, "score_threshold": 0.5},
    "mtcnn-20": {"kind": "mtcnn", "mtcnn_min_face_px": 20, "score_threshold": 0.9},
    "mtcnn-16": {"kind": "mtcnn", "mtcnn_min_face_px": 16, "score_threshold": 0.9},
    "mtcnn-12": {"kind": "mtcnn", "mtcnn_min_face_px": 12, "score_threshold": 0.9},
    "mtcnn-16-low": {
        "kind": "mtcnn",
        "mtcnn_min_face_px": 16,
        "mtcnn_stage_thresholds": [0.5, 0.6],
        "score_threshold": 0.7,
    },
}


# ---------------------------------------------------------------------------------------- ground truth


@dataclass
class ImageTruth:
    """One WIDER image: its path, event number and faces (official order) with their labels."""

    rel: str  # "<event>/<name>.jpg"
    event: int
    xywh: np.ndarray  # (F, 4) float64 pixels, as in the .mat file
    lists: dict[str, np.ndarray]  # setting -> 1-based indices of the faces counted there (gt_list)
    skin: list[str]  # per face: I..VI, "Not Sure", or "" (no demographic label)
    clear: np.ndarray  # (F,) bool: not blurred, occluded, dimly lit, atypical pose or invalid


_ATTR_LISTS = (
    "blur_label_list",
    "occlusion_label_list",
    "illumination_label_list",
    "pose_label_list",
    "invalid_label_list",
)


def load_truth() -> list[ImageTruth]:
    """The subset's images with the official ground truth read from the ``.mat`` files."""
    import scipy.io as sio

    gt_dir = WIDER / "ground_truth"
    face = sio.loadmat(str(gt_dir / "wider_face_val.mat"))
    lists = {s: sio.loadmat(str(gt_dir / f"wider_{s}_val.mat"))["gt_list"] for s in SETTINGS}
    with (WIDER / "subset_orig" / "images.csv").open() as f:
        subset = {row["wider_image"] for row in csv.DictReader(f)}
    skin: dict[tuple[str, int], str] = {}
    with (WIDER / "subset_orig" / "gt_faces.csv").open() as f:
        for row in csv.DictReader(f):
            skin[(row["image"], int(row["face_idx"]))] = row["perceived_skin"]
    out: list[ImageTruth] = []
    for e, event in enumerate(face["event_list"][:, 0]):
        event_name = str(event[0])
        for i, file in enumerate(face["file_list"][e, 0][:, 0]):
            rel = f"{event_name}/{file[0]}.jpg"
            if rel not in subset:
                continue
            boxes = np.asarray(face["face_bbx_list"][e, 0][i, 0], np.float64).reshape(-1, 4)
            flags = [np.asarray(face[k][e, 0][i, 0]).reshape(-1) for k in _ATTR_LISTS]
            out.append(
                ImageTruth(
                    rel=rel,
                    event=int(event_name.split("--")[0]),
                    xywh=boxes,
                    lists={s: np.asarray(lists[s][e, 0][i, 0], np.int64).reshape(-1) for s in SETTINGS},
                    skin=[skin.get((rel, k), "") for k in range(len(boxes))],
                    clear=np.all([f == 0 for f in flags], axis=0).reshape(-1)
                    if len(boxes)
                    else np.zeros(0, bool),
                )
            )
    if len(out) != len(subset):
        raise SystemExit(f"expected {len(subset)} subset images in the .mat files, found {len(out)}")
    return sorted(out, key=lambda t: t.rel)


def split(truth: Sequence[ImageTruth], name: str) -> list[ImageTruth]:
    """``tune``: even event numbers; ``test``: odd; ``all``: every image."""
    if name == "all":
        return list(truth)
    parity = 0 if name == "tune" else 1
    return [t for t in truth if t.event % 2 == parity]


# ---------------------------------------------------------------------------- the official evaluation


def _overlaps(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray) -> np.ndarray:
    """(P, G) IoU with the +1-pixel area convention of the official tool (``bbox_overlaps``)."""
    x1 = np.maximum(pred_xyxy[:, None, 0], gt_xyxy[None, :, 0])
    y1 = np.maximum(pred_xyxy[:, None, 1], gt_xyxy[None, :, 1])
    x2 = np.minimum(pred_xyxy[:, None, 2], gt_xyxy[None, :, 2])
    y2 = np.minimum(pred_xyxy[:, None, 3], gt_xyxy[None, :, 3])
    iw = np.clip(x2 - x1 + 1, 0, None)
    ih = np.clip(y2 - y1 + 1, 0, None)
    inter = iw * ih
    area_p = (pred_xyxy[:, 2] - pred_xyxy[:, 0] + 1) * (pred_xyxy[:, 3] - pred_xyxy[:, 1] + 1)
    area_g = (gt_xyxy[:, 2] - gt_xyxy[:, 0] + 1) * (gt_xyxy[:, 3] - gt_xyxy[:, 1] + 1)
    return np.asarray(inter / (area_p[:, None] + area_g[None, :] - inter), np.float64)


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """The official tool's conversion: x2 = x + w, y2 = y + h (then +1 in the IoU)."""
    out = xywh.astype(np.float64).copy()
    out[:, 2:] = out[:, :2] + out[:, 2:]
    return out


def _image_eval(
    pred_xywh: np.ndarray, gt_xywh: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per detection (best first): proposal flag (1 counts, -1 matched an ignored face) and the number of
    counted faces found so far. Port of ``image_eval`` in widerface_evaluate/evaluation.py."""
    n_pred = len(pred_xywh)
    recall_list = np.zeros(len(gt_xywh), np.int64)
    proposal = np.ones(n_pred, np.int64)
    pred_recall = np.zeros(n_pred, np.int64)
    overlaps = _overlaps(_xywh_to_xyxy(pred_xywh), _xywh_to_xyxy(gt_xywh))
    for h in range(n_pred):
        j = int(np.argmax(overlaps[h]))
        if overlaps[h, j] >= IOU:
            if keep[j] == 0:
                recall_list[j] = -1
                proposal[h] = -1
            elif recall_list[j] == 0:
                recall_list[j] = 1
        pred_recall[h] = int(np.sum(recall_list == 1))
    return proposal, pred_recall


def official_ap(images: Sequence[ImageTruth], dets: dict[str, Detections], setting: str) -> dict[str, Any]:
    """AP of one setting over ``images`` (official protocol, see the module docstring)."""
    scores = np.concatenate([dets[t.rel].score for t in images] + [np.zeros(0, np.float32)])
    lo, hi = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 1.0)
    pr = np.zeros((THRESH_NUM, 2), np.float64)
    count_face = 0
    thresholds = 1.0 - (np.arange(THRESH_NUM) + 1) / THRESH_NUM
    for t in images:
        keep_idx = t.lists[setting]
        count_face += len(keep_idx)
        d = dets[t.rel]
        if len(t.xywh) == 0 or len(d) == 0:
            continue
        order = np.argsort(-d.score, kind="stable")
        norm = (d.score[order].astype(np.float64) - lo) / max(hi - lo, 1e-12)
        xyxy = d.xyxy[order].astype(np.float64)
        pred_xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        keep = np.zeros(len(t.xywh), np.int64)
        if keep_idx.size:
            keep[keep_idx - 1] = 1
        proposal, pred_recall = _image_eval(pred_xywh, t.xywh, keep)
        # last detection at or above each threshold (scores descend), as img_pr_info does
        last = np.searchsorted(-norm, -thresholds, side="right") - 1
        cum_prop = np.cumsum(proposal == 1)
        has = last >= 0
        pr[has, 0] += cum_prop[last[has]]
        pr[has, 1] += pred_recall[last[has]]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = pr[:, 1] / pr[:, 0]
    recall = pr[:, 1] / max(count_face, 1)
    return {"ap": round(_voc_ap(recall, precision), 4), "faces": count_face}


def _voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """Area under the precision envelope (``voc_ap`` of the official Python port; NaN precision -> 0)."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], np.nan_to_num(prec, nan=0.0), [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


# ------------------------------------------------------------------------------- recall per group


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9), np.float64)


def found_faces(t: ImageTruth, d: Detections, threshold: float) -> np.ndarray:
    """(F,) bool: face found by a detection scoring >= threshold at IoU >= 0.5 (greedy, best score first)."""
    found = np.zeros(len(t.xywh), bool)
    keep = d.score >= threshold
    if not keep.any() or len(t.xywh) == 0:
        return found
    order = np.argsort(-d.score[keep], kind="stable")
    m = _iou(d.xyxy[keep][order].astype(np.float64), _xywh_to_xyxy(t.xywh) - [0, 0, 0, 0])
    for row in m:
        row = np.where(found, -1.0, row)
        j = int(np.argmax(row))
        if row[j] >= IOU:
            found[j] = True
    return found


def _wilson(k: int, n: int) -> list[float]:
    """95 % Wilson interval of a proportion, for reading small groups' recall."""
    if n == 0:
        return [0.0, 0.0]
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 3), round(centre + half, 3)]


def recall_report(
    images: Sequence[ImageTruth], dets: dict[str, Detections], threshold: float
) -> dict[str, Any]:
    """Recall over the hard list's faces at ``threshold``: overall, per height band and per skin tone."""
    heights: list[float] = []
    skins: list[str] = []
    hits: list[bool] = []
    n_dets = 0
    for t in images:
        found = found_faces(t, dets[t.rel], threshold)
        n_dets += int(np.sum(dets[t.rel].score >= threshold))
        for k in t.lists["hard"] - 1:
            heights.append(float(t.xywh[k, 3]))
            skins.append(t.skin[k])
            hits.append(bool(found[k]))
    h, s, f = np.asarray(heights), np.asarray(skins), np.asarray(hits)

    def entry(mask: np.ndarray) -> dict[str, Any]:
        n, k = int(mask.sum()), int(f[mask].sum())
        return {"faces": n, "recall": round(k / n, 3) if n else None, "ci95": _wilson(k, n)}

    bands = {f"{lo}-{hi if hi < 100_000 else ''}px": entry((h >= lo) & (h < hi)) for lo, hi in HEIGHT_BANDS}
    skin = {g: entry(s == g) for g in SKIN_TYPES}
    groups = {g: entry(np.isin(s, members)) for g, members in SKIN_GROUPS.items()}
    recalls = [v["recall"] for v in skin.values() if v["recall"] is not None]
    group_recalls = [v["recall"] for v in groups.values() if v["recall"] is not None]
    return {
        "threshold": threshold,
        "faces": int(f.size),
        "recall": round(float(f.mean()), 4) if f.size else None,
        "detections": n_dets,
        "by_height": bands,
        "by_skin_type": skin,
        "by_skin_group": groups,
        "skin_type_gap": round(max(recalls) - min(recalls), 3) if recalls else None,
        "skin_group_gap": round(max(group_recalls) - min(group_recalls), 3) if group_recalls else None,
        "labelled_faces_recall": entry(np.isin(s, SKIN_TYPES)),
    }


# ------------------------------------------------------------------------------------ running models

Detect = Callable[[UInt8Image], Detections]


def detector_settings(name: str, threshold: float | None = None) -> DetectorSettings:
    cfg = dict(CANDIDATES[name])
    if cfg.get("kind") == "dlib-mmod-reference":  # not a keeneye setting; only its threshold is read
        cfg = {"score_threshold": cfg["score_threshold"]}
    if threshold is not None:
        cfg["score_threshold"] = threshold
    return DetectorSettings(**cfg)


def _dlib_mmod(upsample: int, threshold: float) -> Detect:
    """dlib's MMOD CNN face detector run by dlib itself (``dlib-bin``, a dev dependency): a reference
    measurement, not a keeneye backend. Scores are dlib's SVM margins squashed by a logistic."""
    import dlib

    s = settings()
    dat = (
        s.cache_dir
        / "extracted/face-recognition-models/face_recognition_models/models/mmod_human_face_detector.dat"
    )
    net = dlib.cnn_face_detection_model_v1(str(dat))

    def detect(image: UInt8Image) -> Detections:
        found = net(image, upsample)
        xyxy = np.array(
            [[r.rect.left(), r.rect.top(), r.rect.right() + 1, r.rect.bottom() + 1] for r in found],
            np.float32,
        ).reshape(-1, 4)
        score = 1.0 / (1.0 + np.exp(-np.array([r.confidence for r in found], np.float32)))
        keep = score >= threshold
        return Detections(xyxy[keep], score[keep])

    return detect


def operating_threshold(name: str) -> float:
    cfg = CANDIDATES[name]
    if cfg.get("kind") == "dlib-mmod-reference":
        return float(cfg["score_threshold"])
    return detector_settings(name).score_threshold


def build(name: str, threshold: float | None = None) -> Detect:
    cfg = CANDIDATES[name]
    if cfg.get("kind") == "dlib-mmod-reference":
        return _dlib_mmod(int(cfg["upsample"]), cfg["score_threshold"] if threshold is None else threshold)
    from keeneye.models.registry import build_detector

    s = settings()
    return build_detector(detector_settings(name, threshold), s.models_dir).detect


# Which backend modules make a configuration's detections: a cache made by other code is not reused.
_BACKEND_FILES = {"blazeface": ["human.py"], "mtcnn": ["mtcnn.py"]}
_COMMON_FILES = ["tiling.py", "align.py"]


def _code_digest(kind: str) -> str:
    files = _COMMON_FILES + _BACKEND_FILES.get(kind, [])
    return hashlib.sha256(b"".join((REPO / "keeneye/models" / f).read_bytes() for f in files)).hexdigest()


_CODE = {kind: _code_digest(kind) for kind in _BACKEND_FILES}  # as this process loaded it


def _cache_path(name: str) -> Path:
    data_dir = Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var"))
    cfg = {k: v for k, v in CANDIDATES[name].items() if k != "score_threshold"}  # detections use the floor
    code = _CODE.get(cfg.get("kind", ""), "")
    key = json.dumps({"cfg": cfg, "floor": EVAL_FLOOR, "code": code}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    out = data_dir / "bench-cache" / f"widerface-{name}-{digest}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


DLIB = SHARED / "faces" / "dlib" / "faces"


def dlib_truth(xml: str = "training.xml") -> dict[str, np.ndarray]:
    """dlib's annotated photos: file name -> (F, 4) xyxy face boxes (tuning data for thresholds)."""
    import xml.etree.ElementTree as ET

    out: dict[str, np.ndarray] = {}
    for image in ET.parse(DLIB / xml).getroot().iter("image"):
        boxes = [[float(b.get(k, 0)) for k in ("left", "top", "width", "height")] for b in image.iter("box")]
        xywh = np.array(boxes, np.float64).reshape(-1, 4)
        out[str(image.get("file"))] = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return out


def _paths(truth: Iterable[ImageTruth]) -> dict[str, Path]:
    out = {t.rel: WIDER / "subset_orig" / "images" / t.rel for t in truth}
    out.update({f"no_face/{p.name}": p for p in NO_FACE})
    out.update({f"dlib/{name}": DLIB / name for name in dlib_truth()})
    return out


def detections(name: str, truth: Sequence[ImageTruth], progress: bool = True) -> dict[str, Detections]:
    """Detections (at EVAL_FLOOR) of every WIDER subset image, no-face and dlib photo, cached per
    configuration (images missing from the cache are run and added)."""
    path = _cache_path(name)
    paths = _paths(truth)
    out: dict[str, Detections] = {}
    if path.is_file():
        with np.load(path) as z:
            for k in paths:
                if f"{k}/xyxy" in z.files:
                    score = z[f"{k}/score"]
                    out[k] = Detections(z[f"{k}/xyxy"], score, np.zeros(len(score), np.int64))
    todo = [k for k in paths if k not in out]
    if not todo:
        return out
    detect = build(name, EVAL_FLOOR)
    t0 = time.perf_counter()
    for i, key in enumerate(todo):
        out[key] = detect(read_image_file(paths[key]))
        if progress and (i + 1) % 50 == 0:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  {name}: {i + 1}/{len(todo)} ({rate:.2f} img/s)", file=sys.stderr, flush=True)
    arrays: dict[str, np.ndarray] = {}
    for k, d in out.items():
        arrays[f"{k}/xyxy"] = d.xyxy.astype(np.float32)
        arrays[f"{k}/score"] = d.score.astype(np.float32)
    np.savez_compressed(path, **arrays)
    return out


def false_faces(dets: dict[str, Detections], threshold: float) -> dict[str, Any]:
    by_image = {
        k.split("/", 1)[1]: int(np.sum(d.score >= threshold))
        for k, d in dets.items()
        if k.startswith("no_face/")
    }
    return {
        "images": len(by_image),
        "false_faces": sum(by_image.values()),
        "by_image": {k: v for k, v in by_image.items() if v},
    }


def evaluate(
    name: str, truth: Sequence[ImageTruth], dets: dict[str, Detections], threshold: float
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for part in ("tune", "test", "all"):
        images = split(truth, part)
        res[part] = {
            "images": len(images),
            "ap": {s: official_ap(images, dets, s)["ap"] for s in SETTINGS},
            "faces": {s: int(sum(len(t.lists[s]) for t in images)) for s in SETTINGS},
            "recall": recall_report(images, dets, threshold),
        }
    res["no_face"] = false_faces(dets, threshold)
    return res


def _labels(d: Detections, faces_xyxy: np.ndarray) -> np.ndarray:
    """Per detection: 1 = overlaps a labelled face at IoU >= 0.5, 0 = below 0.3 with every face,
    -1 = in between (left out of the fit: a face, but a poor box)."""
    if len(d) == 0:
        return np.zeros(0, np.int64)
    if len(faces_xyxy) == 0:
        return np.zeros(len(d), np.int64)
    best = _iou(d.xyxy.astype(np.float64), faces_xyxy).max(axis=1)
    return np.where(best >= IOU, 1, np.where(best < 0.3, 0, -1))


def calibration_data(
    truth: Sequence[ImageTruth], dets: dict[str, Detections], part: str
) -> tuple[np.ndarray, np.ndarray]:
    """(raw scores, labels) of every detection on a WIDER split (all labelled faces count, invalid ones
    too), plus, for the tuning split, the no-face photos (all 0) and dlib's training photos."""
    scores, labels = [], []
    for t in split(truth, part):
        scores.append(dets[t.rel].score)
        labels.append(_labels(dets[t.rel], _xywh_to_xyxy(t.xywh)))
    if part == "tune":
        for name, boxes in dlib_truth().items():
            scores.append(dets[f"dlib/{name}"].score)
            labels.append(_labels(dets[f"dlib/{name}"], boxes))
        for p in NO_FACE:
            d = dets[f"no_face/{p.name}"]
            scores.append(d.score)
            labels.append(np.zeros(len(d), np.int64))
    s, y = np.concatenate(scores).astype(np.float64), np.concatenate(labels)
    return s[y >= 0], y[y >= 0]


def fit_calibration(
    truth: Sequence[ImageTruth], dets: dict[str, Detections], detector: str
) -> dict[str, Any]:
    """Isotonic fit on the tuning split (keeneye/analysis/confidence.py), checked on the held-out split."""
    from keeneye.analysis.confidence import ScoreCalibration, isotonic_fit

    s, y = calibration_data(truth, dets, "tune")
    knots, rates = isotonic_fit(s, y)
    # strictly ascending knots (equal mean scores can only come from ties; keep the higher rate)
    raw, conf = [knots[0]], [rates[0]]
    for k, r in zip(knots[1:], rates[1:], strict=True):
        if k > raw[-1] + 1e-9:
            raw.append(k)
            conf.append(r)
        else:
            conf[-1] = max(conf[-1], r)
    conf = [round(min(c, 0.9999), 4) for c in conf]
    cal = ScoreCalibration(detector, tuple(round(k, 6) for k in raw), tuple(conf))
    return {
        "raw": list(cal.raw),
        "confidence": list(cal.confidence),
        "fitted_on": f"{len(s)} detections (score >= {EVAL_FLOOR}) of bench/widerface.py's tuning split "
        "(WIDER FACE val subset, even events) + dlib training photos + no-face photos; face = IoU >= 0.5",
        "check": check_calibration(truth, dets, cal),
    }


def check_calibration(truth: Sequence[ImageTruth], dets: dict[str, Detections], cal: Any) -> dict[str, Any]:
    """On the held-out split: reliability per confidence band, and what clearly visible faces of >= 40 px
    (no blur, occlusion, dim light or atypical pose) get."""
    s, y = calibration_data(truth, dets, "test")
    c = cal(s)
    bands = {}
    for lo, hi in ((0.0, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 0.99), (0.99, 1.01)):
        m = (c >= lo) & (c < hi)
        bands[f"{lo:.2f}-{min(hi, 1):.2f}"] = {
            "detections": int(m.sum()),
            "mean_confidence": round(float(c[m].mean()), 3) if m.any() else None,
            "share_faces": round(float(y[m].mean()), 3) if m.any() else None,
        }
    clear_conf = []
    for t in split(truth, "test"):
        d = dets[t.rel]
        faces = _xywh_to_xyxy(t.xywh)
        for k in np.flatnonzero(t.clear & (t.xywh[:, 3] >= 40)):
            iou = _iou(d.xyxy.astype(np.float64), faces[k : k + 1])[:, 0] if len(d) else np.zeros(0)
            hit = np.flatnonzero(iou >= IOU)
            clear_conf.append(float(cal(d.score[hit].max())) if hit.size else -1.0)
    cc = np.array(clear_conf)
    found = cc >= 0
    no_face = np.concatenate([dets[f"no_face/{p.name}"].score for p in NO_FACE])
    return {
        "held_out_reliability": bands,
        "clear_faces_40px": {
            "faces": int(cc.size),
            "found_at_eval_floor": int(found.sum()),
            "share_of_found_at_90_or_more": round(float(np.mean(cc[found] >= 0.9)), 3)
            if found.any()
            else None,
            "median_confidence_of_found": round(float(np.median(cc[found])), 4) if found.any() else None,
        },
        "no_face_photos_max_confidence": round(float(cal(no_face).max()), 3) if no_face.size else None,
    }


def sweep(truth: Sequence[ImageTruth], dets: dict[str, Detections], part: str) -> list[dict[str, Any]]:
    """Operating points on one split: recall (hard list, labelled faces), skin-group gap, false faces."""
    images = split(truth, part)
    rows = []
    for thr in (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        r = recall_report(images, dets, thr)
        rows.append(
            {
                "threshold": thr,
                "recall_hard_list": r["recall"],
                "recall_labelled": r["labelled_faces_recall"]["recall"],
                "skin_group_gap": r["skin_group_gap"],
                "detections": r["detections"],
                "no_face_false_faces": false_faces(dets, thr)["false_faces"],
            }
        )
    return rows


# ------------------------------------------------------------------------------------------- timing


def timing_images() -> dict[str, UInt8Image]:
    """A 640x480 one-face photo (bench/speed.py's) and a crowd photo (WIDER parade) at 1920x1080."""
    import cv2
    from speed import photo_640x480

    crowd = read_image_file(WIDER / "subset_orig/images/0--Parade/0_Parade_Parade_0_443.jpg")
    return {
        "640x480": photo_640x480(),
        "1920x1080": np.ascontiguousarray(cv2.resize(crowd, (1920, 1080), interpolation=cv2.INTER_LINEAR)),
    }


def timing(name: str, runs: int, repeats: int) -> dict[str, Any]:
    """Median wall time and median thread CPU time per image (ONNX Runtime with one intra-op thread runs
    in the calling thread, so CPU time is what a neighbour's load on the shared machine cannot inflate)."""
    detect = build(name)
    out: dict[str, Any] = {}
    for label, image in timing_images().items():
        detect(image)
        rounds, cpu = [], []
        for _ in range(repeats):
            wall_t, cpu_t = [], []
            for _ in range(runs):
                t0, c0 = time.perf_counter(), time.thread_time()
                detect(image)
                wall_t.append(1000 * (time.perf_counter() - t0))
                cpu_t.append(1000 * (time.thread_time() - c0))
            rounds.append(float(np.median(wall_t)))
            cpu.append(float(np.median(cpu_t)))
        out[label] = {
            "median_ms": round(float(np.median(rounds)), 1),
            "cpu_median_ms": round(float(np.median(cpu)), 1),
            "round_medians_ms": [round(r, 1) for r in rounds],
        }
    return out


def _detector_name(name: str) -> str:
    """The ``name`` the backend reports (the calibration key): human-blazeface, mtcnn, ..."""
    kind = CANDIDATES[name].get("kind", "blazeface")
    return {"blazeface": "human-blazeface"}.get(kind, kind)


def _write_calibration(detector: str, fit: dict[str, Any]) -> None:
    path = REPO / "keeneye" / "analysis" / "detector_calibration.json"
    table = json.loads(path.read_text()) if path.is_file() else {}
    table[detector] = {k: fit[k] for k in ("raw", "confidence", "fitted_on")}
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def pin_one_core() -> str:
    """One intra-op thread and, where possible, one CPU (core 1, so core 0's housekeeping is spared)."""
    os.environ["KEENEYE_INTRA_OP_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        core = 1 if 1 in cpus else cpus[0]
        os.sched_setaffinity(0, {core})
        return f"pinned to cpu {core}"
    return "not pinned"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--detectors", nargs="*", default=None, help=f"of {sorted(CANDIDATES)}; default: the configured"
    )
    ap.add_argument("--timing", action="store_true", help="also time 640x480 and 1920x1080 on one core")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample", type=int, default=1, help="only every Nth WIDER image (slow references)")
    ap.add_argument("--sweep", action="store_true", help="operating points per threshold on the tuning half")
    ap.add_argument(
        "--calibrate", action="store_true", help="fit the Confidence calibration on the tuning half"
    )
    ap.add_argument(
        "--write", action="store_true", help="with --calibrate: store it in detector_calibration.json"
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.detectors is None:
        cfg = settings().faces.detector
        CANDIDATES["configured"] = cfg.model_dump(exclude_defaults=True, mode="json")
        names = ["configured"]
    else:
        names = args.detectors
    truth = load_truth()[:: args.sample]
    res: dict[str, Any] = {
        "data": "WIDER FACE val subset (427 images, 61 events); tune = even events, "
        "test = odd events (held out)",
        "detectors": {},
    }
    if args.sample > 1:
        res["sample"] = f"every {args.sample}th image only ({len(truth)} images)"
    for name in names:
        dets = detections(name, truth)
        threshold = operating_threshold(name)
        entry = {"settings": CANDIDATES[name], **evaluate(name, truth, dets, threshold)}
        if args.sweep:
            entry["sweep_tune"] = sweep(truth, dets, "tune")
        if args.calibrate:
            entry["calibration"] = fit_calibration(truth, dets, _detector_name(name))
            if args.write:
                _write_calibration(_detector_name(name), entry["calibration"])
        res["detectors"][name] = entry
    if args.timing:
        res["timing"] = {"how": pin_one_core() + ", 1 ONNX Runtime thread, median of rounds"}
        for name in names:
            res["timing"][name] = timing(name, args.runs, args.repeats)
    emit(res)


if __name__ == "__main__":
    main()
