"""How stored-video job results keep what they found: plain JSON records, typed on the way in and out.

Job results live in the database as JSON. Faces are kept as :meth:`keeneye.core.types.Face.to_record`
(pixel boxes and attributes), collection matches as :func:`match_record` (the stored face and its
Similarity), persons under their Person.Index (:func:`person_indexes`); the AWS adapter turns them
into Rekognition's shapes when a Get* reads them (keeneye.aws.shapes), so the job store knows nothing
of PascalCase or ratio boxes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from keeneye.service.faces.collections import FaceMatch, StoredFace


def match_record(match: FaceMatch) -> dict[str, Any]:
    """``{"similarity": 0-100, "face": the stored face's fields}`` (times as ISO 8601)."""
    face = {
        f.name: (value.isoformat() if isinstance(value, datetime) else value)
        for f in dataclasses.fields(StoredFace)
        for value in [getattr(match.face, f.name)]
    }
    face["xyxy"] = [float(v) for v in match.face.xyxy]
    return {"similarity": float(match.similarity), "face": face}


def match_from_record(record: dict[str, Any]) -> FaceMatch:
    """The match :func:`match_record` wrote."""
    raw = dict(record["face"])
    raw["xyxy"] = tuple(float(v) for v in raw["xyxy"])
    raw["indexed_at"] = datetime.fromisoformat(raw["indexed_at"])
    known = {f.name for f in dataclasses.fields(StoredFace)}
    return FaceMatch(StoredFace(**{k: v for k, v in raw.items() if k in known}), float(record["similarity"]))


def person_indexes(items: list[dict[str, Any]]) -> dict[int, int]:
    """Track id -> Rekognition's Person.Index: 0, 1, 2, ... in order of first appearance, without gaps
    (the tracker's ids start at 1 and skip the tentative tracks it dropped)."""
    first: dict[int, float] = {}
    for it in items:
        track = int(it["index"])
        first[track] = min(first.get(track, float(it["pts_ms"])), float(it["pts_ms"]))
    ordered = sorted(first, key=lambda t: (first[t], t))
    return {track: i for i, track in enumerate(ordered)}


def renumber_persons(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with ``index`` replaced by :func:`person_indexes`."""
    mapping = person_indexes(items)
    return [{**it, "index": mapping[int(it["index"])]} for it in items]
