"""The stream-processor runtime: a live source -> face search and/or person tracking -> records -> sinks.

:class:`StreamProcessorRuntime` consumes a :class:`~keeneye.streams.capture.LiveSource` in a thread; the
server runs each one in its own worker process (keeneye.streams.supervisor), ``keeneye watch`` in the
foreground. Per captured frame:

* FaceSearch: as :func:`keeneye.service.video.face_search._step` does for stored video: face detection
  -> a face tracker (:func:`face_tracker_config`) -> a :class:`TrackFaceIdentifier` (a track's face is
  embedded and searched a few times at most, when it is the first usable one or clearly better), with shot
  cuts ending tracks. Unlike stored video, to keep many cameras on few cores: the detector runs on the
  frames a :class:`DetectionSchedule` picks (``streams.face_detect_every``, ``streams.face_motion_gating``;
  the tracker predicts the others), faces are described per frame with the "basic" level (quality and
  pose from the detector's points: enough to pick a track's best face), and only a face that is reported
  gets the face mesh (Rekognition's DEFAULT Landmarks / Pose) and its expression.
* ConnectedHome PERSON: person detection -> :class:`PersonTracker` -> :class:`LineCounter` and
  :class:`ZoneMonitor`.
* Regions of interest (ratio polygons): only faces whose centre and persons whose feet (the box's bottom
  centre) lie in one are analysed.

Records (keeneye.aws.stream_records): **one face record per track and identity**, repeated only when the
track's identity changes (a better face matched someone else) or ``record_interval_s`` after the last one
for that track; an unknown face (embedded, no match at the threshold) gets a record with empty
``MatchedFaces``, rate-limited the same way. Person tracks get a ``person`` record when first confirmed
and then every ``record_interval_s``; each line crossing is a ``line`` record and each zone enter/exit a
``zone`` record at once.

Latency is the wall time when a record has been handed to every sink minus the frame's ``captured_at``;
:meth:`StreamProcessorRuntime.stats` gives p50/p95 over the last ``LATENCY_WINDOW`` records.

Sinks are called in the processing thread, in order, so they must be fast: the server and ``keeneye watch``
give it :class:`~keeneye.streams.spool.SpooledSink` wrappers, whose ``send`` is a local disk append (a
sink that is down keeps records on disk and gets them when it returns). A sink that raises anyway is
logged and counted (``sink_errors``) and the processor goes on."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.core.events import Event, FaceIdentified, FrameContext, PersonSeen
from keeneye.core.geometry import anchor, centre
from keeneye.core.types import Detections, FloatArray, Frame
from keeneye.models.base import ObjectDetector
from keeneye.pipeline.faces import FaceSteps, FaceUpdate, face_tracker_config
from keeneye.pipeline.identification import TrackFaceIdentifier
from keeneye.pipeline.loop import run_frames
from keeneye.pipeline.persons import (
    PersonSteps,
    PersonUpdate,
    build_person_stage,
    build_tracking_detector,
    person_events,
    tracker_config,
)
from keeneye.pipeline.schedule import DetectionSchedule, ScheduleConfig
from keeneye.store.collections import FaceMatch
from keeneye.streams.capture import CapturedFrame, CaptureSettings, CaptureStatus, LiveSource
from keeneye.streams.egress import EgressPolicy
from keeneye.streams.live import LiveBox, LiveFrame, face_label
from keeneye.streams.sinks import Sink
from keeneye.tracking.lines import Line
from keeneye.tracking.tracker import PersonTracker
from keeneye.tracking.zones import Zone, signed_depth

log = logging.getLogger(__name__)

CollectionSearch = Callable[[FloatArray, str, float], list[FaceMatch]]
"""(L2-normalised embedding, embedder id, FaceMatchThreshold 0-100) -> matches best first."""
RecordEncoder = Callable[[Event], Mapping[str, Any]]
"""An event -> the record the sinks get (keeneye.aws.stream_records.encode)."""

RuntimeState = Literal["starting", "running", "stopping", "stopped", "failed"]
LATENCY_WINDOW = 1000


@dataclass(frozen=True)
class ProcessorStats:
    """A snapshot: runtime state and error, counters, latency percentiles (seconds, None before any
    record) and the capture's own status (state, last error, frames read / dropped, reconnects)."""

    state: RuntimeState
    error: str | None
    frames_processed: int
    frames_dropped: int
    records: int
    sink_errors: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    capture: CaptureStatus


@dataclass
class _Emitted:
    key: tuple[str, ...]
    at: float


@dataclass
class _Counters:
    frames: int = 0
    records: int = 0
    sink_errors: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


