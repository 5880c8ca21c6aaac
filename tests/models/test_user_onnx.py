"""User-supplied InsightFace / OpenCV-zoo ONNX formats, proven on tiny hand-built graphs.

No real weights: each test writes an ONNX file with the real format's input/output names and shapes.
Detector graphs ignore the pixels (``output = constant + 0 * mean(input)``) and plant a few strong
anchors at known cells, so decoding, letterbox scaling, NMS and thresholds have exact expected values.
Embedder graphs compute the per-channel mean of their input, which exposes normalisation and channel
order, followed by a fixed linear map so L2 normalisation is visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from keeneye.core.errors import BackendUnavailable, InvalidParameter
from keeneye.core.types import EYE_LEFT, EYE_RIGHT, MOUTH_LEFT, MOUTH_RIGHT, NOSE, Face
from keeneye.models.align import (
    ARCFACE_TEMPLATE_112,
    FIVE_POINT_NAMES,
    align_5point,
    estimate_similarity,
    fit_size,
    letterbox,
    nms_xyxy,
)
from keeneye.models.base import FaceDetector, FaceEmbedder
from keeneye.models.insightface import ArcFaceEmbedder, ScrfdDetector, anchor_centers, detect_scrfd_layout
from keeneye.models.opencv_zoo import SFaceEmbedder, YuNetDetector, yunet_blob

Dim = int | str

# ---------------------------------------------------------------------------------------------- builders


def _save(
    tmp_path: Path, name: str, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]
) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def constant_model(
    tmp_path: Path,
    name: str,
    input_name: str,
    input_shape: Sequence[Dim],
    outputs: Sequence[tuple[str, np.ndarray]],
) -> Path:
    """A graph whose outputs are fixed tensors (plus 0 * mean(input), so the input is consumed)."""
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["_mean"], keepdims=0),
        helper.make_node("Mul", ["_mean", "_zero"], ["_z"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "_zero")]
    outs = []
    for out_name, value in outputs:
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{out_name}_const"))
        nodes.append(helper.make_node("Add", [f"{out_name}_const", "_z"], [out_name]))
        outs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(value.shape)))
    inp = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))
    return _save(tmp_path, name, nodes, [inp], outs, inits)


def channel_mean_model(
    tmp_path: Path,
    name: str,
    input_name: str,
    input_shape: Sequence[Dim],
    output_name: str,
    weight: np.ndarray,
    bias: np.ndarray,
    prenorm: tuple[float, float] | None = None,
) -> Path:
    """out = mean_hw(x) @ weight + bias, (N, D). ``prenorm=(sub, mul)`` first applies MXNet-style
    ``_minus0`` / ``_mul0`` nodes (what InsightFace's ArcFace loader looks for)."""
    nodes: list[Any] = []
    inits = [
        numpy_helper.from_array(weight.astype(np.float32), "W"),
        numpy_helper.from_array(bias.astype(np.float32), "b"),
    ]
    x = input_name
    if prenorm is not None:
        inits += [
            numpy_helper.from_array(np.array(prenorm[0], np.float32), "sub_c"),
            numpy_helper.from_array(np.array(prenorm[1], np.float32), "mul_c"),
        ]
        nodes += [
            helper.make_node("Sub", [x, "sub_c"], ["x_sub"], name="_minus0"),
            helper.make_node("Mul", ["x_sub", "mul_c"], ["x_mul"], name="_mul0"),
        ]
        x = "x_mul"
    nodes += [
        helper.make_node("ReduceMean", [x], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["m", "W"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], [output_name]),
    ]
    inp = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [input_shape[0], weight.shape[1]])
    return _save(tmp_path, name, nodes, [inp], [out], inits)


