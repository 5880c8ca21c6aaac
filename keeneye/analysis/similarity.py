"""From descriptor distance to Rekognition's Similarity (0-100), calibrated per embedder.

Vectors are L2-normalised, so cosine similarity ``c`` in [-1, 1] says everything. Similarity is a
logistic of ``c`` whose two parameters are fitted on LFW by ``bench/calibrate_similarity.py`` so that
Similarity 80 (Rekognition's default FaceMatchThreshold) and 99 sit at documented false-match rates
(see docs/models.md). Embedders without a calibration get a conservative identity-ish mapping.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from keeneye.core.types import FloatArray


@dataclass(frozen=True)
class Calibration:
    """Similarity = 100 / (1 + exp(-slope * (cosine - center)))."""

    embedder_id: str
    center: float
    slope: float

    def similarity(self, cosine: FloatArray | float) -> FloatArray:
        c = np.asarray(cosine, dtype=np.float64)
        return (100.0 / (1.0 + np.exp(-self.slope * (c - self.center)))).astype(np.float32)

    def cosine_at(self, similarity: float) -> float:
        """The cosine where Similarity equals ``similarity`` (0 < similarity < 100)."""
        s = min(max(similarity, 1e-6), 100 - 1e-6) / 100.0
        return self.center - math.log(1.0 / s - 1.0) / self.slope


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def fit_two_points(embedder_id: str, cos80: float, cos99: float) -> Calibration:
    """The calibration that maps cosine ``cos80`` to Similarity 80 and ``cos99`` to 99."""
    slope = (_logit(0.99) - _logit(0.80)) / (cos99 - cos80)
    return Calibration(embedder_id, cos80 - _logit(0.80) / slope, slope)


@cache
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("keeneye.analysis").joinpath("calibration.json").read_text()
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def calibration_for(embedder_id: str) -> Calibration:
    entry = _table().get(embedder_id)
    if entry is None:  # uncalibrated (e.g. a user-supplied model): 80 at cosine 0.6, 99 at 0.8
        return fit_two_points(embedder_id, 0.6, 0.8)
    return Calibration(embedder_id, float(entry["center"]), float(entry["slope"]))


def cosine(a: FloatArray, b: FloatArray) -> FloatArray:
    """Cosine similarity of L2-normalised rows: (N, D) x (M, D) -> (N, M)."""
    out: FloatArray = np.clip(np.asarray(a, np.float32) @ np.asarray(b, np.float32).T, -1.0, 1.0)
    return out
