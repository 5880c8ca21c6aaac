"""human's FaceMesh backend on real faces: geometry, naming convention, pose signs, eyes/mouth, face flag.

Models are converted from the unpacked human package into a session temp dir. Face boxes come from
human's BlazeFace backend when it is importable; otherwise from the hand-checked boxes below (what
BlazeFace found on these images), moved along with the image when a test flips or rotates it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from keeneye.core.errors import InvalidImage, InvalidParameter
from keeneye.core.types import REKOGNITION_LANDMARK_TYPES, Face, UInt8Image
from keeneye.models.base import FaceLandmarker
from keeneye.models.convert.tfjs import convert_graph_model
from keeneye.models.facemesh import (
    MESH_POINTS,
    FaceMeshAnalysis,
    FaceMeshLandmarker,
    eye_aspect_ratio,
    eyes_open,
    mesh_attributes,
    mouth_aspect_ratio,
    mouth_open,
    pose_from_mesh,
)

pytestmark = [pytest.mark.models, pytest.mark.data]

Boxes = npt.NDArray[np.float32]
BoxFinder = Callable[[UInt8Image, str], Boxes]

#: image (relative to the shared faces dir) -> tight face boxes xyxy, as BlazeFace finds them
HAND_BOXES: dict[str, list[list[float]]] = {
    "face_recognition/obama-480p.jpg": [[385, 70, 500, 185]],
    "face_recognition/obama-1080p.jpg": [[868, 154, 1126, 412]],
    "face_recognition/obama_small.jpg": [[99, 69, 220, 189]],
    "face_recognition/obama3.jpg": [[634, 347, 907, 619]],
    "face_recognition/two_people.jpg": [[233, 74, 389, 230], [784, 99, 941, 256]],
    "misc/skimage_astronaut.png": [[172, 74, 277, 180]],
    "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg": [[69, 78, 178, 187]],
    "lfw/Dan_LaCoutre/Dan_LaCoutre_0001.jpg": [[75, 93, 171, 189]],
    "lfw/Masamori_Tokuyama/Masamori_Tokuyama_0001.jpg": [[84, 88, 187, 191]],
    "lfw/Dan_Monson/Dan_Monson_0001.jpg": [[67, 81, 175, 189]],
}
UPRIGHT = [
    "face_recognition/obama-480p.jpg",
    "face_recognition/obama-1080p.jpg",
    "face_recognition/obama_small.jpg",
    "face_recognition/obama3.jpg",
    "face_recognition/two_people.jpg",
    "misc/skimage_astronaut.png",
]
FRONTAL = [
    "face_recognition/obama-480p.jpg",
    "face_recognition/obama-1080p.jpg",
    "misc/skimage_astronaut.png",
]
TURNED = ["face_recognition/obama3.jpg", "face_recognition/two_people.jpg"]  # yaw and roll of ~5-12 degrees


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def human_models(package_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("facemesh_models")
    paths = {}
    for name in ("facemesh", "blazeface"):
        paths[name] = out / f"{name}.onnx"
        convert_graph_model(package_sources / "human" / "models" / f"{name}.json", paths[name])
    return paths


@pytest.fixture(scope="session")
def landmarker(human_models: dict[str, Path]) -> FaceMeshLandmarker:
    return FaceMeshLandmarker(human_models["facemesh"])


@pytest.fixture(scope="session")
def find_boxes(human_models: dict[str, Path]) -> BoxFinder:
    """Tight face boxes for an (optionally transformed) test image; ``key`` names the source image."""
    try:
        from keeneye.models.human import BlazeFaceDetector
    except ImportError:
        return lambda image, key: np.asarray(HAND_BOXES[key], np.float32)
    detector = BlazeFaceDetector(human_models["blazeface"])

    def detect(image: UInt8Image, key: str) -> Boxes:
        boxes = detector.detect(image).xyxy
        return boxes[np.argsort(boxes[:, 0])]  # left to right, like HAND_BOXES

    return detect


def _load(shared_data: Path, key: str) -> UInt8Image:
    bgr = cv2.imread(str(shared_data / "faces" / key), cv2.IMREAD_COLOR)
    assert bgr is not None, key
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _named(landmarker: FaceMeshLandmarker, image: UInt8Image, boxes: Boxes) -> list[dict[str, np.ndarray]]:
    points = landmarker.landmarks(image, boxes)
    return [dict(zip(landmarker.landmark_names, p, strict=True)) for p in points]


def _rotate(image: UInt8Image, degrees: float) -> tuple[UInt8Image, npt.NDArray[np.float64]]:
    """Image rotated counter-clockwise (as seen) by ``degrees`` about its centre, and the (2, 3) map used."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, m, (w, h)), np.uint8), np.asarray(m, np.float64)


