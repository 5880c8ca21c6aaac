"""A stream processor whose collection has users identifies a track as the user (issue 11, part 3).

The Hamilton clip played as a camera (``file://``, at its own speed) into a collection where Lin-Manuel
Miranda is the user ``lin`` with three faces (his enrolment photo, its mirror image, a 3/4-size copy) and
Alex Lacamoire is a face without a user. Every match record names ``lin`` once (the best of his three
faces), ``Keeneye.Identity`` is the UserId, and nobody else is matched.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.aws import stream_records
from keeneye.aws.stream_records import shape_problems
from keeneye.core.types import FloatArray
from keeneye.service.faces.collections import FaceCollections, FaceMatch
from keeneye.store.db import Store
from keeneye.streams.capture import CaptureSettings
from keeneye.streams.runtime import StreamProcessorRuntime
from keeneye.streams.sinks import JsonlSink
from tests.factories import enrol_user, index_photos, loopback_egress, settings_with_models

pytestmark = [pytest.mark.models, pytest.mark.data]


def test_a_stream_processor_matches_the_user_once_per_record(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> None:
    settings = settings_with_models(tmp_path, models_dir)
    store = Store.open(settings.data_dir, settings.database_url)
    analyzer = build_face_analyzer(settings, with_embedder=True)
    collections = FaceCollections(store, analyzer, settings.images)
    index_photos(collections, "hamilton", shared_data, ("alex-lacamoire",))
    lin_faces = enrol_user(collections, "hamilton", shared_data, "lin-manuel-miranda", "lin")

    def search(embedding: FloatArray, embedder_id: str, threshold: float) -> list[FaceMatch]:
        return collections.search_faces_by_vector("hamilton", embedding, embedder_id, threshold)

    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    runtime = StreamProcessorRuntime(
        f"file://{clip}",
        settings,
        encode=stream_records.encode,
        face_search=(search, 80.0),
        connected_home=None,
        sinks=[JsonlSink(tmp_path / "records.jsonl")],
        record_interval_s=60.0,
        capture=CaptureSettings(target_fps=5, queue_size=2),
        analyzer=analyzer,
        egress=loopback_egress(),
    )
    started = time.monotonic()
    runtime.start()
    try:
        while time.monotonic() - started < 14.0:  # the clip once (9.2 s), then it starts again
            stats = runtime.stats()
            if stats.capture.state == "reconnecting" and stats.frames_processed > 0:
                break
            time.sleep(0.1)
    finally:
        runtime.stop()
        collections.close()
        store.close()

    lines = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert all(shape_problems(r) == [] for r in lines)
    matched = [r for r in lines if r["FaceSearchResponse"] and r["FaceSearchResponse"][0]["MatchedFaces"]]
    assert matched, "Lin-Manuel was not matched"
    for record in matched:
        faces = record["FaceSearchResponse"][0]["MatchedFaces"]
        assert len(faces) == 1, faces  # the user once, not once per face
        assert faces[0]["Face"]["UserId"] == "lin" and faces[0]["Face"]["FaceId"] in lin_faces
        assert faces[0]["Similarity"] >= 80
        assert record["Keeneye"]["Identity"] == "lin"
