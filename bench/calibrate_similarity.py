"""Fit the Similarity (0-100) scale of an embedder on LFW and write keeneye/analysis/calibration.json.

Impostor scores: every unknown probe against every gallery face of the identification protocol
(4,047 x 423 = 1.7 M pairs of different people). Genuine scores: each known probe against its mate
(3,345 pairs). Similarity 80 (Rekognition's default threshold) is put where the 1:1 false-match rate
is 1e-4 and Similarity 99 where it is 1e-6 (the rarest rate 1.7 M pairs can show: about the second
highest impostor score, so the 99 point is noisy); the View 2 pairs (not used for fitting) then
report the false-match and false-non-match rates at 80 and 99.

Why 1e-4 at 80: a search of a watchlist of N faces falsely matches an unknown person with
probability of roughly N x FMR, so 80 keeps a 100-face watchlist near 1 % false alarms, while a
1:1 CompareFaces at 80 still accepts most genuine pairs (numbers in docs/models.md).

Usage: python bench/calibrate_similarity.py --variant dlib-resnet+flip --embedder-id dlib-resnet-v1 [--write]
Needs the cached embeddings of bench/lfw_identification.py (run it first).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from common import PROTOCOL, REPO, SHARED, _load, emit, read_pairs
from lfw_identification import load_protocol

from keeneye.analysis.similarity import fit_two_points

FMR_AT_80 = 1e-4
FMR_AT_99 = 1e-6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True)
    ap.add_argument("--embedder-id", required=True)
    ap.add_argument("--write", action="store_true", help="update keeneye/analysis/calibration.json")
    ap.add_argument(
        "--detector-tag", default="@mtcnn", help="cache name suffix of the photo detector ('' for BlazeFace)"
    )
    args = ap.parse_args()
    emb = _load(f"lfw-{args.variant}{args.detector_tag}")
    proto = load_protocol()
    g = np.stack([emb[i] for _, i in proto["gallery"]])
    gid = [n for n, _ in proto["gallery"]]
    u = np.stack([emb[i] for _, i in proto["probe_unknown"]])
    impostor = (u @ g.T).ravel()
    k = np.stack([emb[i] for _, i in proto["probe_known"]])
    mates = np.array([gid.index(n) for n, _ in proto["probe_known"]])
    genuine = np.sum(k * g[mates], axis=1)
    cos80 = float(np.quantile(impostor, 1 - FMR_AT_80))
    cos99 = float(np.quantile(impostor, 1 - FMR_AT_99))
    cal = fit_two_points(args.embedder_id, cos80, cos99)
    pairs = read_pairs(PROTOCOL / "pairs.txt")
    a = np.stack([emb[str(p[0].relative_to(SHARED))] for p in pairs])
    b = np.stack([emb[str(p[1].relative_to(SHARED))] for p in pairs])
    same = np.array([p[2] for p in pairs])
    sim = cal.similarity(np.sum(a * b, axis=1))
    result = {
        "variant": args.variant,
        "embedder_id": args.embedder_id,
        "fit": {
            "impostor_pairs": int(impostor.size),
            "genuine_pairs": int(genuine.size),
            "cosine_at_80": cos80,
            "cosine_at_99": cos99,
            "center": cal.center,
            "slope": cal.slope,
        },
        "identification_protocol": {
            "fnmr_at_80": float(np.mean(cal.similarity(genuine) < 80)),
            "fnmr_at_99": float(np.mean(cal.similarity(genuine) < 99)),
        },
        "impostor_fmr_at": {
            "80": float(np.mean(cal.similarity(impostor) >= 80)),
            "90": float(np.mean(cal.similarity(impostor) >= 90)),
            "99": float(np.mean(cal.similarity(impostor) >= 99)),
        },
        "lfw_view2_pairs": {
            "fmr_at_80": float(np.mean(sim[~same] >= 80)),
            "fnmr_at_80": float(np.mean(sim[same] < 80)),
            "fmr_at_99": float(np.mean(sim[~same] >= 99)),
            "fnmr_at_99": float(np.mean(sim[same] < 99)),
        },
    }
    if args.write:
        path = REPO / "keeneye/analysis/calibration.json"
        table = json.loads(path.read_text())
        table[args.embedder_id] = {
            "center": round(cal.center, 6),
            "slope": round(cal.slope, 4),
            "fitted_on": "LFW identification_protocol.csv impostors, "
            f"FMR {FMR_AT_80:g} at 80, {FMR_AT_99:g} at 99",
            "bench_variant": args.variant,
        }
        path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    emit(result)


if __name__ == "__main__":
    main()
