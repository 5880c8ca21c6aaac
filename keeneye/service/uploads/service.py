"""Analysis on upload: S3 / MinIO object-created notifications (and watched folders) -> faces indexed
or searched, once per object version, retried, audited (docs/uploads.md).

* A **rule** per bucket says what to do with its new images: ``index-faces`` into a collection, or
  ``search-faces`` in a collection with the matches sent to a sink (keeneye.streams.sinks). Rules and
  the parsing of notifications are keeneye/service/uploads/events.py.
* A search's best match is queued for a person's review (keeneye/service/review/queue.py; one
  identification per event, its id derived from the event's). When the collection requires review
  (``review_required``), a record with matches is not sent: it is stored in ``upload_holds`` with
  the identification (keeneye/service/uploads/holds.py), the event waits in state ``held``, and it
  is sent once a reviewer CONFIRMED the identification (REJECTED: never sent; UNSURE: still held),
  as a stream processor holds its records (keeneye/streams/review.py). Every sent record with
  matches carries ``Keeneye.Review`` (``IdentificationId``, ``Status``, ``By``, ``At``), the field
  stream records use.
* Each event record is written to ``upload_events`` under a **dedup key**: SHA-256 of (source,
  bucket, key, version, sequencer), version being the object's versionId or, without versioning, its
  eTag (a watched file: the SHA-256 of its content). A second delivery of the same event finds the row
  and is answered ``duplicate``: the object version is processed once.
* :class:`UploadWorker` (a thread of ``keeneye serve``) processes queued events: reads the object with
  the reader the server gives (its ImageLoader: mapped bucket or ``--s3-endpoint``), runs the rule,
  records the result and appends an audit record under the access key that posted the event. A
  transient failure (S3 unreachable or answering 5xx, the database busy, a sink down) is retried
  with exponential backoff (``uploads.retry_initial_s`` doubled up to ``uploads.retry_max_s``, at
  most ``uploads.max_attempts``); bad input (not an image, missing object, unknown collection) fails the
  event at once with the error recorded.

The exactly-once guarantee covers redelivery. A server killed between storing the faces and recording
the event runs the event again at its next start (the row is still ``running``), as the notification
outbox does: processing cannot share one transaction with the face store.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from keeneye.analysis.images import decode_image
from keeneye.config import UploadSettings
from keeneye.core.errors import (
    BackendUnavailable,
    InvalidParameter,
    KeeneyeError,
    NoFaceFound,
    NotFound,
    ServerBusy,
)
from keeneye.service.faces.collections import FaceCollections, ImageSearchResult
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.sealing import SecretBox
from keeneye.service.review.negatives import filter_matches
from keeneye.service.review.queue import Identification, ReviewQueue
from keeneye.service.uploads.events import (
    EVENT_STATES,
    EventInfo,
    EventState,
    ObjectRef,
    UploadRule,
    external_image_id,
    parse_s3_event,
)
from keeneye.service.uploads.holds import (
    UNSENT_ERROR,
    Held,
    UploadHolds,
    identification_id_of,
    review_of_identification,
)
from keeneye.store.db import Store
from keeneye.store.tables import UploadEventRow, UploadRuleRow
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.review import face_crop
from keeneye.streams.sinks import SinkError, SinkSpec, build_sink, check_egress

__all__ = [  # what the rest of keeneye imports from here (the events module's names included)
    "EVENT_STATES",
    "EventInfo",
    "EventState",
    "ObjectReader",
    "ObjectRef",
    "UploadRule",
    "UploadService",
    "UploadWorker",
    "external_image_id",
    "is_transient",
    "parse_s3_event",
]

log = logging.getLogger("keeneye.uploads")

MAX_ERROR_CHARS = 1000

ObjectReader = Callable[[str, str, str | None], bytes]
"""``read(bucket, key, version_id)`` -> the image bytes; raises a KeeneyeError: BackendUnavailable
when trying later may succeed (S3 unreachable), another one (InvalidParameter...) when it will not."""


class UploadService:
    """Rules, the event table, and the processing of one event (the worker calls :meth:`run_due`)."""

    def __init__(
        self,
        store: Store,
        collections: FaceCollections,
        settings: UploadSettings,
        *,
        read: ObjectReader | None = None,
        audit: AuditLog | None = None,
        jsonl_dir: Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        egress: EgressPolicy | None = None,
        review: ReviewQueue | None = None,
    ) -> None:
        self._store = store
        self._review = review  # search-faces matches are queued for a person's review
        self._secrets = SecretBox(store.data_dir)  # rule sinks' passwords, sealed at rest
        self._egress = egress or EgressPolicy()
        self._collections = collections
        self._settings = settings
        self._read_object = read
        self._audit = audit
        self._jsonl_dir = jsonl_dir or store.data_dir / "notifications"
        self._clock = clock
        self._holds = UploadHolds(store, clock)
        self.wakeup = threading.Event()  # set when an event is queued or an upload's match decided
        if review is not None:
            review.add_listener(self._review_decided)

    # -- rules ------------------------------------------------------------------------------------
    def put_rule(self, bucket: str, doc: Any) -> UploadRule:
        """Set ``bucket``'s rule (InvalidParameter if malformed, NotFound if the collection is not)."""
        _check_bucket(bucket)
        try:
            rule = UploadRule.model_validate(doc)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise InvalidParameter(f"invalid upload rule: {problems}") from None
        if rule.sink is not None:
            check_egress(rule.sink, self._egress)
        self._collections.describe_collection(rule.collection_id)
        now = self._clock()
        with self._store.transaction() as s:
            row = s.get(UploadRuleRow, bucket)
            config = self._secrets.seal_rule(rule.model_dump(mode="json", exclude_none=True))
            if row is None:
                s.add(UploadRuleRow(bucket=bucket, rule=config, created_at=now, updated_at=now))
            else:
                row.rule, row.updated_at = config, now
        return rule

    def get_rule(self, bucket: str) -> UploadRule:
        with self._store.sessions() as s:
            row = s.get(UploadRuleRow, bucket)
            if row is None:
                raise NotFound(f"there is no upload rule for bucket {bucket!r}")
            return UploadRule.model_validate(self._secrets.open_rule(row.rule))

    def list_rules(self) -> dict[str, UploadRule]:
        with self._store.sessions() as s:
            rows = s.scalars(select(UploadRuleRow).order_by(UploadRuleRow.bucket))
            return {r.bucket: UploadRule.model_validate(self._secrets.open_rule(r.rule)) for r in rows}

    def delete_rule(self, bucket: str) -> None:
        with self._store.transaction() as s:
            row = s.get(UploadRuleRow, bucket)
            if row is None:
                raise NotFound(f"there is no upload rule for bucket {bucket!r}")
            s.delete(row)

    # -- events -----------------------------------------------------------------------------------
    def submit(self, doc: Any, access_key: str | None) -> dict[str, Any]:
        """Record the notification's ObjectCreated records for buckets with a rule; what became of
        each record: ``accepted`` (queued), ``duplicate`` (already recorded) or ``ignored`` (reason)."""
        rules = self.list_rules()
        records: list[dict[str, Any]] = []
        for parsed in parse_s3_event(doc):
            if isinstance(parsed, dict):
                records.append(parsed)
                continue
            base = {"bucket": parsed.bucket, "key": parsed.key, "version": parsed.version}
            rule = rules.get(parsed.bucket)
            if rule is None:
                records.append(
                    {"status": "ignored", **base, "reason": f"no upload rule for bucket {parsed.bucket!r}"}
                )
                continue
            event_id, new = self.record(parsed, rule, access_key)
            records.append({"status": "accepted" if new else "duplicate", "event_id": event_id, **base})
        if any(r["status"] == "accepted" for r in records):
            self.wakeup.set()
        counts = {k: sum(r["status"] == k for r in records) for k in ("accepted", "duplicate", "ignored")}
        return {**counts, "records": records}

    def record(self, ref: ObjectRef, rule: UploadRule, access_key: str | None) -> tuple[str, bool]:
        """Queue ``ref`` under ``rule``: ``(event_id, True)``, or the existing event and False when
        this object version was already recorded (a duplicate delivery)."""
        now = self._clock()
        row = UploadEventRow(
            event_id=str(uuid.uuid4()),
            dedup_key=ref.dedup_key,
            source=ref.source,
            bucket=ref.bucket,
            key=ref.key,
            version=ref.version,
            sequencer=ref.sequencer,
            size=ref.size,
            event_name=ref.event_name,
            rule=self._secrets.seal_rule(rule.model_dump(mode="json", exclude_none=True)),
            access_key=access_key,
            state="queued",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        try:
            with self._store.transaction() as s:
                s.add(row)
            return row.event_id, True
        except IntegrityError:  # the dedup key is taken: this event was delivered before
            with self._store.sessions() as s:
                found = s.scalars(
                    select(UploadEventRow).where(UploadEventRow.dedup_key == ref.dedup_key)
                ).first()
            if found is None:
                raise
            return found.event_id, False

    def info(self, event_id: str) -> EventInfo:
        with self._store.sessions() as s:
            row = s.scalars(select(UploadEventRow).where(UploadEventRow.event_id == event_id)).first()
            if row is None:
                raise NotFound(f"there is no upload event {event_id!r}")
            return EventInfo.of(row)

    def list_events(self, state: str | None = None, limit: int = 100) -> list[EventInfo]:
        """Events newest first, optionally only those in ``state``."""
        if state is not None and state not in EVENT_STATES:
            raise InvalidParameter(f"state must be one of {', '.join(EVENT_STATES)}")
        if not 1 <= limit <= 1000:
            raise InvalidParameter("limit must be between 1 and 1000")
        with self._store.sessions() as s:
            stmt = select(UploadEventRow).order_by(UploadEventRow.id.desc()).limit(limit)
            if state is not None:
                stmt = stmt.where(UploadEventRow.state == state)
            return [EventInfo.of(r) for r in s.scalars(stmt)]

    def requeue_interrupted(self, source: str = "s3") -> int:
        """Events of ``source`` left ``running`` by a stopped process go back to the queue (at start)."""
        with self._store.transaction() as s:
            rows = list(
                s.scalars(
                    select(UploadEventRow).where(
                        UploadEventRow.state == "running", UploadEventRow.source == source
                    )
                )
            )
            for row in rows:
                row.state, row.next_attempt_at = "queued", self._clock()
        return len(rows)

    def next_due_in_s(self, source: str = "s3") -> float | None:
        """Seconds until the next queued event of ``source`` is due (0: now), None when none is."""
        with self._store.sessions() as s:
            at = s.scalars(
                select(UploadEventRow.next_attempt_at)
                .where(UploadEventRow.state == "queued", UploadEventRow.source == source)
                .order_by(UploadEventRow.next_attempt_at)
                .limit(1)
            ).first()
        return None if at is None else max(0.0, (at - self._clock()).total_seconds())

    def run_due(self, source: str = "s3") -> list[EventInfo]:
        """Process every queued event of ``source`` that is due now; what became of them. A server runs
        ``s3`` events (read from its buckets), ``keeneye watch-folder`` its ``folder`` events: both
        may share one data directory."""
        self._holds.settle(source)
        ran: list[EventInfo] = []
        while True:
            with self._store.transaction() as s:
                row = s.scalars(
                    select(UploadEventRow)
                    .where(
                        UploadEventRow.state == "queued",
                        UploadEventRow.source == source,
                        UploadEventRow.next_attempt_at <= self._clock(),
                    )
                    .order_by(UploadEventRow.next_attempt_at, UploadEventRow.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)  # PostgreSQL: another server's claim is skipped
                ).first()
                if row is None:
                    return ran
                row.state, row.attempts = "running", row.attempts + 1
                event_id = row.event_id
            ran.append(self.process(event_id))

    def process(self, event_id: str, data: bytes | None = None) -> EventInfo:
        """Run one event now (``data``: the image, else read from its bucket) and record the outcome."""
        info = self.info(event_id)
        if info.state != "running":  # called directly (watch-folder): count the attempt
            with self._store.transaction() as s:
                s.execute(
                    update(UploadEventRow)
                    .where(UploadEventRow.event_id == event_id)
                    .values(state="running", attempts=UploadEventRow.attempts + 1)
                )
            info = self.info(event_id)
        try:
            held = self._holds.of(event_id)
            if held is not None:
                return self._release(info, held)
            if info.result is not None and "review" in info.result:
                # It was held, and its hold went with its identification (retention, the collection).
                return self._finish(info, "failed", info.result, error=UNSENT_ERROR)
            rule = self._rule_of(event_id)
            image = data if data is not None else self._read(info)
            result, hold = self._run(info, rule, image)
        except (KeeneyeError, SQLAlchemyError, OSError) as exc:
            return self._failed(info, exc)
        if hold is None:
            return self._finish(info, "succeeded", result)
        self._holds.hold(event_id, *hold, result)
        log.info("upload event %s (%s/%s) held for review", event_id, info.bucket, info.key)
        return self.info(event_id)

    def _finish(
        self, info: EventInfo, state: str, result: dict[str, Any], *, error: str | None = None
    ) -> EventInfo:
        with self._store.transaction() as s:
            s.execute(
                update(UploadEventRow)
                .where(UploadEventRow.event_id == info.event_id)
                .values(state=state, result=result, last_error=error, finished_at=self._clock())
            )
        log.info("upload event %s (%s/%s) %s", info.event_id, info.bucket, info.key, state)
        return self.info(info.event_id)

    # -- held for review ----------------------------------------------------------------------------
    def _review_decided(self, decided: Identification) -> None:
        """A reviewer decided an identification: an upload's wakes the worker, which sends or drops
        what it held (UploadHolds.settle, then :meth:`_release`)."""
        if decided.source_kind == "upload":
            self.wakeup.set()

    def _release(self, info: EventInfo, held: Held) -> EventInfo:
        """A held event once its identification is decided: CONFIRMED, its record sent (marked so);
        REJECTED, dropped unsent; then the hold deleted and the event succeeded. Undecided (UNSURE, or a
        decision changed back): held again. A sink failure propagates (the event is retried)."""
        result = {**(info.result or {}), "review": held.review}
        if held.status not in ("CONFIRMED", "REJECTED"):
            self._holds.wait(info.event_id, result)
            return self.info(info.event_id)
        if held.status == "CONFIRMED":
            rule = self._rule_of(info.event_id)
            if rule.sink is not None:
                self._send(rule.sink, {**held.record, "Keeneye": {"Review": held.review}})
        self._holds.drop(held.identification_id)
        return self._finish(info, "succeeded", result)

    def _rule_of(self, event_id: str) -> UploadRule:
        with self._store.sessions() as s:
            row = s.scalars(select(UploadEventRow).where(UploadEventRow.event_id == event_id)).one()
            return UploadRule.model_validate(self._secrets.open_rule(row.rule))

    def _read(self, info: EventInfo) -> bytes:
        if self._read_object is None:
            raise BackendUnavailable("this process reads no buckets")
        version = info.version[3:] if info.version.startswith("id:") else None
        return self._read_object(info.bucket, info.key, version)

    def _run(
        self, info: EventInfo, rule: UploadRule, image: bytes
    ) -> tuple[dict[str, Any], tuple[str, dict[str, Any]] | None]:
        """What was done, and the record to hold for review (its identification id and the message)."""
        details = {"source": info.source, "event_id": info.event_id, "bucket": info.bucket, "key": info.key}
        if rule.task == "index-faces":
            indexed = self._collections.index_faces(
                rule.collection_id,
                image,
                external_image_id=external_image_id(info.key, rule.external_image_id),
                max_faces=rule.max_faces,
                quality_filter=rule.quality_filter or "AUTO",
            )
            face_ids = [stored.face_id for stored, _ in indexed.indexed]
            if self._audit is not None:
                self._audit.append(
                    "IndexFaces",
                    access_key=info.access_key,
                    collection_id=rule.collection_id,
                    request_faces=len(indexed.indexed) + len(indexed.unindexed),
                    details={**details, "face_ids": face_ids},
                )
            return {"face_ids": face_ids, "unindexed": len(indexed.unindexed)}, None
        try:
            found = self._collections.search_faces_by_image(
                rule.collection_id, image, rule.threshold, quality_filter=rule.quality_filter or "NONE"
            )
        except NoFaceFound:
            return {"faces": 0, "matches": []}, None
        key = self._collections.key(rule.collection_id)
        probe = found.searched
        if probe.embedding is not None and probe.embedder_id is not None:
            # A probe closer to a reviewer's rejected probe of a person than to the person is not them.
            kept = filter_matches(self._store, key, probe.embedding, probe.embedder_id, found.matches)
            found.matches = kept
        identification = (
            self._queue_review(info, key, image, found)
            if found.matches and self._review is not None
            else None
        )
        matches = [
            {
                "FaceId": m.face.face_id,
                "ExternalImageId": m.face.external_image_id,
                "Similarity": round(m.similarity, 4),
            }
            for m in found.matches
        ]
        if self._audit is not None:
            self._audit.append(
                "SearchFacesByImage",
                access_key=info.access_key,
                collection_id=rule.collection_id,
                request_faces=1 + len(found.unsearched),
                matches=[{"FaceId": m["FaceId"], "Similarity": m["Similarity"]} for m in matches],
                threshold=rule.threshold,
                details=details,
            )
        result: dict[str, Any] = {"faces": 1 + len(found.unsearched), "matches": matches}
        if identification is not None:
            result["review"] = review_of_identification(identification)
        if not matches or rule.sink is None:
            return result, None
        message: dict[str, Any] = {
            **details,
            "collection_id": rule.collection_id,
            "threshold": rule.threshold,
            "version": info.version,
            "matches": matches,
            "searched_face_xyxy": [float(v) for v in found.searched.xyxy],
            "time": self._clock().isoformat(),
        }
        if self._review is not None and self._review.review_required(key):
            # Held until CONFIRMED; a match the queue suppressed (this event's, already REJECTED) is
            # never sent.
            return result, (None if identification is None else (identification.identification_id, message))
        if identification is not None:
            message["Keeneye"] = {"Review": result["review"]}
        self._send(rule.sink, message)
        return result, None

    def _queue_review(
        self, info: EventInfo, key: str, image: bytes, found: ImageSearchResult
    ) -> Identification | None:
        """The best match of an uploaded image into the review queue, with the searched face's crop;
        the identification (None: suppressed, e.g. this event's match already rejected)."""
        assert self._review is not None
        top, probe = found.matches[0], found.searched
        try:
            crop = face_crop(decode_image(image), probe.xyxy)
        except KeeneyeError:  # already decoded once by the search: not expected; queued without a crop
            crop = None
        return self._review.record(
            identification_id=identification_id_of(info.event_id),
            source_kind="upload",
            source_name=f"{info.bucket}/{info.key}",
            session_id=info.event_id,
            collection_id=key,
            face_id=top.face.face_id,
            user_id=top.face.user_id,
            similarity=min(100.0, max(0.0, float(top.similarity))),
            crop_jpeg=crop,
            probe_embedding=probe.embedding,
            embedder_id=probe.embedder_id if probe.embedding is not None else None,
        )

    def _send(self, spec: SinkSpec, message: Mapping[str, Any]) -> None:
        sink = build_sink(
            spec, jsonl_dir=self._jsonl_dir, timeout_s=self._settings.sink_timeout_s, egress=self._egress
        )
        try:
            sink.send({"type": "keeneye.upload.FaceMatches", **message})
        finally:
            sink.close()

    def _failed(self, info: EventInfo, exc: BaseException) -> EventInfo:
        message = _describe(exc)[:MAX_ERROR_CHARS]
        transient = is_transient(exc) and info.attempts < self._settings.max_attempts
        now = self._clock()
        values: dict[str, Any] = {"last_error": message}
        if transient:
            wait_s = min(
                self._settings.retry_initial_s * 2 ** max(0, info.attempts - 1), self._settings.retry_max_s
            )
            values.update(state="queued", next_attempt_at=now + timedelta(seconds=wait_s))
            log.warning(
                "upload event %s failed (attempt %d), retried in %.1f s: %s",
                info.event_id,
                info.attempts,
                wait_s,
                message,
            )
        else:
            values.update(state="failed", finished_at=now)
            log.warning("upload event %s failed: %s", info.event_id, message)
        with self._store.transaction() as s:
            s.execute(update(UploadEventRow).where(UploadEventRow.event_id == info.event_id).values(**values))
        return self.info(info.event_id)


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later may succeed: S3 unreachable or answering 5xx/throttling, the database
    locked, a sink down, the server's pixel budget spent (ServerBusy). The botocore error is looked for
    in the cause and context chain too (keeneye.aws.images raises InvalidS3ObjectException ``from None``
    for every S3 failure)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, BotoCoreError | OperationalError | SinkError | BackendUnavailable | ServerBusy):
            return True
        if isinstance(seen, ClientError):
            error = seen.response.get("Error", {})
            status = int(seen.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            return status >= 500 or error.get("Code") in ("SlowDown", "Throttling", "RequestTimeout")
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeeneyeError):
        return f"{exc.code}: {exc.message}"
    type_name = getattr(exc, "type_name", None)  # keeneye.aws.errors.AwsError
    if type_name is not None:
        return f"{type_name}: {getattr(exc, 'message', exc)}"
    return f"{type(exc).__name__}: {exc}"


def _check_bucket(bucket: str) -> None:
    if not bucket or len(bucket) > 255 or "\x00" in bucket or "/" in bucket:
        raise InvalidParameter("a bucket name is 1-255 characters without '/'")


class UploadWorker:
    """Runs queued upload events in one thread until :meth:`stop`: at start (events interrupted by a
    stop included), when an event is queued, and when a retry is due. A failing round (the database
    unreachable) is logged and tried again a little later."""

    IDLE_S = 5.0

    def __init__(self, service: UploadService) -> None:
        self._service = service
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="keeneye-uploads", daemon=True)

    def start(self) -> None:
        self._service.requeue_interrupted()
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        self._service.wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait_s = self.IDLE_S
            self._service.wakeup.clear()  # before the round: an event queued during it wakes the next
            try:
                self._service.run_due()
                due = self._service.next_due_in_s()
                if due is not None:
                    wait_s = min(wait_s, max(due, 0.05))
            except (SQLAlchemyError, KeeneyeError, OSError):
                log.exception("upload events round failed; trying again in %.0f s", wait_s)
            self._service.wakeup.wait(wait_s)
