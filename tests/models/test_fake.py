"""keeneye.models.fake: each stand-in implements its Protocol and answers exactly as documented, alone and
composed into a FaceAnalyzer (the pipeline the fast tests of the layers above run on)."""

from __future__ import annotations

import numpy as np
import pytest

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.core.types import Face
from keeneye.models import fake
from keeneye.models.base import (
    FaceAttributeClassifier,
    FaceDetector,
    FaceEmbedder,
    FaceLandmarker,
    ObjectDetector,
)
from tests.factories import noise_image

PROTOCOLS: list[tuple[object, type]] = [
    (fake.CentreFaceDetector(), FaceDetector),
    (fake.SquaresFaceDetector(), FaceDetector),
    (fake.NoFaceDetector(), FaceDetector),
    (fake.BrightBoxDetector(), ObjectDetector),
    (fake.BoxLandmarker(), FaceLandmarker),
    (fake.PixelEmbedder(), FaceEmbedder),
    (fake.TableEmbedder(np.eye(2, 3)), FaceEmbedder),
    (fake.FixedAttributeClassifier(), FaceAttributeClassifier),
]


@pytest.mark.parametrize(("stand_in", "protocol"), PROTOCOLS, ids=[type(s).__name__ for s, _ in PROTOCOLS])
def test_each_stand_in_implements_its_protocol(stand_in: object, protocol: type) -> None:
    assert isinstance(stand_in, protocol)


def _face(x1: float, y1: float, x2: float, y2: float) -> Face:
    return Face(np.array([x1, y1, x2, y2], np.float32), 0.9)


def test_centre_detector_finds_the_middle_half_unless_the_image_is_black() -> None:
    dets = fake.CentreFaceDetector().detect(noise_image(0, 40, 80))
    assert dets.xyxy.tolist() == [[20, 10, 60, 30]] and dets.score.tolist() == pytest.approx([0.99])
    assert dets.landmark_names == ("eyeLeft", "eyeRight", "nose")
    assert dets.landmarks is not None and dets.landmarks[0].tolist() == [[32, 16], [48, 16], [40, 20]]
    black = fake.CentreFaceDetector().detect(np.zeros((40, 80, 3), np.uint8))
    assert len(black) == 0 and black.landmark_names == dets.landmark_names


def test_squares_detector_finds_each_white_rectangle() -> None:
    image = np.zeros((50, 60, 3), np.uint8)
    image[5:15, 10:20] = 255
    image[30:34, 40:44] = 255  # narrow: the lower score
    image[40:45, 0:10] = 254  # not white
    dets = fake.SquaresFaceDetector().detect(image)
    assert dets.xyxy.tolist() == [[10, 5, 20, 15], [40, 30, 44, 34]]
    assert dets.score.tolist() == pytest.approx([0.9, 0.5])
    assert dets.landmarks is not None and dets.landmarks[:, 0].tolist() == [[10, 5], [40, 30]]
    assert len(fake.SquaresFaceDetector().detect(np.zeros((8, 8, 3), np.uint8))) == 0


def test_bright_box_detector_boxes_every_bright_pixel_as_one_person() -> None:
    image = np.zeros((50, 60, 3), np.uint8)
    image[10:20, 5:8] = 200
    image[30:40, 20:25] = 255
    dets = fake.BrightBoxDetector().detect(image)
    assert dets.xyxy.tolist() == [[5, 10, 25, 40]] and dets.label.tolist() == [0]
    assert fake.BrightBoxDetector().class_names[0] == "person"
    assert len(fake.BrightBoxDetector().detect(np.full((8, 8, 3), 128, np.uint8))) == 0
    assert len(fake.NoFaceDetector().detect(image)) == 0


def test_box_landmarker_places_points_at_fractions_of_each_box() -> None:
    marker = fake.BoxLandmarker()
    points = marker.landmarks(noise_image(0), np.array([[0, 0, 100, 100], [10, 20, 30, 60]], np.float32))
    assert points.shape == (2, 5, 2) and points.dtype == np.float32
    assert dict(zip(marker.landmark_names, points[0].tolist(), strict=True))["eyeLeft"] == pytest.approx(
        [30, 40]
    )
    assert points[1, 1].tolist() == pytest.approx([10 + 0.7 * 20, 20 + 0.4 * 40])


def test_pixel_embedder_equal_images_equal_unit_vectors() -> None:
    embedder = fake.PixelEmbedder("pixels-v2")
    faces = [_face(0, 0, 10, 10), _face(5, 5, 20, 20)]
    a, b, other = (embedder.embed(noise_image(seed), faces) for seed in (1, 1, 2))
    assert a.shape == (2, 48) and a.dtype == np.float32 and embedder.embedder_id == "pixels-v2"
    assert np.allclose(np.linalg.norm(a, axis=1), 1) and np.array_equal(a, b)
    assert np.array_equal(a[0], a[1])  # the image's vector, whatever the box
    assert float(a[0] @ other[0]) < 0.5
    assert embedder.embed(noise_image(1), []).shape == (0, 48)


def test_table_embedder_hands_out_its_rows_in_turn_and_counts_faces() -> None:
    embedder = fake.TableEmbedder([[3, 4], [0, 2]], "t", ("eyeLeft",))
    assert embedder.dim == 2 and embedder.required_landmarks == ("eyeLeft",)
    vectors = embedder.embed(noise_image(0), [_face(0, 0, 1, 1)] * 3)
    assert np.allclose(vectors, np.array([[0.6, 0.8], [0, 1], [0.6, 0.8]]))
    assert embedder.embed(noise_image(0), []).shape == (0, 2)
    assert embedder.calls == 3


def test_fixed_classifier_gives_each_face_its_own_copy() -> None:
    clf = fake.FixedAttributeClassifier({"age": 41.0, "emotions": {"happy": 0.2}})
    assert clf.provides == ("age", "emotions")
    first, second = clf.classify(noise_image(0), [_face(0, 0, 1, 1), _face(1, 1, 2, 2)])
    first["emotions"]["happy"] = 1.0
    assert second == {"age": 41.0, "emotions": {"happy": 0.2}}


def test_a_pipeline_of_stand_ins_describes_faces() -> None:
    analyzer = FaceAnalyzer(
        detector=fake.SquaresFaceDetector(),
        embedder=fake.TableEmbedder(np.eye(2, 8), "t", required_landmarks=("eyeRight", "nose")),
        landmarkers=[fake.BoxLandmarker()],
        classifiers=[fake.FixedAttributeClassifier()],
        min_face_px=8,
    )
    image = np.zeros((80, 120, 3), np.uint8)
    image[10:40, 10:40] = 255
    image[50:70, 80:100] = 255
    faces = analyzer.analyze(image, attributes="all", embed=True)
    assert [f.xyxy.tolist() for f in faces] == [[10, 10, 40, 40], [80, 50, 100, 70]]  # largest first
    big = faces[0]
    assert big.landmarks["eyeLeft"] == (10.0, 10.0)  # the detector's point is kept
    assert big.landmarks["eyeRight"] == pytest.approx((31.0, 22.0))  # the embedder needs it: the landmarker's
    assert big.attributes["age"] == 30.0 and big.attributes["smile"] == (True, 0.8)
    assert big.embedding is not None and big.embedding.tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert big.embedder_id == "t" and faces[1].embedding is not None and faces[1].embedding[1] == 1
