"""The dlib conversions reproduce dlib itself (dlib-bin is a dev dependency; keeneye never imports it).

Faces: the first image of 12 LFW people plus the ``face_recognition`` photos of Obama at 240p..1080p,
with dlib's own HOG detector rectangles and dlib's own landmarks as the common input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from keeneye.core.types import Face
from keeneye.models.base import FaceEmbedder, FaceLandmarker
from keeneye.models.convert.dlib import convert_resnet, convert_shape_predictor
from keeneye.models.dlib import (
    DLIB5_LANDMARK_NAMES,
    DlibResNetEmbedder,
    DlibShapeLandmarker,
    chip_details,
    dlib_rect_to_xyxy,
    extract_face_chips,
    xyxy_to_dlib_rect,
)

dlib = pytest.importorskip("dlib")

pytestmark = [pytest.mark.dlib, pytest.mark.data]

WEIGHTS = "face-recognition-models/face_recognition_models/models"
LFW_PEOPLE = 12
# A face large enough that dlib samples its chip from a pyramid_down<2> level (chip rect > ~300 px).
PYRAMID_IMAGES = ("obama3.jpg",)
EXACT_IMAGES = ("obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg", "obama-1080p.jpg")


@dataclass(frozen=True)
class RealFace:
    name: str
    image: npt.NDArray[np.uint8]
    rect: tuple[int, int, int, int]  # dlib (left, top, right, bottom), inclusive
    shape: Any  # dlib.full_object_detection from dlib's own shape predictor
    points: npt.NDArray[np.float32]  # (5, 2) dlib's landmarks


@pytest.fixture(scope="session")
def weights(package_sources: Path) -> Path:
    return package_sources / WEIGHTS


@pytest.fixture(scope="session")
def converted(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dlib_converted")
    convert_resnet(weights / "dlib_face_recognition_resnet_model_v1.dat", out / "resnet.onnx")
    convert_shape_predictor(weights / "shape_predictor_5_face_landmarks.dat", out / "shape5.npz")
    return {"resnet": out / "resnet.onnx", "shape5": out / "shape5.npz"}


def _load_rgb(path: Path) -> npt.NDArray[np.uint8]:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _faces(paths: list[Path], weights: Path) -> list[RealFace]:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(weights / "shape_predictor_5_face_landmarks.dat"))
    faces = []
    for path in paths:
        img = _load_rgb(path)
        for d in detector(img, 1 if max(img.shape) < 400 else 0):
            s = predictor(img, d)
            pts = np.array([[p.x, p.y] for p in s.parts()], np.float32)
            faces.append(RealFace(path.name, img, (d.left(), d.top(), d.right(), d.bottom()), s, pts))
    return faces


@pytest.fixture(scope="session")
def real_faces(shared_data: Path, weights: Path) -> list[RealFace]:
    lfw = sorted((shared_data / "faces" / "lfw").glob("*/*_0001.jpg"))[:LFW_PEOPLE]
    fr = [shared_data / "faces" / "face_recognition" / n for n in EXACT_IMAGES]
    faces = _faces(lfw + fr, weights)
    assert len(faces) >= 12
    return faces


@pytest.fixture(scope="session")
def pyramid_faces(shared_data: Path, weights: Path) -> list[RealFace]:
    return _faces([shared_data / "faces" / "face_recognition" / n for n in PYRAMID_IMAGES], weights)


@pytest.fixture(scope="session")
def embedder(converted: dict[str, Path]) -> DlibResNetEmbedder:
    return DlibResNetEmbedder(converted["resnet"], threads=1)


def _as_face(f: RealFace) -> Face:
    landmarks = {n: (float(x), float(y)) for n, (x, y) in zip(DLIB5_LANDMARK_NAMES, f.points, strict=True)}
    return Face(dlib_rect_to_xyxy([f.rect])[0], 1.0, landmarks)


def test_onnx_descriptor_matches_dlib_on_dlib_chips(
    converted: dict[str, Path], weights: Path, real_faces: list[RealFace], embedder: DlibResNetEmbedder
) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(str(converted["resnet"])))
    model = dlib.face_recognition_model_v1(str(weights / "dlib_face_recognition_resnet_model_v1.dat"))
    chips = np.stack(
        [np.asarray(dlib.get_face_chip(f.image, f.shape, size=150, padding=0.25)) for f in real_faces]
    )
    ref = np.array([np.array(model.compute_face_descriptor(c)) for c in chips], np.float32)
    ours = embedder.embed_chips(chips)
    assert ours.shape == (len(real_faces), 128)
    assert np.abs(ours - ref).max() < 1e-4  # measured max ~3e-7 (raw descriptors, norm ~1.4)
    # batch size does not change the result
    assert np.abs(embedder.embed_chips(chips[:1]) - ours[:1]).max() < 1e-5


@pytest.mark.parametrize(
    ("xyxy", "rect"),
    [
        ((10.0, 20.0, 50.0, 60.0), (10, 20, 49, 59)),  # exclusive edges -> inclusive corners
        ((10.4, 20.6, 50.5, 60.49), (10, 21, 50, 59)),  # each edge rounded half up first
        ((-3.0, -2.6, 0.0, 1.0), (-3, -3, -1, 0)),
    ],
)
def test_xyxy_to_dlib_rect(xyxy: tuple[float, ...], rect: tuple[int, ...]) -> None:
    got = xyxy_to_dlib_rect([xyxy])
    assert tuple(int(v) for v in got[0]) == rect
    assert tuple(float(v) for v in dlib_rect_to_xyxy(got)[0]) == tuple(
        float(v) for v in (rect[0], rect[1], rect[2] + 1, rect[3] + 1)
    )


def test_backends_implement_the_protocols(converted: dict[str, Path], embedder: DlibResNetEmbedder) -> None:
    lm = DlibShapeLandmarker(converted["shape5"])
    assert isinstance(lm, FaceLandmarker)
    assert isinstance(embedder, FaceEmbedder)
    assert lm.name == "dlib-shape5"
    assert embedder.embedder_id == "dlib-resnet-v1"
    assert embedder.dim == 128
    assert lm.landmark_names == embedder.required_landmarks == DLIB5_LANDMARK_NAMES


def test_shape_predictor_matches_dlib(converted: dict[str, Path], real_faces: list[RealFace]) -> None:
    lm = DlibShapeLandmarker(converted["shape5"])
    for f in real_faces:
        xyxy = dlib_rect_to_xyxy([f.rect])
        np.testing.assert_array_equal(xyxy_to_dlib_rect(xyxy)[0], f.rect)
        ours = lm.landmarks(f.image, xyxy)
        assert ours.shape == (1, 5, 2)
        assert np.abs(ours[0] - f.points).max() < 0.01, f.name  # measured: 0 (identical integers)


def test_shape_predictor_batches_and_subpixel(converted: dict[str, Path], real_faces: list[RealFace]) -> None:
    f = real_faces[0]
    lm = DlibShapeLandmarker(converted["shape5"])
    boxes = dlib_rect_to_xyxy([f.rect, f.rect])
    two = lm.landmarks(f.image, boxes)
    np.testing.assert_array_equal(two[0], two[1])
    fine = DlibShapeLandmarker(converted["shape5"], subpixel=True).landmarks(f.image, boxes[:1])
    assert np.abs(fine[0] - two[0]).max() <= 0.5
    assert lm.landmarks(f.image, np.zeros((0, 4), np.float32)).shape == (0, 5, 2)


def test_chips_match_dlib_get_face_chip(real_faces: list[RealFace]) -> None:
    for f in real_faces:
        ref = np.asarray(dlib.get_face_chip(f.image, f.shape, size=150, padding=0.25)).astype(np.int32)
        ours = extract_face_chips(f.image, f.points[None])[0].astype(np.int32)
        assert np.abs(ours - ref).mean() < 0.01, f.name  # measured: 0.0 (identical pixels)


def test_chips_of_large_faces_match_dlib(pyramid_faces: list[RealFace]) -> None:
    assert pyramid_faces
    for f in pyramid_faces:
        rects, _ = chip_details(f.points[None])
        assert (rects[0, 2] - rects[0, 0] + 1) > 2 * 150 + 4  # really takes dlib's pyramid path
        ref = np.asarray(dlib.get_face_chip(f.image, f.shape, size=150, padding=0.25)).astype(np.int32)
        ours = extract_face_chips(f.image, f.points[None])[0].astype(np.int32)
        assert np.abs(ours - ref).mean() < 0.01, f.name  # measured: 0.0 (identical pixels)


def test_embedder_end_to_end_matches_dlib(
    weights: Path,
    real_faces: list[RealFace],
    pyramid_faces: list[RealFace],
    embedder: DlibResNetEmbedder,
) -> None:
    model = dlib.face_recognition_model_v1(str(weights / "dlib_face_recognition_resnet_model_v1.dat"))
    for f in real_faces + pyramid_faces:
        ref = np.array(model.compute_face_descriptor(f.image, f.shape), np.float32)
        ref /= np.linalg.norm(ref)
        ours = embedder.embed(f.image, [_as_face(f)])
        assert ours.shape == (1, 128)
        assert abs(float(np.linalg.norm(ours)) - 1.0) < 1e-5
        assert np.abs(ours[0] - ref).max() < 1e-5, f.name  # measured max ~2.6e-7


def test_flip_tta_keeps_the_vector_space(converted: dict[str, Path], real_faces: list[RealFace]) -> None:
    plain = DlibResNetEmbedder(converted["resnet"], threads=1)
    tta = DlibResNetEmbedder(converted["resnet"], flip_tta=True, threads=1)
    assert tta.embedder_id == plain.embedder_id
    f = real_faces[0]
    a, b = plain.embed(f.image, [_as_face(f)]), tta.embed(f.image, [_as_face(f)])
    assert float(a[0] @ b[0]) > 0.95
    assert tta.embed(f.image, []).shape == (0, 128)
