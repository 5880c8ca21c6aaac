"""The audit log's hash chain: what a record's hash covers, byte for byte.

A record's hash is ``sha256(canonical_json(record without "hash"))`` in lowercase hex, where the
record holds ``prev_hash``: the hash of the record written before it (``GENESIS`` for the first).
Canonical JSON: keys sorted, no whitespace (``","`` and ``":"``), UTF-8 (non-ASCII kept), no NaN;
``time`` as ISO 8601 UTC with microseconds (``2026-11-27T07:45:00.123456+00:00``). These are the
fields exported by ``keeneye audit export``, so anyone can recompute the chain without keeneye
(docs/accountability.md has a 15-line verifier).

This module is part of the stored format: the 0005 migration hashes existing rows with it. Changing
what it hashes breaks every chain already written.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64  # prev_hash of the first record
HASHED_FIELDS = (
    "id",
    "time",
    "access_key",
    "operation",
    "collection_id",
    "request_faces",
    "matches",
    "threshold",
    "flagged_below_99",
    "details",
    "prev_hash",
)


def canonical_time(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the database hands back naive UTC on SQLite
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_record(
    *,
    id: int,
    time: datetime | str,
    access_key: str | None,
    operation: str,
    collection_id: str | None,
    request_faces: int,
    matches: Any,
    threshold: float | None,
    flagged_below_99: bool,
    details: Any,
    prev_hash: str,
) -> dict[str, Any]:
    """The hashed fields as plain JSON values (what ``export`` writes next to ``hash``)."""
    return {
        "id": int(id),
        "time": time if isinstance(time, str) else canonical_time(time),
        "access_key": access_key,
        "operation": operation,
        "collection_id": collection_id,
        "request_faces": int(request_faces),
        "matches": matches if matches is not None else [],
        "threshold": None if threshold is None else float(threshold),
        "flagged_below_99": bool(flagged_below_99),
        "details": details,
        "prev_hash": prev_hash,
    }


def canonical_json(record: dict[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record``'s HASHED_FIELDS (other keys are ignored)."""
    return hashlib.sha256(canonical_json({k: record[k] for k in HASHED_FIELDS})).hexdigest()
