"""The one frame loop every video use runs on: ``keeneye track``, face search, redaction, the stored-video
job runners and the live runtime.

:func:`run_frames` pulls frames (from a stored video, or a live camera's queue) and, for each one: stops
at ``max_duration_ms`` of video, calls the ``checkpoint`` (a job's stop / cancel hook, may raise), ends
every track at a shot cut (keeneye.video.cuts: the stages' ``cut``), hands the frame to the ``step`` and
reports progress. It times decoding (waiting for the next frame) apart from the step. The stages
(keeneye.pipeline.persons, keeneye.pipeline.faces) know nothing of it, and it knows nothing of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from keeneye.core.types import Frame
from keeneye.video.cuts import ShotCutDetector

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """Where a run is: ``pts_ms`` of the last analysed frame, ``end_ms`` where it will stop (the video's
    duration or the ``max_duration_ms`` cut; None when unknown), frames analysed so far."""

    pts_ms: float
    end_ms: float | None
    frames_analysed: int


@dataclass
class LoopResult:
    """What a run went through: frames analysed, the pts of the last one, the shot cuts found (ms), and
    the wall time spent waiting for frames (``decode``) and in the step (``step``)."""

    frames_analysed: int = 0
    end_pts_ms: float | None = None
    cuts_ms: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "step": 0.0})


def _same(item: object) -> Frame:
    assert isinstance(item, Frame)
    return item


def run_frames(
    items: Iterable[T],
    step: Callable[[T], None],
    *,
    frame_of: Callable[[T], Frame] = _same,
    cut: Callable[[], None] | None = None,
    cut_threshold: float | None = None,
    max_duration_ms: float | None = None,
    checkpoint: Callable[[], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    end_ms: float | None = None,
) -> LoopResult:
    """Run ``step`` on each item (a :class:`Frame`, or what ``frame_of`` takes a frame from: a live
    capture's frame with its capture time). ``cut`` is called before the step of a frame that starts a
    new shot (``cut_threshold``: keeneye.video.cuts; None: cuts are not looked for)."""
    cuts = None if cut_threshold is None or cut is None else ShotCutDetector(cut_threshold)
    result = LoopResult()
    t0 = time.perf_counter()
    for item in items:
        frame = frame_of(item)
        if max_duration_ms is not None and frame.pts_ms >= max_duration_ms:
            break
        if checkpoint is not None:
            checkpoint()
        t1 = time.perf_counter()
        result.seconds["decode"] += t1 - t0
        if cuts is not None and cut is not None and cuts.is_cut(frame.image):
            cut()
            result.cuts_ms.append(frame.pts_ms)
        step(item)
        result.frames_analysed += 1
        result.end_pts_ms = frame.pts_ms
        if on_progress is not None:
            on_progress(Progress(frame.pts_ms, end_ms, result.frames_analysed))
        t0 = time.perf_counter()
        result.seconds["step"] += t0 - t1
    return result
