"""Shared helpers for the benchmarks: data paths, cached LFW embeddings, JSON output.

Benchmarks read evaluation data from ../shared/data (override with KEENEYE_SHARED_DATA) and the
installed models from the data directory (KEENEYE_DATA_DIR, default ./var). Embeddings are cached
under <data_dir>/bench-cache so that several protocols reuse one pass over the images.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from keeneye.analysis.faces import FaceAnalyzer  # noqa: E402
from keeneye.analysis.images import read_image_file  # noqa: E402
from keeneye.config import Settings  # noqa: E402
from keeneye.core.types import Face  # noqa: E402

SHARED = Path(os.environ.get("KEENEYE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
LFW = SHARED / "faces" / "lfw"
PROTOCOL = SHARED / "faces" / "lfw_protocol"


def settings(**faces: Any) -> Settings:
    data_dir = Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var"))
    return Settings(data_dir=data_dir, faces=faces) if faces else Settings(data_dir=data_dir)


def machine() -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "threads": os.environ.get("KEENEYE_INTRA_OP_THREADS", "default"),
    }


def emit(result: dict[str, Any]) -> None:
    result.setdefault("machine", machine())
    print(json.dumps(result, indent=2))


def lfw_path(name: str, number: int) -> Path:
    return LFW / name / f"{name}_{number:04d}.jpg"


def central_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The LFW convention: the face nearest the image centre (LFW images are centred on the subject)."""
    if not faces:
        return None
    cx, cy = width / 2, height / 2

    def dist(f: Face) -> float:
        x1, y1, x2, y2 = (float(v) for v in f.xyxy)
        return float(np.hypot((x1 + x2) / 2 - cx, (y1 + y2) / 2 - cy))

    return min(faces, key=dist)


def fallback_face(width: int, height: int) -> Face:
    """When no face is detected in an LFW image, use the central box (LFW faces are centred)."""
    s = min(width, height)
    box = np.array([width / 2 - 0.3 * s, height / 2 - 0.3 * s, width / 2 + 0.3 * s, height / 2 + 0.35 * s])
    return Face(xyxy=box.astype(np.float32), score=0.0)


def _cache_file(name: str) -> Path:
    cache_dir = Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var")) / "bench-cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir / f"{name}.npz"


def _load(name: str) -> dict[str, np.ndarray]:
    f = _cache_file(name)
    if not f.is_file():
        return {}
    with np.load(f) as z:
        return {k: z[k] for k in z.files}


def _dlib_both(analyzer: FaceAnalyzer, image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """dlib descriptors without and with flip test-time augmentation from one detection + one batch."""
    emb = analyzer.embedder
    analyzer._ensure_landmarks(image, [face], emb.required_landmarks)  # type: ignore[union-attr]
    chips = emb.chips(image, [face])  # type: ignore[union-attr]
    raw = emb.embed_chips(np.concatenate([chips, chips[:, :, ::-1]]))  # type: ignore[union-attr]
    plain, both = raw[0], raw[0] + raw[1]
    return plain / np.linalg.norm(plain), both / np.linalg.norm(both)


def detector_tag(analyzer: FaceAnalyzer) -> str:
    """Suffix of embedding cache names for the analyzer's photo detector ("" for BlazeFace)."""
    name = str(getattr(analyzer.detector, "name", ""))
    return "" if name in ("", "human-blazeface") else f"@{name}"


def embed_images(
    analyzer: FaceAnalyzer, paths: Iterable[Path], cache_name: str, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """path (relative to SHARED) -> L2-normalised embedding; cached as .npz; stats about misses/timing.

    For dlib (cache names lfw-dlib-resnet and lfw-dlib-resnet+flip) both variants are computed in one
    pass from the same detection, so comparing them costs one run.
    """
    paths = list(paths)
    dlib_pair = cache_name in ("lfw-dlib-resnet", "lfw-dlib-resnet+flip")
    names = ["lfw-dlib-resnet", "lfw-dlib-resnet+flip"] if dlib_pair else [cache_name]
    # The detector's boxes change the descriptors: caches of another detector than BlazeFace (the
    # default until December 2026, whose caches keep their plain names) carry its name.
    tag = detector_tag(analyzer)
    names = [f"{n}{tag}" for n in names]
    cache_name = f"{cache_name}{tag}"
    outs = [_load(n) for n in names]
    out = outs[names.index(cache_name)]
    stats = {"images": len(paths), "no_face_detected": 0, "embed_seconds": 0.0, "cached": 0}
    todo = [p for p in paths if any(str(p.relative_to(SHARED)) not in o for o in outs)]
    stats["cached"] = len(paths) - len(todo)
    t0 = time.perf_counter()
    for i, path in enumerate(todo):
        image = read_image_file(path)
        h, w = image.shape[:2]
        face = central_face(analyzer.detect(image), w, h)
        if face is None:
            stats["no_face_detected"] += 1
            face = fallback_face(w, h)
        key = str(path.relative_to(SHARED))
        if dlib_pair:
            outs[0][key], outs[1][key] = _dlib_both(analyzer, image, face)
        else:
            analyzer.embed(image, [face])
            assert face.embedding is not None
            out[key] = face.embedding
        if progress and (i + 1) % 500 == 0:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  {cache_name}: {i + 1}/{len(todo)} ({rate:.1f} img/s)", file=sys.stderr, flush=True)
        if (i + 1) % 2000 == 0 or i + 1 == len(todo):
            for n, o in zip(names, outs, strict=True):
                np.savez(_cache_file(n), **o)
    stats["embed_seconds"] = time.perf_counter() - t0
    return out, stats


def ten_fold_accuracy(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray
) -> tuple[float, float, list[float]]:
    """LFW View 2: threshold chosen on 9 folds (max accuracy), accuracy measured on the 10th."""
    accs = []
    for k in range(10):
        train, test = folds != k, folds == k
        cands = np.unique(scores[train])
        best_t, best_acc = 0.0, -1.0
        for t in cands:
            acc = float(np.mean((scores[train] >= t) == same[train]))
            if acc > best_acc:
                best_t, best_acc = float(t), acc
        accs.append(float(np.mean((scores[test] >= best_t) == same[test])))
    return float(np.mean(accs)), float(np.std(accs)), accs


def read_pairs(path: Path) -> list[tuple[Path, Path, bool, int]]:
    """pairs.txt -> (image a, image b, same person, fold)."""
    lines = path.read_text().strip().splitlines()
    n_folds, n = (int(v) for v in lines[0].split())
    rows = []
    for i, line in enumerate(lines[1:]):
        parts = line.split()
        fold = i // (2 * n)
        if len(parts) == 3:
            rows.append((lfw_path(parts[0], int(parts[1])), lfw_path(parts[0], int(parts[2])), True, fold))
        else:
            rows.append((lfw_path(parts[0], int(parts[1])), lfw_path(parts[2], int(parts[3])), False, fold))
    assert len(rows) == n_folds * 2 * n
    return rows


Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
