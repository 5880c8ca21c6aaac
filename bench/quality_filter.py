"""Does the QualityFilter refuse what cannot be recognised and keep what can? (issue 11, part 2)

Open-set 1:N identification on LFW (faces/lfw_protocol/identification_protocol.csv, as
bench/lfw_identification.py: 423 people enrolled with one photo each, 3,345 known probes, 4,047
unknown probes), with the default pipeline (`dlib+faceres`). Every enrolled photo is kept (an
operator chooses enrolment photos); the filter is applied to the probes, as SearchFacesByImage's
QualityFilter is. For each level (NONE, LOW, AUTO = MEDIUM, HIGH):

* the share of known and unknown probes kept (a probe is the face nearest the image centre, the
  LFW convention; a photo where no face is detected counts as refused);
* FNIR at FPIR 1 % on the kept probes only (the threshold set on the kept unknown probes);
* FNIR of the refused known probes at that same threshold: high means the filter refused faces
  that would have been missed anyway (what it should refuse); low means it threw away faces that
  would have been recognised;
* the reasons of the refused probes.

Nothing is tuned here: the bars are keeneye's (keeneye/analysis/quality_filter.py); this reports
them. Embeddings come from bench/lfw_identification.py's cache (var/bench-cache/lfw-dlib+faceres.npz,
computed on first use); the per-photo quality reasons are cached beside it.

Usage: python bench/quality_filter.py
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import numpy as np
from common import SHARED, _cache_file, central_face, detector_tag, embed_images, emit, settings
from lfw_identification import fnir_at_fpir, load_protocol
from variants import VARIANTS

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import read_image_file
from keeneye.analysis.quality_filter import quality_reasons

LEVELS = ("NONE", "LOW", "AUTO", "HIGH")
VARIANT = "dlib+faceres"


def reasons_per_photo(analyzer: FaceAnalyzer, images: list[str]) -> dict[str, dict[str, list[str]]]:
    """image -> level -> the reasons its central face is refused (["NO_FACE"] when none is found)."""
    cache = _cache_file(f"lfw-quality-{VARIANT}{detector_tag(analyzer)}").with_suffix(".json")
    done: dict[str, dict[str, list[str]]] = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [img for img in images if img not in done]
    t0 = time.perf_counter()
    for i, img in enumerate(todo):
        image = read_image_file(SHARED / img)
        h, w = image.shape[:2]
        face = central_face(analyzer.analyze(image, attributes="default"), w, h)
        done[img] = {
            level: ["NO_FACE"] if face is None else list(quality_reasons(face, level)) for level in LEVELS
        }
        if (i + 1) % 500 == 0 or i + 1 == len(todo):
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  quality: {i + 1}/{len(todo)} ({rate:.1f} img/s)", file=sys.stderr, flush=True)
            cache.write_text(json.dumps(done))
    return done


def main() -> None:
    proto = load_protocol()
    analyzer = build_face_analyzer(settings(**VARIANTS[VARIANT]))
    images = [img for rows in proto.values() for _, img in rows]
    emb, _ = embed_images(analyzer, [SHARED / img for img in images], f"lfw-{VARIANT}")
    reasons = reasons_per_photo(analyzer, images)

    gallery_ids = [i for i, _ in proto["gallery"]]
    index = {name: k for k, name in enumerate(gallery_ids)}
    g = np.stack([emb[img] for _, img in proto["gallery"]])
    known_imgs = [img for _, img in proto["probe_known"]]
    unknown_imgs = [img for _, img in proto["probe_unknown"]]
    mate = np.array([index[i] for i, _ in proto["probe_known"]])
    sk = np.stack([emb[img] for img in known_imgs]) @ g.T
    su = np.stack([emb[img] for img in unknown_imgs]) @ g.T
    known_top, known_ok, unknown_top = sk.max(1), sk.argmax(1) == mate, su.max(1)

    levels: dict[str, Any] = {}
    for level in LEVELS:
        kept_k = np.array([not reasons[img][level] for img in known_imgs])
        kept_u = np.array([not reasons[img][level] for img in unknown_imgs])
        fnir, t = fnir_at_fpir(known_top[kept_k], known_ok[kept_k], unknown_top[kept_u], 0.01)
        refused = ~kept_k
        refused_fnir = (
            float(np.mean(~(known_ok[refused] & (known_top[refused] >= t)))) if refused.any() else None
        )
        why = Counter(r for img in known_imgs + unknown_imgs for r in reasons[img][level])
        levels[level] = {
            "known_probes_kept": round(float(kept_k.mean()), 4),
            "unknown_probes_kept": round(float(kept_u.mean()), 4),
            "fnir_at_fpir_0.01_kept": round(fnir, 4),
            "threshold_cosine": round(float(t), 4),
            "known_refused": int(refused.sum()),
            "fnir_of_refused_at_that_threshold": None if refused_fnir is None else round(refused_fnir, 4),
            "refusal_reasons": dict(why.most_common()),
        }
    emit(
        {
            "protocol": "LFW identification_protocol.csv: 423 enrolled (all kept), 3345 known and 4047 "
            "unknown probes, QualityFilter applied to the probes",
            "pipeline": VARIANT,
            "levels": levels,
        }
    )


if __name__ == "__main__":
    main()
