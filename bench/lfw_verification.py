"""LFW View 2 verification accuracy (10-fold) for each embedder, and score fusion.

Usage: python bench/lfw_verification.py [--variants dlib-resnet+flip,human-faceres]
Prints JSON: per variant mean/std accuracy over the 10 folds (threshold chosen on 9 folds, tested
on the 10th), images where no face was detected (the central box is used then), and the
false-match rate at Similarity 80 and 99 under the shipped calibration.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import PROTOCOL, SHARED, embed_images, emit, read_pairs, settings, ten_fold_accuracy
from variants import VARIANTS

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.similarity import calibration_for


def pair_scores(emb: dict[str, np.ndarray], pairs: list) -> np.ndarray:
    a = np.stack([emb[str(p[0].relative_to(SHARED))] for p in pairs])
    b = np.stack([emb[str(p[1].relative_to(SHARED))] for p in pairs])
    return np.sum(a * b, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--fuse", default="dlib-resnet+flip,human-faceres", help="two variants to fuse (z-scored sum)"
    )
    args = ap.parse_args()
    pairs = read_pairs(PROTOCOL / "pairs.txt")
    same = np.array([p[2] for p in pairs])
    folds = np.array([p[3] for p in pairs])
    images = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    results: dict[str, object] = {"protocol": "LFW View 2 pairs.txt, 10 folds x 600 pairs", "variants": {}}
    scores_by = {}
    for name in args.variants.split(","):
        analyzer = build_face_analyzer(settings(**VARIANTS[name]))
        emb, stats = embed_images(analyzer, images, f"lfw-{name}")
        scores = pair_scores(emb, pairs)
        scores_by[name] = scores
        mean, std, accs = ten_fold_accuracy(scores, same, folds)
        assert analyzer.embedder is not None
        cal = calibration_for(analyzer.embedder.embedder_id)
        sim = cal.similarity(scores)
        results["variants"][name] = {  # type: ignore[index]
            "accuracy_mean": round(mean, 5),
            "accuracy_std": round(std, 5),
            "fold_accuracies": [round(a, 4) for a in accs],
            "no_face_detected": stats["no_face_detected"],
            "images": stats["images"],
            "fmr_at_similarity_80": float(np.mean(sim[~same] >= 80)),
            "fnmr_at_similarity_80": float(np.mean(sim[same] < 80)),
            "fmr_at_similarity_99": float(np.mean(sim[~same] >= 99)),
            "fnmr_at_similarity_99": float(np.mean(sim[same] < 99)),
            "ms_per_image_detect_and_embed": round(
                1000 * stats["embed_seconds"] / max(1, stats["images"] - stats["cached"]), 1
            )
            if stats["images"] > stats["cached"]
            else None,
        }
    fuse = [f for f in args.fuse.split(",") if f in scores_by]
    if len(fuse) == 2:
        z = [(scores_by[f] - scores_by[f].mean()) / scores_by[f].std() for f in fuse]
        mean, std, accs = ten_fold_accuracy(z[0] + z[1], same, folds)
        results["variants"][f"fusion({fuse[0]}+{fuse[1]})"] = {  # type: ignore[index]
            "accuracy_mean": round(mean, 5),
            "accuracy_std": round(std, 5),
            "fold_accuracies": [round(a, 4) for a in accs],
            "note": "sum of z-scored cosines (mean/std over all pairs, no labels used)",
        }
    emit(results)


if __name__ == "__main__":
    main()
