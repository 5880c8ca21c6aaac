"""The @vladmandic/human backends on real photos, with models converted from the raw TF.js packages.

Each model is converted once per session into a temporary folder (keeneye.models.convert.tfjs), so the
tests need the unpacked packages (``package_sources``) and ../shared/data, not ``keeneye models install``.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from keeneye.core.types import EYE_LEFT, EYE_RIGHT, UInt8Image
from keeneye.models.base import FaceAttributeClassifier, FaceDetector, FaceEmbedder, ObjectDetector
from keeneye.models.convert.tfjs import convert_graph_model
from keeneye.models.human import (
    COCO_CLASS_NAMES,
    EAR_LEFT,
    EAR_RIGHT,
    EMOTION_LABELS,
    AntiSpoofClassifier,
    BlazeFaceDetector,
    CenterNetPersonDetector,
    FaceResEmbedder,
    HumanAlignedEmbedder,
    HumanEmotionClassifier,
    LivenessClassifier,
    _decode_age,
    box_iou,
    centernet_decode,
    crop_and_resize,
    estimate_mouth_corners,
    face_from_detections,
    human_face_box,
    resize_on_canvas,
)

pytestmark = pytest.mark.data

# name -> (package, model file, the graph outputs to convert; None: the model's own)
_MODELS: dict[str, tuple[str, str, list[str] | None]] = {
    "blazeface": ("human", "blazeface.json", None),
    "faceres": ("human", "faceres.json", None),
    "emotion": ("human", "emotion.json", None),
    "antispoof": ("human", "antispoof.json", None),
    "liveness": ("human", "liveness.json", None),
    # the graph's TopK decode tail is not converted: expose the heads, decode in numpy
    "centernet": ("human", "centernet.json", ["tower_0/keypoints", "tower_0/wh"]),
    "mobilefacenet": ("human-models", "mobilefacenet.json", None),
}


@pytest.fixture(scope="session")
def onnx_models(package_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("human_onnx")
    paths = {}
    for name, (package, file, outputs) in _MODELS.items():
        paths[name] = out / f"{name}.onnx"
        convert_graph_model(package_sources / package / "models" / file, paths[name], outputs=outputs)
    return paths


@pytest.fixture(scope="session")
def faces_dir(shared_data: Path) -> Path:
    return shared_data / "faces"


@pytest.fixture(scope="session")
def detector(onnx_models: dict[str, Path]) -> BlazeFaceDetector:
    return BlazeFaceDetector(onnx_models["blazeface"])


@pytest.fixture(scope="session")
def faceres(onnx_models: dict[str, Path]) -> FaceResEmbedder:
    return FaceResEmbedder(onnx_models["faceres"])


def _rgb(path: Path) -> UInt8Image:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _dlib_boxes(xml: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """image file -> ground-truth face boxes (xyxy) from a dlib imglab XML file."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    current = ""
    for line in xml.read_text(encoding="latin-1").splitlines():
        if m := re.search(r"<image file='([^']+)'", line):
            current = m.group(1)
            boxes[current] = []
        elif m := re.search(r"<box top='(\d+)' left='(\d+)' width='(\d+)' height='(\d+)'", line):
            top, left, w, h = (float(v) for v in m.groups())
            boxes[current].append((left, top, left + w, top + h))
    return boxes


# ------------------------------------------------------------------------------------- blazeface


def test_backends_satisfy_protocols(
    onnx_models: dict[str, Path], detector: BlazeFaceDetector, faceres: FaceResEmbedder
) -> None:
    assert isinstance(detector, FaceDetector)
    assert isinstance(faceres, FaceEmbedder) and isinstance(faceres, FaceAttributeClassifier)
    assert isinstance(HumanEmotionClassifier(onnx_models["emotion"]), FaceAttributeClassifier)
    assert isinstance(AntiSpoofClassifier(onnx_models["antispoof"]), FaceAttributeClassifier)
    assert isinstance(LivenessClassifier(onnx_models["liveness"]), FaceAttributeClassifier)
    assert isinstance(CenterNetPersonDetector(onnx_models["centernet"]), ObjectDetector)
    assert isinstance(HumanAlignedEmbedder(onnx_models["mobilefacenet"]), FaceEmbedder)


