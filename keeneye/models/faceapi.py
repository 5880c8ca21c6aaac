"""face-api's age/gender and expression networks (npm ``@vladmandic/face-api`` 1.7.15, MIT) on ONNX Runtime.

Converted by ``keeneye.models.convert.faceapi`` (graphs written from the package's TypeScript). Each
face's crop is the detector's box made square about its centre and grown by ``margin`` (1.1 for age and
gender: chosen on the even-indexed UTKFace files, bench/attributes.py; 1.0 for expression: the box squared,
not grown, nearest to face-api's own crop, its detector's box padded to a square), cut with a black border
where it leaves the image, and resized bilinearly to 112x112 RGB 0..255 (face-api resizes to 112 too).
Both networks see the crop and its mirror image, and their outputs are averaged (chosen on the same
UTKFace files: gender 89.8 -> 90.4 %, age MAE 4.51 -> 4.36 years at margin 1.0).

* :class:`FaceApiAgeGender` provides ``age`` (years, the regression output) and ``gender``
  (``("Male" | "Female", confidence 0.5..1)``, from the softmax; index 0 is male in face-api).
* :class:`FusedAgeGender` averages face-api's probability of "Male" with another model's (FaceRes's, the
  embedder's own heads) and keeps face-api's age (module ``keeneye.models.registry`` builds it; section
  "Age, gender and expression from face-api" of docs/models.md for how the weights were chosen).
* :class:`FaceApiExpression` provides ``emotions`` over keeneye's labels (fer's names; face-api's
  ``neutral, happy, sad, angry, fearful, disgusted, surprised``): apparent expression, not felt emotion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from keeneye.core.types import Face, FloatArray, UInt8Image
from keeneye.models.onnx_runtime import create_session

FACEAPI_INPUT_SIZE = 112
AGE_GENDER_MARGIN = 1.1
EXPRESSION_MARGIN = 1.0
# face-api's FACE_EXPRESSION_LABELS (output column order) in keeneye's expression names.
FACEAPI_EXPRESSION_LABELS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fear",
    "disgust",
    "surprise",
)


def face_crops(image: UInt8Image, faces: Sequence[Face], margin: float) -> FloatArray:
    """(2K, 112, 112, 3) float32 RGB 0..255: each face's square crop (box side x ``margin``) and its mirror,
    interleaved (crop 0, mirror 0, crop 1, ...)."""
    out = np.zeros((2 * len(faces), FACEAPI_INPUT_SIZE, FACEAPI_INPUT_SIZE, 3), np.float32)
    for i, face in enumerate(faces):
        x1, y1, x2, y2 = (float(v) for v in face.xyxy)
        side = max(x2 - x1, y2 - y1, 1.0) * margin
        scale = FACEAPI_INPUT_SIZE / side
        left, top = (x1 + x2) / 2 - side / 2, (y1 + y2) / 2 - side / 2
        # One affine warp cuts, borders and resizes (face-api itself resizes bilinearly). Pixel centres map
        # to pixel centres, as cv2.resize does: dst + 0.5 = (src + 0.5 - left) * scale.
        tx, ty = (0.5 - left) * scale - 0.5, (0.5 - top) * scale - 0.5
        m = np.array([[scale, 0.0, tx], [0.0, scale, ty]], np.float32)
        crop = cv2.warpAffine(
            image,
            m,
            (FACEAPI_INPUT_SIZE, FACEAPI_INPUT_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        out[2 * i] = crop
        out[2 * i + 1] = crop[:, ::-1]
    return out


class _FaceApiModel:
    margin = 1.0

    def __init__(self, onnx_path: Path | str) -> None:
        self._session = create_session(onnx_path)
        self._input_name = str(self._session.get_inputs()[0].name)
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._run(np.zeros((1, FACEAPI_INPUT_SIZE, FACEAPI_INPUT_SIZE, 3), np.float32))  # warm-up

    def inputs(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        return face_crops(image, faces, self.margin)

    def _run(self, batch: FloatArray) -> dict[str, FloatArray]:
        outs = self._session.run(None, {self._input_name: batch})
        return {n: np.asarray(o, np.float32) for n, o in zip(self._outputs, outs, strict=True)}

    def _mirror_mean(self, image: UInt8Image, faces: Sequence[Face]) -> dict[str, FloatArray]:
        """Each output averaged over a face's crop and mirror: (K, ...) per output name."""
        raw = self._run(self.inputs(image, faces))
        return {n: v.reshape(len(faces), 2, *v.shape[1:]).mean(axis=1) for n, v in raw.items()}


class FaceApiAgeGender(_FaceApiModel):
    """Age and gender from face-api's TinyXception (module docstring): provides ``age`` and ``gender``."""

    name = "faceapi-age-gender"
    provides: tuple[str, ...] = ("age", "gender")
    margin = AGE_GENDER_MARGIN

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """Per face: {"age": years (float, >= 0), "gender": ("Female"|"Male", confidence 0.5..1)}."""
        if not faces:
            return []
        out = self._mirror_mean(image, faces)
        result: list[dict[str, Any]] = []
        for age, gender in zip(out["age"], out["gender"], strict=True):
            p_male = float(np.clip(gender[0], 0.0, 1.0))
            label = ("Male", p_male) if p_male > 0.5 else ("Female", 1.0 - p_male)
            result.append({"age": round(max(0.0, float(age[0])), 1), "gender": label})
        return result


def _p_male(gender: tuple[str, float]) -> float:
    label, confidence = gender
    return float(confidence) if label == "Male" else 1.0 - float(confidence)


class FusedAgeGender:
    """``age`` from face-api; ``gender`` from the mean of face-api's and ``other``'s probability of "Male"
    (``weight`` is face-api's share). On LFW (one photo per person, half the people; not in face-api's
    training list) FaceRes alone is right on 97.3 % of faces, face-api alone 97.0 %, the even mean 97.8 %
    (women 91.8 / 92.7 / 94.1 %); bench/attributes.py ``--parts lfwgender``."""

    name = "faceapi+faceres-age-gender"
    provides: tuple[str, ...] = ("age", "gender")

    def __init__(self, faceapi: FaceApiAgeGender, other: Any, weight: float = 0.5) -> None:
        self._faceapi, self._other, self._weight = faceapi, other, float(weight)

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """Per face: {"age": years (face-api's), "gender": ("Female"|"Male", confidence 0.5..1)}."""
        if not faces:
            return []
        out = []
        for a, b in zip(
            self._faceapi.classify(image, faces), self._other.classify(image, faces), strict=True
        ):
            p = self._weight * _p_male(a["gender"]) + (1.0 - self._weight) * _p_male(b["gender"])
            out.append({"age": a["age"], "gender": ("Male", p) if p > 0.5 else ("Female", 1.0 - p)})
        return out


class FaceApiExpression(_FaceApiModel):
    """Apparent facial expression from face-api's expression network: provides ``emotions``."""

    name = "faceapi-expression"
    provides: tuple[str, ...] = ("emotions",)
    margin = EXPRESSION_MARGIN

    def classify(self, image: UInt8Image, faces: Sequence[Face]) -> list[dict[str, Any]]:
        """Per face: {"emotions": {label: probability}} over ``FACEAPI_EXPRESSION_LABELS`` (sum 1)."""
        if not faces:
            return []
        probs = np.maximum(self._mirror_mean(image, faces)["expression"], 0.0)
        probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
        return [
            {"emotions": {lab: float(p) for lab, p in zip(FACEAPI_EXPRESSION_LABELS, row, strict=True)}}
            for row in probs
        ]
