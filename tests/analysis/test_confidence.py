"""Detector score -> Confidence: the isotonic fit, the stored calibrations, and what a clear face gets."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.confidence import ScoreCalibration, calibration_for, isotonic_fit
from keeneye.analysis.images import read_image_file
from keeneye.config import Settings


def _stored() -> dict[str, dict[str, object]]:
    text = resources.files("keeneye.analysis").joinpath("detector_calibration.json").read_text()
    data: dict[str, dict[str, object]] = json.loads(text)
    return data


def test_isotonic_fit_is_monotonic_and_follows_the_rate() -> None:
    rng = np.random.default_rng(7)
    scores = rng.uniform(0, 1, 4000)
    labels = (rng.uniform(0, 1, 4000) < scores**2).astype(int)  # true P(face | s) = s^2
    knots, rates = isotonic_fit(scores, labels)
    assert np.all(np.diff(knots) > 0) and np.all(np.diff(rates) >= 0)
    cal = ScoreCalibration("synthetic", tuple(knots), tuple(rates))
    grid = np.linspace(0.05, 0.95, 19)
    assert np.all(np.diff(cal(grid)) >= 0)
    assert np.abs(cal(grid) - grid**2).max() < 0.1


def test_calibration_refuses_a_decreasing_map() -> None:
    with pytest.raises(ValueError, match="must not decrease"):
        ScoreCalibration("bad", (0.1, 0.5, 0.9), (0.2, 0.6, 0.5))
    with pytest.raises(ValueError, match="ascend"):
        ScoreCalibration("bad", (0.1, 0.1, 0.9), (0.2, 0.6, 0.7))


@pytest.mark.parametrize("detector", sorted(_stored()))
def test_stored_calibrations_are_monotonic_and_high_for_high_scores(detector: str) -> None:
    cal = calibration_for(detector)
    assert cal is not None
    raw = np.linspace(0, 1, 1001)
    conf = cal(raw)
    assert np.all(np.diff(conf) >= 0) and conf.min() >= 0 and conf.max() <= 1
    assert cal(0.999) >= 0.9  # a detector sure of a face is believed
    assert cal(0.06) <= 0.2  # and a near-zero score is not


def test_unknown_detector_has_no_calibration() -> None:
    assert calibration_for("user-supplied-scrfd") is None


@pytest.mark.models
def test_clear_face_scores_90_or_more(models_dir: Path, shared_data: Path) -> None:
    analyzer = build_face_analyzer(Settings(data_dir=models_dir.parent), with_embedder=False)
    assert analyzer.confidence is not None
    image = read_image_file(shared_data / "faces/face_recognition/obama-480p.jpg")
    (face,) = analyzer.analyze(image, attributes="none")
    assert face.score >= 0.9
    assert 0 < face.attributes["detector_score"] <= 1
    for photo in ("skimage_coffee.png", "skimage_rocket.jpg", "skimage_horse.png"):
        faces = analyzer.detect(read_image_file(shared_data / "faces/no_face" / photo))
        assert all(f.score < 0.9 for f in faces), photo
