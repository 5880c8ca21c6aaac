"""Photo redaction: how many faces of WIDER FACE photos the redaction finds (and so obscures).

Redaction obscures every face its detectors find (keeneye.service.governance.redaction): a face it misses
is left in clear. This measures, on the WIDER FACE val subset (bench/widerface.py: 427 photos, official
boxes, Amazon's perceived skin-tone labels), the share of faces found at IoU >= 0.5 (the hard list: every
valid face), per face height and per skin-tone group, and the false regions on the 11 no-face photos, for:

* ``before``: BlazeFace (the video detector) at the redaction threshold (REDACTION_SCORE_THRESHOLD), what
  photo redaction used until December 2026;
* ``mtcnn``: MTCNN (the photo detector) at REDACTION_MTCNN_THRESHOLD alone;
* ``redaction`` (now): MTCNN's faces plus BlazeFace's that are not the same face again
  (keeneye.service.governance.redaction.face_regions.distinct_boxes), as ``photo_faces`` does.

Both halves are reported: ``tune`` (even events) chose REDACTION_MTCNN_THRESHOLD (the lowest threshold
``bench/widerface.py --sweep`` tries); ``test`` (odd events) is held out. The detections come from
bench/widerface.py's cache (``<data_dir>/bench-cache/widerface-<name>.npz``; run it with
``--detectors blazeface mtcnn-16`` first, or this runs them).

Usage: python bench/redaction_photos.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import emit
from widerface import detections, false_faces, load_truth, recall_report, split

from keeneye.core.types import Detections
from keeneye.service.governance.redaction.face_regions import (
    REDACTION_MTCNN_THRESHOLD,
    REDACTION_SCORE_THRESHOLD,
    distinct_boxes,
)


def _above(dets: dict[str, Detections], threshold: float) -> dict[str, Detections]:
    return {k: d.select(d.score >= threshold) for k, d in dets.items()}


def _union(primary: dict[str, Detections], extra: dict[str, Detections]) -> dict[str, Detections]:
    """Per image: every primary box, and the extra boxes that are another face (scores kept: the recall
    below counts boxes at score >= 0 once thresholds were applied)."""
    out = {}
    for key, first in primary.items():
        more = extra[key]
        new = distinct_boxes(more.xyxy.astype(np.float32), first.xyxy.astype(np.float32))
        added = more.select(new)
        out[key] = Detections(
            xyxy=np.concatenate([first.xyxy, added.xyxy]).astype(np.float32),
            score=np.concatenate([first.score, added.score]).astype(np.float32),
        )
    return out


def _report(truth: Any, dets: dict[str, Detections]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("tune", "test"):
        r = recall_report(split(truth, part), dets, 0.0)
        out[part] = {
            "faces": r["faces"],
            "recall": r["recall"],
            "by_height": {k: v["recall"] for k, v in r["by_height"].items()},
            "by_skin_group": {k: v["recall"] for k, v in r["by_skin_group"].items()},
            "skin_group_gap": r["skin_group_gap"],
            "regions": r["detections"],
        }
    out["no_face_false_regions"] = false_faces(dets, 0.0)["false_faces"]
    return out


def main() -> None:
    truth = load_truth()
    blaze = _above(detections("blazeface", truth), REDACTION_SCORE_THRESHOLD)
    mtcnn = _above(detections("mtcnn-16", truth), REDACTION_MTCNN_THRESHOLD)
    emit(
        {
            "benchmark": "photo redaction: WIDER FACE faces found (so obscured), IoU >= 0.5",
            "thresholds": {"blazeface": REDACTION_SCORE_THRESHOLD, "mtcnn": REDACTION_MTCNN_THRESHOLD},
            "before": _report(truth, blaze),
            "mtcnn": _report(truth, mtcnn),
            "redaction": _report(truth, _union(mtcnn, blaze)),
        }
    )


if __name__ == "__main__":
    main()