# SCRFD plants: stride, row, col, anchor, score, box distances (l, t, r, b) and keypoint offsets (5, 2),
# both in stride units from the anchor centre.
ScrfdPlant = tuple[int, int, int, int, float, tuple[float, ...], tuple[tuple[float, float], ...]]
KPS_OFFSETS = ((-0.5, -0.25), (0.5, -0.25), (0.0, 0.25), (-0.4, 0.8), (0.4, 0.8))
SCRFD_PLANTS: list[ScrfdPlant] = [
    (16, 1, 2, 1, 0.9, (1.0, 0.5, 1.0, 1.5), KPS_OFFSETS),  # A: the face
    (16, 1, 2, 0, 0.8, (1.0, 0.5, 1.1, 1.5), KPS_OFFSETS),  # B: near-duplicate of A, NMS drops it
    (8, 4, 1, 0, 0.7, (0.5, 0.5, 0.5, 0.5), KPS_OFFSETS),  # C: a small separate face
    (32, 1, 1, 1, 0.3, (0.2, 0.2, 0.2, 0.2), KPS_OFFSETS),  # D: below the default threshold
]
# Expected, in 64x64 model pixels: A centre (32, 16); C centre (8, 32).
BOX_A, BOX_C = (16.0, 8.0, 48.0, 40.0), (4.0, 28.0, 12.0, 36.0)


def _kps(center: tuple[float, float], stride: int) -> np.ndarray:
    return np.asarray(np.array(center) + np.array(KPS_OFFSETS) * stride, dtype=np.float64)


def scrfd_tensors(
    hw: tuple[int, int], strides: Sequence[int], anchors: int, plants: Sequence[ScrfdPlant]
) -> dict[tuple[str, int], np.ndarray]:
    """(role, stride) -> (N, C) arrays: background score 0.01, the plants where they belong."""
    out: dict[tuple[str, int], np.ndarray] = {}
    for s in strides:
        n = math.ceil(hw[0] / s) * math.ceil(hw[1] / s) * anchors
        out[("score", s)] = np.full((n, 1), 0.01, np.float32)
        out[("bbox", s)] = np.ones((n, 4), np.float32)
        out[("kps", s)] = np.zeros((n, 10), np.float32)
    for s, r, c, a, score, dist, kps in plants:
        i = (r * math.ceil(hw[1] / s) + c) * anchors + a
        out[("score", s)][i, 0] = score
        out[("bbox", s)][i] = dist
        out[("kps", s)][i] = np.array(kps).reshape(-1)
    return out


def scrfd_model(
    tmp_path: Path,
    *,
    kps: bool = True,
    batched: bool = True,
    interleaved: bool = False,
    fixed: bool = True,
    hw: tuple[int, int] = (64, 64),
    strides: Sequence[int] = (8, 16, 32),
    anchors: int = 2,
    plants: Sequence[ScrfdPlant] = SCRFD_PLANTS,
    name: str = "scrfd",
) -> Path:
    t = scrfd_tensors(hw, strides, anchors, plants)
    roles = ("score", "bbox", "kps") if kps else ("score", "bbox")
    order = (
        [(r, s) for s in strides for r in roles] if interleaved else [(r, s) for r in roles for s in strides]
    )
    outputs = [(f"{r}_{s}", t[(r, s)][None] if batched else t[(r, s)]) for r, s in order]
    shape: list[Dim] = [1, 3, *hw] if fixed else ["batch", 3, "height", "width"]
    return constant_model(tmp_path, name, "input.1", shape, outputs)


# YuNet plants: stride, row, col, cls, obj, bbox (dx, dy, log w, log h), kps offsets (5, 2) in cell units.
YuNetPlant = tuple[int, int, int, float, float, tuple[float, ...], tuple[tuple[float, float], ...]]
YUNET_KPS = ((-0.4, -0.3), (0.4, -0.3), (0.0, 0.1), (-0.3, 0.6), (0.3, 0.6))
YUNET_PLANTS: list[YuNetPlant] = [
    (16, 1, 2, 0.81, 1.0, (0.5, 0.5, math.log(2), math.log(3)), YUNET_KPS),  # P: sqrt(.81) = .9
    (8, 3, 5, 0.64, 1.0, (0.0, 0.0, math.log(4.2), math.log(6)), YUNET_KPS),  # Q: P's box 5% wider, .8
    (8, 6, 1, 1.5, 0.49, (0.0, 0.0, 0.0, 0.0), YUNET_KPS),  # R: cls clamps to 1 -> sqrt(.49) = .7
    (32, 0, 1, 0.25, 0.25, (0.0, 0.0, 0.0, 0.0), YUNET_KPS),  # S: .25, below threshold
    (32, 1, 0, -0.5, 1.0, (0.0, 0.0, 0.0, 0.0), YUNET_KPS),  # T: negative cls clamps to 0
]
BOX_P, BOX_R = (24.0, 0.0, 56.0, 48.0), (4.0, 44.0, 12.0, 52.0)
KPS_P = np.array([(2 + dx, 1 + dy) for dx, dy in YUNET_KPS]) * 16


