"""Stream processors: Rekognition's stream-processor API over live cameras, each run in its own process.

A stream processor (CreateStreamProcessor) names an input, an output and what to look for:

* ``Input.KinesisVideoStream.Arn``: a camera registered by name (``PUT /v1/cameras/{name}``;
  ``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<anything>``), or a URL directly:
  ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://`` (MJPEG, HLS), or ``file://`` for a video inside a
  folder the server serves as a bucket (``--bucket NAME=FOLDER``; no other local path is readable).
* ``Output.KinesisDataStream.Arn``: a data stream registered by name (``PUT /v1/data-streams/{name}``;
  ``arn:aws:kinesis:<region>:<account>:stream/<name>``) or a sink URL: ``http(s)://`` (POST per record),
  ``mqtt://host:port/topic``, ``file://NAME.jsonl`` (a file in the server's notifications folder).
  ``Output.S3Destination`` writes each record as an object to a bucket the server is configured with.
* ``Settings.FaceSearch`` {CollectionId, FaceMatchThreshold} and/or ``Settings.ConnectedHome``
  {Labels: [PERSON], MinConfidence}; ``RegionsOfInterest`` (boxes and polygons, ratio coordinates):
  only faces whose centre / persons whose feet are inside one are analysed.
* keeneye's options (native API ``PUT /v1/stream-processors/{name}/options``): directed ``lines`` and
  ``zones`` for ConnectedHome person tracks, ``record_interval_s``, ``target_fps``.

Runs: StartStreamProcessor starts a worker *process* through
:class:`~keeneye.streams.supervisor.WorkerSupervisor` (keeneye/streams/supervisor.py: what the worker
runs, why a process per processor, how it reports). This module writes what the supervisor reports:
state changes to the database (Status, StatusMessage: reconnects, camera errors, sink outages), an audit
record for every identification, and when the worker exits, STOPPED (asked to stop, or StopSelector's
MaxDurationInSeconds reached) or FAILED with the reason: a processor never dies silently. Cameras and
data streams, and what a processor's Input and Output resolve to, are keeneye/service/streams/cameras.py.

Live view and snapshots (keeneye.streams.live): :meth:`StreamProcessors.live_view` keeps the latest view
a watched worker sends (in memory, one per processor); :meth:`StreamProcessors.snapshot` and
:meth:`StreamProcessors.camera_snapshot` ask a running worker for its latest frame, or read one from the
camera (Cameras.grab).

One module of ~820 lines, on purpose: :class:`StreamProcessors` is one use case whose parts (create and
update, start under the starter's rights, the reports of a running worker with its review queue, the
live view, and the row lease that gives each processor to one server) share one lock, one supervisor
and one row state machine (STOPPED -> STARTING -> RUNNING -> STOPPING); split into classes, each would
reach into the others' state. What could stand alone already does: cameras.py, rights.py, spec.py.

States: STOPPED -> (Start) STARTING -> RUNNING -> (Stop) STOPPING -> STOPPED; FAILED when the worker
dies or cannot start (UpdateStreamProcessor applies at once to a stopped processor: no UPDATING). A
processor that was running when the server stopped is started again when it starts (``desired`` =
running); one that cannot be (its camera or collection gone) is FAILED with the reason.

Several servers on one database (docs/deployment.md): a processor runs in exactly one of them, the one
whose lease its row holds (``lease_owner``, ``lease_expires_at``: ``streams.lease_s``; taken by Start in a
row-locked transaction, renewed every third of the lease while its worker runs, released when it ends).
Every server's lease thread also starts the processors that should run (``desired`` = running) and whose
lease is void: expired (their server died or was cut off), or held by an exited process of this host
(keeneye/store/leases.py). StopStreamProcessor through another server marks the row STOPPING; the
owner's lease thread stops its worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.core import regions
from keeneye.core.errors import (
    BackendUnavailable,
    InvalidParameter,
    KeeneyeError,
    LimitExceeded,
    NotFound,
    ResourceInUse,
)
from keeneye.core.types import FloatArray
from keeneye.service.faces.collections import FaceCollections, FaceMatch
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.policies import Right
from keeneye.service.review.negatives import filter_matches
from keeneye.service.review.queue import Identification, ReviewQueue
from keeneye.service.streams.cameras import CAMERA_ARN, Cameras, check_name
from keeneye.service.streams.events import StreamEvents
from keeneye.service.streams.rights import input_rights, processor_rights
from keeneye.service.streams.spec import (
    REQUEST_KEYS,
    ProcessorInfo,
    ProcessorOptions,
    check_connected_home,
    collection_key,
    labels_of,
    regions_of_interest,
)
from keeneye.store import leases
from keeneye.store.collections import collection_arn
from keeneye.store.db import Store
from keeneye.store.tables import StreamProcessorRow
from keeneye.streams.runtime import CollectionSearch, RecordEncoder
from keeneye.streams.sinks import redacted_url
from keeneye.streams.supervisor import WorkerReports, WorkerSupervisor
from keeneye.streams.worker import SearchOpener, WorkerConfig

ResumeCheck = Callable[[str | None, str], None]
"""``(access key that started it, processor store key)``: raises when that key may no longer start it."""

log = logging.getLogger(__name__)

STATUSES = ("STOPPED", "STARTING", "RUNNING", "FAILED", "STOPPING", "UPDATING")
ACTIVE = frozenset({"STARTING", "RUNNING", "STOPPING"})
MAX_LIST = 1000
FIRST_VIEW_WAIT_S = 1.5
"""How long the first ask for a live view waits for the worker's first view (it renders within 250 ms of
being asked when its camera sends)."""
SNAPSHOT_TIMEOUT_S = 3.0
"""How long a running worker has to answer a snapshot request."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LiveView:
    """A running processor's latest live view: ``jpeg`` the annotated frame (face boxes with names and
    similarity, person boxes with track ids, lines with their counts, zones; at most 640 px wide);
    ``captured_at`` wall-clock epoch seconds when the worker decoded the frame; ``pts_ms`` its stream
    time; ``counts`` line name -> {"in": n, "out": m}; ``tracks`` the boxes drawn, each {"kind": "face" |
    "person", "track_id", "box": [x0, y0, x1, y1] ratios of the frame, "label"}."""

    jpeg: bytes
    captured_at: float
    pts_ms: int
    counts: dict[str, dict[str, int]]
    tracks: list[dict[str, Any]]


