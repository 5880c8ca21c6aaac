"""Draw what the face pipeline found onto a copy of the image, for people who would rather look than read.

Boxes in green, landmarks as dots, and a label with the detector confidence and, where known, the
top expression, apparent age and eyes/mouth state. Uses OpenCV's drawing functions; nothing here
touches the input image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Face, UInt8Image

_BOX = (40, 200, 40)
_POINT = (250, 200, 0)
_TEXT_BG = (20, 20, 20)


def _label(face: Face) -> str:
    parts = [f"{face.score * 100:.0f}%"]
    emotions = face.attributes.get("emotions")
    if emotions:
        top = max(emotions, key=emotions.get)
        parts.append(f"{top} {emotions[top] * 100:.0f}%")
    if "age" in face.attributes:
        parts.append(f"~{face.attributes['age']:.0f}y")
    return "  ".join(parts)


def draw_faces(image: UInt8Image, faces: list[Face]) -> UInt8Image:
    """A copy of ``image`` (HxWx3 uint8 RGB) with each face's box, landmarks and label drawn on it."""
    out = np.ascontiguousarray(image.copy())
    scale = max(image.shape[:2]) / 800.0
    thickness = max(1, round(2 * scale))
    for face in faces:
        x1, y1, x2, y2 = (round(float(v)) for v in face.xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX, thickness)
        for x, y in face.landmarks.values():
            cv2.circle(out, (round(x), round(y)), max(1, thickness), _POINT, -1)
        text = _label(face)
        font_scale = 0.5 * max(scale, 0.6)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = max(th + base, y1 - 4)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), _TEXT_BG, -1)
        cv2.putText(
            out,
            text,
            (x1 + 2, ty - base // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return out


def save_image(image: UInt8Image, path: Path) -> None:
    """Write an RGB image; the format follows the extension (.jpg, .jpeg, .png)."""
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise InvalidParameter(f"annotated output must end in .jpg, .jpeg or .png, not {path.name!r}")
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise InvalidParameter(f"cannot write {path}")
