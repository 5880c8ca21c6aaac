"""The stored-video job runners: what PersonTracking and FaceDetection jobs do with a video (FaceSearch's
is keeneye.service.video.face_search). Each runs the one frame loop (keeneye.pipeline.loop) and returns
plain items (pixels, milliseconds, face records) that the AWS adapter shapes on Get*.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Frame
from keeneye.pipeline.loop import run_frames
from keeneye.service.governance.redaction import build_redaction_analyzer, redact_video
from keeneye.service.streams.spec import ProcessorOptions
from keeneye.service.video.jobs import JobOutput, JobRunner
from keeneye.service.video.results import person_indexes, renumber_persons
from keeneye.service.video.tracking import build_tracking_detector, track_video
from keeneye.streams.worker import line_of
from keeneye.video.sources import open_video


def person_tracking_runner(settings: Any) -> JobRunner:
    """The PersonTracking runner: keeneye.service.video.tracking.track_video at ``video_jobs.target_fps``
    (at most ``video_jobs.max_duration_s`` of video); items are every box of every confirmed track:
    ``{"pts_ms", "index": track id, "xyxy": pixels}``. The detector is loaded once, at the first job,
    and shared by the jobs (one worker uses it at a time per thread; the ONNX session is thread-safe).

    ``params["lines"]`` (keeneye's extension, set by the web console; Rekognition's StartPersonTracking
    has no lines): directed lines as a stream processor's options take them (``{"name", "p1", "p2"}``,
    ratios); the job's metadata then holds ``line_counts`` and ``line_events`` (``{"line", "index",
    "pts_ms", "direction"}``, ``index`` as the items'). Such a job analyses frames at
    ``persons.target_fps`` (every frame by default), not ``video_jobs.target_fps``."""
    built: list[Any] = []
    lock = threading.Lock()

    def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        with lock:
            if not built:
                built.extend(build_tracking_detector(settings))
        detector, tracker_config = built
        max_s = settings.video_jobs.max_duration_s
        lines = [line_of(raw) for raw in ProcessorOptions.parse({"lines": params.get("lines") or []}).lines]
        result = track_video(
            video,
            settings,
            lines,
            # Counting lines needs the persons' own rate (every frame by default): on CAVIAR's shop door
            # every skipping schedule loses the exit (README, person tracking); plain tracking keeps
            # the jobs' cheaper rate.
            target_fps=settings.persons.target_fps if lines else settings.video_jobs.target_fps,
            max_duration_ms=None if max_s is None else max_s * 1000.0,
            detector=detector,
            tracker_config=tracker_config,
            on_progress=lambda _: checkpoint(),
            max_pixels=settings.video_jobs.max_pixels,
        )
        items = [
            {"pts_ms": float(p.pts_ms), "index": int(t.track_id), "xyxy": [float(v) for v in p.xyxy]}
            for t in result.tracks
            for p in t.history
        ]
        mapping = person_indexes(items)
        metadata = asdict(result.metadata)
        if lines:
            metadata["line_counts"] = result.line_counts
            metadata["line_events"] = [
                {
                    "line": e.line,
                    "index": mapping.get(e.track_id),
                    "pts_ms": float(e.pts_ms),
                    "direction": e.direction,
                }
                for e in result.line_events
            ]
        return JobOutput(metadata, renumber_persons(items))

    return run


def face_detection_runner(settings: Any, faces: Any) -> JobRunner:
    """The FaceDetection runner: faces (with DEFAULT attributes, or all with ``params["extras"]``) in
    every frame sampled at ``video_jobs.target_fps``; items are ``{"pts_ms", "index": the face's rank
    in its frame (largest first), "face": Face.to_record()}`` (boxes in pixels; the AWS adapter makes
    Rekognition's FaceDetail of them on GetFaceDetection)."""

    def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        extras = frozenset(params.get("extras", ()))
        max_s = settings.video_jobs.max_duration_s
        items: list[dict[str, Any]] = []

        def step(frame: Frame) -> None:
            found = faces.detect_faces(frame.image, extras)
            for i, face in enumerate(found.faces):
                items.append({"pts_ms": float(frame.pts_ms), "index": i, "face": face.to_record()})

        with open_video(video, max_pixels=settings.video_jobs.max_pixels) as source:
            run_frames(
                source.frames(settings.video_jobs.target_fps),
                step,
                max_duration_ms=None if max_s is None else max_s * 1000.0,
                checkpoint=checkpoint,
            )
            metadata = asdict(source.metadata)
        return JobOutput(metadata, items)

    return run


REDACTED_DIR = "redacted"
"""Where Redaction jobs write their videos, in the data directory: ``redacted/<job id>.mp4`` (or .avi)."""


def redaction_runner(settings: Any) -> JobRunner:
    """The Redaction runner (keeneye's own job kind, started from the web console; Rekognition has none):
    keeneye.service.governance.redaction.redact_video over the whole video, every face obscured
    (``params["mode"]``: blur, pixelate or box), written to ``<data_dir>/redacted/<job id>.mp4`` (H.264;
    MJPEG AVI where this FFmpeg has no H.264 encoder). Metadata: the video's, plus ``output`` (the file's
    name), ``codec``, ``frames`` and ``faces_redacted`` (face regions obscured, over all frames); one item
    per frame with faces (``{"pts_ms", "index": 0, "faces": n}``). The detector is loaded at the first job."""
    built: list[Any] = []
    lock = threading.Lock()

    def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        with lock:
            if not built:
                built.append(build_redaction_analyzer(settings))
        mode = params.get("mode", "blur")
        if mode not in ("blur", "pixelate", "box"):
            raise InvalidParameter("mode must be blur, pixelate or box")
        folder = Path(settings.data_dir) / REDACTED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        result = redact_video(
            video, folder / f"{params['job_id']}.mp4", built[0], mode=mode, on_progress=lambda _: checkpoint()
        )
        metadata = asdict(result.metadata)
        metadata.update(
            output=result.path.name,
            codec=result.codec,
            frames=len(result.frames),
            faces_redacted=sum(len(f.faces) for f in result.frames),
        )
        items = [
            {"pts_ms": float(f.pts_ms), "index": 0, "faces": len(f.faces)} for f in result.frames if f.faces
        ]
        return JobOutput(metadata, items)

    return run
