"""Reading frames from a LiveSource in tests, with a bound."""

from __future__ import annotations

import time

from keeneye.streams.capture import CapturedFrame, LiveSource


def take(source: LiveSource, n: int, timeout_s: float = 10.0) -> list[CapturedFrame]:
    """The next ``n`` frames of ``source``; fails (saying how many came and the source's status) after
    ``timeout_s``."""
    frames: list[CapturedFrame] = []
    deadline = time.monotonic() + timeout_s
    while len(frames) < n:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"got {len(frames)} of {n} frames in {timeout_s} s: {source.status()}"
        item = source.get(remaining)
        if item is not None:
            frames.append(item)
    return frames
