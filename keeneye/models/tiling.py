"""Run a fixed-input face or person detector over overlapping tiles too, so small ones are seen larger.

BlazeFace sees the whole image at 256x256: in a 1024 px photo a face must be ~32 px wide to cover its
~8 model pixels. ``TiledDetector`` runs the wrapped detector once on the whole image and once on each
square tile of ``tile_px`` (overlapping by ``overlap``), maps tile detections back to image pixels, drops
those cut by a tile's inner edge (a face cut in half is found whole by the neighbouring tile or the
whole-image pass) and merges everything with NMS. Cost: one pass plus one per tile.

People in high-resolution video (``TiledPersonDetector``, ``persons.tile_px``): the person models see a
1920x1080 frame at 512 (CenterNet) or 416 (NanoDet) px, 3.75-4.6x smaller, so a person 160 px tall is
~40 model pixels, where the COCO photos show recall falling to about half (docs/models.md). Over 960 px
tiles (1.9x smaller) the same person is ~85 model pixels.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from keeneye.core.types import Detections, UInt8Image
from keeneye.models.align import nms_xyxy
from keeneye.models.base import ObjectDetector


class _Detector(Protocol):
    name: str

    def detect(self, image: UInt8Image) -> Detections: ...


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets along one axis: evenly spread tiles of ``tile`` px covering ``length`` with at least
    ``overlap`` (a fraction of the tile) shared between neighbours; [0] when one tile covers it."""
    if length <= tile:
        return [0]
    step = tile * (1.0 - overlap)
    n = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


class TiledDetector:
    """``detector`` on the whole image and on overlapping ``tile_px`` tiles, merged by NMS (see module)."""

    def __init__(
        self,
        detector: _Detector,
        tile_px: int,
        overlap: float = 0.25,
        nms_iou: float = 0.3,
        edge_px: float = 2.0,
    ) -> None:
        self.detector = detector
        self.name = detector.name  # the calibration is the wrapped detector's (same raw scores)
        self.tile_px = int(tile_px)
        self.overlap = overlap
        self.nms_iou = nms_iou
        self.edge_px = edge_px

    def detect(self, image: UInt8Image) -> Detections:
        """Faces in ``image`` (HxWx3 uint8 RGB), best first."""
        h, w = image.shape[:2]
        parts = [self.detector.detect(image)]
        if max(h, w) > self.tile_px:
            for y0 in tile_origins(h, self.tile_px, self.overlap):
                for x0 in tile_origins(w, self.tile_px, self.overlap):
                    tile = np.ascontiguousarray(image[y0 : y0 + self.tile_px, x0 : x0 + self.tile_px])
                    parts.append(self._from_tile(self.detector.detect(tile), x0, y0, w, h))
        return self._merge(parts)

    def _from_tile(self, dets: Detections, x0: int, y0: int, width: int, height: int) -> Detections:
        """Tile detections in image pixels, without those touching an inner tile edge."""
        if len(dets) == 0:
            return dets
        xyxy = dets.xyxy + np.array([x0, y0, x0, y0], np.float32)
        t, e = self.tile_px, self.edge_px
        cut = (
            ((dets.xyxy[:, 0] <= e) & (x0 > 0))
            | ((dets.xyxy[:, 1] <= e) & (y0 > 0))
            | ((dets.xyxy[:, 2] >= t - e) & (x0 + t < width))
            | ((dets.xyxy[:, 3] >= t - e) & (y0 + t < height))
        )
        keep = ~cut
        landmarks = None
        if dets.landmarks is not None:
            landmarks = dets.landmarks[keep] + np.array([x0, y0], np.float32)
        return Detections(xyxy[keep], dets.score[keep], dets.label[keep], landmarks, dets.landmark_names)

    def _merge(self, parts: list[Detections]) -> Detections:
        names = parts[0].landmark_names
        xyxy = np.concatenate([p.xyxy for p in parts])
        score = np.concatenate([p.score for p in parts])
        if xyxy.shape[0] == 0:
            return Detections.empty(names)
        keep = nms_xyxy(xyxy, score, self.nms_iou)
        landmarks = None
        if all(p.landmarks is not None for p in parts):
            landmarks = np.concatenate([p.landmarks for p in parts if p.landmarks is not None])[keep]
        return Detections(xyxy[keep], score[keep], np.zeros(keep.size, np.int64), landmarks, names)


class TiledPersonDetector(TiledDetector):
    """A person detector (label 0 ``person``, as the registry builds them) on the whole frame and on
    overlapping ``tile_px`` tiles, merged by NMS at the ensemble's IoU (0.55: people in a crowd overlap
    more than faces do). Frames no larger than ``tile_px`` get the whole-frame pass only."""

    class_names: tuple[str, ...] = ("person",)

    def __init__(self, detector: ObjectDetector, tile_px: int, overlap: float = 0.25, nms_iou: float = 0.55):
        super().__init__(detector, tile_px, overlap=overlap, nms_iou=nms_iou)