class StreamProcessorRuntime:
    """Runs one stream processor in a thread: ``start()``, ``stats()``, ``stop()`` (or ``with``).

    source_url: a live URL (see LiveSource); stream_arn: what records name as ``StreamArn`` (default: the
    URL without its password); face_search: (collection search, FaceMatchThreshold 0-100) or None;
    connected_home: (labels, MinConfidence 0-100) or None (only ``PERSON`` is supported); lines: ratio
    lines for in/out crossings of person tracks; analyzer / person_detector: already loaded models to
    reuse (built from ``settings`` otherwise, on ``start()``); identify_retry_s: how soon an unmatched
    track's face is embedded and searched again (at most ``max_embeddings`` times per track in all, see
    TrackFaceIdentifier): shorter than stored video's 1 s, as a live match is wanted soon; encode: an
    event -> the record the sinks get (keeneye.aws.stream_records.encode, handed in by whoever builds the
    runtime); on_event / on_record: called in the processing thread with each event and its record before
    the sinks (the CLI prints events, the server audits identifications); egress: where the camera may be
    (keeneye.streams.egress; default: the default policy; ``keeneye watch``: unrestricted); on_frame:
    called in the processing thread with each processed frame, its boxes and line counts (the worker's
    live view, keeneye.streams.live: it must return at once); admit: called in the processing thread
    with each face event and its frame before it is emitted, False drops it (the worker's review gate,
    keeneye.streams.review: reports it for review, holds or suppresses it).
    """

    def __init__(
        self,
        source_url: str,
        settings: Settings,
        *,
        face_search: tuple[CollectionSearch, float] | None,
        connected_home: tuple[Sequence[str], float] | None,
        lines: Sequence[Line] = (),
        zones: Sequence[Zone] = (),
        regions: Sequence[Sequence[tuple[float, float]]] = (),
        sinks: Sequence[Sink] = (),
        record_interval_s: float = 10.0,
        capture: CaptureSettings | None = None,
        stream_arn: str | None = None,
        analyzer: FaceAnalyzer | None = None,
        person_detector: ObjectDetector | None = None,
        stop_timeout_s: float = 3.0,
        identify_retry_s: float = 0.4,
        on_record: Callable[[Mapping[str, Any]], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        encode: RecordEncoder,
        egress: EgressPolicy | None = None,
        on_frame: Callable[[LiveFrame], None] | None = None,
        admit: Callable[[Event, Frame], bool] | None = None,
    ) -> None:
        if face_search is None and connected_home is None:
            raise ValueError("a stream processor needs face_search or connected_home settings")
        if connected_home is not None and set(connected_home[0]) - {"PERSON"}:
            raise ValueError(f"only the PERSON label is supported, got {list(connected_home[0])}")
        if record_interval_s <= 0:
            raise ValueError("record_interval_s must be > 0")
        self.settings = settings
        self.source = LiveSource(source_url, capture, egress=egress)
        self.stream_arn = stream_arn or self.source.safe_url
        self._face_search = face_search
        self._connected_home = connected_home
        self._lines = list(lines)
        self._zones = list(zones)
        self._regions = [tuple(r) for r in regions]
        if any(len(r) < 3 for r in self._regions):
            raise ValueError("a region of interest needs at least 3 points")
        self._sinks = list(sinks)
        self._on_record = on_record
        self._on_event = on_event
        self._on_frame = on_frame
        self._admit = admit
        self._encode = encode
        self.record_interval_s = record_interval_s
        self._analyzer = analyzer
        self._person_detector = person_detector
        self._stop_timeout_s = stop_timeout_s
        self._identify_retry_ms = identify_retry_s * 1000.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state: RuntimeState = "starting"
        self._error: str | None = None
        self._counters = _Counters()
        self._face_emitted: dict[int, _Emitted] = {}
        self._person_emitted: dict[int, _Emitted] = {}
        self._face_update: FaceUpdate | None = None  # the last detected frame's, for the live view
        self._person_update: PersonUpdate | None = None

    def __enter__(self) -> StreamProcessorRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the models (unless given), start the capture and the processing thread."""
        if self._thread is not None:
            raise RuntimeError("StreamProcessorRuntime.start() was already called")
        self._build()
        self.source.start()
        self._thread = threading.Thread(
            target=self._run, name=f"processor:{self.source.source_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop capture and processing; returns within ``stop_timeout_s`` plus the capture's bound (a frame
        being processed finishes first). Sinks are closed."""
        self._stop.set()
        with self._lock:
            if self._state not in ("failed", "stopped"):
                self._state = "stopping"
        self.source.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._stop_timeout_s)
        for sink in self._sinks:
            try:
                sink.close()
            except Exception:  # closing one sink must not keep the others open; logged
                log.exception("closing sink %r failed", sink)
        with self._lock:
            if self._state != "failed":
                self._state = "stopped"

    def stats(self) -> ProcessorStats:
        capture = self.source.status()
        with self._lock:
            lat = sorted(self._counters.latencies)
            p50 = float(np.percentile(lat, 50)) if lat else None
            p95 = float(np.percentile(lat, 95)) if lat else None
            return ProcessorStats(
                self._state,
                self._error,
                self._counters.frames,
                capture.frames_dropped,
                self._counters.records,
                self._counters.sink_errors,
                p50,
                p95,
                capture,
            )

    # -- pipeline ----------------------------------------------------------------------------------------

    def _build(self) -> None:
        s = self.settings
        self._faces: FaceSteps | None = None
        if self._face_search is not None:
            if self._analyzer is None:
                self._analyzer = build_face_analyzer(s, with_embedder=True, live_frames=True)
            assert self._analyzer.embedder is not None, "face search needs an embedder"
            search, threshold = self._face_search

            def searcher(embedding: FloatArray, embedder_id: str) -> list[FaceMatch]:
                return search(embedding, embedder_id, threshold)

            self._faces = FaceSteps(
                self._analyzer,
                PersonTracker(face_tracker_config(s.faces.video_detector.score_threshold, self._analyzer)),
                TrackFaceIdentifier(
                    self._analyzer, searcher, retry_ms=self._identify_retry_ms, fuse=s.faces.track_fusion
                ),
                keep=(lambda frame, face: self._in_regions(centre(face.xyxy), frame.image.shape))
                if self._regions
                else None,
                attributes="basic",
                schedule=DetectionSchedule(
                    ScheduleConfig(
                        s.streams.face_detect_every, s.streams.face_motion_gating, s.streams.face_max_skip_ms
                    )
                ),
            )
        self._persons: PersonSteps | None = None
        if self._connected_home is not None:
            if self._person_detector is None:
                self._person_detector, config = build_tracking_detector(s)
            else:
                config = tracker_config(s.persons)
            floor = self._connected_home[1] / 100.0
            config = replace(
                config,
                high_score=max(config.high_score, floor),
                new_track_score=max(config.new_track_score, floor),
            )
            stage = build_person_stage(
                s, detector=self._person_detector, config=config, keep=self._persons_in_regions
            )
            self._persons = PersonSteps(stage, self._lines, self._zones)

    def _captured(self) -> Iterator[CapturedFrame]:
        """The capture's frames until stop() or the capture ends (the queue is polled, so stop() is seen
        within 0.2 s)."""
        while not self._stop.is_set():
            item = self.source.get(timeout_s=0.2)
            if item is None:
                if self.source.status().state == "stopped":
                    return
                continue
            yield item

    def _run(self) -> None:
        try:
            with self._lock:
                self._state = "running"
            run_frames(
                self._captured(),
                self._process,
                frame_of=lambda item: item.frame,
                cut=self._cut,
                cut_threshold=self.settings.persons.shot_cut_threshold,
            )
        except BaseException as e:
            # Never die silently: the state says so, then threading's excepthook logs it.
            with self._lock:
                self._state = "failed"
                self._error = f"processor crashed: {type(e).__name__}: {e}"
            self.source.stop()
            raise

    def _cut(self) -> None:
        for steps in (self._faces, self._persons):
            if steps is not None:
                steps.cut()

    def _process(self, item: CapturedFrame) -> None:
        frame = item.frame
        height, width = frame.image.shape[:2]
        context = FrameContext(frame.pts_ms, width, height, item.captured_at, item.connection)
        out: list[Event] = []
        if self._faces is not None:
            out += self._face_events(frame, context)
        if self._persons is not None:
            out += self._person_events(frame, context)
        with self._lock:
            self._counters.frames += 1
        if self._on_frame is not None:
            self._on_frame(self._live_frame(item))
        for event in out:
            self._emit(event, item.captured_at)

    def _live_frame(self, item: CapturedFrame) -> LiveFrame:
        """What the live view shows of a processed frame: its tracked faces (named when matched) and
        person tracks, and the line counts (the frame's own image: nothing is copied here)."""
        boxes = []
        if self._face_update is not None:
            for seen in self._face_update.tracked:
                ident = seen.identity
                top = ident.matches[0].similarity if ident is not None and ident.matches else None
                label = face_label(ident.name if ident is not None else None, top)
                x1, y1, x2, y2 = (float(v) for v in seen.face.xyxy)
                boxes.append(LiveBox("face", (x1, y1, x2, y2), seen.track_id, label))
        counts: dict[str, dict[str, int]] = {}
        if self._person_update is not None:
            counts = self._person_update.line_counts
            for track in self._person_update.tracks:
                if track.history and track.state == "active":
                    label = f"#{track.track_id}" + (f" {track.identity}" if track.identity else "")
                    boxes.append(LiveBox("person", track.xyxy, track.track_id, label))
        return LiveFrame(item.frame.image, item.captured_at, item.frame.pts_ms, boxes, counts)

    def _face_events(self, frame: Frame, context: FrameContext) -> list[Event]:
        assert self._faces is not None and self._analyzer is not None
        update = self._faces.step(frame)
        if not update.detected:
            return []  # a skipped frame: nothing new is known of any face (the live view keeps the last)
        self._face_update = update
        for old in update.rekeyed:
            self._face_emitted.pop(old, None)
        out = []
        now = time.time()
        for seen in update.tracked:
            ident = seen.identity
            if ident is None:
                continue  # no face of this track embedded yet: nothing to say who it is
            # The identity: a user, or a face without one (a user's best face may change between searches
            # without the identity changing).
            key = tuple(m.face.user_id or m.face.face_id for m in ident.matches[:1])
            if not self._due(self._face_emitted, seen.track_id, key, now):
                continue
            # The face mesh (Landmarks, Pose) and apparent expression of the face reported, computed for the
            # record only (not per frame).
            self._analyzer.describe(frame.image, [seen.face])
            self._analyzer.classify(frame.image, [seen.face], frozenset({"emotions"}))
            payload = FaceIdentified(seen.face, tuple(ident.matches), ident.name)
            event = Event("face_identified", self.stream_arn, frame.pts_ms, seen.track_id, payload, context)
            if self._admitted(event, frame):
                out.append(event)
        return out

    def _admitted(self, event: Event, frame: Frame) -> bool:
        """Whether ``admit`` lets a face event through (keeneye.streams.review: rejected or held for
        review); a failing ``admit`` is logged and lets it through (a record is not lost to a bug)."""
        if self._admit is None:
            return True
        try:
            return self._admit(event, frame)
        except Exception:
            log.warning("admit callback failed; the record is sent", exc_info=True)
            return True

    def _person_events(self, frame: Frame, context: FrameContext) -> list[Event]:
        assert self._persons is not None
        update = self._person_update = self._persons.step(frame)
        out = person_events(update, self.stream_arn, context)
        now = time.time()
        for track in update.tracks:
            if track.state != "active" or not self._due(self._person_emitted, track.track_id, (), now):
                continue
            payload = PersonSeen(track.xyxy, track.identity)
            out.append(Event("person_seen", self.stream_arn, frame.pts_ms, track.track_id, payload, context))
        return out

    def _persons_in_regions(self, frame: Frame, detections: Detections) -> Detections:
        """Only people whose feet (the box's bottom centre) stand in a region of interest, if any."""
        if not self._regions or not len(detections):
            return detections
        keep = [
            i for i, xyxy in enumerate(detections.xyxy) if self._in_regions(anchor(xyxy), frame.image.shape)
        ]
        return detections.select(np.array(keep, np.int64))

    def _in_regions(self, point: tuple[float, float], shape: tuple[int, ...]) -> bool:
        """Whether a pixel point lies in one of the regions of interest (ratio polygons)."""
        height, width = shape[:2]
        q = (point[0] / width, point[1] / height)
        return any(signed_depth(region, q) >= 0 for region in self._regions)

    def _due(self, emitted: dict[int, _Emitted], track_id: int, key: tuple[str, ...], now: float) -> bool:
        """Whether a track's record is due: first one, identity changed, or the interval passed."""
        last = emitted.get(track_id)
        if last is not None and last.key == key and now - last.at < self.record_interval_s:
            return False
        emitted[track_id] = _Emitted(key, now)
        return True

    def _emit(self, event: Event, captured_at: float) -> None:
        errors = 0
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a printing callback must not stop the processor either; logged
                log.warning("on_event callback failed", exc_info=True)
        record = self._encode(event)
        if self._on_record is not None:
            try:
                self._on_record(record)
            except Exception:  # a printing callback must not stop the processor either; logged
                log.warning("on_record callback failed", exc_info=True)
        for sink in self._sinks:
            try:
                sink.send(record)
            except Exception:  # a sink's failure (SinkError or a bug) must not stop the processor
                errors += 1
                log.warning("sink %r failed; record dropped (no disk buffering yet)", sink, exc_info=True)
        latency = time.time() - captured_at
        with self._lock:
            self._counters.records += 1
            self._counters.sink_errors += errors
            self._counters.latencies.append(latency)