# -- the service -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    """A processor's input and outputs as they resolve now: URL to read, listen or pull, sinks as JSON."""

    url: str
    listen: bool
    sinks: list[dict[str, Any]]


class StreamProcessors:
    """The stream processors: their store, their runs (each a worker process of ``supervisor``), and what
    the workers report.

    audit: where identifications a worker reports and session ends are recorded (with the access key
    that started the processor); notify: ``(topic_arn, message)`` for a processor's NotificationChannel;
    check_collection: raises NotFound for a missing collection; region/account: for ARNs; encode: a
    pipeline event -> the record sinks get (keeneye.aws.stream_records.encode, from the composition root);
    open_search: how a worker searches a FaceSearch processor's collection (a module-level function,
    pickled into the worker); supervisor: runs the workers (the composition root builds it; one is made
    from ``settings.streams`` when not given). ``cameras``: the registered cameras and data streams.
    review: the human review queue every identification is recorded in (with the probe's face crop);
    its decisions are passed on to the running worker (keeneye/streams/review.py).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        audit: AuditLog | None = None,
        notify: Callable[[str, dict[str, Any]], object] | None = None,
        check_notification_topic: Callable[[str], None] | None = None,
        check_collection: Callable[[str], object] | None = None,
        region: str = "us-east-1",
        account: str = "000000000000",
        encode: RecordEncoder,
        open_search: SearchOpener | None = None,
        supervisor: WorkerSupervisor | None = None,
        review: ReviewQueue | None = None,
    ) -> None:
        self._store = store
        self._encode = encode
        self._open_search = open_search or open_collection_search
        self._settings = settings
        self._audit = audit
        self._notify = notify
        self._check_topic = check_notification_topic
        self._check_collection = check_collection
        self.region, self.account = region, account
        self.cameras = Cameras(store, settings, region=region, account=account)
        self.events = StreamEvents(store)  # line crossings and zone visits, for the console's timeline
        self._workers = supervisor or WorkerSupervisor(stop_timeout_s=settings.streams.stop_timeout_s)
        self._lock = threading.RLock()
        self._closing = False
        self.review = review
        if review is not None:
            review.add_listener(self._review_decided)
        self._views: dict[str, LiveView] = {}  # the latest view of each watched processor
        self._view_cond = threading.Condition()
        self.owner = leases.new_owner()  # this server, as the lease_owner of the processors it runs
        self._lease_s = settings.streams.lease_s
        self._may_start: ResumeCheck | None = None
        self._lease_stop = threading.Event()
        self._lease_thread: threading.Thread | None = None

    def arn(self, name: str) -> str:
        """A processor's ARN; ``name`` is its store key (REGION/name outside us-east-1, as collections:
        keeneye.core.regions), and the ARN carries that region."""
        region, plain = regions.split_key(name)
        return f"arn:aws:rekognition:{region}:{self.account}:streamprocessor/{plain}"

    def _validate(self, request: Mapping[str, Any], name: str) -> _Resolved:
        """Everything Create checks that can be checked before a run: input, outputs, settings; what the
        input and outputs resolve to now (Start runs the worker on exactly that). ``name``: the
        processor's key, whose region is the FaceSearch collection's."""
        url, listen = self.cameras.resolve_input(str(request["Input"]["KinesisVideoStream"]["Arn"]))
        resolved = _Resolved(url, listen, self.cameras.resolve_outputs(request["Output"]))
        settings = request.get("Settings") or {}
        face, home = settings.get("FaceSearch"), settings.get("ConnectedHome")
        if face is None and home is None:
            raise InvalidParameter("Settings needs FaceSearch or ConnectedHome")
        if face is not None:
            if not face.get("CollectionId"):
                raise InvalidParameter("Settings.FaceSearch.CollectionId is required")
            threshold = face.get("FaceMatchThreshold", 80.0)
            if not 0 <= threshold <= 100:
                raise InvalidParameter("FaceMatchThreshold must be in 0-100")
            if self._check_collection is not None:
                try:
                    self._check_collection(collection_key(name, str(face["CollectionId"])))
                except NotFound as err:
                    raise InvalidParameter(f"Settings.FaceSearch: {err.message}") from None
        if home is not None:
            check_connected_home(home.get("Labels") or [], home.get("MinConfidence"))
        regions_of_interest(request.get("RegionsOfInterest") or [])
        channel = request.get("NotificationChannel")
        if channel is not None and self._check_topic is not None:
            self._check_topic(str(channel["SNSTopicArn"]))
        return resolved

    # -- the API -------------------------------------------------------------------------------------------

    def rights(self, request: Mapping[str, Any], *, collection_arn: Callable[[str], str]) -> list[Right]:
        """The rights using what ``request`` names needs (camera, data stream, URLs, files, buckets, the
        FaceSearch collection, the notification channel: keeneye.service.streams.rights); the adapter
        checks them against the caller's policy before Create. ``collection_arn``: CollectionId -> ARN
        in the processor's region."""
        return processor_rights(
            request,
            cameras=self.cameras,
            buckets=self._settings.server.buckets,
            collection_arn=collection_arn,
        )

    def stored_rights(self, name: str) -> list[Right]:
        """:meth:`rights` of a stored processor's request (NotFound without one): checked again before
        Start, Update and a resume, against the policy of the key that starts or updates it. Its
        FaceSearch collection is the one of the processor's own region (its key's)."""
        region, _ = regions.split_key(name)
        return self.rights(
            self.describe(name).request,
            collection_arn=lambda collection_id: collection_arn(region, self.account, collection_id),
        )

    def input_rights(self, name: str) -> list[Right]:
        """The rights reading a stored processor's input needs, as Start checks them (``keeneye:UseCamera``
        on its camera, ``keeneye:UseUrl`` on its URL, ``s3:GetObject`` on a served file:
        keeneye.service.streams.rights.input_rights); NotFound without the processor. A snapshot shows
        that input, and reads it itself when the processor is not running, so the adapters check these
        before :meth:`snapshot`."""
        arn = str(self.describe(name).request["Input"]["KinesisVideoStream"]["Arn"])
        return input_rights(arn, cameras=self.cameras, buckets=self._settings.server.buckets)

    def create(self, name: str, request: Mapping[str, Any]) -> str:
        """CreateStreamProcessor: validate and store (STOPPED); the ARN. ResourceInUse for a taken name."""
        check_name(regions.name_of(name), "stream processor")
        body = {k: request[k] for k in REQUEST_KEYS if k in request}
        self._validate(body, name)
        now = _now()
        with self._store.transaction() as s:
            if s.get(StreamProcessorRow, name) is not None:  # Rekognition: ResourceInUseException
                raise ResourceInUse(f"a stream processor named {name!r} already exists")
            s.add(
                StreamProcessorRow(
                    name=name,
                    status="STOPPED",
                    status_message=None,
                    desired="stopped",
                    request=self.cameras.secrets.seal_request(body),  # URL credentials sealed
                    options={},
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.arn(name)

    def _row(self, s: Any, name: str) -> StreamProcessorRow:
        row = s.get(StreamProcessorRow, name)
        if row is None:
            raise NotFound(f"stream processor {name!r} does not exist")
        return row  # type: ignore[no-any-return]

    def _info(self, row: StreamProcessorRow) -> ProcessorInfo:
        return ProcessorInfo(
            row.name,
            self.arn(row.name),
            row.status,
            row.status_message,
            row.created_at,
            row.updated_at,
            self.cameras.secrets.open_request(row.request),
            dict(row.options or {}),
            row.session_id,
        )

    def describe(self, name: str) -> ProcessorInfo:
        with self._store.transaction() as s:
            return self._info(self._row(s, name))

    def list_processors(
        self, max_results: int = MAX_LIST, after: str | None = None, region: str | None = None
    ) -> tuple[list[ProcessorInfo], str | None]:
        """Processors by key after ``after`` (of one region, if given); the page and the last key when
        more follow."""
        limit = max(1, min(max_results, MAX_LIST))
        with self._store.transaction() as s:
            q = select(StreamProcessorRow).order_by(StreamProcessorRow.name)
            if region == regions.HOME_REGION:
                q = q.where(~StreamProcessorRow.name.contains(regions.SEPARATOR, autoescape=True))
            elif region is not None:
                prefix = regions.check_region(region) + regions.SEPARATOR
                q = q.where(StreamProcessorRow.name.startswith(prefix, autoescape=True))
            if after is not None:
                q = q.where(StreamProcessorRow.name > after)
            rows = list(s.scalars(q.limit(limit + 1)))
        page = [self._info(r) for r in rows[:limit]]
        return page, (page[-1].name if len(rows) > limit else None)

    def update(
        self,
        name: str,
        *,
        connected_home: Mapping[str, Any] | None = None,
        regions: Sequence[Mapping[str, Any]] | None = None,
        data_sharing: Mapping[str, Any] | None = None,
        delete: Sequence[str] = (),
    ) -> None:
        """UpdateStreamProcessor: ConnectedHome labels / MinConfidence, RegionsOfInterest, DataSharing;
        only while stopped (ResourceInUse otherwise: stop it, update, start it)."""
        with self._store.transaction() as s:
            row = self._row(s, name)
            if row.status not in ("STOPPED", "FAILED"):
                raise ResourceInUse(f"stream processor {name!r} is {row.status}: stop it before updating it")
            request = self.cameras.secrets.open_request(row.request)
            home = dict((request.get("Settings") or {}).get("ConnectedHome") or {})
            if connected_home is not None:
                if not home:
                    raise InvalidParameter(
                        "ConnectedHomeForUpdate: this processor has no ConnectedHome settings"
                    )
                home.update({k: v for k, v in connected_home.items() if v is not None})
            if "ConnectedHomeMinConfidence" in delete:
                home.pop("MinConfidence", None)
            if home:
                check_connected_home(home.get("Labels") or [], home.get("MinConfidence"))
                request["Settings"] = {**request.get("Settings", {}), "ConnectedHome": home}
            if regions is not None:
                regions_of_interest(regions)
                request["RegionsOfInterest"] = list(regions)
            if "RegionsOfInterest" in delete:
                request.pop("RegionsOfInterest", None)
            if data_sharing is not None:
                request["DataSharingPreference"] = dict(data_sharing)
            row.request = self.cameras.secrets.seal_request(request)
            row.updated_at = _now()

    def set_options(self, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """keeneye's options (lines, zones, intervals); only while stopped, like Update."""
        options = ProcessorOptions.parse(raw).to_dict()
        with self._store.transaction() as s:
            row = self._row(s, name)
            if row.status not in ("STOPPED", "FAILED"):
                raise ResourceInUse(
                    f"stream processor {name!r} is {row.status}: stop it before changing its options"
                )
            row.options = options
            row.updated_at = _now()
        return options

    def delete(self, name: str) -> None:
        with self._store.transaction() as s:
            row = self._row(s, name)
            if row.status in ACTIVE:
                raise ResourceInUse(f"stream processor {name!r} is {row.status}: stop it before deleting it")
            s.delete(row)

    def start(self, name: str, *, max_duration_s: float | None = None, access_key: str | None = None) -> str:
        """StartStreamProcessor: spawn its worker; the SessionId. ResourceInUse when it is already running."""
        if max_duration_s is not None and max_duration_s <= 0:
            raise InvalidParameter("StopSelector.MaxDurationInSeconds must be > 0")
        with self._lock:
            if self._closing:
                raise ResourceInUse("the server is stopping")
            active = self._workers.alive()
            if name not in self._workers and active >= self._settings.streams.max_processors:
                raise LimitExceeded(
                    f"{active} stream processors are running, the most this server runs at once "
                    f"(streams.max_processors); stop one first"
                )
            session_id = str(uuid.uuid4())
            now = _now()
            with self._store.transaction() as s:
                row = self._row(s, name)
                if self._taken(row, now) or name in self._workers:
                    raise ResourceInUse(f"stream processor {name!r} is {row.status}")
                request = self.cameras.secrets.open_request(row.request)
            # What Create checked may have changed since (a camera, a data stream or the collection gone):
            # refused now, with what to fix, rather than a worker that fails.
            resolved = self._validate(request, name)
            with self._store.transaction() as s:
                # Locked (PostgreSQL) and checked again: of two servers starting it at once, one wins.
                locked = s.get(StreamProcessorRow, name, with_for_update=True, populate_existing=True)
                if locked is None:
                    raise NotFound(f"stream processor {name!r} does not exist")
                row = locked
                if self._taken(row, now):
                    raise ResourceInUse(f"stream processor {name!r} is {row.status}")
                row.status, row.status_message, row.desired = "STARTING", None, "running"
                row.session_id, row.started_by = session_id, access_key
                row.lease_owner, row.lease_expires_at = self.owner, now + timedelta(seconds=self._lease_s)
                row.stop_at = None if max_duration_s is None else now + timedelta(seconds=max_duration_s)
                row.updated_at = now
                request, options = self.cameras.secrets.open_request(row.request), dict(row.options or {})
            try:
                self._spawn(name, request, resolved, options, session_id, max_duration_s, access_key)
            except Exception as err:
                self._finish(name, session_id, "FAILED", f"could not start: {err}", access_key=access_key)
                raise
            return session_id

    def _spawn(
        self,
        name: str,
        request: Mapping[str, Any],
        resolved: _Resolved,
        options: Mapping[str, Any],
        session_id: str,
        stop_after_s: float | None,
        access_key: str | None,
    ) -> None:
        input_arn = str(request["Input"]["KinesisVideoStream"]["Arn"])
        settings = request.get("Settings") or {}
        face = settings.get("FaceSearch")
        home = settings.get("ConnectedHome")
        config = WorkerConfig(
            name=name,
            arn=self.arn(name),
            session_id=session_id,
            settings_json=self._settings.model_dump_json(),
            source_url=resolved.url,
            listen=resolved.listen,
            stream_arn=input_arn if CAMERA_ARN.fullmatch(input_arn) else redacted_url(input_arn),
            face_search=None
            if face is None
            else (
                collection_key(name, str(face["CollectionId"])),
                float(face.get("FaceMatchThreshold", 80.0)),
            ),
            connected_home=None
            if home is None
            else (labels_of(home.get("Labels") or []), float(home.get("MinConfidence", 50.0))),
            regions=regions_of_interest(request.get("RegionsOfInterest") or []),
            options=dict(options),
            sinks=resolved.sinks,
            stop_after_s=stop_after_s,
            encode=self._encode,
            open_search=self._open_search,
            review_required=face is not None
            and self.review is not None
            and self.review.review_required(collection_key(name, str(face["CollectionId"]))),
        )
        self._workers.spawn(config, self._reports(name, session_id, access_key, config.face_search))

    def _reports(
        self, name: str, session_id: str, access_key: str | None, face_search: tuple[str, float] | None
    ) -> WorkerReports:
        """What is done with one run's reports: status changes written, identifications audited (under
        the access key that started it), its end written (and notified)."""
        collection_id, threshold = face_search if face_search is not None else (None, None)

        def status(status: str, message: str | None) -> None:
            self._set_status(name, session_id, status, message)

        def identified(report: dict[str, Any]) -> None:
            if self._audit is not None:
                self._audit.append(
                    "StreamProcessorMatch",
                    access_key=access_key,
                    collection_id=collection_id,
                    request_faces=1,
                    matches=report["matches"],
                    threshold=threshold,
                    details={
                        "stream_processor": name,
                        "session_id": session_id,
                        "track_id": report.get("track_id"),
                        "identification_id": report.get("identification_id"),
                    },
                )
            if self.review is not None and report["matches"]:
                self._queue(name, session_id, collection_id, report)

        def ended(status: str, message: str | None) -> None:
            with self._lock:
                closing = self._closing
            # A server shutdown keeps it desired-running: started again at the next start.
            self._finish(name, session_id, status, message, keep_desired=closing, access_key=access_key)

        def view(report: dict[str, Any]) -> None:
            self._keep_view(name, report)

        def event(report: dict[str, Any]) -> None:
            self.events.record(name, session_id, report)

        return WorkerReports(status, identified, ended, view=view, event=event)

    def _queue(self, name: str, session_id: str, collection_id: str | None, report: dict[str, Any]) -> None:
        """One reported identification into the review queue (its best match; the worker sends the crop
        and probe with a pair's first report only, and the queue keeps one identification per pair)."""
        assert self.review is not None
        top = report["matches"][0]
        try:
            self.review.record(
                source_kind="stream",
                source_name=name,
                session_id=session_id,
                collection_id=collection_id,
                face_id=str(top["FaceId"]),
                user_id=report.get("user_id"),
                similarity=min(100.0, max(0.0, float(top["Similarity"]))),
                track_id=report.get("track_id"),
                pts_ms=report.get("pts_ms"),
                crop_jpeg=report.get("crop"),
                probe_embedding=report.get("embedding"),
                embedder_id=report.get("embedder_id"),
                identification_id=report.get("identification_id"),
            )
        except KeeneyeError as err:  # a malformed report must not stop the monitor; it was audited
            log.warning("stream processor %s: identification not queued: %s", name, err.message)

    def _review_decided(self, info: Identification) -> None:
        """A reviewer decided one of a stream processor's identifications: its worker, if that run still
        goes on, stops alerting a rejected pair or sends the records it held (keeneye/streams/review.py)."""
        if info.source_kind != "stream" or info.session_id is None:
            return
        self._workers.tell_review(
            info.source_name,
            {
                "session_id": info.session_id,
                "track_id": info.track_id,
                "person": info.person,
                "identification_id": info.identification_id,
                "status": info.status,
                "by": info.decided_by,
                "at": None if info.decided_at is None else info.decided_at.isoformat(),
            },
        )

    def _set_status(self, name: str, session_id: str, status: str, message: str | None) -> None:
        with self._store.transaction() as s:
            row = s.get(StreamProcessorRow, name)
            if row is None or row.session_id != session_id:
                return
            row.status, row.status_message, row.updated_at = status, message, _now()

    def _finish(
        self,
        name: str,
        session_id: str,
        status: str,
        message: str | None,
        *,
        keep_desired: bool = False,
        access_key: str | None = None,
    ) -> None:
        topic = None
        with self._store.transaction() as s:
            row = s.get(StreamProcessorRow, name)
            if row is None or row.session_id != session_id:
                return
            row.status, row.status_message, row.updated_at = status, message, _now()
            row.lease_owner, row.lease_expires_at = None, None  # free: another server may start it
            if not keep_desired:
                row.desired = "stopped"
            channel = row.request.get("NotificationChannel")
            topic = None if channel is None else str(channel["SNSTopicArn"])
        if self._audit is not None:
            self._audit.append(
                "StreamProcessorEnded",
                access_key=access_key,
                details={
                    "stream_processor": name,
                    "session_id": session_id,
                    "status": status,
                    "message": message,
                },
            )
        if topic is not None and self._notify is not None and not keep_desired:
            self._notify(topic, end_message(self.arn(name), session_id, status, message))

    def stop(self, name: str) -> None:
        """StopStreamProcessor: ask the worker to stop (it delivers what it has and exits; killed after
        ``streams.stop_timeout_s``). ResourceInUse when it is not running."""
        with self._lock:
            worker = self._workers.get(name)
            with self._store.transaction() as s:
                row = self._row(s, name)
                now = _now()
                if row.status not in ACTIVE or (worker is None and not self._taken(row, now)):
                    if row.status in ACTIVE:  # its server died: nothing runs it any more
                        row.status, row.desired, row.updated_at = "STOPPED", "stopped", now
                        row.lease_owner = row.lease_expires_at = None
                        return
                    raise ResourceInUse(f"stream processor {name!r} is {row.status}, not running")
                # Run here, or by another server: that server's lease thread sees this and stops it.
                row.status, row.desired, row.updated_at = "STOPPING", "stopped", now
            if worker is not None:
                self._workers.stop(worker)

    def stats(self, name: str) -> dict[str, Any]:
        """The latest counters a running processor reported (empty when it is not running)."""
        return self._workers.stats(name)

    def all_stats(self) -> dict[str, dict[str, Any]]:
        return self._workers.all_stats()

    def wait_stopped(self, name: str, timeout_s: float) -> bool:
        """Tests and shutdown: whether the processor's monitor ended within ``timeout_s``."""
        return self._workers.wait_stopped(name, timeout_s)

    # -- live view and snapshots (keeneye.streams.live) ------------------------------------------------------

    def live_view(self, name: str) -> LiveView | None:
        """The latest live view of a running processor: an annotated JPEG (at most 640 px wide) and its
        metadata; None when it is not running or has no view yet (its camera is not sending). Asking is
        what makes the worker publish (4 views a second, until VIEW_TTL_S after the last ask): the first
        ask after a pause waits up to FIRST_VIEW_WAIT_S for a fresh view rather than show an old one."""
        started = self._workers.want_view(name)
        with self._view_cond:
            if started is None:
                self._views.pop(name, None)
                return None
            if started:
                self._views.pop(name, None)
                self._view_cond.wait_for(lambda: name in self._views, FIRST_VIEW_WAIT_S)
            return self._views.get(name)

    def _keep_view(self, name: str, report: Mapping[str, Any]) -> None:
        view = LiveView(
            jpeg=bytes(report["jpeg"]),
            captured_at=float(report["captured_at"]),
            pts_ms=int(report["pts_ms"]),
            counts={str(k): {"in": int(v["in"]), "out": int(v["out"])} for k, v in report["counts"].items()},
            tracks=list(report["tracks"]),
        )
        with self._view_cond:
            self._views[name] = view
            self._view_cond.notify_all()

    def snapshot(self, name: str) -> bytes:
        """A JPEG of the processor's current input, un-annotated (for drawing lines and zones on): the
        running worker's latest frame, or one frame read now from its input as its worker would
        (Cameras.grab: egress policy, a few seconds at most). NotFound; BackendUnavailable when a running
        processor has no frame (its camera is down: its status says why) or the camera gives none. The
        caller must hold :meth:`input_rights` (checked by the adapters, running or not: the processor
        may stop between their check and this read, which then connects to the camera)."""
        info = self.describe(name)
        running, jpeg = self._workers.snapshot(name, SNAPSHOT_TIMEOUT_S)
        if jpeg is not None:
            return jpeg
        if running:
            why = f": {info.status_message}" if info.status_message else ""
            raise BackendUnavailable(
                f"stream processor {regions.name_of(name)!r} has no frame from its camera now{why}"
            )
        url, listen = self.cameras.resolve_input(str(info.request["Input"]["KinesisVideoStream"]["Arn"]))
        return self.cameras.grab(url, listen=listen)

    def camera_snapshot(self, camera: str) -> bytes:
        """A JPEG of a registered camera's current frame: from a running processor that reads it (one
        connection to the camera, not two), else read now (Cameras.snapshot). NotFound without it."""
        self.cameras.get_camera(camera)
        for key in self._workers.all_stats():
            try:
                arn = str(self.describe(key).request["Input"]["KinesisVideoStream"]["Arn"])
            except NotFound:
                continue
            m = CAMERA_ARN.fullmatch(arn)
            if m is not None and m.group(3) == camera:
                jpeg = self._workers.snapshot(key, SNAPSHOT_TIMEOUT_S)[1]
                if jpeg is not None:
                    return jpeg
        return self.cameras.snapshot(camera)

    def resume(self, may_start: ResumeCheck | None = None) -> list[str]:
        """Server start: processors that were running (or starting) when their server stopped or died run
        again, here, under the access key that started them; a processor left STOPPING is STOPPED. Those
        another live server runs (its lease holds) are left to it. ``may_start(key, name)`` raises
        (AccessDenied) when that key may no longer start it (disabled, deleted, or its policy no longer
        allows the processor or what it uses): the processor is then FAILED with the reason. Then the
        lease thread starts: it renews this server's leases and takes over the processors of servers
        that die (the same checks). The names started now."""
        self._may_start = may_start
        started = self._take_over()
        with self._lock:
            if self._lease_thread is None and not self._closing:
                self._lease_thread = threading.Thread(
                    target=self._lease_loop, name="keeneye-processor-lease", daemon=True
                )
                self._lease_thread.start()
        return started

    def _taken(self, row: StreamProcessorRow, now: datetime) -> bool:
        """Whether a live server (this one included) runs or is starting the processor: it is active and
        its lease holds (not expired, its owner not an exited process of this host)."""
        if row.status not in ACTIVE or row.lease_owner is None or row.lease_expires_at is None:
            return False
        if row.lease_owner == self.owner:
            return True
        return row.lease_expires_at >= now and not leases.dead_here(row.lease_owner)

    def _take_over(self) -> list[str]:
        """Start here the processors that should run and that no live server runs."""
        now = _now()
        with self._store.transaction() as s:
            rows = [r for r in s.scalars(select(StreamProcessorRow)) if not self._taken(r, now)]
            again = [(r.name, r.started_by) for r in rows if r.desired == "running" and r.name not in self]
            for r in rows:
                if r.status in ACTIVE and r.desired != "running":  # left STOPPING by a server that died
                    r.status, r.updated_at = "STOPPED", now
                    r.lease_owner = r.lease_expires_at = None
        started = []
        for name, access_key in again:
            try:
                if self._may_start is not None:
                    self._may_start(access_key, name)
                self.start(name, access_key=access_key)
                started.append(name)
            except ResourceInUse:  # another server took it first, or this one is stopping
                continue
            except LimitExceeded as err:  # left to a server with room (its lease stays void)
                log.warning("stream processor %s not taken over: %s", name, err.message)
            except Exception as err:  # one bad processor must not keep the others down; its row says why
                log.error("stream processor %s could not be resumed: %s", name, err)
                message = err.message if isinstance(err, KeeneyeError) else f"{type(err).__name__}: {err}"
                with self._store.transaction() as s:
                    row = s.get(StreamProcessorRow, name)
                    if row is not None and not self._taken(row, _now()):
                        row.status, row.desired, row.updated_at = "FAILED", "stopped", _now()
                        row.lease_owner = row.lease_expires_at = None
                        row.status_message = f"could not be started again after a server restart: {message}"[
                            :1024
                        ]
        return started

    def __contains__(self, name: object) -> bool:
        """Whether this server runs the processor's worker."""
        return name in self._workers

    def _renew(self) -> None:
        """Extend this server's leases; stop the workers whose processors were stopped through another
        server (their row says STOPPING / desired stopped)."""
        now = _now()
        with self._store.transaction() as s:
            s.execute(
                update(StreamProcessorRow)
                .where(StreamProcessorRow.lease_owner == self.owner)
                .values(lease_expires_at=now + timedelta(seconds=self._lease_s))
                .execution_options(synchronize_session=False)
            )
            stopped = s.scalars(
                select(StreamProcessorRow.name).where(
                    StreamProcessorRow.lease_owner == self.owner,
                    or_(StreamProcessorRow.desired != "running", StreamProcessorRow.status == "STOPPING"),
                )
            ).all()
        for name in stopped:
            worker = self._workers.get(name)
            if worker is not None and not worker.stop_requested:
                log.info("stream processor %s was stopped through another server; stopping it", name)
                self._workers.stop(worker)

    def _lease_loop(self) -> None:
        """Every third of ``streams.lease_s``: renew, then take over what died. A database outage is
        logged and tried again (the leases then lapse, and the workers go on until a server takes
        their processors over: see docs/deployment.md)."""
        while not self._lease_stop.wait(self._lease_s / 3):
            try:
                self._renew()
                self._take_over()
            except SQLAlchemyError as err:
                log.warning("stream processor leases not renewed (the database?): %s", err)

    def close(self) -> None:
        """Server shutdown: stop every worker (they stay desired-running and resume at the next start,
        or at once on another server sharing the database: their leases are released)."""
        with self._lock:
            self._closing = True
        self._lease_stop.set()
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=30)
        self._workers.close()


def end_message(arn: str, session_id: str, status: str, message: str | None) -> dict[str, Any]:
    """What a NotificationChannel gets when a session ends (keeneye's shape, modelled on Rekognition's
    connected-home STREAM_PROCESSING_COMPLETE event; docs/streams.md)."""
    return {
        "eventNamespace": {"type": "STREAM_PROCESSING_COMPLETE"},
        "streamProcessorArn": arn,
        "sessionId": session_id,
        "status": status,
        "statusMessage": message,
        "timestamp": int(time.time() * 1000),
    }


def open_collection_search(
    settings: Settings, analyzer: FaceAnalyzer, collection_id: str
) -> CollectionSearch:
    """In a worker process: the search of ``collection_id`` (a store key) over its own store and
    collections (the worker's ``analyzer`` shared). A module-level function: pickled by reference."""
    store = Store.open(settings.data_dir, settings.database_url)
    collections = FaceCollections(store, analyzer, vector_index=settings.vector_index)

    def search(embedding: FloatArray, embedder_id: str, threshold: float) -> list[FaceMatch]:
        matches = collections.search_faces_by_vector(collection_id, embedding, embedder_id, threshold)
        # A probe closer to a reviewer's rejected probe of a person than to the person is not them
        # (keeneye/service/review/negatives.py).
        return filter_matches(store, collection_id, embedding, embedder_id, matches)

    return search
