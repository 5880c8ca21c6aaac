"""The labelled person data in ../shared/data as one shape: frames with counted and ignored boxes.

Each set is a list of :class:`Labelled` frames (RGB image or a way to decode it, counted ground-truth
boxes with their track ids, and "ignore" boxes: a detection on one is neither right nor wrong):

* ``coco``: persons/coco_val2017_128, 128 photos (73 with 350 people, 55 without). Counted: people
  >= 40 px tall (issue 12); ignored: smaller people and the panoptic file's crowd regions.
* ``pets``: video/pets09_s2l1, 795 frames 480x360 at 10 fps; MOT GT, rows with conf 0 ignored.
* ``mot17``: video/mot17_mini, MOT17-02 (frames 1-4) and MOT17-04 (1-8), 1920x1080; class 1 with
  consider = 1 counted; persons on vehicles, static persons, distractors and reflections (2, 7, 8, 12)
  ignored, as MOTChallenge does.
* ``caviar``: video/caviar_shop_entrance clip 1 (EnterExitCrossingPaths1front), 383 frames 384x288 at
  25 fps; boxes shorter than 20 px (people deep in the shop doorway) ignored, as its README advises.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from common import SHARED

from keeneye.video.sources import open_video

COCO = SHARED / "persons" / "coco_val2017_128"
PETS = SHARED / "video" / "pets09_s2l1"
PETS_VIDEO = PETS / "vtest_480x360.mp4"
MOT17 = SHARED / "video" / "mot17_mini" / "train"
CAVIAR = SHARED / "video" / "caviar_shop_entrance"
CAVIAR_VIDEO = CAVIAR / "videos" / "EnterExitCrossingPaths1front.mpg"
COCO_MIN_HEIGHT = 40.0
CAVIAR_MIN_HEIGHT = 20.0
MOT17_IGNORED_CLASSES = (2, 7, 8, 12)


@dataclass
class Labelled:
    """One labelled frame: counted boxes (N, 4) xyxy with ids (N,), ignored boxes (M, 4) xyxy."""

    key: str
    boxes: np.ndarray
    ids: np.ndarray
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    path: Path | None = None  # a photo; video frames come from ``frames``


@dataclass
class Sequence:
    """A labelled video (or one photo set): its frames' labels in order, the frame rate, and how to
    decode its images (``images`` yields RGB arrays in label order)."""

    name: str
    labels: list[Labelled]
    fps: float
    source: Path | None = None  # video file; None: photos or an image folder

    def images(self) -> Iterator[np.ndarray]:
        if self.source is not None and self.source.is_file():
            with open_video(self.source) as video:
                for frame, _ in zip(video.frames(), self.labels, strict=False):
                    yield frame.image
            return
        for lab in self.labels:
            assert lab.path is not None
            yield np.ascontiguousarray(cv2.imread(str(lab.path), cv2.IMREAD_COLOR)[:, :, ::-1])


def _xywh(rows: np.ndarray) -> np.ndarray:
    return np.c_[rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2], rows[:, 1] + rows[:, 3]].astype(np.float32)


def coco() -> Sequence:
    people: dict[str, list[list[float]]] = defaultdict(list)
    with (COCO / "persons_xywh.csv").open() as f:
        for r in csv.DictReader(f):
            people[r["file"]].append([float(r[k]) for k in ("x", "y", "w", "h")])
    crowd: dict[str, list[list[float]]] = defaultdict(list)
    pan = json.loads((COCO / "panoptic" / "panoptic_val2017_subset100.json").read_text())
    for ann in pan["annotations"]:
        for seg in ann["segments_info"]:
            if seg["category_id"] == 1 and seg["iscrowd"]:
                crowd[ann["file_name"].replace(".png", ".jpg")].append(seg["bbox"])
    labels = []
    for path in sorted((COCO / "images").glob("*.jpg")):
        rows = np.asarray(people.get(path.name, []), np.float32).reshape(-1, 4)
        tall = rows[:, 3] >= COCO_MIN_HEIGHT
        ignore = np.concatenate(
            [_xywh(rows[~tall]), _xywh(np.asarray(crowd.get(path.name, []), np.float32).reshape(-1, 4))]
        )
        labels.append(Labelled(path.name, _xywh(rows[tall]), np.flatnonzero(tall), ignore, path))
    return Sequence("coco", labels, 0.0)


def _mot_rows(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


def pets() -> Sequence:
    rows = _mot_rows(PETS / "gt" / "gt_480x360.txt")
    labels = []
    for f in range(1, 796):
        at = rows[rows[:, 0] == f]
        box = np.c_[at[:, 2:4] - 1, at[:, 2:4] - 1 + at[:, 4:6]].astype(np.float32)
        active = at[:, 6] == 1
        labels.append(Labelled(str(f - 1), box[active], at[active, 1].astype(int), box[~active]))
    return Sequence("pets09_s2l1", labels, 10.0, PETS_VIDEO)


def mot17() -> list[Sequence]:
    out = []
    for seq in sorted(MOT17.iterdir()):
        rows = _mot_rows(seq / "gt" / "gt.txt")
        images = sorted((seq / "img1").glob("*.jpg"))
        labels = []
        for i, path in enumerate(images, start=1):
            at = rows[rows[:, 0] == i]
            box = np.c_[at[:, 2:4] - 1, at[:, 2:4] - 1 + at[:, 4:6]].astype(np.float32)
            counted = (at[:, 6] == 1) & (at[:, 7] == 1)
            ignored = np.isin(at[:, 7], MOT17_IGNORED_CLASSES) | ((at[:, 7] == 1) & (at[:, 6] == 0))
            labels.append(Labelled(str(i - 1), box[counted], at[counted, 1].astype(int), box[ignored], path))
        out.append(Sequence(seq.name, labels, 30.0))
    return out


def caviar() -> Sequence:
    rows = _mot_rows(CAVIAR / "gt" / "EnterExitCrossingPaths1front_gt_mot.txt")
    labels = []
    for f in range(1, 384):
        at = rows[rows[:, 0] == f]
        box = np.c_[at[:, 2:4], at[:, 2:4] + at[:, 4:6]].astype(np.float32)
        tall = at[:, 5] >= CAVIAR_MIN_HEIGHT
        labels.append(Labelled(str(f - 1), box[tall], at[tall, 1].astype(int), box[~tall]))
    return Sequence("caviar_EnterExitCrossingPaths1front", labels, 25.0, CAVIAR_VIDEO)


def all_sets() -> dict[str, list[Sequence]]:
    return {"coco": [coco()], "pets": [pets()], "mot17": mot17(), "caviar": [caviar()]}
