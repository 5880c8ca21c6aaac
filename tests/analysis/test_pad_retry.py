"""Faces that fill the frame: the detector's second look in a padded copy (FaceAnalyzer.pad_retry).

Real data: aligned 200x200 UTKFace crops (``../shared/data/faces/utkface_stratified``) on which BlazeFace
(the video detector; the photo default MTCNN finds these without the border) alone finds no face; one per
race label. bench/attributes.py measures the whole set.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer, detect_in_padded
from keeneye.analysis.images import read_image_file
from keeneye.config import Settings
from keeneye.core.types import Detections

pytestmark = [pytest.mark.models, pytest.mark.data]

MISSED_WITHOUT_BORDER = (  # race codes 0-4 in the file names: White, Black, Asian, Indian, Others
    "53_0_0_20170109012810348.jpg.chip.jpg",
    "58_0_1_20170104185127270.jpg.chip.jpg",
    "52_0_2_20170104184356222.jpg.chip.jpg",
    "52_0_3_20170104220841902.jpg.chip.jpg",
    "38_0_4_20170109013315959.jpg.chip.jpg",
)


@pytest.fixture(scope="module")
def analyzer(models_dir: Path) -> FaceAnalyzer:
    settings = Settings(data_dir=models_dir.parent, faces={"detector": {"kind": "blazeface"}})
    return build_face_analyzer(settings, with_embedder=False)


@pytest.mark.parametrize("name", MISSED_WITHOUT_BORDER)
def test_a_face_filling_the_frame_is_found_with_the_border(
    analyzer: FaceAnalyzer, shared_data: Path, name: str
) -> None:
    image = read_image_file(shared_data / "faces" / "utkface_stratified" / "images" / name)
    assert analyzer.pad_retry == 0.5  # the default
    assert replace(analyzer, pad_retry=0.0).detect(image) == []
    faces = analyzer.analyze(image, attributes="all", want=frozenset({"age", "gender"}))
    assert len(faces) == 1
    x1, y1, x2, y2 = (float(v) for v in faces[0].xyxy)
    # the face fills the aligned crop: a box of about its size, centred, in the image's own pixels
    assert 0.4 * 200 < x2 - x1 < 1.3 * 200 and abs((x1 + x2) / 2 - 100) < 30 and abs((y1 + y2) / 2 - 100) < 40
    assert faces[0].attributes["gender"][0] in ("Male", "Female") and faces[0].attributes["age"] > 0
    assert 0.5 <= faces[0].score <= 1.0


def test_live_streams_do_not_look_twice(models_dir: Path) -> None:
    settings = Settings(data_dir=models_dir.parent)
    assert build_face_analyzer(settings, with_embedder=False, live_frames=True).pad_retry == 0.0


class _RecordingDetector:
    """Returns one fixed box in the padded copy's pixels and records the image it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.seen.append(image)
        return Detections(
            xyxy=np.array([[64.0, 64.0, 192.0, 192.0]], np.float32),
            score=np.array([0.9], np.float32),
            label=np.zeros(1, np.int64),
            landmarks=np.array([[[96.0, 112.0], [160.0, 112.0]]], np.float32),
            landmark_names=("eye_left", "eye_right"),
        )


def test_boxes_and_points_map_back_to_the_original_pixels() -> None:
    detector = _RecordingDetector()
    image = np.full((100, 400, 3), 200, np.uint8)  # long side 400 -> 128 px in the 256 px copy
    faces = detect_in_padded(detector, image, 0.5)
    padded = detector.seen[0]
    assert padded.shape == (32 + 2 * 64, 128 + 2 * 64, 3)
    assert padded[0, 0].tolist() == [0, 0, 0] and padded[80, 128].tolist() == [200, 200, 200]
    np.testing.assert_allclose(faces[0].xyxy, [0.0, 0.0, 400.0, 400.0])
    assert faces[0].landmarks["eye_left"] == pytest.approx((100.0, 150.0))


MISSED_BY_MTCNN_EVEN_PADDED = (  # UTKFace crops (a baby, an 88-year-old) MTCNN misses with its border too
    "1_0_0_20170109193647852.jpg.chip.jpg",
    "88_1_3_20170110182157752.jpg.chip.jpg",
)


@pytest.mark.parametrize("name", MISSED_BY_MTCNN_EVEN_PADDED)
def test_the_video_detector_looks_last_in_the_padded_copy(
    models_dir: Path, shared_data: Path, name: str
) -> None:
    default = build_face_analyzer(Settings(data_dir=models_dir.parent), with_embedder=False)
    assert default.detector.name == "mtcnn" and default.video_detector is not None
    image = read_image_file(shared_data / "faces" / "utkface_stratified" / "images" / name)
    assert replace(default, video_detector=None).detect(image) == []  # MTCNN, its padded look included
    faces = default.detect(image)
    assert len(faces) == 1
    # BlazeFace found it, so its calibration gives the Confidence, and its raw score is kept
    assert faces[0].attributes["detector_score"] >= 0.65 and 0.5 <= faces[0].score <= 1.0
