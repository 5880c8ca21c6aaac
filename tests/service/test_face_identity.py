"""Track identities from faces (keeneye.pipeline.identification) with deterministic stand-in models, shot
cuts (keeneye.video.cuts) and the tracker's cut on synthetic frames."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.core.types import Detections, Face, FloatArray, Frame, Track, TrackPoint, UInt8Image
from keeneye.models.fake import NoFaceDetector, TableEmbedder
from keeneye.pipeline.identification import (
    FUSED_COSINE_SCALE,
    TrackFaceIdentifier,
    faces_on_face_tracks,
    faces_on_person_tracks,
    fused_query,
)
from keeneye.service.faces.collections import FaceMatch, StoredFace
from keeneye.tracking.tracker import PersonTracker, TrackerConfig
from keeneye.video.cuts import ShotCutDetector
from tests.factories import noise_image


def _stored(name: str) -> StoredFace:
    return StoredFace(name, "c", "img", name, (0, 0, 10, 10), 10, 10, 0.99, datetime.now(UTC), "count-v1")


class ScriptedSearch:
    """Returns the next scripted similarity for 'lin' (None: no match) on each search."""

    def __init__(self, similarities: list[float | None]) -> None:
        self.similarities = list(similarities)
        self.calls = 0
        self.queries: list[FloatArray] = []

    def __call__(self, embedding: FloatArray, embedder_id: str) -> list[FaceMatch]:
        assert embedder_id == "count-v1" and embedding.shape == (4,)
        self.queries.append(np.array(embedding))
        sim = self.similarities[self.calls]
        self.calls += 1
        return [] if sim is None else [FaceMatch(_stored("lin"), sim)]


def _face(size: float, sharpness: float = 50.0, yaw: float = 0.0, x: float = 10.0) -> Face:
    face = Face(np.array([x, 10, x + size, 10 + size], np.float32), 0.9)
    face.attributes["quality"] = {"sharpness": sharpness, "brightness": 50.0}
    face.attributes["pose"] = (0.0, yaw, 0.0)
    return face


IMAGE = np.zeros((200, 200, 3), np.uint8)


def _identifier(search: ScriptedSearch, **kwargs: float) -> tuple[TrackFaceIdentifier, TableEmbedder]:
    """An identifier whose embedder gives every face the same unit vector and counts them."""
    embedder = TableEmbedder([[1, 0, 0, 0]], "count-v1")
    analyzer = FaceAnalyzer(detector=NoFaceDetector(), embedder=embedder)
    return TrackFaceIdentifier(analyzer, search, **kwargs), embedder  # type: ignore[arg-type]


def test_a_matched_track_is_embedded_again_only_for_a_clearly_better_face() -> None:
    search = ScriptedSearch([85.0, 97.0])
    ident, embedder = _identifier(search)
    assert ident.offer(IMAGE, 1, _face(40), 0.0)  # the first usable face
    assert ident.identity(1) is not None and ident.identity(1).name == "lin"  # type: ignore[union-attr]
    for t in range(1, 50):  # an hour of the same face costs nothing more
        assert not ident.offer(IMAGE, 1, _face(41), t * 200.0)
    assert ident.offer(IMAGE, 1, _face(80), 10_000.0)  # twice the size: clearly better
    assert embedder.calls == 2 and search.calls == 2
    assert ident.identity(1).top_similarity == 97.0  # type: ignore[union-attr]


def test_an_unmatched_track_retries_on_a_timer_up_to_the_cap() -> None:
    search = ScriptedSearch([None, None, 91.0, None])
    ident, embedder = _identifier(search, retry_ms=1000.0, max_embeddings=3)
    offered = [ident.offer(IMAGE, 7, _face(40), t * 200.0) for t in range(40)]
    # tries at 0 ms, 1000 ms, 2000 ms; the third matched: no more tries.
    assert [i for i, x in enumerate(offered) if x] == [0, 5, 10]
    assert embedder.calls == 3
    assert ident.identity(7).name == "lin"  # type: ignore[union-attr]


def test_an_unmatched_track_stays_without_identity_and_stops_at_the_cap() -> None:
    search = ScriptedSearch([None] * 10)
    ident, embedder = _identifier(search, retry_ms=100.0, max_embeddings=4)
    for t in range(100):
        ident.offer(IMAGE, 3, _face(40), t * 200.0)
    assert embedder.calls == 4
    assert ident.identity(3).name is None and ident.identity(3).matches == []  # type: ignore[union-attr]


def test_rekey_keeps_the_better_identity() -> None:
    search = ScriptedSearch([82.0, 95.0])
    ident, _ = _identifier(search, fuse=1)
    ident.offer(IMAGE, 1, _face(40), 0.0)
    ident.offer(IMAGE, 5, _face(40), 3000.0)
    ident.rekey(5, 1)
    merged = ident.identity(1)
    assert merged is not None and merged.top_similarity == 95.0 and merged.embeddings == 2
    assert ident.identity(5) is None and set(ident.identities) == {1}


def test_a_track_is_searched_with_its_best_faces_fused() -> None:
    search = ScriptedSearch([85.0, None, 90.0, 93.0])
    ident, embedder = _identifier(search, max_embeddings=4)
    for size, t in ((40, 0.0), (60, 1000.0), (90, 2000.0), (140, 3000.0)):  # each clearly better
        assert ident.offer(IMAGE, 2, _face(size), t)
    assert embedder.calls == 4 and search.calls == 4
    # 1, 2, 3, then the best 3 of 4 faces: the same unit vector, so the query's norm is the scale.
    norms = [round(float(np.linalg.norm(q)), 4) for q in search.queries]
    assert norms == [1.0, FUSED_COSINE_SCALE[2], FUSED_COSINE_SCALE[3], FUSED_COSINE_SCALE[3]]
    track = ident.identity(2)
    assert track is not None and track.top_similarity == 93.0 and track.searched_with == 3
    assert [round(q) for q, _, _ in track.fused] == sorted(
        (round(q) for q, _, _ in track.fused), reverse=True
    )
    assert track.pts_ms == 3000.0  # the best face of the fused search


def test_the_latest_fused_search_decides_even_without_a_match() -> None:
    search = ScriptedSearch([88.0, None])
    ident, _ = _identifier(search)
    ident.offer(IMAGE, 4, _face(40), 0.0)
    ident.offer(IMAGE, 4, _face(80), 500.0)  # more evidence: the two fused match nobody
    assert ident.identity(4).name is None  # type: ignore[union-attr]


def test_fused_query_is_the_scaled_normalised_mean() -> None:
    a, b = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
    q = fused_query([a, b])
    assert np.allclose(q, np.array([1, 1, 0, 0]) / np.sqrt(2) * FUSED_COSINE_SCALE[2], atol=1e-6)
    assert np.array_equal(fused_query([a]), a)
    with pytest.raises(ValueError):
        fused_query([a] * 4)


def test_rekey_fuses_the_faces_of_both_parts() -> None:
    search = ScriptedSearch([82.0, None, 95.0])
    ident, _ = _identifier(search)
    ident.offer(IMAGE, 1, _face(40), 0.0)
    ident.offer(IMAGE, 5, _face(60), 3000.0)
    ident.rekey(5, 1)  # one person: searched again with both faces
    merged = ident.identity(1)
    assert merged is not None and merged.top_similarity == 95.0 and merged.searched_with == 2
    assert merged.embeddings == 2 and set(ident.identities) == {1}


def _track(track_id: int, xyxy: tuple[float, float, float, float]) -> Track:
    return Track(track_id, 0, 0.0, 0.0, "active", [TrackPoint(0.0, xyxy, 0.9)])


def test_faces_go_to_the_person_whose_head_they_are() -> None:
    left, right = _track(1, (0, 0, 100, 300)), _track(2, (120, 0, 220, 300))
    head_right, head_left, belly = _face(30, x=155), _face(30, x=35), _face(30, x=40)
    belly.xyxy = np.array([40, 200, 70, 230], np.float32)  # a face at waist height is nobody's head
    pairs = faces_on_person_tracks([left, right], [head_right, belly, head_left])
    assert {(t.track_id, id(f)) for t, f in pairs} == {(1, id(head_left)), (2, id(head_right))}
    assert faces_on_person_tracks([left], []) == [] and faces_on_person_tracks([], [belly]) == []


def test_face_tracks_pair_with_their_own_box() -> None:
    a, b = _face(30, x=10), _face(30, x=100)
    ta = _track(4, tuple(float(v) for v in a.xyxy))  # type: ignore[arg-type]
    assert faces_on_face_tracks([ta], [b, a]) == [(ta, a)]


def _scene(colour: tuple[int, int, int], shift: int = 0) -> UInt8Image:
    image = np.zeros((90, 160, 3), np.uint8)
    image[:] = colour
    image[20:70, 30 + shift : 80 + shift] = (240, 240, 240)
    return image


def test_shot_cuts_are_found_and_small_motion_is_not_a_cut() -> None:
    cuts = ShotCutDetector()
    noise = noise_image(1, 90, 160, low=0)
    frames = [_scene((20, 60, 120), s) for s in (0, 2, 4, 6)] + [noise] + [noise.copy()]
    assert [cuts.is_cut(f) for f in frames] == [False, False, False, False, True, False]


def test_a_cut_ends_every_track_and_ids_stay_unique() -> None:
    tracker = PersonTracker(TrackerConfig(min_hits=1))
    box = np.array([[50, 50, 100, 200]], np.float32)
    dets = Detections(box, np.array([0.9], np.float32))
    image = np.zeros((300, 300, 3), np.uint8)
    first = tracker.update(Frame("v", 0, 0.0, image), dets)
    tracker.cut()
    after = tracker.update(Frame("v", 1, 200.0, image), dets)  # the same place, after the cut
    assert first[0].track_id != after[0].track_id
    assert [t.track_id for t in tracker.all_tracks()] == [first[0].track_id, after[0].track_id]
    assert tracker.all_tracks()[0].state == "removed"


@pytest.mark.parametrize("bad", [{"min_gain": 0.5}, {"max_embeddings": 0}])
def test_identifier_rejects_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        _identifier(ScriptedSearch([]), **bad)
