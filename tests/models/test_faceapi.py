"""face-api's age/gender and expression nets: weights manifests -> ONNX, checked against face-api itself.

``tests/fixtures/faceapi_reference.json`` holds what face-api 1.7.15's own ``AgeGenderNet`` and
``FaceExpressionNet`` (its TypeScript networks on TensorFlow.js 4.22's CPU backend) gave for two inputs
made by formulas, recorded by ``tools/record_faceapi_reference.mjs``. Then the runtime classes on a real
photo: a face's crop, its mirror, and what the pipeline reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from keeneye.analysis.images import read_image_file
from keeneye.core.types import Face
from keeneye.models.convert.faceapi import FaceApiFormatError, convert_faceapi, read_weights
from keeneye.models.faceapi import (
    FACEAPI_EXPRESSION_LABELS,
    FaceApiAgeGender,
    FaceApiExpression,
    face_crops,
)
from keeneye.models.onnx_runtime import create_session

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "faceapi_reference.json"
MANIFESTS = {
    "age_gender": "age_gender_model-weights_manifest.json",
    "expression": "face_expression_model-weights_manifest.json",
}
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.models


def _input(name: str) -> np.ndarray:
    """The recorder's formulas (tools/record_faceapi_reference.mjs), [1, 112, 112, 3] float32."""
    if name == "ramp":
        return (
            ((np.arange(112 * 112 * 3, dtype=np.int64) * 7919) % 251)
            .astype(np.float32)
            .reshape(1, 112, 112, 3)
        )
    y, x, c = np.meshgrid(np.arange(112), np.arange(112), np.arange(3), indexing="ij")
    smooth: np.ndarray = (127.5 + 100 * np.sin(0.11 * x + 0.07 * y + 2.1 * c)).astype(np.float32)[None]
    return smooth


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


@pytest.fixture(scope="module")
def model_dir(package_sources: Path) -> Path:
    return package_sources / "face-api" / "model"