def _move_boxes(boxes: Boxes, m: npt.NDArray[np.float64]) -> Boxes:
    """Tight boxes carried through an affine map: same size, centre moved (for the hand-box fallback)."""
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    moved = centers @ m[:, :2].T + m[:, 2]
    half = (boxes[:, 2:] - boxes[:, :2]) / 2
    return np.hstack([moved - half, moved + half]).astype(np.float32)


def _transformed_boxes(
    find_boxes: BoxFinder, image: UInt8Image, key: str, m: npt.NDArray[np.float64]
) -> Boxes:
    boxes = find_boxes(image, key)
    if key in HAND_BOXES and np.array_equal(boxes, np.asarray(HAND_BOXES[key], np.float32)):
        boxes = _move_boxes(boxes, m)  # the hand boxes belong to the untransformed image
    return boxes[np.argsort(boxes[:, 0])]


# -- protocol and shapes -----------------------------------------------------------------------------
def test_is_a_face_landmarker_with_all_rekognition_landmarks(landmarker: FaceMeshLandmarker) -> None:
    assert isinstance(landmarker, FaceLandmarker)
    assert landmarker.name == "human-facemesh"
    assert len(landmarker.landmark_names) == 30
    assert set(landmarker.landmark_names) == REKOGNITION_LANDMARK_TYPES


def test_empty_boxes(landmarker: FaceMeshLandmarker) -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    mesh, score = landmarker.mesh(image, np.zeros((0, 4), np.float32))
    assert mesh.shape == (0, MESH_POINTS, 3) and score.shape == (0,)
    assert landmarker.landmarks(image, np.zeros((0, 4), np.float32)).shape == (0, 30, 2)


@pytest.mark.parametrize(
    ("image", "boxes", "eyes", "error"),
    [
        (np.zeros((64, 64), np.uint8), [[0, 0, 10, 10]], None, InvalidImage),
        (np.zeros((64, 64, 3), np.float32), [[0, 0, 10, 10]], None, InvalidImage),
        (np.zeros((64, 64, 3), np.uint8), [[0, 0, 10]], None, InvalidParameter),
        (np.zeros((64, 64, 3), np.uint8), [[0, 0, 10, np.nan]], None, InvalidParameter),
        (np.zeros((64, 64, 3), np.uint8), [[0, 0, 10, 10]], [[1, 2]], InvalidParameter),
    ],
)
def test_rejects_bad_input(
    landmarker: FaceMeshLandmarker, image: np.ndarray, boxes: list[list[float]], eyes: object, error: type
) -> None:
    with pytest.raises(error):
        landmarker.mesh(image, np.asarray(boxes, np.float32), eye_points=eyes)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", UPRIGHT)
def test_mesh_lies_on_the_face(
    landmarker: FaceMeshLandmarker, find_boxes: BoxFinder, shared_data: Path, key: str
) -> None:
    image = _load(shared_data, key)
    boxes = find_boxes(image, key)
    mesh, score = landmarker.mesh(image, boxes)
    assert mesh.shape == (len(boxes), MESH_POINTS, 3) and mesh.dtype == np.float32
    assert np.all(score > 0.9), score
    for face_mesh, box in zip(mesh, boxes, strict=True):
        x1, y1, x2, y2 = box
        margin = 0.25 * max(x2 - x1, y2 - y1)  # tight detector boxes cut the forehead and chin
        xy = face_mesh[:, :2]
        assert np.all(xy >= [x1 - margin, y1 - margin]) and np.all(xy <= [x2 + margin, y2 + margin])
        assert face_mesh[1, 2] < 0  # the nose tip is nearer the camera than the face's mean depth