def yunet_model(
    tmp_path: Path,
    *,
    hw: tuple[int, int] = (64, 64),
    fixed: bool = True,
    drop: str | None = None,
    name: str = "yunet",
) -> Path:
    cells = {s: (hw[0] // s, hw[1] // s) for s in (8, 16, 32)}
    t: dict[str, np.ndarray] = {}
    for s, (rows, cols) in cells.items():
        n = rows * cols
        t[f"cls_{s}"], t[f"obj_{s}"] = np.full((n, 1), 0.01), np.full((n, 1), 0.01)
        t[f"bbox_{s}"], t[f"kps_{s}"] = np.zeros((n, 4)), np.zeros((n, 10))
    for s, r, c, cls, obj, bbox, kps in YUNET_PLANTS:
        i = r * cells[s][1] + c
        t[f"cls_{s}"][i], t[f"obj_{s}"][i] = cls, obj
        t[f"bbox_{s}"][i], t[f"kps_{s}"][i] = bbox, np.array(kps).reshape(-1)
    names = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32) if f"{k}_{s}" != drop]
    shape: list[Dim] = [1, 3, *hw] if fixed else [1, 3, "height", "width"]
    return constant_model(tmp_path, name, "input", shape, [(n, t[n][None]) for n in names])


def uniform_image(w: int, h: int, rgb: tuple[int, int, int] = (200, 100, 50)) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    return img


# ------------------------------------------------------------------------------------------------ SCRFD

SCRFD_VARIANTS = [
    pytest.param({}, id="9-outputs-batched-fixed"),
    pytest.param(
        {"batched": False, "interleaved": True, "fixed": False}, id="9-outputs-unbatched-interleaved"
    ),
]


@pytest.mark.parametrize("variant", SCRFD_VARIANTS)
def test_scrfd_decodes_letterboxed_boxes_and_keypoints(tmp_path: Path, variant: dict[str, Any]) -> None:
    det = ScrfdDetector(scrfd_model(tmp_path, **variant), input_size=(64, 64) if variant else (640, 640))
    assert isinstance(det, FaceDetector)
    assert det.input_size == (64, 64)  # a fixed-size model overrides the configured input_size
    assert det.layout.kps_idx is not None and det.layout.num_anchors == 2
    # 128x96 image -> letterboxed to 64x48 (scale 0.5): original = model pixels * 2.
    out = det.detect(uniform_image(128, 96))
    assert out.landmark_names == (EYE_LEFT, EYE_RIGHT, NOSE, MOUTH_LEFT, MOUTH_RIGHT)
    np.testing.assert_allclose(out.score, [0.9, 0.7], atol=1e-6)
    np.testing.assert_allclose(out.xyxy, np.array([BOX_A, BOX_C]) * 2, atol=1e-4)
    assert out.landmarks is not None
    np.testing.assert_allclose(out.landmarks[0], _kps((32, 16), 16) * 2, atol=1e-4)
    np.testing.assert_allclose(out.landmarks[1], _kps((8, 32), 8) * 2, atol=1e-4)
    assert out.landmarks[0, 0, 0] < out.landmarks[0, 1, 0]  # eyeLeft is image-left