def test_blazeface_finds_two_people(detector: BlazeFaceDetector, faces_dir: Path) -> None:
    image = _rgb(faces_dir / "face_recognition" / "two_people.jpg")
    dets = detector.detect(image)
    assert len(dets) == 2
    assert dets.landmarks is not None and dets.landmarks.shape == (2, 6, 2)
    assert np.all((dets.score > 0.5) & (dets.score <= 1))
    h, w = image.shape[:2]
    assert np.all(dets.xyxy >= 0) and np.all(dets.xyxy[:, [0, 2]] <= w) and np.all(dets.xyxy[:, [1, 3]] <= h)


# The one detection left at the default threshold on faces/no_face is a real (animal) face: the cat.
_NO_FACE_EXPECTED = {"skimage_chelsea.png": 1}


@pytest.mark.parametrize(
    "name",
    [
        "facenet_pilatus800.jpg",
        "skimage_brick.png",
        "skimage_chelsea.png",
        "skimage_coffee.png",
        "skimage_coins.png",
        "skimage_grass.png",
        "skimage_gravel.png",
        "skimage_horse.png",
        "skimage_hubble_deep_field.jpg",
        "skimage_rocket.jpg",
    ],
)
def test_blazeface_no_face_images(detector: BlazeFaceDetector, faces_dir: Path, name: str) -> None:
    assert len(detector.detect(_rgb(faces_dir / "no_face" / name))) == _NO_FACE_EXPECTED.get(name, 0)


def test_blazeface_boxes_match_dlib_ground_truth(detector: BlazeFaceDetector, faces_dir: Path) -> None:
    truth = _dlib_boxes(faces_dir / "dlib" / "faces" / "testing.xml")
    matched = total = extra = 0
    for file, boxes in truth.items():
        dets = detector.detect(_rgb(faces_dir / "dlib" / "faces" / file))
        found = [max((box_iou(b, d) for d in dets.xyxy.tolist()), default=0.0) > 0.3 for b in boxes]
        matched += sum(found)
        total += len(boxes)
        extra += max(0, len(dets) - sum(found))
    assert matched / total >= 0.9, f"{matched}/{total} faces matched"
    assert extra <= 1


def test_blazeface_landmarks_use_image_left_right(detector: BlazeFaceDetector, faces_dir: Path) -> None:
    """eyeLeft has the smaller x on upright faces; ears bracket the eyes; nose below the eyes."""
    names = detector.landmark_names
    il, ir, el, er = (names.index(n) for n in (EYE_LEFT, EYE_RIGHT, EAR_LEFT, EAR_RIGHT))
    images = [
        faces_dir / "face_recognition" / "two_people.jpg",
        faces_dir / "face_recognition" / "obama_small.jpg",
        *sorted((faces_dir / "dlib" / "faces").glob("2008_00*.jpg")),
    ]
    points = np.concatenate([lm for p in images if (lm := detector.detect(_rgb(p)).landmarks) is not None])
    assert len(points) >= 10
    assert np.all(points[:, il, 0] < points[:, ir, 0])
    assert np.mean(points[:, el, 0] < points[:, er, 0]) >= 0.95
    assert np.mean(points[:, 2, 1] > points[:, il : ir + 1, 1].mean(axis=1)) >= 0.95


# ------------------------------------------------------------------------------------ face models


def _lfw_pairs(faces_dir: Path, n: int) -> list[tuple[Path, Path, bool]]:
    """The first ``n`` same and ``n`` different pairs of LFW View 2 fold 1."""
    lines = (faces_dir / "lfw_protocol" / "pairs.txt").read_text().splitlines()[1:601]

    def img(name: str, i: str) -> Path:
        return faces_dir / "lfw" / name / f"{name}_{int(i):04d}.jpg"

    same = [(img(a, i), img(a, j), True) for a, i, j in (ln.split("\t") for ln in lines[:n])]
    diff = [(img(a, i), img(b, j), False) for a, i, b, j in (ln.split("\t") for ln in lines[300 : 300 + n])]
    return same + diff