@pytest.mark.parametrize("key", UPRIGHT)
def test_landmarks_use_image_left_right(
    landmarker: FaceMeshLandmarker, find_boxes: BoxFinder, shared_data: Path, key: str
) -> None:
    image = _load(shared_data, key)
    for p in _named(landmarker, image, find_boxes(image, key)):
        x = {k: float(v[0]) for k, v in p.items()}
        y = {k: float(v[1]) for k, v in p.items()}
        assert x["eyeLeft"] < x["eyeRight"]
        assert x["leftPupil"] < x["rightPupil"]
        assert x["mouthLeft"] < x["mouthRight"]
        assert x["noseLeft"] < x["nose"] < x["noseRight"]
        assert x["leftEyeLeft"] < x["leftEyeRight"] < x["rightEyeLeft"] < x["rightEyeRight"]
        assert x["leftEyeBrowLeft"] < x["leftEyeBrowRight"] < x["rightEyeBrowLeft"] < x["rightEyeBrowRight"]
        assert x["upperJawlineLeft"] < x["eyeLeft"] and x["eyeRight"] < x["upperJawlineRight"]
        assert x["midJawlineLeft"] < x["chinBottom"] < x["midJawlineRight"]
        assert y["leftEyeBrowUp"] < y["leftEyeUp"] < y["eyeLeft"] < y["leftEyeDown"]
        assert y["rightEyeBrowUp"] < y["rightEyeUp"] < y["eyeRight"] < y["rightEyeDown"]
        assert max(y["eyeLeft"], y["eyeRight"]) < y["nose"] < y["mouthUp"] < y["mouthDown"] < y["chinBottom"]
        assert y["chinBottom"] == max(y.values())
        assert min(y["leftEyeBrowUp"], y["rightEyeBrowUp"]) == min(y.values())


# -- pose ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", FRONTAL)
def test_frontal_face_pose_is_near_zero(
    landmarker: FaceMeshLandmarker, find_boxes: BoxFinder, shared_data: Path, key: str
) -> None:
    image = _load(shared_data, key)
    mesh, _ = landmarker.mesh(image, find_boxes(image, key))
    roll, yaw, pitch = pose_from_mesh(mesh[0])
    assert abs(roll) < 15 and abs(yaw) < 15 and abs(pitch) < 20, (roll, yaw, pitch)


@pytest.mark.parametrize("key", TURNED)
def test_mirrored_face_has_opposite_yaw_and_roll(
    landmarker: FaceMeshLandmarker, find_boxes: BoxFinder, shared_data: Path, key: str
) -> None:
    image = _load(shared_data, key)
    flipped = np.ascontiguousarray(image[:, ::-1])
    w = image.shape[1]
    mirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]])
    m1, _ = landmarker.mesh(image, find_boxes(image, key))
    m2, _ = landmarker.mesh(flipped, _transformed_boxes(find_boxes, flipped, key, mirror))
    # the mirrored image's faces come in reverse left-to-right order
    for a, b in zip(m1, m2[::-1], strict=True):
        roll1, yaw1, pitch1 = pose_from_mesh(a)
        roll2, yaw2, pitch2 = pose_from_mesh(b)
        assert abs(yaw1) > 5 and yaw1 * yaw2 < 0 and abs(yaw1 + yaw2) < 6, (yaw1, yaw2)
        assert abs(roll1) > 3 and roll1 * roll2 < 0 and abs(roll1 + roll2) < 6, (roll1, roll2)
        assert abs(pitch1 - pitch2) < 6, (pitch1, pitch2)


@pytest.mark.parametrize("degrees", [20.0, -20.0])
@pytest.mark.parametrize("key", ["face_recognition/obama-480p.jpg", "misc/skimage_astronaut.png"])
@pytest.mark.parametrize("with_eyes", [False, True])
def test_roll_follows_in_plane_rotation(
    landmarker: FaceMeshLandmarker,
    find_boxes: BoxFinder,
    shared_data: Path,
    key: str,
    degrees: float,
    with_eyes: bool,
) -> None:
    image = _load(shared_data, key)
    mesh0, _ = landmarker.mesh(image, find_boxes(image, key))
    rotated, m = _rotate(image, degrees)  # counter-clockwise as seen for degrees > 0
    boxes = _transformed_boxes(find_boxes, rotated, key, m)
    eyes = None
    if with_eyes:  # the eye centres of the first mesh, carried through the rotation
        e = np.stack([mesh0[0, [33, 133], :2].mean(0), mesh0[0, [263, 362], :2].mean(0)])
        eyes = (e @ m[:, :2].T + m[:, 2])[None].astype(np.float32)
    mesh1, score = landmarker.mesh(rotated, boxes, eye_points=eyes)
    assert score[0] > 0.9
    change = pose_from_mesh(mesh1[0])[0] - pose_from_mesh(mesh0[0])[0]
    assert abs(change - (-degrees)) < 6, change  # roll is clockwise-positive


