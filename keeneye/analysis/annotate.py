"""Draw what the face pipeline found onto a copy of the image, for people who would rather look than read.

Faces: boxes in green, landmarks as dots, and a label with the detector confidence and, where known, the
top expression, apparent age and eyes/mouth state. Tracks (``draw_tracks``): one colour per track id,
the id on the box, the anchor point, counting lines with their ``in`` side marked and running counts,
zones as outlines. Boxes of one frame with a label each (``draw_boxes``: a live view). Uses OpenCV's
drawing functions; nothing here touches the input image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Face, Track, UInt8Image
from keeneye.tracking.lines import Line
from keeneye.tracking.zones import Zone

_BOX = (40, 200, 40)
_POINT = (250, 200, 0)
_TEXT_BG = (20, 20, 20)
_LINE = (255, 60, 60)
_ZONE = (255, 200, 0)


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
        _text(out, _label(face), x1, y1 - 4, 0.5 * max(scale, 0.6))
    return out


def _track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    r, g, b = (int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    return (r, g, b)


def _text(out: UInt8Image, text: str, x: int, y: int, font_scale: float) -> None:
    """White text on a dark box whose bottom-left is (x, y), kept inside the image."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    y = max(th + base, y)
    x = max(0, min(x, out.shape[1] - tw - 4))  # a label near the right edge moves left, not off the image
    cv2.rectangle(out, (x, y - th - base), (x + tw + 4, y + base // 2), _TEXT_BG, -1)
    cv2.putText(
        out,
        text,
        (x + 2, y - base // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        font_scale,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )


def draw_tracks(
    image: UInt8Image,
    tracks: Sequence[Track],
    lines: Sequence[Line] = (),
    zones: Sequence[Zone] = (),
    line_counts: Mapping[str, Mapping[str, int]] | None = None,
) -> UInt8Image:
    """A copy of ``image`` (HxWx3 uint8 RGB) with each track's last box, id and anchor, the lines (a tick
    on their ``in`` side, the running in/out counts at p1) and the zones (ratio coordinates) drawn on it."""
    out = np.ascontiguousarray(image.copy())
    height, width = image.shape[:2]
    scale = max(height, width) / 800.0
    thickness = max(1, round(2 * scale))
    font_scale = 0.5 * max(scale, 0.6)
    for zone in zones:
        poly = np.array([[round(x * width), round(y * height)] for x, y in zone.polygon], np.int32)
        cv2.polylines(out, [poly], True, _ZONE, thickness, cv2.LINE_AA)
        _text(out, zone.name, int(poly[:, 0].min()), int(poly[:, 1].min()) - 2, font_scale)
    for line in lines:
        p1 = np.array([line.p1[0] * width, line.p1[1] * height])
        p2 = np.array([line.p2[0] * width, line.p2[1] * height])
        cv2.line(out, _pt(p1), _pt(p2), _LINE, thickness, cv2.LINE_AA)
        # The in side is where cross(p2 - p1, q - p1) > 0: the direction (-dy, dx) in image coordinates.
        d = p2 - p1
        normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        mid = (p1 + p2) / 2
        cv2.arrowedLine(out, _pt(mid), _pt(mid + normal * 20 * max(scale, 0.6)), _LINE, thickness)
        counts = (line_counts or {}).get(line.name, {})
        label = f"{line.name} in {counts.get('in', 0)} out {counts.get('out', 0)}"
        lx = min(max(0, round(float(p1[0]))), max(0, width - 8 * len(label)))
        _text(out, label, lx, min(height - 4, max(0, round(float(p1[1])) - 4)), font_scale)
    for track in tracks:
        if not track.history:
            continue
        colour = _track_colour(track.track_id)
        x1, y1, x2, y2 = (round(v) for v in track.xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        ax, ay = track.anchor
        cv2.circle(out, (round(ax), round(ay)), thickness + 1, colour, -1)
        _text(
            out,
            f"#{track.track_id}" + (f" {track.identity}" if track.identity else ""),
            x1,
            y1 - 2,
            font_scale,
        )
    return out


@dataclass(frozen=True)
class LabelledBox:
    """A box to draw: ``xyxy`` pixels, the text above it, and ``key`` (a track id) picking its colour."""

    xyxy: tuple[float, float, float, float]
    label: str
    key: int


def draw_boxes(
    image: UInt8Image,
    boxes: Sequence[LabelledBox],
    lines: Sequence[Line] = (),
    zones: Sequence[Zone] = (),
    line_counts: Mapping[str, Mapping[str, int]] | None = None,
) -> UInt8Image:
    """A copy of ``image`` (HxWx3 uint8 RGB) with the lines, zones and counts as :func:`draw_tracks` draws
    them and each box with its label, one colour per ``key``: for boxes that are not (or no longer)
    :class:`Track` objects, e.g. a live view's faces and persons of one frame."""
    out = draw_tracks(image, (), lines, zones, line_counts)
    scale = max(image.shape[:2]) / 800.0
    thickness = max(1, round(2 * scale))
    for box in boxes:
        x1, y1, x2, y2 = (round(v) for v in box.xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), _track_colour(box.key), thickness)
        _text(out, box.label, max(0, x1), y1 - 2, 0.5 * max(scale, 0.6))
    return out


def _pt(p: np.ndarray) -> tuple[int, int]:
    return (round(float(p[0])), round(float(p[1])))


def save_image(image: UInt8Image, path: Path) -> None:
    """Write an RGB image; the format follows the extension (.jpg, .jpeg, .png)."""
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise InvalidParameter(f"annotated output must end in .jpg, .jpeg or .png, not {path.name!r}")
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise InvalidParameter(f"cannot write {path}")
