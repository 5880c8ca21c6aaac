"""When the detector runs (keeneye.pipeline.schedule.DetectionSchedule), for person tracking and for live
face search (keeneye.pipeline.faces.FaceSteps with a schedule), and what a live camera's per-frame face
description ("basic": no face mesh) leaves for the reported face (FaceAnalyzer.describe).

Real data: the Hamilton clip (``video/face_clips/short_hamilton_clip.mp4``: 640x360, a performer on stage,
the camera moving), sampled to 10 fps as a live camera is, and the real BlazeFace / face mesh models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.core.types import Frame, UInt8Image
from keeneye.pipeline.faces import FaceSteps, face_tracker_config
from keeneye.pipeline.schedule import DetectionSchedule, ScheduleConfig
from keeneye.tracking.tracker import PersonTracker
from keeneye.video.cuts import ShotCutDetector
from keeneye.video.sources import open_video


def _frame(index: int, image: UInt8Image, fps: float = 10.0) -> Frame:
    return Frame("cam", index, index * 1000.0 / fps, image)


def _still(seed: int = 0) -> UInt8Image:
    rng = np.random.default_rng(seed)
    return np.asarray(rng.integers(0, 255, (360, 640, 3)), np.uint8)


def test_every_nth_frame_and_at_least_every_max_skip() -> None:
    image = _still()
    every_third = [True, False, False, True, False, False, True]
    schedule = DetectionSchedule(ScheduleConfig(detect_every=3, max_skip_ms=10_000))
    assert [schedule.due(_frame(i, image)) for i in range(7)] == every_third
    # max_skip_ms forces a detection even between the Nth frames (here every 250 ms at 10 fps: 3 frames).
    schedule = DetectionSchedule(ScheduleConfig(detect_every=10, max_skip_ms=250))
    assert [schedule.due(_frame(i, image)) for i in range(7)] == every_third
    with pytest.raises(ValueError):
        DetectionSchedule(ScheduleConfig(detect_every=0))


def test_motion_gating_skips_still_frames_and_runs_on_motion() -> None:
    ramp = np.linspace(0, 200, 640, dtype=np.float32)
    still = np.repeat(np.tile(ramp, (360, 1))[:, :, None], 3, axis=2).astype(np.uint8)  # a quiet scene
    moved = still.copy()
    moved[100:200, 200:260] = 255  # someone walked in: 2.6 % of the frame changed
    schedule = DetectionSchedule(ScheduleConfig(detect_every=1, motion_gating=True, max_skip_ms=1000))
    due = [schedule.due(_frame(i, still)) for i in range(5)]
    assert due == [True, False, False, False, False]  # nothing moved after the first detection
    assert schedule.due(_frame(5, moved))  # motion: detected at once
    # Standing still for 1 s: detected again (someone who stays put is confirmed at least that often).
    due = [schedule.due(_frame(i, moved)) for i in range(6, 17)]
    assert due == [False] * 9 + [True, False]


def test_a_frame_of_another_size_is_a_cut() -> None:
    cuts = ShotCutDetector()
    small, large = _still(1)[:180, :320], _still(2)
    assert [cuts.is_cut(small), cuts.is_cut(small.copy())] == [False, False]
    assert cuts.is_cut(large)  # the camera came back at another resolution: old boxes mean nothing
    assert not cuts.is_cut(large.copy())


@pytest.fixture(scope="module")
def live_analyzer(models_dir: Path) -> FaceAnalyzer:
    return build_face_analyzer(Settings(data_dir=models_dir.parent), with_embedder=True, live_frames=True)


@pytest.fixture(scope="module")
def clip_frames(shared_data: Path) -> list[Frame]:
    with open_video(shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4") as video:
        return list(video.frames(10.0))


@pytest.mark.models
@pytest.mark.data
def test_live_face_steps_detect_on_the_scheduled_frames_and_predict_between(
    live_analyzer: FaceAnalyzer, clip_frames: list[Frame]
) -> None:
    config = face_tracker_config(0.65, live_analyzer)
    every = FaceSteps(live_analyzer, PersonTracker(config), attributes="basic")
    halves = FaceSteps(
        live_analyzer,
        PersonTracker(config),
        attributes="basic",
        schedule=DetectionSchedule(ScheduleConfig(detect_every=2, max_skip_ms=1000)),
    )
    seen_every = seen_halves = 0
    for i, frame in enumerate(clip_frames):
        full, half = every.step(frame), halves.step(frame)
        seen_every += bool(full.faces)
        assert full.detected and half.detected == (i % 2 == 0)
        if half.detected:
            # The same detector on the same frame: the same faces.
            assert [f.xyxy.tolist() for f in half.faces] == [f.xyxy.tolist() for f in full.faces]
            seen_halves += bool(half.faces)
        else:
            assert half.faces == [] and half.tracked == [] and half.rekeyed == {}
    assert halves.frames_detected == (len(clip_frames) + 1) // 2
    assert every.frames_detected == len(clip_frames)
    # Faces are on most frames of the clip, on the detected half as on all of them.
    assert seen_every >= 0.6 * len(clip_frames) and seen_halves >= 0.6 * halves.frames_detected


@pytest.mark.models
@pytest.mark.data
def test_basic_faces_skip_the_mesh_and_describe_adds_it(
    live_analyzer: FaceAnalyzer, clip_frames: list[Frame]
) -> None:
    frame = next(f for f in clip_frames if live_analyzer.detect(f.image, video_frame=True))
    basic = live_analyzer.analyze(frame.image, attributes="basic", video_frame=True)
    full = live_analyzer.analyze(frame.image, attributes="default", video_frame=True)
    assert basic and len(basic) == len(full)
    face = basic[0]
    # Quality and a pose from the detector's own points (enough to choose a track's best face) ...
    assert {"quality", "pose"} <= set(face.attributes) and "mesh_score" not in face.attributes
    detector_points = set(face.landmarks)
    assert len(detector_points) < len(full[0].landmarks)  # ... but not the face mesh's landmarks
    live_analyzer.describe(frame.image, [face])
    # Described, the reported face has what a face analysed with "default" has.
    assert set(face.landmarks) == set(full[0].landmarks) and "mesh_score" in face.attributes
    assert face.attributes["pose"] == pytest.approx(full[0].attributes["pose"])
