"""Builders for synthetic tracking scenes: people as two-colour boxes (torso, legs) on a grey background.

Kept beside the tracking tests (not in tests/factories.py) because only they use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keeneye.core.types import Detections, Frame

WIDTH, HEIGHT = 640, 360
FRAME_MS = 100.0  # 10 fps
RED, BLUE, GREEN, YELLOW, PURPLE, ORANGE = (
    (220, 30, 30),
    (30, 40, 200),
    (30, 180, 40),
    (230, 210, 20),
    (150, 40, 170),
    (240, 130, 20),
)


@dataclass(frozen=True)
class Person:
    """A synthetic person: box size in pixels, clothing colours (RGB), and a path ``center(t_ms)``."""

    torso: tuple[int, int, int]
    legs: tuple[int, int, int]
    start: tuple[float, float]  # box centre at t = 0, pixels
    velocity: tuple[float, float]  # pixels per second
    width: float = 40.0
    height: float = 100.0

    def box(self, t_ms: float) -> tuple[float, float, float, float]:
        cx = self.start[0] + self.velocity[0] * t_ms / 1000.0
        cy = self.start[1] + self.velocity[1] * t_ms / 1000.0
        return (cx - self.width / 2, cy - self.height / 2, cx + self.width / 2, cy + self.height / 2)


def render(boxes: Sequence[tuple[tuple[float, float, float, float], Person]], index: int) -> Frame:
    """A frame with each person drawn in its box (head skin-grey, torso top half, legs bottom half)."""
    image = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
    for (x1, y1, x2, y2), person in boxes:
        xa, xb = max(int(x1), 0), min(int(x2), WIDTH)
        ya, yb = max(int(y1), 0), min(int(y2), HEIGHT)
        if xa >= xb or ya >= yb:
            continue
        mid = int(y1 + 0.15 * (y2 - y1))
        waist = int(y1 + 0.55 * (y2 - y1))
        image[ya : max(mid, ya), xa:xb] = (200, 170, 150)
        image[max(mid, ya) : max(min(waist, yb), ya), xa:xb] = person.torso
        image[max(waist, ya) : yb, xa:xb] = person.legs
    return Frame("synthetic", index, index * FRAME_MS, image)


def detections(boxes: Sequence[tuple[float, float, float, float]], score: float = 0.9) -> Detections:
    """Detections for the given boxes, clipped to the frame, all with ``score``."""
    if not boxes:
        return Detections.empty()
    arr = np.clip(np.asarray(boxes, np.float32), 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
    return Detections(arr, np.full(len(boxes), score, np.float32))


def visible(box: tuple[float, float, float, float]) -> bool:
    """Whether at least half of the box is inside the frame."""
    x1, y1, x2, y2 = box
    w = max(0.0, min(x2, WIDTH) - max(x1, 0.0))
    h = max(0.0, min(y2, HEIGHT) - max(y1, 0.0))
    return w * h >= 0.5 * (x2 - x1) * (y2 - y1)
