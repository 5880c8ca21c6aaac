"""The relational schema as SQLAlchemy 2 typed ORM classes.

The database is the source of truth for everything a collection holds, vectors included (float32
bytes), so the in-process vector index can always be rebuilt from it. Timestamps are stored as UTC.
Changing a class here needs a new Alembic revision in ``migrations/versions`` (a test checks that the
migrations and these classes agree).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite forgets the zone; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use datetime.now(UTC)")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class CollectionRow(Base):
    """One face collection, bound to the embedder that created it.

    ``generation`` grows by one in every transaction that changes the collection's faces; the vector
    index files record the generation they were saved at, so stale files are detected and rebuilt.
    """

    __tablename__ = "collections"

    collection_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    arn: Mapped[str] = mapped_column(String(512), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    embedder_id: Mapped[str] = mapped_column(String(128))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # Faces indexed longer ago than this are purged (keeneye/service/governance/retention.py); None: kept.
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Matches wait for a person's CONFIRMED before stream processors send them to sinks
    # (keeneye/service/review/queue.py).
    review_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class FaceRow(Base):
    """One indexed face: metadata, pixel box in the indexed image, and the (D,) float32 vector."""

    __tablename__ = "faces"
    __table_args__ = (
        Index("ix_faces_collection_face", "collection_id", "face_id"),
        Index("ix_faces_collection_user", "collection_id", "user_id"),
    )

    face_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("collections.collection_id", ondelete="CASCADE")
    )
    image_id: Mapped[str] = mapped_column(String(36))
    external_image_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    embedder_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32, L2-normalised


class UserRow(Base):
    """A user (a named group of faces) in a collection."""

    __tablename__ = "users"

    collection_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("collections.collection_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TagRow(Base):
    """A tag on a taggable resource (a collection ARN)."""

    __tablename__ = "tags"

    resource_arn: Mapped[str] = mapped_column(String(512), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class AuditRow(Base):
    """One audited operation, appended and never changed (see keeneye/service/governance/audit.py).

    ``hash`` is the SHA-256 of the record's canonical JSON including ``prev_hash``, the previous
    record's hash (keeneye/store/audit_chain.py): a hash chain. ``prev_hash`` is unique, so the chain
    cannot fork even if two writers raced past the append lock.
    """

    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_time", "time"),
        Index("ix_audit_collection", "collection_id"),
        Index("ux_audit_prev_hash", "prev_hash", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    access_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    operation: Mapped[str] = mapped_column(String(64))
    collection_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_faces: Mapped[int] = mapped_column(Integer, default=0)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    flagged_below_99: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # job ids, purge counts
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The audit chain's head as the database keeps it (one row, ``id`` 1), updated in the transaction of
    every append (keeneye/service/governance/audit.py): ``records`` appended in all (it only grows: no
    record is ever removed), the newest record's ``last_id`` and ``last_hash``. ``problem``: set, and kept,
    when an append found the log not ending where this row said (records removed from the end, or the
    log rewritten); ``keeneye audit verify`` then fails."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    records: Mapped[int] = mapped_column(Integer)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    problem: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class VideoJobRow(Base):
    """One stored-video job (StartPersonTracking ...), its request and, once done, its results.

    status: IN_PROGRESS (queued or running; ``started_at`` set while running), SUCCEEDED or FAILED
    (``status_message`` says why). ``client_request_token`` makes Start* idempotent per kind.
    ``video_metadata`` is the container header; ``results`` the items in pixels and milliseconds.
    ``notification_topic``: the SNS topic ARN (NotificationChannel) told when the job ends.
    """

    __tablename__ = "video_jobs"
    __table_args__ = (
        Index("ix_video_jobs_token", "kind", "client_request_token"),
        Index("ix_video_jobs_status", "status"),
    )

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    status_message: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    bucket: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(1024))
    version: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    job_tag: Mapped[str | None] = mapped_column(String(256), nullable=True)
    client_request_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notification_topic: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    video_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The worker running the job (keeneye/service/video/jobs.py) and until when its claim holds: it renews
    # the lease while it runs; an expired one (its server died) lets another server's worker take the job.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class NotificationChannelRow(Base):
    """Where an SNS topic ARN's messages go: a sink (keeneye.streams.sinks.SinkSpec as JSON).

    ``config``'s secrets (webhook URL credentials and headers, MQTT password) are sealed
    (keeneye/service/governance/sealing.py); the native API shows them redacted.
    """

    __tablename__ = "notification_channels"

    topic_arn: Mapped[str] = mapped_column(String(1024), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationOutboxRow(Base):
    """One message to publish to a topic (an SNS envelope), kept until it is delivered.

    Written in the same transaction as what it announces (a job's end), so nothing is announced that
    did not happen and nothing that happened goes unannounced. ``next_attempt_at`` is when the
    delivery thread tries again; ``attempts``/``last_error`` say how it went; ``delivered_at`` is set
    once a sink took it. Delivered rows are kept (they are the delivery history) until
    ``retention.notifications_days`` (keeneye/service/governance/retention.py).
    """

    __tablename__ = "notification_outbox"
    __table_args__ = (
        Index("ix_notification_outbox_due", "delivered_at", "next_attempt_at"),
        Index("ix_notification_outbox_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    topic_arn: Mapped[str] = mapped_column(String(1024))
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AccessKeyRow(Base):
    """One access key made with ``keeneye keys create`` (see keeneye/service/governance/keys.py).

    SigV4 needs the secret itself, so it is kept, but only encrypted (Fernet) with a key in
    ``<data_dir>/keys.secret``: a dump of the database alone does not reveal it. ``policy`` is the
    IAM-shaped policy document (None: everything is denied).
    """

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(String(512))
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiTokenRow(Base):
    """A short-lived token of the native API (``POST /v1/tokens``; keeneye/service/governance/tokens.py),
    kept only as the SHA-256 of the token: a dump of the database cannot be replayed. It acts as the
    access key it was issued to, until ``expires_at``, and no longer once that key is disabled or
    deleted."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_key", "access_key_id"),
        Index("ix_api_tokens_expires", "expires_at"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_key_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UploadRuleRow(Base):
    """What to do with images uploaded to a bucket (keeneye/service/uploads/service.py): ``rule`` is the
    validated rule as JSON (``{"task": "index-faces" | "search-faces", "collection_id": ..., ...}``;
    a search rule's sink's secrets are sealed (keeneye/service/governance/sealing.py), and shown
    redacted by the native API)."""

    __tablename__ = "upload_rules"

    bucket: Mapped[str] = mapped_column(String(255), primary_key=True)
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UploadEventRow(Base):
    """One object-created notification (an S3 event record, or a file of ``keeneye watch-folder``).

    ``dedup_key`` (unique) is the SHA-256 of (source, bucket, key, version, sequencer), version being
    the object's versionId or else its eTag (the file's content hash for a watched folder): a second
    delivery of the same event finds the row and is not processed again. ``state`` goes queued ->
    running -> succeeded | failed; a transient failure puts it back to queued with ``next_attempt_at``
    (backoff). ``rule`` is the bucket's rule as it was when the event arrived; ``result`` what was
    done (FaceIds indexed, matches found); ``access_key`` who posted it (the audit records name it).
    """

    __tablename__ = "upload_events"
    __table_args__ = (Index("ix_upload_events_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[str] = mapped_column(String(1024))
    key: Mapped[str] = mapped_column(String(2048))
    version: Mapped[str] = mapped_column(String(1024))
    sequencer: Mapped[str] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    event_name: Mapped[str] = mapped_column(String(128))
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    access_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UploadHoldRow(Base):
    """A search rule's sink record held until a reviewer decides its identification: the collection
    requires review (keeneye/service/uploads/service.py). ``record`` is the message as it will be sent;
    the event (``event_id``) waits in state ``held``. Sent, then deleted, once the identification is
    CONFIRMED; deleted unsent when it is REJECTED; deleted with the identification (its collection's
    retention, the collection's deletion: ON DELETE CASCADE)."""

    __tablename__ = "upload_holds"

    identification_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("identifications.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CameraRow(Base):
    """A camera registered by name (``PUT /v1/cameras/{name}``), what a stream processor's
    ``Input.KinesisVideoStream.Arn`` ``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<n>`` names.

    ``url``: rtsp(s)/http(s)/rtmp URL (sealed when it holds credentials; shown redacted); ``listen``:
    keeneye waits for the camera to push to ``url`` (RTSP ANNOUNCE/RECORD or RTMP publish) instead of
    pulling from it."""

    __tablename__ = "cameras"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    listen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DataStreamRow(Base):
    """A named record destination (``PUT /v1/data-streams/{name}``), what a stream processor's
    ``Output.KinesisDataStream.Arn`` ``arn:aws:kinesis:<region>:<account>:stream/<name>`` names:
    ``sink`` is a SinkSpec as JSON (webhook, mqtt or jsonl; secrets sealed, shown redacted)."""

    __tablename__ = "data_streams"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    sink: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StreamProcessorRow(Base):
    """One stream processor (CreateStreamProcessor): its request, keeneye options and state.

    ``request``: the Create request's Input, Output, Settings, RegionsOfInterest, NotificationChannel,
    RoleArn, KmsKeyId, DataSharingPreference and Tags as given (PascalCase, AWS's shapes); ``options``:
    keeneye's own (lines, zones, record interval, sampling fps; ``PUT /v1/stream-processors/{name}/options``).
    ``status``: STOPPED / STARTING / RUNNING / FAILED / STOPPING / UPDATING, ``status_message`` why;
    ``desired``: ``running`` when started and not stopped (a server restart starts it again) or
    ``stopped``; ``session_id`` of the current or last run; ``stop_at`` from StopSelector;
    ``started_by`` the access key that started it."""

    __tablename__ = "stream_processors"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    status_message: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    desired: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stop_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The access key that started the current or last run (None: started before keeneye kept it, or by
    # the operator); a server restart resumes the processor only while that key may still start it.
    started_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The server whose worker runs the processor and until when (renewed while it runs; expired: that
    # server died and another one starts the processor: keeneye/service/streams/processors.py).
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RequestTokenRow(Base):
    """A ClientRequestToken of CreateUser, DeleteUser, AssociateFaces or DisassociateFaces and the
    response it got (keeneye/service/faces/request_tokens.py), per access key and region, so that the same
    request sent again gets the same response. ``fingerprint``: SHA-256 of the other parameters."""

    __tablename__ = "request_tokens"
    __table_args__ = (Index("ix_request_tokens_created", "created_at"),)

    access_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdentificationRow(Base):
    """One identification waiting for (or given) a person's review (keeneye/service/review/queue.py).

    ``source_kind``: stream | video | upload; ``source_name``: the processor's name, the job id, or
    ``bucket/key``; ``session_id`` and ``track_id``: the processor's run and face track (a rejected pair
    is not recorded again for that track). ``face_id`` / ``user_id``: who it matched; ``similarity``
    0-100. ``crop``: the probe face as JPEG (matches only); ``probe_embedding``: the probe's float32
    vector by ``embedder_id``, kept as a negative when rejected. ``status``: PENDING, CONFIRMED,
    REJECTED or UNSURE, ``decided_by`` (access key) and ``decided_at``. Purged with the collection's
    retention and deleted with the collection (ON DELETE CASCADE)."""

    __tablename__ = "identifications"
    __table_args__ = (
        Index("ix_identifications_created", "created_at"),
        Index("ix_identifications_status", "status", "created_at"),
        Index("ix_identifications_collection", "collection_id", "created_at"),
        Index("ix_identifications_track", "session_id", "track_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source_kind: Mapped[str] = mapped_column(String(16))
    source_name: Mapped[str] = mapped_column(String(2048))
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    collection_id: Mapped[str | None] = mapped_column(
        String(255), ForeignKey("collections.collection_id", ondelete="CASCADE"), nullable=True
    )
    track_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    face_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    similarity: Mapped[float] = mapped_column(Float)
    pts_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    probe_embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedder_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReviewNegativeRow(Base):
    """A probe a person rejected as "not this person": its float32 ``embedding`` (by ``embedder_id``)
    kept against the face / user it was wrongly matched to, so that the same stranger stops matching
    (keeneye/service/review/negatives.py). Deleted with the collection."""

    __tablename__ = "review_negatives"
    __table_args__ = (Index("ix_review_negatives_collection", "collection_id", "face_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("collections.collection_id", ondelete="CASCADE")
    )
    face_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    embedder_id: Mapped[str] = mapped_column(String(128))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    identification_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class StreamEventRow(Base):
    """A stream processor's line crossing (``kind`` "line", ``direction`` in / out) or zone visit
    (``kind`` "zone", ``direction`` enter / exit), as its worker reported it: the console's timeline
    (keeneye/service/streams/events.py). The record itself went to the processor's sinks; these rows are
    deleted after ``retention.stream_events_days``."""

    __tablename__ = "stream_events"
    __table_args__ = (
        Index("ix_stream_events_created", "created_at"),
        Index("ix_stream_events_processor", "processor", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processor: Mapped[str] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16))
    track_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pts_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    identity: Mapped[str | None] = mapped_column(String(255), nullable=True)