def test_scrfd_layout_is_found_by_shape_not_order(tmp_path: Path) -> None:
    det = ScrfdDetector(
        scrfd_model(tmp_path, batched=False, interleaved=True, fixed=False), input_size=(64, 64)
    )
    # interleaved order: score_8, bbox_8, kps_8, score_16, ...
    assert (
        det.layout.score_idx == (0, 3, 6)
        and det.layout.bbox_idx == (1, 4, 7)
        and det.layout.kps_idx == (2, 5, 8)
    )


def test_scrfd_without_keypoints_gives_no_landmarks(tmp_path: Path) -> None:
    det = ScrfdDetector(scrfd_model(tmp_path, kps=False))
    out = det.detect(uniform_image(64, 64))
    assert det.layout.kps_idx is None and out.landmarks is None and out.landmark_names == ()
    np.testing.assert_allclose(out.xyxy, [BOX_A, BOX_C], atol=1e-4)


def test_scrfd_five_stride_single_anchor_variant(tmp_path: Path) -> None:
    plants: list[ScrfdPlant] = [(64, 1, 1, 0, 0.95, (0.5, 0.5, 0.5, 0.5), KPS_OFFSETS)]
    path = scrfd_model(tmp_path, hw=(128, 128), strides=(8, 16, 32, 64, 128), anchors=1, plants=plants)
    det = ScrfdDetector(path)
    out = det.detect(uniform_image(128, 128))
    assert det.layout.strides == (8, 16, 32, 64, 128) and det.layout.num_anchors == 1
    np.testing.assert_allclose(out.xyxy, [(32.0, 32.0, 96.0, 96.0)], atol=1e-4)
    assert out.landmarks is not None
    np.testing.assert_allclose(out.landmarks[0], _kps((64, 64), 64), atol=1e-4)


@pytest.mark.parametrize(
    ("threshold", "nms_iou", "expected_scores"),
    [
        (0.5, 0.4, [0.9, 0.7]),  # B suppressed by A (IoU 0.95), D under threshold
        (0.25, 0.4, [0.9, 0.7, 0.3]),  # D now passes
        (0.75, 0.4, [0.9]),
        (0.5, 0.99, [0.9, 0.8, 0.7]),  # loose NMS keeps the near-duplicate
        (0.95, 0.4, []),
    ],
)
def test_scrfd_thresholds_and_nms(
    tmp_path: Path, threshold: float, nms_iou: float, expected_scores: list[float]
) -> None:
    det = ScrfdDetector(scrfd_model(tmp_path), score_threshold=threshold, nms_iou=nms_iou)
    out = det.detect(uniform_image(64, 64))
    np.testing.assert_allclose(out.score, expected_scores, atol=1e-6)
    assert out.landmarks is not None and out.landmarks.shape == (len(expected_scores), 5, 2)


def test_scrfd_preprocess_is_rgb_mean_127_5_std_128_letterboxed(tmp_path: Path) -> None:
    det = ScrfdDetector(scrfd_model(tmp_path))
    blob, box = det._preprocess(uniform_image(128, 96, (200, 100, 50)))
    assert blob.shape == (1, 3, 64, 64) and blob.dtype == np.float32
    assert (box.scale_x, box.scale_y) == (0.5, 0.5)
    np.testing.assert_allclose(blob[0, :, 10, 10], (np.array([200, 100, 50]) - 127.5) / 128, atol=1e-6)
    np.testing.assert_allclose(blob[0, :, 48:, :], -127.5 / 128)  # bottom padding is black
    flipped, _ = det._preprocess(uniform_image(128, 96)[:, ::-1])  # negative-stride views are fine
    assert flipped.shape == (1, 3, 64, 64)


def test_scrfd_rejects_foreign_layouts(tmp_path: Path) -> None:
    seven = [(f"o{i}", np.zeros((1, 128, 1), np.float32)) for i in range(7)]
    with pytest.raises(BackendUnavailable, match="6, 9, 10 or 15"):
        ScrfdDetector(constant_model(tmp_path, "seven", "input.1", [1, 3, 64, 64], seven))
    # a dynamic model whose outputs do not match the configured input size
    with pytest.raises(BackendUnavailable, match="unexpected shape"):
        ScrfdDetector(scrfd_model(tmp_path, fixed=False, name="dyn"), input_size=(640, 640))


