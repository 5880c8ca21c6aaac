from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from keeneye.config import Settings
from keeneye.config_docs import render

REPO = Path(__file__).resolve().parents[1]


def test_configuration_doc_matches_the_code() -> None:
    assert (REPO / "docs/configuration.md").read_text() == render(), (
        "run: python -m keeneye.config_docs > docs/configuration.md"
    )


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEENEYE_FACES__EMBEDDER__KIND", "human-faceres")
    monkeypatch.setenv("KEENEYE_FACES__DETECTOR__SCORE_THRESHOLD", "0.7")
    s = Settings()
    assert s.faces.embedder.kind == "human-faceres" and s.faces.detector.score_threshold == 0.7


def test_unknown_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        Settings(faces={"embedder": {"kind": "nonsense"}})
    with pytest.raises(ValidationError):
        Settings(faces={"detector": {"typo_threshold": 1}})
