"""What an upload is made of: a bucket's :class:`UploadRule`, the object versions an S3 / MinIO
notification announces (:func:`parse_s3_event` -> :class:`ObjectRef`, each with its dedup key), the
ExternalImageId an object key gives, and :class:`EventInfo`, an event as the table records it
(docs/uploads.md; the processing is keeneye/service/uploads/service.py)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keeneye.core.errors import InvalidParameter
from keeneye.store.tables import UploadEventRow
from keeneye.streams.sinks import SinkSpec, redacted

EventState = Literal["queued", "running", "held", "succeeded", "failed"]
EVENT_STATES: tuple[str, ...] = ("queued", "running", "held", "succeeded", "failed")
_EXTERNAL_OK = re.compile(r"[^a-zA-Z0-9_.\-:]")


class UploadRule(BaseModel):
    """What to do with a bucket's new images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["index-faces", "search-faces"] = Field(description="Index the faces, or search them")
    collection_id: str = Field(min_length=1, max_length=255, description="The collection used")
    external_image_id: Literal["key", "basename"] = Field(
        "key",
        description="index-faces: the ExternalImageId given to the faces: the object key or its last "
        "segment ('/' becomes ':', other characters outside [A-Za-z0-9_.-:] '_', at most 255)",
    )
    max_faces: int | None = Field(None, ge=1, le=4096, description="index-faces: at most this many faces")
    quality_filter: Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"] | None = Field(
        None, description="Rekognition's QualityFilter (default: AUTO to index, NONE to search)"
    )
    threshold: float = Field(80.0, ge=0, le=100, description="search-faces: least Similarity of a match")
    sink: SinkSpec | None = Field(
        None,
        description="search-faces: where matches are sent (without one they are only recorded in the "
        "event and the audit log)",
    )

    @model_validator(mode="after")
    def _sink_for_search_only(self) -> UploadRule:
        if self.task == "index-faces" and self.sink is not None:
            raise ValueError("an index-faces rule has no sink")
        if self.sink is not None and self.sink.kind == "s3":
            raise ValueError("a search rule's sink is a webhook, an MQTT topic or a JSONL file, not S3")
        return self

    def public(self) -> dict[str, Any]:
        """The rule as JSON, the sink's secrets redacted."""
        out = self.model_dump(mode="json", exclude_none=True)
        if self.sink is not None:
            out["sink"] = redacted(self.sink)
        return out


@dataclass(frozen=True)
class ObjectRef:
    """One object version an event announces."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    sequencer: str
    size: int | None
    event_name: str
    source: str = "s3"

    @property
    def version(self) -> str:
        """``id:<versionId>``, ``etag:<eTag>`` or (watched files) ``sha256:<hex>``."""
        if self.version_id:
            return f"id:{self.version_id}"
        return f"etag:{self.etag or ''}" if self.source == "s3" else f"sha256:{self.etag or ''}"

    @property
    def dedup_key(self) -> str:
        parts = [self.source, self.bucket, self.key, self.version, self.sequencer]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def parse_s3_event(doc: Any) -> list[ObjectRef | dict[str, Any]]:
    """The records of an S3 / MinIO notification: an :class:`ObjectRef` per ObjectCreated record, or
    a ``{"status": "ignored", "reason"}`` entry for the others (in order). MinIO's top-level
    ``EventName`` / ``Key`` (``bucket/key``, URL-encoded) are used when there are no ``Records``."""
    if not isinstance(doc, dict):
        raise InvalidParameter('the body must be an S3 event notification: {"Records": [...]}')
    if doc.get("Event") == "s3:TestEvent":  # what S3 sends when notifications are configured
        return []
    records = doc.get("Records")
    if records is None and isinstance(doc.get("Key"), str) and isinstance(doc.get("EventName"), str):
        bucket, _, key = doc["Key"].partition("/")
        records = [
            {"eventName": doc["EventName"], "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}
        ]
    if not isinstance(records, list):
        raise InvalidParameter('the body must be an S3 event notification: {"Records": [...]}')
    out: list[ObjectRef | dict[str, Any]] = []
    for record in records:
        out.append(_parse_record(record))
    return out


def _parse_record(record: Any) -> ObjectRef | dict[str, Any]:
    if not isinstance(record, dict):
        return {"status": "ignored", "reason": "the record is not an object"}
    name = str(record.get("eventName", ""))
    s3 = record.get("s3")
    if not isinstance(s3, dict):
        return {"status": "ignored", "event_name": name, "reason": "the record has no s3 member"}
    bucket = (s3.get("bucket") or {}).get("name")
    obj = s3.get("object") or {}
    raw_key = obj.get("key")
    base = {"event_name": name, "bucket": bucket, "key": None if raw_key is None else unquote_plus(raw_key)}
    if not name.removeprefix("s3:").startswith("ObjectCreated:"):
        return {"status": "ignored", **base, "reason": "not an ObjectCreated event"}
    if not isinstance(bucket, str) or not bucket or not isinstance(raw_key, str) or not raw_key:
        return {"status": "ignored", **base, "reason": "the record names no bucket or object key"}
    size = obj.get("size")
    return ObjectRef(
        bucket=bucket,
        key=unquote_plus(raw_key),
        version_id=str(obj["versionId"]) if obj.get("versionId") not in (None, "", "null") else None,
        etag=str(obj["eTag"]).strip('"') if obj.get("eTag") else None,
        sequencer=str(obj.get("sequencer") or ""),
        size=size if isinstance(size, int) else None,
        event_name=name,
    )


def external_image_id(key: str, mode: Literal["key", "basename"]) -> str:
    """The ExternalImageId for an object key (Rekognition allows only ``[a-zA-Z0-9_.\\-:]{1,255}``)."""
    text = key.rsplit("/", 1)[-1] if mode == "basename" else key.replace("/", ":")
    return _EXTERNAL_OK.sub("_", text)[-255:] or "_"


@dataclass(frozen=True)
class EventInfo:
    event_id: str
    source: str
    bucket: str
    key: str
    version: str
    sequencer: str
    size: int | None
    event_name: str
    task: str
    collection_id: str
    access_key: str | None
    state: str
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: UploadEventRow) -> EventInfo:
        return cls(
            event_id=row.event_id,
            source=row.source,
            bucket=row.bucket,
            key=row.key,
            version=row.version,
            sequencer=row.sequencer,
            size=row.size,
            event_name=row.event_name,
            task=str(row.rule.get("task")),
            collection_id=str(row.rule.get("collection_id")),
            access_key=row.access_key,
            state=row.state,
            attempts=row.attempts,
            last_error=row.last_error,
            result=row.result,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            finished_at=row.finished_at,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.__dict__)
        for name in ("created_at", "next_attempt_at", "finished_at"):
            out[name] = None if out[name] is None else out[name].isoformat()
        return out
