"""``keeneye track --collection``: person tracks named by the faces of a collection, as a user runs it.

The collection (one photo each of Lin-Manuel Miranda and Alex Lacamoire) is built in a temporary data
directory with the service, as IndexFaces through the server would; the subprocess then reads it. The
clip's 2.8-7.0 s shot shows Lin-Manuel singing (see tests/contract/test_face_search_video.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.service.faces.collections import FaceCollections
from keeneye.store.db import Store
from tests.cli.test_cli import assert_one_line_error, run
from tests.factories import index_photos, settings_with_models

pytestmark = [pytest.mark.models, pytest.mark.data]


def _data_dir(tmp_path: Path, models_dir: Path, shared_data: Path) -> Path:
    settings = settings_with_models(tmp_path, models_dir)
    store = Store.open(settings.data_dir, settings.database_url)
    collections = FaceCollections(store, build_face_analyzer(settings, with_embedder=True), settings.images)
    index_photos(collections, "hamilton", shared_data, ("lin-manuel-miranda", "alex-lacamoire"))
    collections.close()
    store.close()
    return settings.data_dir


def test_tracks_are_named_by_the_collection(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    data = _data_dir(tmp_path, models_dir, shared_data)
    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    output = tmp_path / "tracks.json"
    proc = run("track", clip, "--fps", "5", "--collection", "hamilton", "--output", output, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["identities"]) == {"lin-manuel-miranda"}, summary["identities"]
    doc = json.loads(output.read_text())
    named = [t for t in doc["tracks"] if t["identity"] is not None]
    assert named and all(t["identity"] == "lin-manuel-miranda" for t in named)
    for t in named:
        assert t["match"]["similarity"] >= 80 and t["best_face"] is not None
        assert 2700 <= t["match"]["timestamp_ms"] <= 7100  # identified in his singing shot
        # Shot cuts end tracks: his track neither starts on the stage shot nor reaches the audience.
        assert t["first_timestamp_ms"] >= 2700 and t["last_timestamp_ms"] <= 7100
    unnamed = [t for t in doc["tracks"] if t["identity"] is None]
    assert all(t["match"] is None for t in unnamed)
    # The identification is audited in the data directory's store.
    store = Store.open(data, None)
    try:
        from keeneye.service.governance.audit import AuditLog

        records = AuditLog(store).read(collection_id="hamilton")
    finally:
        store.close()
    audit = [r for r in records if r["operation"] == "keeneye track --collection"]
    assert len(audit) == 1 and len(audit[0]["matches"]) == len(named) and audit[0]["threshold"] == 80.0


def test_unknown_collection_is_one_line_error(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    data = _data_dir(tmp_path, models_dir, shared_data)
    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    proc = run("track", clip, "--collection", "nobody", data_dir=data)
    assert_one_line_error(proc, "nobody")