def _central_face_embedding(detector: BlazeFaceDetector, embedder: FaceEmbedder, path: Path) -> np.ndarray:
    image = _rgb(path)
    dets = detector.detect(image)
    assert len(dets), path
    centre = np.array(image.shape[1::-1], np.float32) / 2
    offsets = (dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2 - centre
    face = face_from_detections(dets, int(np.argmin((offsets**2).sum(axis=1))))
    return np.asarray(embedder.embed(image, [face])[0], np.float32)


def test_faceres_same_person_scores_higher(
    detector: BlazeFaceDetector, faceres: FaceResEmbedder, faces_dir: Path
) -> None:
    sims: dict[bool, list[float]] = {True: [], False: []}
    for a, b, same in _lfw_pairs(faces_dir, 8):
        ea = _central_face_embedding(detector, faceres, a)
        eb = _central_face_embedding(detector, faceres, b)
        assert ea.shape == (1024,) and abs(float(np.linalg.norm(ea)) - 1) < 1e-4
        sims[same].append(float(ea @ eb))
    assert np.mean(sims[True]) > np.mean(sims[False]) + 0.15
    assert np.median(sims[True]) > np.max(np.sort(sims[False])[:-1])  # all but the hardest negative


def test_faceres_age_and_gender(
    detector: BlazeFaceDetector, faceres: FaceResEmbedder, faces_dir: Path
) -> None:
    image = _rgb(faces_dir / "face_recognition" / "obama_small.jpg")
    dets = detector.detect(image)
    (out,) = faceres.classify(image, [face_from_detections(dets, 0)])
    assert out["gender"][0] == "Male" and 0.5 < out["gender"][1] <= 1
    assert 25 <= out["age"] <= 70


@pytest.mark.parametrize(
    ("bins", "age"),
    [
        ({30: 1.0}, 30.0),  # all mass in one bin: that bin's age
        ({20: 0.5, 40: 0.5}, 30.0),  # the mean, not either peak (human's decode: 25.0)
        ({70: 0.3, 71: 0.3, 99: 0.4}, 81.9),
    ],
)
def test_faceres_age_is_the_mean_of_its_distribution(bins: dict[int, float], age: float) -> None:
    probs = np.zeros(100, np.float32)
    for i, p in bins.items():
        probs[i] = p
    assert _decode_age(probs) == age
    assert _decode_age(np.zeros(100, np.float32)) == 0.0


def test_emotion_probabilities(
    onnx_models: dict[str, Path], detector: BlazeFaceDetector, faces_dir: Path
) -> None:
    emotion = HumanEmotionClassifier(onnx_models["emotion"])
    image = _rgb(faces_dir / "face_recognition" / "obama_small.jpg")  # a broad smile
    dets = detector.detect(image)
    (out,) = emotion.classify(image, [face_from_detections(dets, 0)])
    probs = out["emotions"]
    assert tuple(probs) == EMOTION_LABELS
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(probs, key=probs.__getitem__) == "happy"


def test_antispoof_and_liveness_scores(
    onnx_models: dict[str, Path], detector: BlazeFaceDetector, faces_dir: Path
) -> None:
    image = _rgb(faces_dir / "face_recognition" / "two_people.jpg")
    dets = detector.detect(image)
    faces = [face_from_detections(dets, i) for i in range(len(dets))]
    real = AntiSpoofClassifier(onnx_models["antispoof"]).classify(image, faces)
    live = LivenessClassifier(onnx_models["liveness"]).classify(image, faces)
    assert all(0 <= r["antispoof_real"] <= 1 for r in real)
    assert all(0.5 < lv["liveness"] <= 1 for lv in live)  # real people in a real photo


def test_aligned_embedder_shapes(
    onnx_models: dict[str, Path], detector: BlazeFaceDetector, faces_dir: Path
) -> None:
    embedder = HumanAlignedEmbedder(onnx_models["mobilefacenet"])
    image = _rgb(faces_dir / "face_recognition" / "two_people.jpg")
    dets = detector.detect(image)
    vectors = embedder.embed(image, [face_from_detections(dets, i) for i in range(len(dets))])
    assert vectors.shape == (2, embedder.dim) and embedder.dim == 192
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------------------- centernet


def _pets_frame(shared_data: Path, index: int) -> UInt8Image:
    cap = cv2.VideoCapture(str(shared_data / "video" / "pets09_s2l1" / "vtest_480x360.mp4"))
    try:
        for _ in range(index):
            ok, bgr = cap.read()
            assert ok
    finally:
        cap.release()
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def test_centernet_finds_pets_pedestrians(onnx_models: dict[str, Path], shared_data: Path) -> None:
    detector = CenterNetPersonDetector(onnx_models["centernet"])
    gt = np.loadtxt(shared_data / "video" / "pets09_s2l1" / "gt" / "gt_480x360.txt", delimiter=",")
    matched = total = 0
    for frame in (1, 50):
        dets = detector.detect(_pets_frame(shared_data, frame))
        persons = dets.xyxy[dets.label == COCO_CLASS_NAMES.index("person")]
        rows = gt[gt[:, 0] == frame]
        for left, top, w, h in rows[:, 2:6]:
            box = (left, top, left + w, top + h)
            matched += max((box_iou(box, p) for p in persons.tolist()), default=0.0) > 0.5
        total += len(rows)
    assert matched / total >= 0.75, f"{matched}/{total}"


def test_centernet_decode_picks_peaks() -> None:
    heat = np.zeros((8, 8, 3), np.float32)
    heat[2, 5, 1] = 0.9  # class 1 at x=5, y=2
    heat[2, 6, 1] = 0.5  # its neighbour: not a peak
    wh = np.zeros((8, 8, 4), np.float32)
    wh[2, 5] = [4, 8, 12, 16]
    rows = centernet_decode(heat, wh, stride=4, top_k=2)
    np.testing.assert_allclose(rows[0], [20 - 4, 8 - 8, 20 + 12, 8 + 16, 0.9, 1], rtol=1e-6)
    assert rows[1, 4] == 0.0
    # min_score: only the rows at or above it, the same numbers
    np.testing.assert_array_equal(centernet_decode(heat, wh, stride=4, top_k=2, min_score=0.5), rows[:1])
    assert centernet_decode(heat, wh, stride=4, min_score=0.95).shape == (0, 6)


# ------------------------------------------------------------------------------------- geometry


def test_face_box_and_crop_follow_human() -> None:
    assert human_face_box((10, 20, 30, 60), scale=1.0) == (0.0, 20.0, 40.0, 60.0)  # squared about the centre
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    np.testing.assert_allclose(crop_and_resize(image, (0, 0, 4, 4), 4)[0, 0], image[0, 0])
    assert crop_and_resize(image, (-8, -8, -4, -4), 2).max() == 0  # outside the image is black


@pytest.mark.parametrize(
    ("height", "width"),
    [(120, 160), (256, 256), (37, 300), (360, 640), (640, 360), (2500, 3950), (601, 4001)],
)
def test_blazeface_input_is_sampled_without_a_padded_float_copy(height: int, width: int) -> None:
    """BlazeFace's input (the image letterboxed on a black square, or stretched, resized to 256x256) is
    computed from the pixels the bilinear resize reads, with the numbers cv2.resize gives for the whole
    padded float32 square (which, for a 7900x5000 photo, was 750 MB)."""
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    side = max(height, width)
    pad_x, pad_y = (side - width) // 2, (side - height) // 2
    square = np.zeros((side, side, 3), np.float32)
    square[pad_y : pad_y + height, pad_x : pad_x + width] = image
    expected = cv2.resize(square, (256, 256), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize_on_canvas(image, 256, side, side, pad_x, pad_y), expected, atol=1e-4)
    stretched = cv2.resize(image.astype(np.float32), (256, 256), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize_on_canvas(image, 256, width, height, 0, 0), stretched, atol=1e-4)


def test_estimated_mouth_corners_follow_the_eye_line() -> None:
    corners = estimate_mouth_corners(np.array([40.0, 50.0]), np.array([80.0, 50.0]), np.array([60.0, 90.0]))
    np.testing.assert_allclose(corners, [[60 - 16.56, 90], [60 + 16.56, 90]], rtol=1e-4)