def test_scrfd_layout_detection_and_anchor_centres() -> None:
    shapes = [(128, 1), (32, 1), (8, 1), (128, 4), (32, 4), (8, 4)]
    layout = detect_scrfd_layout(shapes, (64, 64))
    assert layout.score_idx == (0, 1, 2) and layout.bbox_idx == (3, 4, 5) and layout.kps_idx is None
    centers = anchor_centers((64, 64), 32, 2)
    np.testing.assert_array_equal(
        centers, [[0, 0], [0, 0], [32, 0], [32, 0], [0, 32], [0, 32], [32, 32], [32, 32]]
    )


# ------------------------------------------------------------------------------------------------ YuNet


@pytest.mark.parametrize(("image_wh", "scale"), [((128, 128), 2.0), ((48, 40), 1.0)])
def test_yunet_decodes_like_face_detector_yn(tmp_path: Path, image_wh: tuple[int, int], scale: float) -> None:
    det = YuNetDetector(yunet_model(tmp_path))
    assert isinstance(det, FaceDetector)
    # 128x128 is shrunk into the fixed 64x64 input (x2 back); 48x40 is padded, never enlarged (x1).
    out = det.detect(uniform_image(*image_wh))
    np.testing.assert_allclose(out.score, [0.9, 0.7], atol=1e-6)  # Q suppressed, S below .6, T clamped to 0
    np.testing.assert_allclose(out.xyxy, np.array([BOX_P, BOX_R]) * scale, atol=1e-4)
    assert out.landmarks is not None and out.landmark_names == FIVE_POINT_NAMES
    np.testing.assert_allclose(out.landmarks[0], KPS_P * scale, atol=1e-4)


def test_yunet_right_eye_of_subject_is_eye_left(tmp_path: Path) -> None:
    """YuNet's first point ("right eye", the subject's) is on the image left: keeneye's eyeLeft."""
    out = YuNetDetector(yunet_model(tmp_path)).detect(uniform_image(64, 64))
    assert out.landmarks is not None
    named = dict(zip(out.landmark_names, out.landmarks[0].tolist(), strict=True))
    assert named[EYE_LEFT] == pytest.approx(KPS_P[0].tolist())  # YuNet index 0
    assert named[MOUTH_RIGHT] == pytest.approx(KPS_P[4].tolist())  # YuNet index 4, "left mouth corner"
    assert named[EYE_LEFT][0] < named[EYE_RIGHT][0] and named[MOUTH_LEFT][0] < named[MOUTH_RIGHT][0]


def test_yunet_dynamic_input_pads_to_multiples_of_32(tmp_path: Path) -> None:
    # a 100x70 image is not resized; it is padded to 128x96, whose grid the graph's outputs match
    det = YuNetDetector(yunet_model(tmp_path, hw=(96, 128), fixed=False))
    out = det.detect(uniform_image(100, 70))
    np.testing.assert_allclose(out.xyxy, [BOX_P, BOX_R], atol=1e-4)


@pytest.mark.parametrize(
    ("threshold", "nms_iou", "expected_scores"),
    [(0.6, 0.3, [0.9, 0.7]), (0.2, 0.3, [0.9, 0.7, 0.25]), (0.6, 0.99, [0.9, 0.8, 0.7]), (0.95, 0.3, [])],
)
def test_yunet_thresholds_and_nms(
    tmp_path: Path, threshold: float, nms_iou: float, expected_scores: list[float]
) -> None:
    out = YuNetDetector(yunet_model(tmp_path), score_threshold=threshold, nms_iou=nms_iou).detect(
        uniform_image(64, 64)
    )
    np.testing.assert_allclose(out.score, expected_scores, atol=1e-6)


