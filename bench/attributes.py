"""Face attributes measured on labelled data: expression, age, gender, and verification error per gender.

Everything runs the DEFAULT face pipeline (``build_face_analyzer`` on the bench settings, as
``keeneye detect-faces --attributes ALL`` runs it); ``--faces`` overrides settings for a comparison.

* ``fer``: FER-2013 PrivateTest (``faces/fer2013_privatetest``, 3,589 grey 48x48 crops, 7 labels mapped
  to Rekognition's emotion names; apparent expression, not felt emotion). Each crop goes through the
  pipeline like any photo: the detector must find a face first, then the expression model classifies
  that face (the largest). Reported: the share of crops with a face found; accuracy on all crops (a crop
  without a face counts as wrong), accuracy on the crops with a face; per-class accuracy (recall) and
  the confusion matrix (rows: label, columns: prediction, "none" = no face). Also the expression model
  alone on the whole crop (resized to its input, no detector, no margin: how FER-2013 models are
  trained and published), the model's own accuracy on these images.
* ``utk``: UTKFace stratified (``faces/utkface_stratified``, 3,309 aligned 200x200 faces, race x gender
  x 9 age bands). The share with a face found, gender accuracy and age MAE (years, the point estimate
  behind AgeRange; on the found faces), overall and per race, gender, age band and race x gender.
  ``--split even|odd``: the even- or odd-indexed files of ``labels.csv`` (even: used to choose fixes;
  odd: held out for reporting), ``all``: every file.
* ``lfwgender``: gender accuracy on LFW (one photo per person; ``--split`` halves the people), an
  outside check of the gender model on adults (face-api's age/gender net was trained partly on UTKFace).
* ``lfw``: LFW View 2 (pairs.txt, 10 folds) verification error per gender pair type, from the cached
  default embeddings (``<data_dir>/bench-cache/lfw-dlib+faceres.npz``, written by
  ``bench/lfw_verification.py``; this part is skipped when absent). The threshold is chosen on 9 folds
  (best accuracy over all pairs) and applied to the 10th, as in the accuracy protocol; errors are
  pooled over the 10 test folds: false non-match rate (same person) per gender, false match rate
  (different people) per pair type (male-male, female-female, mixed).

Per-image predictions are cached under ``<data_dir>/bench-cache/attributes-<part>-<config>.json``
(the key includes the settings and the models' SHA-256s), so re-reporting costs nothing.

Usage::

    python bench/attributes.py                         # all three parts, every image
    python bench/attributes.py --parts utk --split odd --every 3
    python bench/attributes.py --parts fer --limit 300
    python bench/attributes.py --faces '{"attributes": {"expression": "human"}}'
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from common import LFW, PROTOCOL, REPO, SHARED, central_face, emit, read_pairs, settings, ten_fold_accuracy

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import read_image_file
from keeneye.aws.shapes import EMOTION_NAMES
from keeneye.config import Settings
from keeneye.core.types import Face
from keeneye.models.faceapi import FaceApiExpression
from keeneye.models.fer import FER_EMOTION_LABELS, FER_INPUT_SIZE, FerExpressionClassifier, normalize
from keeneye.models.human import EMOTION_LABELS, HumanEmotionClassifier

FER = SHARED / "faces" / "fer2013_privatetest"
UTK = SHARED / "faces" / "utkface_stratified"
LFW_GENDER = SHARED / "faces" / "lfw_gender"
FER_LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
RACES = ("White", "Black", "Asian", "Indian", "Others")
AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")


# ------------------------------------------------------------------------------------------- helpers


def _cache_path(part: str, cfg: Settings) -> Path:
    """Per-part prediction cache keyed by the face settings and the installed models' hashes."""
    manifest = cfg.models_dir / "manifest.json"
    key = json.dumps(
        {
            "faces": cfg.faces.model_dump(mode="json"),
            "models": manifest.read_text() if manifest.is_file() else "",
            "code": _pipeline_code_hash(),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    cache_dir = Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var")) / "bench-cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir / f"attributes-{part}-{digest}.json"


def _pipeline_code_hash() -> str:
    """The analysis code is part of the key: a change to detection or a backend re-runs the images."""
    files = sorted((REPO / "keeneye" / "analysis").glob("*.py")) + sorted(
        (REPO / "keeneye" / "models").glob("*.py")
    )
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _run_cached(
    part: str, cfg: Settings, keys: list[str], run_one: Callable[[str], dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """key -> prediction record, computing (and caching) only the keys not cached yet."""
    path = _cache_path(part, cfg)
    cache: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [k for k in keys if k not in cache]
    t0 = time.perf_counter()
    for i, key in enumerate(todo):
        cache[key] = run_one(key)
        if (i + 1) % 250 == 0 or i + 1 == len(todo):
            path.write_text(json.dumps(cache))
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  {part}: {i + 1}/{len(todo)} ({rate:.1f} img/s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    stats = {
        "images": len(keys),
        "cached": len(keys) - len(todo),
        "ms_per_image": round(1000 * seconds / len(todo), 1) if todo else None,
        "cache": str(path.relative_to(path.parents[1])),
    }
    return {k: cache[k] for k in keys}, stats


def _subset(rows: list[dict[str, str]], every: int, limit: int | None) -> list[dict[str, str]]:
    rows = rows[::every]
    return rows[:limit] if limit else rows


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 2) if den else None


# ------------------------------------------------------------------------------------------------ FER


def _fer_record(analyzer: FaceAnalyzer, path: Path) -> dict[str, Any]:
    """The pipeline's expression for one crop (the largest face), and the model alone on the whole crop."""
    image = read_image_file(path)
    faces = analyzer.analyze(image, attributes="all", want=frozenset({"emotions"}))
    record: dict[str, Any] = {"found": bool(faces), "pipeline": None, "alone": None}
    if faces and "emotions" in faces[0].attributes:
        record["pipeline"] = _top(faces[0].attributes["emotions"])
    record["alone"] = _model_alone(analyzer, image)
    return record


def _model_alone(analyzer: FaceAnalyzer, image: np.ndarray) -> str | None:
    """The expression model on the whole crop as its training saw it (FER-2013's 48x48 grey face resized
    to the model's input, 64x64 or 112x112, no detector, no margin): the model's own accuracy on these
    images."""
    clf = next((c for c in analyzer.classifiers if "emotions" in c.provides), None)
    if isinstance(clf, FerExpressionClassifier):
        gray = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (FER_INPUT_SIZE, FER_INPUT_SIZE))
        probs = clf._postprocess(clf._infer(normalize(gray)[None, ..., None]))[0]
        return _top(dict(zip(FER_EMOTION_LABELS, (float(p) for p in probs), strict=True)))
    if isinstance(clf, FaceApiExpression):
        # The whole (square) crop as the face's box: the class's own crop, resize and mirror averaging.
        h, w = image.shape[:2]
        whole = Face(xyxy=np.array([0, 0, w, h], np.float32), score=1.0)
        return _top(clf.classify(image, [whole])[0]["emotions"])
    if isinstance(clf, HumanEmotionClassifier):
        x = cv2.resize(image.astype(np.float32) / 255.0, (64, 64), interpolation=cv2.INTER_LINEAR)
        gray = (x * np.array([0.2989, 0.5870, 0.1140], np.float32)).sum(axis=-1, keepdims=True)
        probs = clf._postprocess(clf._infer(((gray - 0.5) * 2.0).astype(np.float32)[None]))[0]
        return _top(dict(zip(EMOTION_LABELS, (float(p) for p in probs), strict=True)))
    return None


def _top(probs: dict[str, float]) -> str:
    return max(probs, key=lambda k: probs[k])


def fer_part(analyzer: FaceAnalyzer, cfg: Settings, every: int, limit: int | None) -> dict[str, Any]:
    with (FER / "labels.csv").open() as f:
        rows = _subset(list(csv.DictReader(f)), every, limit)
    preds, stats = _run_cached(
        "fer", cfg, [r["file"] for r in rows], lambda k: _fer_record(analyzer, FER / k)
    )
    labels = [r["label"] for r in rows]
    names = {lab: EMOTION_NAMES[lab] for lab in FER_LABELS}
    found = [preds[r["file"]]["found"] for r in rows]
    pipe = [preds[r["file"]]["pipeline"] for r in rows]
    alone = [preds[r["file"]]["alone"] for r in rows]
    correct = [p == lab for p, lab in zip(pipe, labels, strict=True)]
    n_found = sum(found)
    per_class: dict[str, Any] = {}
    confusion: dict[str, dict[str, int]] = {}
    for lab in FER_LABELS:
        idx = [i for i, x in enumerate(labels) if x == lab]
        got = Counter(pipe[i] or "none" for i in idx)
        confusion[names[lab]] = {names.get(p, p): got.get(p, 0) for p in (*FER_LABELS, "none")}
        per_class[names[lab]] = {
            "n": len(idx),
            "found_pct": _pct(sum(found[i] for i in idx), len(idx)),
            "accuracy_all_pct": _pct(sum(correct[i] for i in idx), len(idx)),
            "model_alone_pct": _pct(sum(alone[i] == lab for i in idx), len(idx)),
        }
    return {
        "data": "faces/fer2013_privatetest (FER-2013 PrivateTest, grey 48x48)",
        "split": f"every {every}th file of labels.csv" + (f", first {limit}" if limit else ""),
        "labels": {lab: names[lab] for lab in FER_LABELS},
        "n": len(rows),
        "face_found_pct": _pct(n_found, len(rows)),
        "accuracy_all_pct": _pct(sum(correct), len(rows)),
        "accuracy_on_found_pct": _pct(sum(correct), n_found),
        "model_alone_on_whole_crop_pct": _pct(
            sum(a == lab for a, lab in zip(alone, labels, strict=True)), len(rows)
        ),
        "per_class": per_class,
        "confusion_rows_label_cols_prediction": confusion,
        "run": stats,
    }


# ------------------------------------------------------------------------------------------------ UTK


def _utk_record(analyzer: FaceAnalyzer, path: Path) -> dict[str, Any]:
    image = read_image_file(path)
    faces = analyzer.analyze(image, attributes="all", want=frozenset({"age", "gender"}))
    if not faces:
        return {"found": False}
    face = faces[0]
    gender = face.attributes.get("gender")
    return {
        "found": True,
        "n_faces": len(faces),
        "age": face.attributes.get("age"),
        "gender": gender[0].lower() if gender else None,
        "score": round(face.score, 4),
    }


def _utk_group(rows: list[dict[str, str]], preds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in rows if preds[r["file"]]["found"]]
    genders = [r for r in found if preds[r["file"]].get("gender")]
    ages = [r for r in found if preds[r["file"]].get("age") is not None]
    err = [abs(float(preds[r["file"]]["age"]) - int(r["age"])) for r in ages]
    return {
        "n": len(rows),
        "found_pct": _pct(len(found), len(rows)),
        "gender_accuracy_pct": _pct(
            sum(preds[r["file"]]["gender"] == r["gender"] for r in genders), len(genders)
        ),
        "age_mae": round(float(np.mean(err)), 2) if err else None,
    }


def _grouped(
    rows: list[dict[str, str]],
    preds: dict[str, dict[str, Any]],
    key: Callable[[dict[str, str]], str],
    order: Iterable[str],
) -> dict[str, Any]:
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {g: _utk_group(groups[g], preds) for g in order if groups.get(g)}


def utk_part(
    analyzer: FaceAnalyzer, cfg: Settings, split: str, every: int, limit: int | None
) -> dict[str, Any]:
    with (UTK / "labels.csv").open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["file"])
    if split != "all":
        rows = rows[0 if split == "even" else 1 :: 2]
    rows = _subset(rows, every, limit)
    preds, stats = _run_cached(
        "utk", cfg, [r["file"] for r in rows], lambda k: _utk_record(analyzer, UTK / k)
    )
    race_gender = [f"{race} {g}" for race in RACES for g in ("female", "male")]
    per_race = _grouped(rows, preds, lambda r: r["race"], RACES)
    gender_acc = [v["gender_accuracy_pct"] for v in per_race.values() if v["gender_accuracy_pct"] is not None]
    return {
        "data": "faces/utkface_stratified (aligned 200x200 crops)",
        "split": f"{split}-indexed files of labels.csv (sorted by name)"
        + (f", every {every}th" if every > 1 else "")
        + (f", first {limit}" if limit else ""),
        "overall": _utk_group(rows, preds),
        "gender_accuracy_worst_race_pct": min(gender_acc) if gender_acc else None,
        "per_race": per_race,
        "per_gender": _grouped(rows, preds, lambda r: r["gender"], ("female", "male")),
        "per_age_band": _grouped(rows, preds, lambda r: r["age_bin"], AGE_BINS),
        "per_race_gender": _grouped(rows, preds, lambda r: f"{r['race']} {r['gender']}", race_gender),
        "several_faces_found": sum(1 for r in rows if preds[r["file"]].get("n_faces", 0) > 1),
        "run": stats,
    }


# ------------------------------------------------------------------------------------------------ LFW


def _lfw_gender_record(analyzer: FaceAnalyzer, path: Path) -> dict[str, Any]:
    image = read_image_file(path)
    faces = analyzer.analyze(image, attributes="all", want=frozenset({"gender"}))
    face = central_face(faces, image.shape[1], image.shape[0])
    gender = face.attributes.get("gender") if face is not None else None
    return {"found": face is not None, "gender": gender[0].lower() if gender else None}


def lfw_gender_part(analyzer: FaceAnalyzer, cfg: Settings, split: str) -> dict[str, Any]:
    """Gender accuracy on LFW (``faces/lfw_gender`` labels; adults, mostly men, no race labels): the first
    photo of each person present in ``faces/lfw``, people sorted by name; ``--split even|odd`` takes every
    other person (even: used to choose the gender fusion; odd: held out). The subject is the face nearest
    the centre."""
    with (LFW_GENDER / "lfw_image_gender.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["gender"] and (LFW / r["identity"] / r["image"]).is_file()]
    first: dict[str, dict[str, str]] = {}
    for r in rows:
        first.setdefault(r["identity"], r)
    people = [first[k] for k in sorted(first)]
    if split != "all":
        people = people[0 if split == "even" else 1 :: 2]
    preds, stats = _run_cached(
        "lfwgender",
        cfg,
        [f"{r['identity']}/{r['image']}" for r in people],
        lambda k: _lfw_gender_record(analyzer, LFW / k),
    )

    def group(sel: list[dict[str, str]]) -> dict[str, Any]:
        found = [r for r in sel if preds[f"{r['identity']}/{r['image']}"]["found"]]
        right = sum(1 for r in found if preds[f"{r['identity']}/{r['image']}"]["gender"] == r["gender"])
        return {
            "n": len(sel),
            "face_found_pct": _pct(len(found), len(sel)),
            "gender_accuracy_pct": _pct(right, len(found)),
        }

    return {
        "data": "faces/lfw + faces/lfw_gender (one photo per person)",
        "split": f"{split}-indexed people (sorted by name)",
        "overall": group(people),
        "per_gender": {g: group([r for r in people if r["gender"] == g]) for g in ("female", "male")},
        "run": stats,
    }


def lfw_part(data_dir: Path) -> dict[str, Any]:
    cache = data_dir / "bench-cache" / "lfw-dlib+faceres.npz"
    if not cache.is_file():
        return {"skipped": f"{cache} is absent: run bench/lfw_verification.py --variants dlib+faceres first"}
    with np.load(cache) as z:
        emb = {k: z[k] for k in z.files}
    pairs = read_pairs(PROTOCOL / "pairs.txt")
    gender: dict[tuple[str, str], tuple[str, str]] = {}
    with (LFW_GENDER / "lfw_pairs_gender.csv").open() as f:
        for row in csv.DictReader(f):
            if row["protocol_file"] == "pairs.txt":
                gender[(row["img1"], row["img2"])] = (row["gender1"], row["gender2"])
    a = np.stack([emb[str(p[0].relative_to(SHARED))] for p in pairs])
    b = np.stack([emb[str(p[1].relative_to(SHARED))] for p in pairs])
    scores = np.sum(a * b, axis=1)
    same = np.array([p[2] for p in pairs])
    folds = np.array([p[3] for p in pairs])
    accepted = np.zeros(len(pairs), bool)
    for k in range(10):  # the 10-fold protocol's thresholds, each applied to its held-out fold
        train, test = folds != k, folds == k
        cands = np.unique(scores[train])
        accs = [np.mean((scores[train] >= t) == same[train]) for t in cands]
        accepted[test] = scores[test] >= cands[int(np.argmax(accs))]
    kinds = []
    for p in pairs:
        g1, g2 = gender[(p[0].name, p[1].name)]
        kinds.append(f"{g1}-{g2}" if g1 == g2 else "mixed")
    out: dict[str, Any] = {}
    for kind in ("male-male", "female-female", "mixed"):
        m = np.array([k == kind for k in kinds])
        gen, imp = m & same, m & ~same
        out[kind] = {
            "genuine_pairs": int(gen.sum()),
            "impostor_pairs": int(imp.sum()),
            "fnmr_pct": _pct(int((~accepted[gen]).sum()), int(gen.sum())),
            "fmr_pct": _pct(int(accepted[imp].sum()), int(imp.sum())),
            "error_pct": _pct(int((accepted[m] != same[m]).sum()), int(m.sum())),
        }
    mean, _std, _ = ten_fold_accuracy(scores, same, folds)
    return {
        "data": "LFW View 2 pairs.txt (10 folds), faces/lfw_gender labels, default embedder (dlib+faceres)",
        "accuracy_pct": round(100 * mean, 2),
        "per_pair_gender": out,
        "note": "only 177 female-female different-person pairs: the female FMR is poorly estimated",
    }


# ----------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--parts", nargs="+", default=["fer", "utk", "lfw"], choices=["fer", "utk", "lfw", "lfwgender"]
    )
    ap.add_argument(
        "--split", default="all", choices=["all", "even", "odd"], help="UTKFace files / LFW people used"
    )
    ap.add_argument("--every", type=int, default=1, help="take every Nth file (quick runs)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many files per part")
    ap.add_argument("--faces", default="", help="JSON overrides of the faces settings (comparisons)")
    args = ap.parse_args()
    cfg = settings(**json.loads(args.faces)) if args.faces else settings()
    result: dict[str, Any] = {"faces_settings": cfg.faces.model_dump(mode="json")}
    if {"fer", "utk", "lfwgender"} & set(args.parts):
        analyzer = build_face_analyzer(cfg, with_embedder=False)
        if "fer" in args.parts:
            result["fer2013_privatetest"] = fer_part(analyzer, cfg, args.every, args.limit)
        if "utk" in args.parts:
            result["utkface"] = utk_part(analyzer, cfg, args.split, args.every, args.limit)
        if "lfwgender" in args.parts:
            result["lfw_gender_accuracy"] = lfw_gender_part(analyzer, cfg, args.split)
    if "lfw" in args.parts:
        result["lfw_per_gender"] = lfw_part(cfg.data_dir)
    emit(result)


if __name__ == "__main__":
    main()
