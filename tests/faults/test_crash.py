"""Crash consistency: ``keeneye serve`` SIGKILLed in the middle of concurrent IndexFaces, restarted.

Each cycle (tests/faults/crash.py): four threads index real LFW photos through boto3 (with a few
DeleteFaces of earlier faces), the server is killed at a random moment, started again on the same
data directory, and then every face whose IndexFaces answered is listed exactly once and found by
search, no face whose DeleteFaces answered is back, and DescribeCollection's FaceCount, ListFaces,
the search index and the index files on disk all hold the same faces.

The issue's target is 20 passes in a row: the test runs 20 kill/restart cycles
(``KEENEYE_CRASH_CYCLES`` to change it; the seed of the kill moments is random, printed on failure,
and fixed with ``KEENEYE_CRASH_SEED``). bench/crash_loop.py runs the same cycles and prints JSON.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.faults.crash import run_cycles

pytestmark = [pytest.mark.models, pytest.mark.data]

CYCLES = int(os.environ.get("KEENEYE_CRASH_CYCLES", "20"))


def test_acknowledged_faces_survive_sigkill(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    seed = int(os.environ.get("KEENEYE_CRASH_SEED", str(random.SystemRandom().randrange(1 << 30))))
    log_path = tmp_path / "server.log"
    try:
        results = run_cycles(tmp_path / "data", models_dir, shared_data, CYCLES, seed, log_path)
    except (AssertionError, RuntimeError) as exc:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:]) if log_path.exists() else ""
        pytest.fail(f"seed {seed}: {exc}\n--- server log (last lines) ---\n{tail}")
    assert len(results) == CYCLES
    assert sum(r.acked for r in results) > 0, "no IndexFaces call was answered before a kill"