@pytest.fixture(scope="module")
def onnx_files(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("faceapi")
    files = {}
    for net, manifest in MANIFESTS.items():
        files[net] = out / f"{net}.onnx"
        convert_faceapi(model_dir / manifest, files[net], net=net)  # type: ignore[arg-type]
    return files


@pytest.mark.parametrize("case", ["ramp", "smooth"])
def test_networks_match_faceapi(case: str, onnx_files: dict[str, Path], reference: dict[str, Any]) -> None:
    want = reference["cases"][case]
    for path in onnx_files.values():
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    age, gender = create_session(onnx_files["age_gender"], threads=1).run(
        ["age", "gender"], {"image": _input(case)}
    )
    (expression,) = create_session(onnx_files["expression"], threads=1).run(
        ["expression"], {"image": _input(case)}
    )
    # measured: age within 6e-5 years, probabilities within 3e-7 (onnxruntime CPU against TF.js CPU)
    assert abs(float(age[0, 0]) - want["age"][0]) < 1e-3
    np.testing.assert_allclose(gender[0], want["gender"], atol=1e-5)
    np.testing.assert_allclose(expression[0], want["expression"], atol=1e-5)


def test_every_tensor_is_used_and_dequantised(model_dir: Path) -> None:
    weights = read_weights(model_dir / MANIFESTS["age_gender"])
    assert weights["fc/gender/weights"].shape == (512, 2) and weights["fc/age/bias"].shape == (1,)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())
    # the converter refuses a manifest whose tensors the graph would not use (a different layout)
    from keeneye.models.convert.faceapi import build_model

    with pytest.raises(FaceApiFormatError, match="not used"):
        build_model("age_gender", {**weights, "extra/filters": np.zeros((1,), np.float32)})
    with pytest.raises(FaceApiFormatError, match="missing"):
        build_model("age_gender", {k: v for k, v in weights.items() if k != "fc/age/weights"})


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("not json")
    with pytest.raises(FaceApiFormatError, match="not a readable weights manifest"):
        read_weights(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(
        json.dumps([{"paths": ["w.bin"], "weights": [{"name": "a", "shape": [2], "dtype": "float32"}]}])
    )
    (tmp_path / "w.bin").write_bytes(np.zeros(3, "<f4").tobytes())
    with pytest.raises(FaceApiFormatError, match="bytes left"):
        read_weights(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(json.dumps([{"paths": ["../w.bin"], "weights": []}]))
    with pytest.raises(FaceApiFormatError, match="not a file name"):
        read_weights(tmp_path / "m.json")


def test_crop_is_the_square_box_and_its_mirror() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:150, 100:200] = (200, 10, 10)  # a red square where the face box is
    image[50:150, 100:110] = (10, 10, 200)  # its left edge blue
    face = Face(xyxy=np.array([100, 50, 200, 150], np.float32), score=0.99)
    crops = face_crops(image, [face], margin=1.0)
    assert crops.shape == (2, 112, 112, 3) and crops.dtype == np.float32
    assert crops[0, 56, 56].tolist() == [200.0, 10.0, 10.0]
    assert crops[0, 56, 2, 2] > 150 and crops[1, 56, -3, 2] > 150  # the blue edge, then mirrored
    # a box at the image's corner: the part outside the image is black, not smeared edge pixels
    corner = Face(xyxy=np.array([-50, -50, 50, 50], np.float32), score=0.9)
    assert face_crops(image, [corner], margin=1.0)[0, :40, :40].max() == 0


def test_runtime_on_a_real_face(models_dir: Path) -> None:
    photo = SHARED / "faces" / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    image = read_image_file(photo)
    face = Face(xyxy=np.array([78, 72, 172, 188], np.float32), score=0.99)  # his face in LFW's 250x250
    ag = FaceApiAgeGender(models_dir / "faceapi-age-gender.onnx").classify(image, [face])
    assert len(ag) == 1 and ag[0]["gender"][0] == "Male" and ag[0]["gender"][1] > 0.9
    assert 20 < ag[0]["age"] < 60  # he was 33 when the photo was taken
    ex = FaceApiExpression(models_dir / "faceapi-expression.onnx").classify(image, [face, face])
    assert len(ex) == 2 and set(ex[0]["emotions"]) == set(FACEAPI_EXPRESSION_LABELS)
    assert abs(sum(ex[0]["emotions"].values()) - 1.0) < 1e-5 and ex[0] == ex[1]
    assert FaceApiAgeGender(models_dir / "faceapi-age-gender.onnx").classify(image, []) == []


def test_fused_gender_is_the_mean_of_the_two_models(models_dir: Path) -> None:
    from keeneye.models.faceapi import FusedAgeGender
    from keeneye.models.human import FaceResEmbedder

    image = read_image_file(SHARED / "faces" / "face_recognition" / "two_people.jpg")
    # two boxes in the photo (the arithmetic is checked, whatever each box holds)
    boxes = [
        Face(xyxy=np.array(b, np.float32), score=0.99) for b in ([60, 40, 160, 160], [300, 60, 400, 180])
    ]
    faceapi = FaceApiAgeGender(models_dir / "faceapi-age-gender.onnx")
    faceres = FaceResEmbedder(models_dir / "human-faceres.onnx")
    fused = FusedAgeGender(faceapi, faceres).classify(image, boxes)

    def p_male(g: tuple[str, float]) -> float:
        return g[1] if g[0] == "Male" else 1 - g[1]

    for f, a, b in zip(fused, faceapi.classify(image, boxes), faceres.classify(image, boxes), strict=True):
        assert f["age"] == a["age"]
        assert abs(p_male(f["gender"]) - (p_male(a["gender"]) + p_male(b["gender"])) / 2) < 1e-6
        assert 0.5 <= f["gender"][1] <= 1.0


def test_settings_choose_the_models(models_dir: Path, tmp_path: Path) -> None:
    from keeneye.config import Settings
    from keeneye.models.faceapi import FusedAgeGender
    from keeneye.models.human import FaceResEmbedder
    from keeneye.models.registry import build_classifiers

    def kinds(**attrs: object) -> list[type]:
        cfg = Settings(data_dir=tmp_path, models_path=models_dir, faces={"attributes": attrs})
        return [type(c) for c in build_classifiers(cfg)]

    assert kinds() == [FaceApiExpression, FusedAgeGender]  # the defaults
    assert kinds(expression="none", age_gender="faceapi") == [FaceApiAgeGender]
    # settings files written when the choice was a boolean still load: true meant faceres, false none
    assert kinds(expression="none", age_gender=True) == [FaceResEmbedder]
    assert kinds(expression="none", age_gender="false") == []