def test_yunet_blob_is_bgr_unnormalised_and_padded() -> None:
    blob, box = yunet_blob(uniform_image(100, 70, (200, 100, 50)), (640, 640), None)
    assert blob.shape == (1, 3, 96, 128) and (box.scale_x, box.scale_y) == (1.0, 1.0)
    np.testing.assert_array_equal(blob[0, :, 0, 0], [50, 100, 200])  # BGR, 0-255
    assert not blob[0, :, 70:, :].any() and not blob[0, :, :, 100:].any()
    big, box = yunet_blob(uniform_image(1000, 500), (640, 640), None)
    assert big.shape == (1, 3, 320, 640) and box.scale_x == pytest.approx(0.64)


def test_yunet_rejects_other_formats(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="kps_32"):
        YuNetDetector(yunet_model(tmp_path, drop="kps_32"))


# -------------------------------------------------------------------------------------------- embedders

RGB_A, RGB_B = (200, 100, 50), (30, 160, 240)


def _two_face_scene() -> tuple[np.ndarray, list[Face]]:
    """A 600x300 image, left half RGB_A, right half RGB_B, one face fully inside each half."""
    img = np.concatenate([uniform_image(300, 300, RGB_A), uniform_image(300, 300, RGB_B)], axis=1)
    faces = []
    for dx in (40.0, 340.0):
        pts = ARCFACE_TEMPLATE_112 * 1.5 + np.array([dx, 60.0])
        faces.append(
            Face(
                np.array([dx, 60, dx + 168, 228], np.float32),
                0.9,
                {n: (float(x), float(y)) for n, (x, y) in zip(FIVE_POINT_NAMES, pts, strict=True)},
            )
        )
    return img, faces


def _expected(
    rgb: tuple[int, int, int], mean: float, std: float, weight: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    v = ((np.array(rgb, np.float64) - mean) / std) @ weight + bias
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


W4, B4 = np.eye(3, 4), np.array([0.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize("batch", [1, "N"])
def test_arcface_normalises_rgb_and_l2(tmp_path: Path, batch: Dim) -> None:
    path = channel_mean_model(tmp_path, "arcface", "input.1", [batch, 3, 112, 112], "683", W4, B4)
    emb = ArcFaceEmbedder(path, "arcface-test")
    assert isinstance(emb, FaceEmbedder)
    assert emb.dim == 4 and emb.required_landmarks == FIVE_POINT_NAMES
    assert (emb.input_mean, emb.input_std) == (127.5, 127.5)
    img, faces = _two_face_scene()
    out = emb.embed(img, faces)
    assert out.shape == (2, 4) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0], _expected(RGB_A, 127.5, 127.5, W4, B4), atol=1e-5)
    np.testing.assert_allclose(out[1], _expected(RGB_B, 127.5, 127.5, W4, B4), atol=1e-5)


def test_arcface_mxnet_graph_gets_raw_pixels(tmp_path: Path) -> None:
    path = channel_mean_model(
        tmp_path, "mx", "data", ["N", 3, 112, 112], "fc1", W4, B4, prenorm=(127.5, 1 / 128)
    )
    emb = ArcFaceEmbedder(path, "arcface-mx")
    assert (emb.input_mean, emb.input_std) == (0.0, 1.0)
    img, faces = _two_face_scene()
    np.testing.assert_allclose(emb.embed(img, faces)[0], _expected(RGB_A, 127.5, 128.0, W4, B4), atol=1e-5)


def test_arcface_edge_cases(tmp_path: Path) -> None:
    emb = ArcFaceEmbedder(channel_mean_model(tmp_path, "a", "input.1", ["N", 3, 112, 112], "o", W4, B4), "a")
    img, faces = _two_face_scene()
    assert emb.embed(img, []).shape == (0, 4)
    del faces[0].landmarks[NOSE]
    with pytest.raises(InvalidParameter, match="nose"):
        emb.embed(img, faces)


def test_sface_feeds_raw_rgb_and_l2_normalises(tmp_path: Path) -> None:
    weight = np.eye(3, 128)
    bias = np.concatenate([np.zeros(3), np.ones(125)])
    path = channel_mean_model(tmp_path, "sface", "data", [1, 3, 112, 112], "fc1", weight, bias)
    emb = SFaceEmbedder(path, "sface-test")
    assert isinstance(emb, FaceEmbedder) and emb.dim == 128
    img, faces = _two_face_scene()
    out = emb.embed(img, faces)
    np.testing.assert_allclose(out[0], _expected(RGB_A, 0.0, 1.0, weight, bias), atol=1e-5)
    np.testing.assert_allclose(out[1], _expected(RGB_B, 0.0, 1.0, weight, bias), atol=1e-5)


# -------------------------------------------------------------------------------------- alignment & NMS


def _similarity(scale: float, degrees: float, t: tuple[float, float]) -> np.ndarray:
    a = math.radians(degrees)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.hstack([rot, np.array(t).reshape(2, 1)])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts @ m[:, :2].T + m[:, 2], dtype=np.float64)


