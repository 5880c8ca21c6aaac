"""What stream processors saw happen at their lines and zones, kept for the console's timeline.

A worker's line crossings and zone visits become records sent to its sinks (keeneye.streams.runtime);
the worker also reports each to the server (keeneye.streams.supervisor, ``("event", {...})``), which
keeps it here: processor, run, line or zone, direction (in / out, enter / exit), track, time.
Identifications are not here: they are the review queue's (keeneye.service.review). Rows are deleted
after ``retention.stream_events_days`` (keeneye.service.governance.retention).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from keeneye.store.db import Store
from keeneye.store.tables import StreamEventRow

KINDS = ("line", "zone")
DIRECTIONS = {"line": ("in", "out"), "zone": ("enter", "exit")}


@dataclass(frozen=True)
class StreamEvent:
    """One line crossing or zone visit of a stream processor (``pts_ms``: on the camera's timeline)."""

    event_id: int
    created_at: datetime
    processor: str
    session_id: str | None
    kind: str
    name: str
    direction: str
    track_id: int | None
    pts_ms: float | None
    identity: str | None


class StreamEvents:
    """The stream processors' line and zone events, in the store (thread-safe: one transaction each)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, processor: str, session_id: str | None, report: Mapping[str, Any]) -> None:
        """Keep one worker report ``{"kind", "name", "direction", "track_id", "pts_ms", "identity"?}``;
        a report of another shape is ignored (a worker's bug does not fill the table with junk)."""
        kind, direction = report.get("kind"), report.get("direction")
        if kind not in DIRECTIONS or direction not in DIRECTIONS[kind]:
            return
        track, pts, identity = report.get("track_id"), report.get("pts_ms"), report.get("identity")
        with self._store.transaction() as s:
            s.add(
                StreamEventRow(
                    created_at=datetime.now(UTC),
                    processor=processor,
                    session_id=session_id,
                    kind=kind,
                    name=str(report.get("name", ""))[:255],
                    direction=direction,
                    track_id=int(track) if isinstance(track, int) else None,
                    pts_ms=float(pts) if isinstance(pts, int | float) else None,
                    identity=str(identity)[:255] if identity else None,
                )
            )

    def list(self, *, processor: str | None = None, limit: int = 200) -> list[StreamEvent]:
        """The newest events first (of one processor if given)."""
        q = select(StreamEventRow).order_by(StreamEventRow.id.desc()).limit(max(1, min(limit, 1000)))
        if processor is not None:
            q = q.where(StreamEventRow.processor == processor)
        with self._store.sessions() as s:
            return [_event(r) for r in s.scalars(q)]

    def purge(self, now: datetime, days: float | None, *, dry_run: bool = False) -> int:
        """Delete events older than ``days`` (none when None); how many (or would be)."""
        if days is None:
            return 0
        old = StreamEventRow.created_at < now - timedelta(days=days)
        with self._store.transaction() as s:
            n = int(s.scalar(select(func.count()).select_from(StreamEventRow).where(old)) or 0)
            if n and not dry_run:
                s.execute(delete(StreamEventRow).where(old))
        return n


def _event(row: StreamEventRow) -> StreamEvent:
    return StreamEvent(
        row.id,
        row.created_at,
        row.processor,
        row.session_id,
        row.kind,
        row.name,
        row.direction,
        row.track_id,
        row.pts_ms,
        row.identity,
    )
