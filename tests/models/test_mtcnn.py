"""MTCNN: ``mtcnn_weights.npy`` -> ONNX checked against PyPI ``mtcnn`` 0.1.1 itself, and the detector port.

``tests/fixtures/mtcnn_reference.npz`` holds what ``mtcnn``'s Keras networks (TensorFlow 2.21) gave for
seeded inputs and what ``MTCNN().detect_faces`` found on five real photos, recorded by
``tools/record_mtcnn_reference.py``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest

from keeneye.analysis.images import read_image_file
from keeneye.models.convert.mtcnn import MtcnnFormatError, convert_mtcnn, read_weights
from keeneye.models.mtcnn import MtcnnDetector, nms_mtcnn, square_boxes
from keeneye.models.onnx_runtime import create_session

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mtcnn_reference.npz"
NETS = ("pnet", "rnet", "onet")
MAX_ABS_DIFF = 1e-4  # measured: <= 2e-6 on the recorded inputs (onnxruntime 1.32, CPU)

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    with np.load(FIXTURE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def weights_file(package_sources: Path) -> Path:
    return package_sources / "mtcnn" / "mtcnn" / "data" / "mtcnn_weights.npy"


@pytest.fixture(scope="module")
def onnx_files(weights_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("mtcnn")
    files = {}
    for net in NETS:
        files[net] = out / f"{net}.onnx"
        convert_mtcnn(weights_file, files[net], net=net)  # type: ignore[arg-type]
    return files


@pytest.mark.parametrize("net", NETS)
def test_network_matches_keras(net: str, onnx_files: dict[str, Path], reference: dict[str, Any]) -> None:
    model = onnx.load(str(onnx_files[net]))
    onnx.checker.check_model(model, full_check=True)
    session = create_session(onnx_files[net], threads=1)
    heads = ["prob", "reg", "landmarks"] if net == "onet" else ["prob", "reg"]
    got = session.run(heads, {"image": reference[f"{net}_input"]})
    for head, value in zip(heads, got, strict=True):
        want = reference[f"{net}_{head}"]
        assert value.shape == want.shape, (net, head)
        assert float(np.max(np.abs(value - want))) < MAX_ABS_DIFF, (net, head)


def _reference_faces(reference: dict[str, Any], index: int) -> np.ndarray:
    rows: np.ndarray = reference["faces"]
    return rows[rows[:, 0] == index, 1:]


def test_detector_reproduces_detect_faces(
    onnx_files: dict[str, Path], reference: dict[str, Any], shared_data: Path
) -> None:
    """With the reference's pyramid and boxes, the same faces, boxes, scores and keypoints."""
    detector = MtcnnDetector(*(onnx_files[n] for n in NETS), exact_pyramid=True, box_style="mtcnn")
    for i, rel in enumerate(reference["images"]):
        image = read_image_file(shared_data / str(rel))
        got = detector.detect(image)
        want = _reference_faces(reference, i)
        assert len(got) == len(want), rel
        order = np.argsort(-want[:, 4], kind="stable")
        for k, row in zip(range(len(got)), want[order], strict=True):
            x1, y1 = max(0, int(got.xyxy[k, 0])), max(0, int(got.xyxy[k, 1]))
            box = [x1, y1, int(got.xyxy[k, 2] - x1), int(got.xyxy[k, 3] - y1)]
            assert np.abs(np.array(box) - row[:4]).max() <= 1, (rel, box, row[:4])
            assert abs(float(got.score[k]) - row[4]) < 1e-4
            points = got.landmarks[k].T.reshape(-1) if got.landmarks is not None else None
            assert points is not None
            ref_points = row[5:].reshape(5, 2).T.reshape(-1)  # reference: (x, y) per keypoint, int
            assert np.abs(np.trunc(points) - ref_points).max() <= 1, rel


def test_default_detector_finds_the_same_faces(
    onnx_files: dict[str, Path], reference: dict[str, Any], shared_data: Path
) -> None:
    """The faster pyramid and square boxes keep every reference face above 0.9 (IoU >= 0.7 of squares)."""
    detector = MtcnnDetector(*(onnx_files[n] for n in NETS))
    for i, rel in enumerate(reference["images"]):
        want = _reference_faces(reference, i)
        want = want[want[:, 4] >= 0.9]
        got = detector.detect(read_image_file(shared_data / str(rel)))
        xyxy = np.column_stack([want[:, 0], want[:, 1], want[:, 0] + want[:, 2], want[:, 1] + want[:, 3]])
        for square in square_boxes(xyxy):
            ious = [_iou(square, g) for g in got.xyxy]
            assert ious and max(ious) >= 0.7, (rel, square)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def test_weights_loader_refuses_other_globals(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    payload = io.BytesIO()
    np.save(payload, np.array({"pnet": [Evil()]}, dtype=object), allow_pickle=True)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(payload.getvalue())
    with pytest.raises(MtcnnFormatError, match="refusing"):
        read_weights(bad)


def test_weights_file_layout(weights_file: Path) -> None:
    w = read_weights(weights_file)
    assert [a.shape for a in w["pnet"][:3]] == [(3, 3, 3, 10), (10,), (1, 1, 10)]
    assert w["onet"][-2].shape == (256, 10)


def test_nms_min_suppresses_boxes_inside_a_better_one() -> None:
    boxes = np.array([[0, 0, 99, 99], [10, 10, 49, 49], [200, 200, 249, 249]], np.float64)
    scores = np.array([0.9, 0.8, 0.7])
    assert nms_mtcnn(boxes, scores, 0.7, "min").tolist() == [0, 2]
    assert nms_mtcnn(boxes, scores, 0.7, "union").tolist() == [0, 1, 2]


def test_square_boxes_are_square_and_lower() -> None:
    sq = square_boxes(np.array([[100.0, 100.0, 190.0, 220.0]]))[0]
    assert sq[2] - sq[0] == pytest.approx(sq[3] - sq[1])
    assert (sq[1] + sq[3]) / 2 > 160.0  # moved toward the mouth, like BlazeFace's box


def test_large_photos_cost_about_what_the_cap_costs(onnx_files: dict[str, Path], shared_data: Path) -> None:
    """Over ``full_scale_pixels`` the smallest face grows with the image's side: the pyramid's first level
    keeps the cap's area, and the faces of a WIDER photo enlarged 4x (they grow with it) are all found."""
    cap = 1536 * 1536
    detector = MtcnnDetector(*(onnx_files[n] for n in NETS), min_face_px=16, full_scale_pixels=cap)
    assert detector.effective_min_face_px(768, 1024) == 16  # under the cap: unchanged
    assert detector.scales(768, 1024) == MtcnnDetector(*(onnx_files[n] for n in NETS), min_face_px=16).scales(
        768, 1024
    )
    assert detector.effective_min_face_px(3000, 4000) == pytest.approx(16 * np.sqrt(12e6 / cap))
    first = detector.scales(3000, 4000)[0]
    assert 3000 * first * 4000 * first == pytest.approx(cap * (12 / 16) ** 2)
    photo = read_image_file(
        shared_data
        / "faces/widerface_val/subset_orig/images/11--Meeting"
        / "11_Meeting_Meeting_11_Meeting_Meeting_11_560.jpg"
    )
    small = detector.detect(photo)
    big = detector.detect(np.asarray(cv2.resize(photo, (photo.shape[1] * 4, photo.shape[0] * 4)), np.uint8))
    assert len(small.score) >= 10
    for box in small.xyxy[small.score >= 0.95]:
        assert max(_iou(box * 4, b) for b in big.xyxy) >= 0.5
