"""How stored-video job results keep what they found: plain JSON records, typed on the way in and out.

Job results live in the database as JSON. Faces are kept as :meth:`keeneye.core.types.Face.to_record`
(pixel boxes and attributes), collection matches as :func:`match_record` (the stored face and its
Similarity); the AWS adapter turns them into Rekognition's shapes when a Get* reads them
(keeneye.aws.shapes), so the job store knows nothing of PascalCase or ratio boxes.
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
