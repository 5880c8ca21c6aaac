"""Tracker on synthetic trajectories: crossing paths, occlusion, re-entry, a different person, faces."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from keeneye.core.types import Detections, Face, Frame
from keeneye.tracking.reid import body_descriptor, cosine, face_quality_score
from keeneye.tracking.tracker import PersonTracker, TrackerConfig

from .scenes import BLUE, FRAME_MS, GREEN, ORANGE, PURPLE, RED, YELLOW, Person, detections, render, visible

Hidden = Callable[[Person, float], bool]


def _never(_person: Person, _t_ms: float) -> bool:
    return False


def _run(
    people: list[Person], n_frames: int, hidden: Hidden = _never, tracker: PersonTracker | None = None
) -> tuple[PersonTracker, list[dict[int, int]]]:
    """Runs the scene; returns the tracker and, per frame, person index -> reported track id."""
    tracker = tracker or PersonTracker()
    per_frame: list[dict[int, int]] = []
    for i in range(n_frames):
        t = i * FRAME_MS
        shown = [(p.box(t), p) for p in people if visible(p.box(t)) and not hidden(p, t)]
        frame = render(shown, i)
        tracks = tracker.update(frame, detections([b for b, _ in shown]))
        ids: dict[int, int] = {}
        for track in tracks:
            for k, p in enumerate(people):
                box = np.asarray(p.box(t))
                if np.abs(np.asarray(track.xyxy) - np.clip(box, 0, [640, 360, 640, 360])).max() < 1.0:
                    ids[k] = track.track_id
        per_frame.append(ids)
    return tracker, per_frame


def _ids_of(per_frame: list[dict[int, int]], person: int) -> set[int]:
    return {ids[person] for ids in per_frame if person in ids}


def test_two_people_crossing_paths_keep_their_ids() -> None:
    a = Person(RED, BLUE, start=(100, 200), velocity=(120, 0))
    b = Person(GREEN, YELLOW, start=(540, 210), velocity=(-120, 0))
    _, per_frame = _run([a, b], 40)
    assert len(_ids_of(per_frame, 0)) == 1
    assert len(_ids_of(per_frame, 1)) == 1
    assert _ids_of(per_frame, 0) != _ids_of(per_frame, 1)
    assert sum(1 for ids in per_frame if len(ids) == 2) >= 35  # both reported through the crossing


def test_occluded_for_one_and_a_half_seconds_keeps_its_id() -> None:
    a = Person(RED, BLUE, start=(100, 200), velocity=(80, 5))
    _, per_frame = _run([a], 50, hidden=lambda _p, t: 1500 <= t < 3000)
    assert all(0 not in ids for ids in per_frame[15:30])
    assert len(_ids_of(per_frame, 0)) == 1
    assert 0 in per_frame[31]


def test_occlusion_with_a_sudden_turn_is_recovered_by_appearance() -> None:
    """Motion predicts the wrong place (the person turned while hidden); the colours re-link it."""
    before = Person(RED, BLUE, start=(100, 200), velocity=(150, 0))
    after = Person(RED, BLUE, start=(before.box(1500)[0] + 20, 200), velocity=(0, 0))
    tracker = PersonTracker()
    _, first = _run([before], 15, tracker=tracker)
    ids_after = []
    for i in range(15, 40):
        t = i * FRAME_MS
        if t < 2500:
            frame, dets = render([], i), Detections.empty()
        else:
            box = after.box(0)
            frame, dets = render([(box, after)], i), detections([box])
        ids_after += [tr.track_id for tr in tracker.update(frame, dets)]
    assert set(ids_after) == _ids_of(first, 0)


def test_leaving_and_reentering_three_seconds_later_keeps_the_id() -> None:
    # walks out through the left edge at ~1.2 s and back in at the same place ~3 s later
    out = Person(RED, BLUE, start=(90, 200), velocity=(-100, 0))
    back = Person(RED, BLUE, start=(-20, 205), velocity=(100, 0))
    tracker = PersonTracker()
    _, first = _run([out], 20, tracker=tracker)
    assert all(0 not in ids for ids in first[12:])
    ids = []
    for i in range(20, 60):
        t = (i - 20) * FRAME_MS + 1500  # re-enters ~3 s after it left
        box = back.box(t - 1500)
        shown = [(box, back)] if visible(box) else []
        frame = render(shown, i)
        ids += [tr.track_id for tr in tracker.update(frame, detections([b for b, _ in shown]))]
    assert ids
    assert set(ids) == _ids_of(first, 0)


def test_a_different_looking_person_entering_after_someone_left_gets_a_new_id() -> None:
    out = Person(RED, BLUE, start=(90, 200), velocity=(-100, 0))
    other = Person(PURPLE, ORANGE, start=(-20, 205), velocity=(100, 0))
    tracker = PersonTracker()
    _, first = _run([out], 20, tracker=tracker)
    ids = []
    for i in range(20, 60):
        box = other.box((i - 20) * FRAME_MS)
        shown = [(box, other)] if visible(box) else []
        ids += [tr.track_id for tr in tracker.update(render(shown, i), detections([b for b, _ in shown]))]
    assert ids
    assert not set(ids) & _ids_of(first, 0)


def test_low_score_detections_keep_an_active_track_but_do_not_start_one() -> None:
    a = Person(RED, BLUE, start=(100, 200), velocity=(50, 0))
    tracker = PersonTracker()
    ids = []
    for i in range(30):
        box = a.box(i * FRAME_MS)
        score = 0.9 if i < 10 else 0.3  # partly occluded: the detector is unsure
        ids.append([t.track_id for t in tracker.update(render([(box, a)], i), detections([box], score))])
    assert all(len(x) == 1 for x in ids[3:])
    assert len({x[0] for x in ids[3:]}) == 1
    fresh = PersonTracker()
    for i in range(10):
        box = a.box(i * FRAME_MS)
        assert fresh.update(render([(box, a)], i), detections([box], 0.3)) == []


def test_births_need_min_hits_and_lost_tracks_expire_by_time() -> None:
    config = TrackerConfig(min_hits=3, max_lost_ms=1000.0)
    tracker = PersonTracker(config)
    a = Person(RED, BLUE, start=(300, 200), velocity=(0, 0))
    box = a.box(0)
    reported = [len(tracker.update(render([(box, a)], i), detections([box]))) for i in range(4)]
    assert reported == [0, 0, 1, 1]
    # 20 fps now: expiry follows pts_ms, not a frame count
    for k in range(1, 30):
        tracker.update(Frame("synthetic", 4 + k, 300.0 + k * 50.0, render([], 0).image), Detections.empty())
    assert tracker.tracks == []
    assert [t.state for t in tracker.all_tracks()] == ["removed"]
    history = tracker.all_tracks()[0].history
    assert [p.pts_ms for p in history] == [0.0, 100.0, 200.0, 300.0]
    assert [t.state for t in tracker.drain_removed()] == ["removed"]
    assert tracker.all_tracks() == []


def test_history_records_boxes_and_scores() -> None:
    a = Person(RED, BLUE, start=(100, 200), velocity=(100, 0))
    tracker, _ = _run([a], 10)
    (track,) = tracker.all_tracks()
    assert track.first_pts_ms == 0.0 and track.last_pts_ms == 900.0
    assert len(track.history) == 10
    assert track.history[5].xyxy == pytest.approx(a.box(500.0))
    assert track.history[5].score == pytest.approx(0.9)


def test_body_descriptor_separates_colours() -> None:
    a = Person(RED, BLUE, start=(100, 200), velocity=(0, 0))
    b = Person(GREEN, YELLOW, start=(300, 200), velocity=(0, 0))
    frame = render([(a.box(0), a), (b.box(0), b)], 0)
    da, db = body_descriptor(frame.image, a.box(0)), body_descriptor(frame.image, b.box(0))
    assert np.linalg.norm(da) == pytest.approx(1.0, abs=1e-5)
    assert cosine(da, body_descriptor(frame.image, a.box(0))) == pytest.approx(1.0, abs=1e-5)
    assert cosine(da, db) < 0.5


def _face(
    area_side: float, sharpness: float | None = 60.0, yaw: float = 0.0, emb: float | None = None
) -> Face:
    attributes: dict[str, object] = {"pose": (0.0, yaw, 0.0)}
    if sharpness is not None:
        attributes["quality"] = {"sharpness": sharpness, "brightness": 50.0}
    embedding = None
    if emb is not None:
        vec = np.zeros(8, np.float32)
        vec[0], vec[1] = np.cos(emb), np.sin(emb)
        embedding = vec
    return Face(
        np.array([0, 0, area_side, area_side], np.float32),
        0.9,
        attributes=attributes,
        embedding=embedding,
        embedder_id="fake" if emb is not None else None,
    )


def test_face_quality_prefers_large_sharp_frontal() -> None:
    assert face_quality_score(_face(80)) > face_quality_score(_face(40))
    assert face_quality_score(_face(60, sharpness=90)) > face_quality_score(_face(60, sharpness=10))
    assert face_quality_score(_face(60, yaw=0)) > face_quality_score(_face(60, yaw=70))


def test_offer_face_keeps_the_best_face() -> None:
    a = Person(RED, BLUE, start=(100, 200), velocity=(0, 0))
    tracker, per_frame = _run([a], 5)
    tid = per_frame[-1][0]
    assert tracker.offer_face(tid, _face(40))
    assert tracker.offer_face(tid, _face(80))
    assert not tracker.offer_face(tid, _face(60))
    assert not tracker.offer_face(999, _face(90))
    (track,) = tracker.tracks
    assert track.best_face is not None and track.best_face.area == pytest.approx(6400.0)


def _same_spot_new_clothes() -> tuple[PersonTracker, int, int]:
    """A person with a face (embedding 0.0) leaves; 1 s later someone in other clothes appears nearby.

    Returns the tracker, the first track's id and the new track's id (body appearance alone differs)."""
    before = Person(RED, BLUE, start=(300, 200), velocity=(0, 0))
    after = Person(GREEN, YELLOW, start=(380, 200), velocity=(0, 0))
    tracker, first = _run([before], 5)
    old = first[-1][0]
    tracker.offer_face(old, _face(60, emb=0.0))
    for i in range(5, 15):
        tracker.update(render([], i), Detections.empty())
    ids: set[int] = set()
    for i in range(15, 20):
        box = after.box(0)
        ids |= {t.track_id for t in tracker.update(render([(box, after)], i), detections([box]))}
    (new,) = ids
    assert new != old
    return tracker, old, new


def test_face_embedding_relinks_a_track_that_body_appearance_missed() -> None:
    """The same person in other clothes (coat taken off): faces agree, so the new track takes the old id."""
    tracker, old, new = _same_spot_new_clothes()
    assert tracker.attach_face_embedding(new, _face(60, emb=0.1)) == old
    after = Person(GREEN, YELLOW, start=(380, 200), velocity=(0, 0))
    box = after.box(0)
    (track,) = tracker.update(render([(box, after)], 20), detections([box]))
    assert track.track_id == old
    assert track.first_pts_ms == 0.0


def test_face_embedding_of_someone_else_does_not_relink() -> None:
    tracker, _, new = _same_spot_new_clothes()
    assert tracker.attach_face_embedding(new, _face(60, emb=1.5)) == new


def test_confirm_score_needs_the_median_and_bounds_what_it_keeps() -> None:
    """``confirm_score``: a box that stays put at 0.45 (over the 0.4 that starts a track) never becomes a
    track, however long, and the scores kept for it stay bounded; one scoring 0.6 is a track after
    ``min_hits`` frames, as without the rule."""
    from keeneye.tracking.tracker import CONFIRM_WINDOW

    config = TrackerConfig(
        high_score=0.4, new_track_score=0.4, low_score=0.1, birth_score=0.4, confirm_score=0.5
    )
    image = np.zeros((120, 160, 3), np.uint8)
    still = PersonTracker(config)
    box = np.array([[40, 20, 60, 80]], np.float32)
    for i in range(3 * CONFIRM_WINDOW):
        assert (
            still.update(Frame("cam", i, i * 100.0, image), Detections(box, np.array([0.45], np.float32)))
            == []
        )
    assert still._tracks and all(len(s.track.history) <= CONFIRM_WINDOW for s in still._tracks.values())
    person = PersonTracker(config)
    live = [
        person.update(Frame("cam", i, i * 100.0, image), Detections(box + 2 * i, np.array([0.6], np.float32)))
        for i in range(5)
    ]
    assert [len(x) for x in live] == [0, 0, 1, 1, 1]