def _rotated_mesh(mesh: np.ndarray, axis: str, degrees: float) -> np.ndarray:
    """The mesh turned rigidly about its centre (x right, y down, z away from the camera)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    rot = {
        "roll": [[c, -s, 0], [s, c, 0], [0, 0, 1]],  # clockwise as seen (y points down)
        "yaw": [[c, 0, -s], [0, 1, 0], [s, 0, c]],  # the nose (z < 0) moves toward +x: image right
        "pitch": [[1, 0, 0], [0, c, s], [0, -s, c]],  # the chin (y > 0) comes toward the camera: chin up
    }[axis]
    centre = mesh.mean(axis=0)
    return np.asarray((mesh - centre) @ np.asarray(rot).T + centre, np.float32)


@pytest.mark.parametrize(("axis", "sign"), [("roll", 1), ("yaw", 1), ("pitch", -1)])
def test_pose_sign_conventions_on_a_rigidly_turned_mesh(
    landmarker: FaceMeshLandmarker, find_boxes: BoxFinder, shared_data: Path, axis: str, sign: int
) -> None:
    """roll + clockwise, yaw + toward the image right, pitch + chin down (so chin up is negative)."""
    key = "face_recognition/obama-480p.jpg"
    image = _load(shared_data, key)
    mesh, _ = landmarker.mesh(image, find_boxes(image, key))
    index = {"roll": 0, "yaw": 1, "pitch": 2}[axis]
    before = pose_from_mesh(mesh[0])[index]
    after = pose_from_mesh(_rotated_mesh(mesh[0], axis, 25.0))[index]
    assert abs((after - before) - sign * 25.0) < 3, (before, after)


# -- eyes, mouth, face flag --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "eyes", "mouth"),
    [
        ("lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg", True, False),  # neutral, looking at the camera
        ("lfw/Dan_LaCoutre/Dan_LaCoutre_0001.jpg", False, True),  # eyes squeezed shut, teeth bared
        ("lfw/Masamori_Tokuyama/Masamori_Tokuyama_0001.jpg", False, True),  # the same grimace
        ("lfw/Dan_Monson/Dan_Monson_0001.jpg", True, True),  # shouting, eyes open
        ("face_recognition/obama-1080p.jpg", True, True),  # broad smile showing teeth
    ],
)
def test_eyes_and_mouth_open(
    landmarker: FaceMeshLandmarker,
    find_boxes: BoxFinder,
    shared_data: Path,
    key: str,
    eyes: bool,
    mouth: bool,
) -> None:
    image = _load(shared_data, key)
    mesh, _ = landmarker.mesh(image, find_boxes(image, key))
    eyes_value, eyes_conf = eyes_open(mesh[0])
    mouth_value, mouth_conf = mouth_open(mesh[0])
    assert eyes_value is eyes, eye_aspect_ratio(mesh[0])
    assert mouth_value is mouth, mouth_aspect_ratio(mesh[0])
    assert 0.5 <= eyes_conf <= 1 and 0.5 <= mouth_conf <= 1


def test_face_flag_separates_faces_from_texture(
    landmarker: FaceMeshLandmarker, find_boxes: BoxFinder, shared_data: Path
) -> None:
    key = "misc/skimage_astronaut.png"
    face = _load(shared_data, key)
    _, face_score = landmarker.mesh(face, find_boxes(face, key))
    h, w = face.shape[:2]
    centre_box = np.array([[w * 0.3, h * 0.3, w * 0.7, h * 0.7]], np.float32)
    for name in ("skimage_brick.png", "skimage_grass.png", "skimage_coffee.png"):
        _, score = landmarker.mesh(_load(shared_data, f"no_face/{name}"), centre_box)
        assert score[0] < 0.1, (name, score)
    assert face_score[0] > 0.9


# -- the analysis stage --------------------------------------------------------------------------------
def test_analysis_stage_returns_rekognition_attributes(
    human_models: dict[str, Path], find_boxes: BoxFinder, shared_data: Path
) -> None:
    key = "face_recognition/two_people.jpg"
    image = _load(shared_data, key)
    faces = [Face(xyxy=b, score=0.9) for b in find_boxes(image, key)]
    out = FaceMeshAnalysis(human_models["facemesh"]).analyze(image, faces)
    assert len(out) == 2
    for attrs in out:
        assert set(attrs) == {"landmarks", "pose", "eyes_open", "mouth_open", "mesh_score"}
        assert set(attrs["landmarks"]) == REKOGNITION_LANDMARK_TYPES
        assert len(attrs["pose"]) == 3 and all(-180 <= v <= 180 for v in attrs["pose"])
        assert attrs["eyes_open"][0] is True
    assert out[0]["landmarks"]["eyeLeft"][0] < out[1]["landmarks"]["eyeLeft"][0]
    assert mesh_attributes(np.zeros((MESH_POINTS, 3), np.float32), 0.05) == {"mesh_score": 0.05}
