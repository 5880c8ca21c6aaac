"""keeneye.core.events: an Event carries the payload type of its kind, or is refused."""

from __future__ import annotations

import numpy as np
import pytest

from keeneye.core.events import (
    Event,
    EventKind,
    FaceIdentified,
    FrameContext,
    LineCrossed,
    Payload,
    PersonSeen,
    ZoneVisit,
)
from keeneye.core.types import Face

FRAME = FrameContext(pts_ms=1500.0, width=640, height=360, captured_at=1_700_000_000.0)
FACE = FaceIdentified(Face(np.array([0, 0, 10, 10], np.float32), 0.9), [], None)
SEEN = PersonSeen((10.0, 20.0, 50.0, 120.0), identity="lin")
CROSSED = LineCrossed("door", "in")
ENTERED = ZoneVisit("desk")
LEFT = ZoneVisit("desk", dwell_ms=800.0)

VALID: list[tuple[EventKind, Payload]] = [
    ("face_identified", FACE),
    ("person_seen", SEEN),
    ("line_crossed", CROSSED),
    ("zone_entered", ENTERED),
    ("zone_left", LEFT),
]


@pytest.mark.parametrize(("kind", "payload"), VALID, ids=[kind for kind, _ in VALID])
def test_each_kind_takes_its_payload(kind: EventKind, payload: Payload) -> None:
    event = Event(kind, "rtsp://camera/1", 1400.0, 7, payload, FRAME)
    assert event.kind == kind and event.payload is payload
    assert event.frame.pts_ms == 1500.0 and event.pts_ms == 1400.0  # an event can predate its frame


MISMATCHED = [
    (kind, payload)
    for kind, _ in VALID
    for _, payload in VALID
    if not isinstance(payload, type(dict(VALID)[kind]))
]


@pytest.mark.parametrize(
    ("kind", "payload"), MISMATCHED, ids=[f"{k}-{type(p).__name__}" for k, p in MISMATCHED]
)
def test_a_payload_of_another_kind_is_refused(kind: EventKind, payload: Payload) -> None:
    with pytest.raises(ValueError, match=f"a '{kind}' event needs"):
        Event(kind, "file.mp4", 0.0, 1, payload, FRAME)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'door_opened'"):
        Event("door_opened", "file.mp4", 0.0, None, CROSSED, FRAME)  # type: ignore[arg-type]


def test_events_and_payloads_are_frozen() -> None:
    event = Event("line_crossed", "file.mp4", 0.0, 1, CROSSED, FRAME)
    with pytest.raises(AttributeError):
        event.pts_ms = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        CROSSED.direction = "out"  # type: ignore[misc]
    assert FRAME.connection == 0 and ZoneVisit("desk").dwell_ms is None
