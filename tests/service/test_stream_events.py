"""Stream processors' line crossings and zone visits kept for the console's timeline: what a worker
reports (keeneye.streams.worker.report_event), what the server keeps and lists, and its purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from keeneye.core.events import Event, FrameContext, LineCrossed, PersonSeen, ZoneVisit
from keeneye.service.streams.events import StreamEvents
from keeneye.store.db import Store
from keeneye.streams.worker import report_event

FRAME = FrameContext(2600.0, 640, 360, 1_700_000_000.0)


class _Pipe:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


def test_worker_reports_lines_and_zones_only() -> None:
    pipe = _Pipe()
    report_event(pipe, Event("line_crossed", "cam", 1500.0, 7, LineCrossed("door", "in"), FRAME))  # type: ignore[arg-type]
    report_event(pipe, Event("zone_left", "cam", 2500.0, 7, ZoneVisit("till", 900.0, "ada"), FRAME))  # type: ignore[arg-type]
    report_event(pipe, Event("person_seen", "cam", 2600.0, 7, PersonSeen((0, 0, 1, 1)), FRAME))  # type: ignore[arg-type]
    assert pipe.sent == [
        (
            "event",
            {
                "kind": "line",
                "name": "door",
                "direction": "in",
                "track_id": 7,
                "pts_ms": 1500.0,
                "identity": None,
            },
        ),
        (
            "event",
            {
                "kind": "zone",
                "name": "till",
                "direction": "exit",
                "track_id": 7,
                "pts_ms": 2500.0,
                "identity": "ada",
            },
        ),
    ]


def test_events_are_kept_listed_newest_first_and_purged(store: Store) -> None:
    events = StreamEvents(store)
    events.record(
        "door", "s1", {"kind": "line", "name": "door", "direction": "out", "track_id": 3, "pts_ms": 10.0}
    )
    events.record("door", "s1", {"kind": "zone", "name": "till", "direction": "enter", "track_id": 4})
    events.record("yard", "s2", {"kind": "line", "name": "gate", "direction": "in"})
    events.record("yard", "s2", {"kind": "line", "name": "gate", "direction": "sideways"})  # not a direction
    events.record("yard", "s2", {"kind": "face", "name": "x", "direction": "in"})  # not a kind
    listed = events.list()
    assert [(e.processor, e.kind, e.name, e.direction) for e in listed] == [
        ("yard", "line", "gate", "in"),
        ("door", "zone", "till", "enter"),
        ("door", "line", "door", "out"),
    ]
    assert [e.track_id for e in events.list(processor="door")] == [4, 3]
    later = datetime.now(UTC) + timedelta(days=31)
    assert events.purge(later, None) == 0 and events.purge(later, 30.0, dry_run=True) == 3
    assert len(events.list()) == 3
    assert events.purge(datetime.now(UTC), 30.0) == 0
    assert events.purge(later, 30.0) == 3 and events.list() == []