def test_estimate_similarity_recovers_a_known_transform() -> None:
    m = _similarity(2.2, 25.0, (60.0, 80.0))
    src = ARCFACE_TEMPLATE_112.astype(np.float64)
    np.testing.assert_allclose(estimate_similarity(src, _apply(m, src)), m, atol=1e-9)


def test_estimate_similarity_never_reflects() -> None:
    src = ARCFACE_TEMPLATE_112.astype(np.float64)
    mirrored = src * np.array([-1.0, 1.0])
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(InvalidParameter, match="degenerate"):
        estimate_similarity(np.ones((5, 2)), src)


def test_align_5point_puts_landmarks_on_the_template() -> None:
    """Gaussian dots at a rotated, scaled copy of the template land within 0.5 px of it after alignment."""
    m = _similarity(2.2, 25.0, (150.0, 90.0))
    pts = _apply(m, ARCFACE_TEMPLATE_112.astype(np.float64))
    yy, xx = np.mgrid[:400, :400].astype(np.float64)
    field = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0**2)) for x, y in pts)
    img = np.repeat((np.clip(field, 0, 1) * 255).round().astype(np.uint8)[:, :, None], 3, axis=2)
    crop = align_5point(img, pts)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    cy, cx = np.mgrid[:112, :112].astype(np.float64)
    for tx, ty in ARCFACE_TEMPLATE_112.astype(np.float64):
        win = ((cx - tx) ** 2 + (cy - ty) ** 2 <= 6.0**2) * crop[:, :, 0].astype(np.float64)
        found = np.array([(win * cx).sum(), (win * cy).sum()]) / win.sum()
        assert np.hypot(*(found - (tx, ty))) < 0.5


@pytest.mark.parametrize(
    ("image_wh", "box_wh", "upscale", "expected"),
    [
        ((128, 96), (64, 64), True, (64, 48)),
        ((96, 128), (64, 64), True, (48, 64)),
        ((32, 16), (64, 64), True, (64, 32)),
        ((32, 16), (64, 64), False, (32, 16)),
    ],
)
def test_fit_size(
    image_wh: tuple[int, int], box_wh: tuple[int, int], upscale: bool, expected: tuple[int, int]
) -> None:
    assert fit_size(image_wh, box_wh, upscale) == expected


def test_letterbox_maps_back_to_original_pixels() -> None:
    box = letterbox(uniform_image(128, 96), (64, 48), (64, 64))
    assert box.canvas.shape == (64, 64, 3) and not box.canvas[48:].any()
    np.testing.assert_allclose(box.to_original(np.array([[10.0, 20.0]], np.float32)), [[20.0, 40.0]])


def test_nms_keeps_best_and_drops_overlaps() -> None:
    xyxy = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    score = np.array([0.8, 0.9, 0.7, 0.8], np.float32)
    assert nms_xyxy(xyxy, score, 0.5).tolist() == [1, 2]  # IoU(0, 1) = 0.82
    assert nms_xyxy(xyxy, score, 0.9).tolist() == [1, 0, 2]  # ties: the earlier row wins
    assert nms_xyxy(xyxy, score, 0.9, top_k=2).tolist() == [1, 0]
