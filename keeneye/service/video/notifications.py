"""Notification channels and the outbox that delivers to them (Rekognition's NotificationChannel).

There is no SNS here. The operator maps an SNS topic ARN to a sink (keeneye.streams.sinks: webhook,
MQTT, JSONL file) with :meth:`NotificationService.put_channel`; a Start* request naming a topic ARN
without a channel is refused (:meth:`require_channel`).

Delivery is at least once, and nothing is lost:

* :meth:`enqueue` adds a message to the ``notification_outbox`` table inside the caller's
  transaction (a job's end is recorded in the same commit as its notification);
* one delivery thread sends due messages in order, recording ``attempts``, ``last_error`` and, on
  success, ``delivered_at``. A failed message waits ``retry_initial_s * 2**(attempts-1)`` seconds,
  at most ``retry_max_s``, and is retried until it is delivered (a message whose topic lost its
  channel waits the same way, so configuring the channel again delivers it). While a topic's sink
  is failing, its other due messages wait for that topic's next attempt instead of each timing out;
* undelivered messages are in the database, so they are sent after a restart. A crash between a
  send and its record sends the message again: receivers de-duplicate on ``MessageId``.

Every message is an SNS ``Notification`` envelope (``Type``, ``MessageId``, ``TopicArn``,
``Subject`` when given, ``Message``: the payload as a JSON string, ``Timestamp``: ISO 8601 UTC), the
same for every sink kind, so code written for SNS (an SQS subscription, an HTTP endpoint) reads it
unchanged. It is not signed (no ``Signature``/``SigningCertURL``): there is no SNS key to sign with.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from keeneye.config import NotificationSettings
from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.service.governance.sealing import SecretBox, SecretUnreadable
from keeneye.store.db import Store
from keeneye.store.tables import NotificationChannelRow, NotificationOutboxRow
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.sinks import Sink, SinkError, SinkSpec, build_sink, check_egress, redacted

log = logging.getLogger("keeneye.notifications")

# botocore's pattern for NotificationChannel.SNSTopicArn.
SNS_TOPIC_ARN = re.compile(r"^arn:aws:sns:.*:\w{12}:.+$")
MAX_TOPIC_ARN = 1024
BATCH = 100  # messages sent per pass of the delivery thread
DeliveryState = Literal["pending", "delivered"]


def check_topic_arn(topic_arn: str) -> str:
    """``topic_arn`` if it is an SNS topic ARN (``arn:aws:sns:<region>:<12-digit account>:<name>``)."""
    if len(topic_arn) > MAX_TOPIC_ARN or not SNS_TOPIC_ARN.match(topic_arn) or "/" in topic_arn:
        raise InvalidParameter(
            f"{topic_arn[:100]!r} is not an SNS topic ARN (arn:aws:sns:<region>:<12-digit account>:<name>)"
        )
    return topic_arn


def channel_howto(topic_arn: str) -> str:
    """How an operator configures a channel for ``topic_arn`` (used in error messages)."""
    return (
        f"configure it with PUT /v1/notification-channels/{topic_arn} and a body such as "
        '{"webhook": {"url": "http://host/path"}}, {"mqtt": {"host": ..., "topic": ...}} or '
        '{"jsonl": {"name": "jobs.jsonl"}} (see docs/notifications.md)'
    )


def sns_envelope(
    topic_arn: str, payload: Mapping[str, Any], *, now: datetime, subject: str | None = None
) -> dict[str, Any]:
    """An SNS Notification wrapping ``payload`` (serialised compactly into ``Message``)."""
    envelope: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
    }
    if subject:
        envelope["Subject"] = subject
    envelope["Message"] = json.dumps(payload, separators=(",", ":"))
    utc = now.astimezone(UTC)
    envelope["Timestamp"] = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return envelope


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Channel:
    """A topic's sink, with its delivery backlog (undelivered messages and the latest error)."""

    topic_arn: str
    spec: SinkSpec
    created_at: datetime
    updated_at: datetime
    pending: int
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON for the native API; secrets are redacted."""
        return {
            "topic_arn": self.topic_arn,
            "kind": self.spec.kind,
            "sink": redacted(self.spec),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "pending": self.pending,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class Delivery:
    """One outbox message and how its delivery went."""

    message_id: str
    topic_arn: str
    job_id: str | None
    state: DeliveryState
    attempts: int
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    message: dict[str, Any]

    def to_dict(self, *, with_message: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": self.message_id,
            "topic_arn": self.topic_arn,
            "job_id": self.job_id,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": _iso(self.created_at),
            "last_attempt_at": _iso(self.last_attempt_at),
            "next_attempt_at": _iso(self.next_attempt_at),
            "delivered_at": _iso(self.delivered_at),
        }
        if with_message:
            out["message"] = self.message
        return out


def _delivery(row: NotificationOutboxRow) -> Delivery:
    delivered = row.delivered_at is not None
    return Delivery(
        message_id=row.message_id,
        topic_arn=row.topic_arn,
        job_id=row.job_id,
        state="delivered" if delivered else "pending",
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        next_attempt_at=None if delivered else row.next_attempt_at,
        delivered_at=row.delivered_at,
        message=dict(row.message),
    )


class NotificationService:
    """Channels (topic ARN -> sink) and the outbox's delivery thread.

    ``data_dir / "notifications"`` holds the JSONL sinks' files. ``deliver=False`` records without
    sending (no thread). ``close()`` stops the thread after the message being sent. ``egress``: where
    webhooks and brokers may be (keeneye.streams.egress; checked by put_channel and at every connection;
    default: the default policy).
    """

    def __init__(
        self,
        store: Store,
        settings: NotificationSettings,
        data_dir: Path,
        *,
        deliver: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        egress: EgressPolicy | None = None,
    ) -> None:
        self._store = store
        self._secrets = SecretBox(data_dir)  # sinks' passwords and header values, sealed at rest
        self._settings = settings
        self._egress = egress or EgressPolicy()
        self.jsonl_dir = data_dir / "notifications"
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sinks: dict[str, tuple[dict[str, Any], Sink]] = {}  # topic -> (config, sink); thread-owned
        # topic -> (when its failed message is retried, updated_at of the channel it failed with);
        # thread-owned. Any PUT of the channel (a new updated_at) lifts the hold.
        self._failing: dict[str, tuple[datetime, datetime | None]] = {}
        self._deliver = deliver
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the delivery thread (once; none when built with ``deliver=False``). The constructor
        starts nothing: the composition root's lifecycle does, with the server."""
        if self._deliver and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="keeneye-notify", daemon=True)
            self._thread.start()

    # -- channels -----------------------------------------------------------------------------------

    def put_channel(self, topic_arn: str, spec: SinkSpec | Mapping[str, Any]) -> Channel:
        """Create or replace the channel of ``topic_arn``; pending messages to it go to the new sink."""
        check_topic_arn(topic_arn)
        if not isinstance(spec, SinkSpec):
            try:
                spec = SinkSpec.model_validate(spec)
            except ValidationError as exc:
                raise InvalidParameter(_validation_message(exc)) from None
        if spec.kind == "s3":
            raise InvalidParameter(
                "a notification channel is a webhook, an MQTT topic or a JSONL file, not S3"
            )
        check_egress(spec, self._egress)
        now = self._clock()
        with self._store.transaction() as s:
            row = s.get(NotificationChannelRow, topic_arn)
            config = self._secrets.seal_sink(spec.model_dump(mode="json", exclude_none=True))
            if row is None:
                s.add(
                    NotificationChannelRow(
                        topic_arn=topic_arn, kind=spec.kind, config=config, created_at=now, updated_at=now
                    )
                )
            else:
                row.kind, row.config, row.updated_at = spec.kind, config, now
            s.execute(  # messages that waited for this topic are due now, for the new sink
                update(NotificationOutboxRow)
                .where(
                    NotificationOutboxRow.topic_arn == topic_arn,
                    NotificationOutboxRow.delivered_at.is_(None),
                    NotificationOutboxRow.next_attempt_at > now,
                )
                .values(next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
        self.wake()
        return self.get_channel(topic_arn)

    def get_channel(self, topic_arn: str) -> Channel:
        with self._store.transaction() as s:
            row = s.get(NotificationChannelRow, topic_arn)
            if row is None:
                raise NotFound(f"no notification channel for topic {topic_arn!r}")
            return self._channel(s, row)

    def list_channels(self) -> list[Channel]:
        with self._store.transaction() as s:
            rows = s.scalars(select(NotificationChannelRow).order_by(NotificationChannelRow.topic_arn)).all()
            return [self._channel(s, r) for r in rows]

    def delete_channel(self, topic_arn: str) -> None:
        """Remove a channel. Its undelivered messages stay in the outbox and wait for a new channel."""
        with self._store.transaction() as s:
            row = s.get(NotificationChannelRow, topic_arn)
            if row is None:
                raise NotFound(f"no notification channel for topic {topic_arn!r}")
            s.delete(row)
        self.wake()

    def require_channel(self, topic_arn: str) -> None:
        """Raise InvalidParameter (saying how to configure one) unless ``topic_arn`` has a channel."""
        check_topic_arn(topic_arn)
        with self._store.transaction() as s:
            if s.get(NotificationChannelRow, topic_arn) is None:
                raise InvalidParameter(
                    f"NotificationChannel SNSTopicArn {topic_arn!r} has no notification channel on this "
                    f"server (keeneye delivers to webhooks, MQTT or files instead of SNS): "
                    + channel_howto(topic_arn)
                )

    def _channel(self, s: Session, row: NotificationChannelRow) -> Channel:
        undelivered = (NotificationOutboxRow.topic_arn == row.topic_arn) & (
            NotificationOutboxRow.delivered_at.is_(None)
        )
        pending = s.scalar(select(func.count()).select_from(NotificationOutboxRow).where(undelivered)) or 0
        last_error = s.scalars(
            select(NotificationOutboxRow.last_error)
            .where(undelivered, NotificationOutboxRow.last_error.is_not(None))
            .order_by(NotificationOutboxRow.last_attempt_at.desc())
            .limit(1)
        ).first()
        return Channel(
            row.topic_arn,
            SinkSpec.model_validate(self._secrets.open_sink(row.config)),
            row.created_at,
            row.updated_at,
            int(pending),
            last_error,
        )

    # -- outbox -------------------------------------------------------------------------------------

    def enqueue(
        self,
        session: Session,
        topic_arn: str,
        payload: Mapping[str, Any],
        *,
        job_id: str | None = None,
        subject: str | None = None,
    ) -> str:
        """Add an SNS envelope of ``payload`` to the outbox in ``session`` (the caller's transaction);
        its MessageId. Call :meth:`wake` after the commit to send it at once."""
        now = self._clock()
        envelope = sns_envelope(topic_arn, payload, now=now, subject=subject)
        session.add(
            NotificationOutboxRow(
                message_id=envelope["MessageId"],
                topic_arn=topic_arn,
                job_id=job_id,
                message=envelope,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
        return str(envelope["MessageId"])

    def publish(self, topic_arn: str, payload: Mapping[str, Any], *, subject: str | None = None) -> str:
        """Enqueue in a transaction of its own and wake the delivery thread; the MessageId."""
        check_topic_arn(topic_arn)
        with self._store.transaction() as s:
            message_id = self.enqueue(s, topic_arn, payload, subject=subject)
        self.wake()
        return message_id

    def wake(self) -> None:
        """Have the delivery thread look for due messages now."""
        self._wake.set()

    def deliveries(
        self,
        *,
        state: DeliveryState | None = None,
        topic_arn: str | None = None,
        job_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Outbox messages, newest first, optionally only pending/delivered, of a topic or of jobs."""
        q = select(NotificationOutboxRow)
        if state == "pending":
            q = q.where(NotificationOutboxRow.delivered_at.is_(None))
        elif state == "delivered":
            q = q.where(NotificationOutboxRow.delivered_at.is_not(None))
        if topic_arn is not None:
            q = q.where(NotificationOutboxRow.topic_arn == topic_arn)
        if job_ids is not None:
            q = q.where(NotificationOutboxRow.job_id.in_(list(job_ids)))
        q = q.order_by(NotificationOutboxRow.id.desc()).limit(limit)
        with self._store.transaction() as s:
            return [_delivery(r) for r in s.scalars(q).all()]

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop the delivery thread (after the message it is sending) and close the sinks."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():
                log.warning("the notification thread did not stop within %.0f s", timeout_s)
                return
        for _, sink in self._sinks.values():
            sink.close()
        self._sinks.clear()

    # -- delivery thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._deliver_due()
                wait = self._next_wait()
            except SQLAlchemyError as exc:  # e.g. the database is busy: try again at the next poll
                log.error("notification delivery could not read or write the outbox: %s", exc)
                wait = self._settings.poll_s
            self._wake.wait(wait)

    def _next_wait(self) -> float:
        with self._store.transaction() as s:
            due = s.scalar(
                select(func.min(NotificationOutboxRow.next_attempt_at)).where(
                    NotificationOutboxRow.delivered_at.is_(None)
                )
            )
        if due is None:
            return self._settings.poll_s
        if due.tzinfo is None:  # an aggregate bypasses the column type on SQLite
            due = datetime.fromisoformat(str(due)).replace(tzinfo=UTC)
        return max(0.0, min(self._settings.poll_s, (due - self._clock()).total_seconds()))

    def _backoff(self, attempts: int) -> float:
        s = self._settings
        return float(min(s.retry_initial_s * 2.0 ** min(attempts - 1, 60), s.retry_max_s))

    def _deliver_due(self) -> None:
        """Send the due messages. Several servers share the outbox (docs/deployment.md): each message is
        first claimed, by moving its ``next_attempt_at`` past the time its delivery may take, with one
        conditional UPDATE (after ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so one server sends it; a
        server that dies mid-delivery leaves it due again once that time has passed."""
        now = self._clock()
        claimed_until = now + timedelta(seconds=3 * self._settings.timeout_s + self._settings.poll_s)
        pending = NotificationOutboxRow.delivered_at.is_(None)
        is_due = NotificationOutboxRow.next_attempt_at <= now
        with self._store.transaction() as s:
            rows = s.scalars(
                select(NotificationOutboxRow)
                .where(pending, is_due)
                .order_by(NotificationOutboxRow.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            due = []
            for r in rows:
                claim = s.execute(
                    update(NotificationOutboxRow)
                    .where(NotificationOutboxRow.id == r.id, pending, is_due)
                    .values(next_attempt_at=claimed_until)
                    .execution_options(synchronize_session=False)
                )
                if claim.rowcount == 1:  # type: ignore[attr-defined]
                    due.append((r.id, r.topic_arn, dict(r.message), r.attempts))
            channel_rows = s.scalars(select(NotificationChannelRow)).all()
            channels = {c.topic_arn: dict(c.config) for c in channel_rows}
            versions = {c.topic_arn: c.updated_at for c in channel_rows}
        for topic in list(self._sinks):  # channels deleted or changed: drop (disconnect) their sinks
            if self._sinks[topic][0] != channels.get(topic):
                self._sinks.pop(topic)[1].close()
        for i, (row_id, topic, message, attempts) in enumerate(due):
            if self._stop.is_set():
                for left in due[i:]:  # not tried: due again at once, here or on another server
                    self._record(left[0], None, deferred_to=now)
                return
            config = channels.get(topic)
            held = self._failing.get(topic)
            if held is not None and held[1] == versions.get(topic) and held[0] > now:
                self._record(row_id, None, deferred_to=held[0])  # wait for the topic's retry
                continue
            error = self._attempt(topic, config, message)
            if error is None:
                self._failing.pop(topic, None)
                self._record(row_id, None)
                continue
            retry_at = self._clock() + timedelta(seconds=self._backoff(attempts + 1))
            self._failing[topic] = (retry_at, versions.get(topic))
            self._record(row_id, error, retry_at=retry_at)
            log.warning(
                "notification %s to %s failed (attempt %d, next in %.1f s): %s",
                message.get("MessageId"),
                topic,
                attempts + 1,
                self._backoff(attempts + 1),
                error,
            )

    def _attempt(self, topic: str, config: dict[str, Any] | None, message: dict[str, Any]) -> str | None:
        """Send one message; None when delivered, else why not."""
        if config is None:
            return f"no notification channel for this topic: {channel_howto(topic)}"
        try:
            if topic not in self._sinks:
                sink = build_sink(
                    SinkSpec.model_validate(self._secrets.open_sink(config)),
                    jsonl_dir=self.jsonl_dir,
                    timeout_s=self._settings.timeout_s,
                    headers={"x-amz-sns-message-type": "Notification", "x-amz-sns-topic-arn": topic},
                    egress=self._egress,
                )
                self._sinks[topic] = (config, sink)
            self._sinks[topic][1].send(message)
        except (SinkError, SecretUnreadable) as exc:
            return exc.message
        except Exception as exc:  # a sink's bug must not stop delivery to the others: record and go on
            log.error("notification sink for %s failed unexpectedly", topic, exc_info=exc)
            sink_entry = self._sinks.pop(topic, None)
            if sink_entry is not None:
                sink_entry[1].close()
            return f"internal error in the {next(iter(config), 'sink')} sink: {type(exc).__name__}"
        return None

    def _record(
        self,
        row_id: int,
        error: str | None,
        *,
        retry_at: datetime | None = None,
        deferred_to: datetime | None = None,
    ) -> None:
        now = self._clock()
        with self._store.transaction() as s:
            row = s.get(NotificationOutboxRow, row_id)
            if row is None:
                return
            if deferred_to is not None:  # not tried: its topic's sink just failed
                row.next_attempt_at = deferred_to
                return
            row.attempts += 1
            row.last_attempt_at = now
            if error is None:
                row.delivered_at = now  # last_error stays: the history of a late delivery
            else:
                row.last_error = error[:1024]
                row.next_attempt_at = retry_at or now


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "invalid notification channel: " + "; ".join(parts)
