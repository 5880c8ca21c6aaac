"""The default face pipeline on real photos: every FaceDetail attribute present with its shape and range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer, pose_from_points
from keeneye.analysis.images import read_image_file
from keeneye.aws import shapes
from keeneye.config import Settings
from keeneye.core.types import REKOGNITION_LANDMARK_TYPES
from keeneye.service.faces.analysis import FaceService

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def analyzer(models_dir: Path) -> FaceAnalyzer:
    return build_face_analyzer(Settings(data_dir=models_dir.parent))


def _unit(x: float) -> bool:
    return 0.0 <= x <= 100.0


def _check_detail(d: dict) -> None:  # type: ignore[type-arg]
    bb = d["BoundingBox"]
    assert set(bb) == {"Width", "Height", "Left", "Top"}
    assert 0 < bb["Width"] <= 1 and 0 < bb["Height"] <= 1 and 0 <= bb["Left"] < 1 and 0 <= bb["Top"] < 1
    assert 50 <= d["Confidence"] <= 100
    types = [lm["Type"] for lm in d["Landmarks"]]
    assert len(types) == len(set(types)) == 30 and set(types) <= REKOGNITION_LANDMARK_TYPES
    for lm in d["Landmarks"]:  # landmarks lie near the face box (ratios of the image)
        assert bb["Left"] - 0.5 * bb["Width"] <= lm["X"] <= bb["Left"] + 1.5 * bb["Width"]
        assert bb["Top"] - 0.5 * bb["Height"] <= lm["Y"] <= bb["Top"] + 1.5 * bb["Height"]
    assert set(d["Pose"]) == {"Roll", "Yaw", "Pitch"} and all(-180 <= v <= 180 for v in d["Pose"].values())
    assert set(d["Quality"]) == {"Brightness", "Sharpness"} and all(map(_unit, d["Quality"].values()))
    emotions = d["Emotions"]
    assert [e["Type"] for e in emotions] and len({e["Type"] for e in emotions}) == len(emotions)
    assert {e["Type"] for e in emotions} == {
        "HAPPY",
        "SAD",
        "ANGRY",
        "SURPRISED",
        "DISGUSTED",
        "FEAR",
        "CALM",
    }
    assert all(map(_unit, (e["Confidence"] for e in emotions)))
    assert abs(sum(e["Confidence"] for e in emotions) - 100) < 0.5
    assert emotions == sorted(emotions, key=lambda e: -e["Confidence"])
    for key in ("Smile", "EyesOpen", "MouthOpen"):
        assert isinstance(d[key]["Value"], bool) and 50 <= d[key]["Confidence"] <= 100
    assert d["Gender"]["Value"] in ("Male", "Female") and 50 <= d["Gender"]["Confidence"] <= 100
    low, high = d["AgeRange"]["Low"], d["AgeRange"]["High"]
    assert isinstance(low, int) and isinstance(high, int) and 0 <= low < high <= 120
    for absent in ("Beard", "Mustache", "Eyeglasses", "Sunglasses", "EyeDirection", "FaceOccluded"):
        assert absent not in d  # no bundled model gives these: omitted, never invented


def test_all_attributes_on_two_people(analyzer: FaceAnalyzer, shared_data: Path) -> None:
    image = read_image_file(shared_data / "faces/face_recognition/two_people.jpg")
    faces = analyzer.analyze(image, attributes="all")
    assert len(faces) == 2
    h, w = image.shape[:2]
    for f in faces:
        _check_detail(shapes.face_detail(f, w, h, shapes.requested_attributes(["ALL"])))


def test_default_attributes_are_rekognitions_default_set(analyzer: FaceAnalyzer, shared_data: Path) -> None:
    image = read_image_file(shared_data / "faces/face_recognition/obama3.jpg")
    (face,) = analyzer.analyze(image, attributes="default")
    d = shapes.face_detail(face, image.shape[1], image.shape[0])
    assert set(d) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}


def test_smile_and_expression_on_a_smiling_face(analyzer: FaceAnalyzer, shared_data: Path) -> None:
    image = read_image_file(shared_data / "faces/face_recognition/obama-480p.jpg")
    (face,) = analyzer.analyze(image, attributes="all")
    d = shapes.face_detail(face, image.shape[1], image.shape[0], shapes.requested_attributes(["ALL"]))
    assert d["Emotions"][0]["Type"] == "HAPPY"
    assert d["Smile"]["Value"] is True


def test_blur_lowers_sharpness_and_darkening_lowers_brightness(
    analyzer: FaceAnalyzer, shared_data: Path
) -> None:
    import cv2

    image = read_image_file(shared_data / "faces/face_recognition/obama-720p.jpg")
    # the largest face (MTCNN also finds a 38 px "face" in the blurred background, Confidence 72)
    sharp = analyzer.analyze(image, attributes="default")[0]
    blurred = analyzer.analyze(
        np.asarray(cv2.GaussianBlur(image, (0, 0), 4), np.uint8), attributes="default"
    )[0]
    dark = analyzer.analyze((image * 0.4).astype(np.uint8), attributes="default")[0]
    q = sharp.attributes["quality"]
    assert blurred.attributes["quality"]["sharpness"] < q["sharpness"] - 20
    assert dark.attributes["quality"]["brightness"] < q["brightness"] - 15


def test_pose_signs_agree_between_mesh_and_points(analyzer: FaceAnalyzer, shared_data: Path) -> None:
    """A clearly turned face: the mesh pose and the coarse 5-point pose agree on the yaw sign, and
    mirroring the image flips it in both (one sign convention across estimators)."""
    image = read_image_file(shared_data / "faces/lfw/Colin_Powell/Colin_Powell_0001.jpg")
    yaws = []
    for img in (image, np.ascontiguousarray(image[:, ::-1])):
        (face,) = analyzer.analyze(img, attributes="default")
        coarse = pose_from_points({k: face.landmarks[k] for k in ("eyeLeft", "eyeRight", "nose")})
        assert coarse is not None
        mesh_yaw = face.attributes["pose"][1]
        assert abs(mesh_yaw) > 8 and np.sign(mesh_yaw) == np.sign(coarse[1])
        yaws.append(mesh_yaw)
    assert np.sign(yaws[0]) == -np.sign(yaws[1])


def test_embeddings_are_unit_vectors_tagged_with_their_embedder(
    analyzer: FaceAnalyzer, shared_data: Path
) -> None:
    image = read_image_file(shared_data / "faces/face_recognition/two_people.jpg")
    faces = analyzer.analyze(image, attributes="none", embed=True)
    for f in faces:
        assert analyzer.embedder is not None
        assert f.embedding is not None and f.embedding.dtype == np.float32
        assert f.embedding.shape == (analyzer.embedder.dim,) == (128 + 1024,)  # dlib + faceres, fused
        assert abs(float(np.linalg.norm(f.embedding)) - 1) < 1e-5
        assert f.embedder_id == "dlib-resnet-v1+human-faceres@0.83:0.17"


def test_compare_same_and_different_people(analyzer: FaceAnalyzer, shared_data: Path) -> None:
    service = FaceService(analyzer)
    fr = shared_data / "faces/face_recognition"
    obama = (fr / "obama-480p.jpg").read_bytes()
    same = service.compare_faces(obama, (fr / "obama3.jpg").read_bytes())
    assert len(same.matches) == 1 and same.matches[0][1] >= 80
    other = service.compare_faces(obama, (fr / "knn_examples/train/biden/biden.jpg").read_bytes())
    assert other.matches == [] and len(other.unmatched) == 1
    both = service.compare_faces(obama, (fr / "two_people.jpg").read_bytes(), similarity_threshold=0)
    sims = sorted(s for _, s in both.matches)
    assert len(sims) == 2 and sims[-1] >= 80 > sims[0]  # two_people.jpg: Obama and Biden
