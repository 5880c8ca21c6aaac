"""Several person detectors as one: their boxes pooled and merged by non-maximum suppression.

Different detectors miss different people (CenterNet letterboxed misses some small and crowded
people that NanoDet-g finds, NanoDet mislocates some large ones CenterNet gets right), so their union,
with NMS removing the duplicates, finds more people at the same precision: on the COCO photos
(people >= 40 px, IoU 0.5) recall at precision 0.8 was 0.70 for CenterNet (letterbox 512), 0.76 for
NanoDet-g and 0.79 for the two pooled (bench/persons.py; docs/models.md). Scores are kept as each
model gave them (no recalibration): the merged box is the higher-scoring one. Averaging the two
models' scores for agreeing boxes was measured too (COCO photos) and found fewer people at precision
0.8 (0.76).

Other merges were compared on the same members' cached boxes (bench/person_fusion.py, chosen on the
COCO photos only, then judged): weighted box fusion (IoU 0.6, mean score times the share of members
that found the box) was best on COCO (0.80 at score 0.25) but judged worse on the videos (PETS09
MOTA 0.30 against 0.53, CAVIAR's door no longer counted once each way; better only on MOT17-04's 8
frames), and keeping CenterNet's tighter box wherever the two agree was no better on PETS (MOTA
0.50): PETS's extra
false positives are mostly NanoDet's own boxes where nobody is (a traffic cone scores >= 0.4 in 515
of the 795 frames; CenterNet never), not looser boxes on people. So NMS stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keeneye.core.types import Detections, UInt8Image
from keeneye.models.align import nms_xyxy
from keeneye.models.base import ObjectDetector


class EnsemblePersonDetector:
    """Runs each member on the image, keeps its ``person`` boxes (label 0), merges them by NMS.

    detect(image HxWx3 uint8 RGB) -> Detections: xyxy (N, 4) pixels, score (N,) in [0, 1] as the
    member gave it, label (N,) all 0 (``person``), best first. ``nms_iou``: boxes overlapping a
    better one by more than this are dropped (0.55; not tuned).

    ``parallel``: members run side by side on a thread each (ONNX Runtime releases the GIL), each model
    built with its share of the cores (``keeneye.models.registry`` gives each member
    ``threads // len(members)`` intra-op threads). Measured on 140 PETS09 frames on 2 cores: CenterNet +
    NanoDet side by side with one thread each 57 ms wall / 101 ms CPU a frame, against 65 / 116 ms one
    after the other with two threads each (a model's own threads split small convolutions poorly:
    one thread each wastes less); the same boxes. Without it members run one after another.
    """

    class_names: tuple[str, ...] = ("person",)

    def __init__(
        self, members: Sequence[ObjectDetector], nms_iou: float = 0.55, *, parallel: bool = False
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one detector")
        self.members = list(members)
        self.nms_iou = nms_iou
        self.name = "+".join(m.name for m in self.members)
        self._pool = (
            ThreadPoolExecutor(len(self.members), thread_name_prefix="keeneye-ensemble")
            if parallel and len(self.members) > 1
            else None
        )

    def detect(self, image: UInt8Image) -> Detections:
        """People in ``image`` found by any member, duplicates merged, best first."""
        if self._pool is not None:
            found = list(self._pool.map(lambda m: m.detect(image), self.members))
        else:
            found = [m.detect(image) for m in self.members]
        parts = [self._persons(m, d) for m, d in zip(self.members, found, strict=True)]
        xyxy = np.concatenate([p.xyxy for p in parts])
        score = np.concatenate([p.score for p in parts])
        keep = nms_xyxy(xyxy, score, self.nms_iou)
        return Detections(xyxy[keep], score[keep], np.zeros(keep.size, np.int64))

    @staticmethod
    def _persons(member: ObjectDetector, dets: Detections) -> Detections:
        person = member.class_names.index("person")
        return dets.select(dets.label == person)


__all__ = ["EnsemblePersonDetector"]
