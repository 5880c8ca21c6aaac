"""What the pipeline tells the world: one :class:`Event` type with one payload type per kind.

The frame stages (keeneye.pipeline) emit events; the live runtime hands them to the sinks through an
encoder (Rekognition's Kinesis face-search record, keeneye.aws.stream_records), the CLI prints them, the
server audits identifications. Pixels and milliseconds here; PascalCase only at those edges.

* ``face_identified``: a face track was embedded and searched: :class:`FaceIdentified` (the face, the
  collection's matches best first, empty for an unknown face, and the name of the best match);
* ``person_seen``: a person track is in view: :class:`PersonSeen` (its box);
* ``line_crossed``: a person track crossed a directed line: :class:`LineCrossed`;
* ``zone_entered`` / ``zone_left``: a person track entered or left a zone: :class:`ZoneVisit` (the time
  spent inside, on leaving).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from keeneye.core.types import Face

EventKind = Literal["face_identified", "person_seen", "line_crossed", "zone_entered", "zone_left"]


@dataclass(frozen=True)
class FrameContext:
    """The frame an event was found in: its pts (ms; an event's own ``pts_ms`` can be earlier, e.g. the
    observation that confirmed a line crossing), its size in pixels, the wall-clock time it was captured
    (epoch seconds) and the capture connection (a live camera's reconnects count up; 0 for a file)."""

    pts_ms: float
    width: int
    height: int
    captured_at: float
    connection: int = 0


@dataclass(frozen=True)
class FaceIdentified:
    """A face track's face, searched: ``matches`` are the collection's stored faces at or above the
    threshold, best first (keeneye.store match objects: ``face`` and ``similarity`` 0-100); empty for a
    face not on the watchlist. ``identity``: the best match's name (UserId, ExternalImageId or FaceId)."""

    face: Face
    matches: Sequence[Any]
    identity: str | None


@dataclass(frozen=True)
class PersonSeen:
    """A person track in view: its box (pixels) and who it is, where a face told."""

    xyxy: tuple[float, float, float, float]
    identity: str | None = None


@dataclass(frozen=True)
class LineCrossed:
    """A person track crossed ``line``: ``in`` from the side where cross(p2 - p1, q - p1) < 0 to > 0."""

    line: str
    direction: Literal["in", "out"]
    identity: str | None = None


@dataclass(frozen=True)
class ZoneVisit:
    """A person track entered or left ``zone``; ``dwell_ms`` (on leaving) is the time spent inside."""

    zone: str
    dwell_ms: float | None = None
    identity: str | None = None


Payload = FaceIdentified | PersonSeen | LineCrossed | ZoneVisit
_PAYLOADS: dict[EventKind, type[Any]] = {
    "face_identified": FaceIdentified,
    "person_seen": PersonSeen,
    "line_crossed": LineCrossed,
    "zone_entered": ZoneVisit,
    "zone_left": ZoneVisit,
}


@dataclass(frozen=True)
class Event:
    """One thing the pipeline found: ``kind``, the source (``source_id``: a stream's ARN or URL without
    secrets, or a file), ``pts_ms`` on the source's timeline, the track, and the kind's payload."""

    kind: EventKind
    source_id: str
    pts_ms: float
    track_id: int | None
    payload: Payload
    frame: FrameContext

    def __post_init__(self) -> None:
        expected = _PAYLOADS.get(self.kind)
        if expected is None or not isinstance(self.payload, expected):
            raise ValueError(f"a {self.kind!r} event needs a {expected} payload, got {type(self.payload)}")
