"""Photos and video frames use different face detectors (``faces.detector`` / ``faces.video_detector``).

Real data: WIDER FACE val photos (``../shared/data/faces/widerface_val``) from its held-out half (odd
events, which chose nothing: docs/models.md) with the official boxes. The faces counted are those of the
official *medium* list 24-48 px tall: the size of a family photo's faces, where BlazeFace (the fast video
detector) misses most and MTCNN (the photo default) finds most (bench/widerface.py measures all 427 photos).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import read_image_file
from keeneye.config import Settings
from keeneye.core.geometry import iou_matrix

pytestmark = [pytest.mark.models, pytest.mark.data]

CROWDS = (  # (photo, medium-list faces 24-48 px tall in it)
    "11--Meeting/11_Meeting_Meeting_11_Meeting_Meeting_11_560.jpg",
    "1--Handshaking/1_Handshaking_Handshaking_1_579.jpg",
    "3--Riot/3_Riot_Riot_3_26.jpg",
)


@pytest.fixture(scope="module")
def analyzer(models_dir: Path) -> FaceAnalyzer:
    return build_face_analyzer(Settings(data_dir=models_dir.parent), with_embedder=False)


def medium_faces(shared_data: Path, photo: str) -> np.ndarray:
    """(N, 4) xyxy of the photo's official medium-list faces 24-48 px tall."""
    with (shared_data / "faces/widerface_val/subset_orig/gt_faces.csv").open(newline="") as f:
        boxes = [
            [float(r["x"]), float(r["y"]), float(r["x"]) + float(r["w"]), float(r["y"]) + float(r["h"])]
            for r in csv.DictReader(f)
            if r["image"] == photo and r["in_medium"] == "1" and 24 <= int(r["h"]) < 48
        ]
    return np.array(boxes, np.float64).reshape(-1, 4)


def found(truth: np.ndarray, boxes: list[np.ndarray]) -> int:
    """How many true faces a box overlaps at IoU >= 0.4 (a square box on WIDER's 0.8-wide face boxes)."""
    if not boxes:
        return 0
    return int((iou_matrix(truth, np.stack(boxes).astype(np.float64)).max(axis=1) >= 0.4).sum())


def test_photos_use_mtcnn_and_video_frames_blazeface(analyzer: FaceAnalyzer, models_dir: Path) -> None:
    assert analyzer.detector.name == "mtcnn" and analyzer.video_detector is not None
    assert analyzer.video_detector.name == "human-blazeface"
    live = build_face_analyzer(Settings(data_dir=models_dir.parent), with_embedder=False, live_frames=True)
    assert live.detector is live.video_detector  # MTCNN is not loaded for live streams
    assert live.detector.name == "human-blazeface"
    same = Settings(data_dir=models_dir.parent, faces={"detector": {"kind": "blazeface"}})
    one = build_face_analyzer(same, with_embedder=False)
    assert one.detector is one.video_detector  # one model when both settings agree


@pytest.mark.parametrize("photo", CROWDS)
def test_small_faces_in_photos_are_found(analyzer: FaceAnalyzer, shared_data: Path, photo: str) -> None:
    image = read_image_file(shared_data / "faces/widerface_val/subset_orig/images" / photo)
    truth = medium_faces(shared_data, photo)
    assert len(truth) >= 10
    in_photo = analyzer.detect(image)
    in_frame = analyzer.detect(image, video_frame=True)
    photo_found = found(truth, [f.xyxy for f in in_photo])
    frame_found = found(truth, [f.xyxy for f in in_frame])
    assert photo_found >= 0.65 * len(truth), (photo_found, len(truth))
    assert frame_found < 0.3 * len(truth), (frame_found, len(truth))  # the fast detector's trade
    # Confidence is each detector's own calibration: the faces found in the photo mostly score high.
    scores = np.array([f.score for f in in_photo])
    assert np.median(scores) >= 0.9 and (scores <= 1).all()
    assert all("detector_score" in f.attributes for f in in_photo)
