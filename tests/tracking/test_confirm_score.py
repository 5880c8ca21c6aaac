"""A box that keeps scoring just over the threshold does not become a track; the people do (issue 12).

Real data, real detector: the first 6 s of PETS09-S2L1 (60 frames, 480x360) through the default
person detector (CenterNet + NanoDet) and the default tracker settings. NanoDet scores a traffic cone
on the left of the lawn (about x 102-113, y 117-130) at 0.4-0.5 in 515 of PETS's 795 frames (15 of
this window's 60), over the 0.4 that starts a track; before ``persons.confirm_score`` it became a
false track (on the whole video: 7 successive false tracks on it, 707 frames). With the default (the
median of a new track's scores must reach 0.5) no track sits on it, and every labelled person in
view for at least 2 s of the window is still tracked (a track's box on them at IoU >= 0.5 in at
least half of their frames). With the rule off (``confirm_score = 0``) the cone is a track, so the
rule, not the detector, is what removes it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from keeneye.config import PersonsSettings, Settings
from keeneye.core.geometry import iou_matrix
from keeneye.core.types import Detections, Frame
from keeneye.pipeline.persons import build_tracking_detector, tracker_config
from keeneye.tracking.tracker import PersonTracker, TrackerConfig
from keeneye.video.sources import open_video

pytestmark = pytest.mark.data

FRAMES = 60
Scene = list[tuple[Frame, Detections]]
CONE = np.array([[100, 115, 115, 132]], np.float32)


@pytest.fixture(scope="module")
def scene(models_dir: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """(frame, detections at the tracker's floor) for the first FRAMES frames."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), models_path=models_dir)
    detector, _ = build_tracking_detector(settings)
    out = []
    with open_video(shared_data / "video" / "pets09_s2l1" / "vtest_480x360.mp4") as video:
        for frame in video.frames():
            if frame.index >= FRAMES:
                break
            out.append((frame, detector.detect(frame.image)))
    return out


def _gt(shared_data: Path) -> dict[int, dict[int, np.ndarray]]:
    """Labelled person id -> {frame index: box xyxy} within the window."""
    rows = np.loadtxt(shared_data / "video" / "pets09_s2l1" / "gt" / "gt_480x360.txt", delimiter=",")
    out: dict[int, dict[int, np.ndarray]] = {}
    for r in rows[rows[:, 0] <= FRAMES]:
        box = np.array([r[2] - 1, r[3] - 1, r[2] - 1 + r[4], r[3] - 1 + r[5]], np.float32)
        out.setdefault(int(r[1]), {})[int(r[0]) - 1] = box
    return out


def _track(scene: Scene, config: TrackerConfig) -> dict[int, dict[int, np.ndarray]]:
    """Confirmed track id -> {frame index: box} (their whole history, as a stored-video result has)."""
    tracker = PersonTracker(config)
    for frame, dets in scene:
        tracker.update(frame, dets)
    return {
        t.track_id: {round(p.pts_ms / 100.0): np.array(p.xyxy, np.float32) for p in t.history}
        for t in tracker.all_tracks()
    }


def _on_cone(tracks: dict[int, dict[int, np.ndarray]]) -> list[int]:
    return [
        tid for tid, boxes in tracks.items() if iou_matrix(CONE, np.stack(list(boxes.values()))).max() > 0.3
    ]


def test_the_cone_is_no_track_and_the_people_are(scene: Scene, shared_data: Path) -> None:
    assert len(scene) == FRAMES
    cone_scores = [float(d.score[iou_matrix(CONE, d.xyxy)[0] > 0.3].max(initial=0.0)) for _, d in scene]
    assert sum(s >= 0.4 for s in cone_scores) >= 10  # the detector does score it as a person (15 of 60)

    config = tracker_config(PersonsSettings())
    assert config.confirm_score == 0.5
    tracks = _track(scene, config)
    assert _on_cone(tracks) == []

    people = {pid: boxes for pid, boxes in _gt(shared_data).items() if len(boxes) >= 20}
    assert len(people) >= 4
    for pid, boxes in people.items():
        covered = sum(
            any(k in t and iou_matrix(box[None], t[k][None])[0, 0] >= 0.5 for t in tracks.values())
            for k, box in boxes.items()
        )
        assert covered >= 0.5 * len(boxes), (pid, covered, len(boxes))


def test_without_the_rule_the_cone_is_a_track(scene: Scene) -> None:
    config = replace(tracker_config(PersonsSettings()), confirm_score=0.0)
    assert _on_cone(_track(scene, config)) != []


def test_slow_births_and_confirm_score_reach_the_tracker() -> None:
    """``persons.birth_score`` and ``persons.confirm_score`` are what the tracker gets (birth_score was
    documented but never passed on before)."""
    default = tracker_config(PersonsSettings())
    assert default.birth_score == default.new_track_score == 0.4  # slow births off
    persons = PersonsSettings().model_copy(update={"birth_score": 0.25, "confirm_score": 0.6})
    config = tracker_config(persons)
    assert (config.birth_score, config.confirm_score) == (0.25, 0.6)
