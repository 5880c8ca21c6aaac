"""From a face detector's raw score to Rekognition's Confidence: the probability that the box is a face.

A detector's raw score is not a probability: BlazeFace scored clearly visible 50-60 px faces 0.67-0.89
and MTCNN gives most faces > 0.99. Rekognition reports ~99 for a clearly visible face and low values
for non-faces, and its quality filter (LOW_CONFIDENCE) reads that number, so keeneye maps each
detector's raw score through a monotonic (isotonic) calibration fitted on labelled detections:
``bench/widerface.py --calibrate`` takes every detection of the WIDER FACE tuning half (even events;
positive when it overlaps a labelled face at IoU >= 0.5, left out when 0.3-0.5) and of the photos without
faces (negative), fits the pool-adjacent-violators regression of "is a face" on the raw score, and
writes ``keeneye/analysis/detector_calibration.json``. Between the fitted knots the map is linear, so it
is continuous and non-decreasing; outside them it is constant. Detectors without an entry keep their
raw score (documented, e.g. user-supplied SCRFD/YuNet files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ScoreCalibration:
    """A monotonic map raw score -> confidence in [0, 1], linear between ``raw`` knots."""

    detector: str
    raw: tuple[float, ...]  # ascending knots of the raw score
    confidence: tuple[float, ...]  # non-decreasing values in [0, 1] at the knots

    def __post_init__(self) -> None:
        r, c = np.asarray(self.raw), np.asarray(self.confidence)
        if r.size < 2 or r.shape != c.shape or np.any(np.diff(r) <= 0) or np.any(np.diff(c) < 0):
            raise ValueError(
                f"calibration of {self.detector}: knots must ascend and values must not decrease"
            )
        if c.min() < 0 or c.max() > 1:
            raise ValueError(f"calibration of {self.detector}: values must lie in [0, 1]")

    def __call__(self, score: npt.ArrayLike) -> Float64Array:
        """Calibrated confidence (same shape as ``score``), in [0, 1]."""
        return np.interp(np.asarray(score, np.float64), self.raw, self.confidence)


def isotonic_fit(
    scores: npt.ArrayLike, labels: npt.ArrayLike, min_block: int = 20
) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators fit of P(label | score): knots at each pooled block's mean score.

    scores (N,), labels (N,) in {0, 1}. Blocks are first formed of at least ``min_block`` samples in score
    order (so a handful of detections cannot make a step), then merged while a block's rate exceeds the
    next one's. Returns ascending knots and their non-decreasing rates.
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    blocks: list[list[float]] = []  # [sum_y, count, sum_s]
    for start in range(0, s.size, min_block):
        blocks.append(
            [
                float(y[start : start + min_block].sum()),
                float(y[start : start + min_block].size),
                float(s[start : start + min_block].sum()),
            ]
        )
    if len(blocks) > 1 and blocks[-1][1] < min_block:  # fold a short tail into its neighbour
        tail = blocks.pop()
        blocks[-1] = [a + b for a, b in zip(blocks[-1], tail, strict=True)]
    merged: list[list[float]] = []
    for b in blocks:
        merged.append(b)
        while len(merged) > 1 and merged[-2][0] / merged[-2][1] >= merged[-1][0] / merged[-1][1]:
            last = merged.pop()
            merged[-1] = [a + c for a, c in zip(merged[-1], last, strict=True)]
    knots = [b[2] / b[1] for b in merged]
    rates = [b[0] / b[1] for b in merged]
    return knots, rates


@cache
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("keeneye.analysis").joinpath("detector_calibration.json").read_text()
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def calibration_for(detector: str) -> ScoreCalibration | None:
    """The fitted calibration of a detector (its ``name``), or None when it has none."""
    entry = _table().get(detector)
    if entry is None:
        return None
    return ScoreCalibration(detector, tuple(entry["raw"]), tuple(entry["confidence"]))
