"""The stream-processor runtime: a live source -> face search and/or person tracking -> records -> sinks.

:class:`StreamProcessorRuntime` consumes a :class:`~keeneye.streams.capture.LiveSource` in a thread; the
server runs each one in its own worker process (keeneye.service.streams.processors), ``keeneye watch`` in the
foreground. Per captured frame:

* FaceSearch: as :func:`keeneye.service.video.face_search._step` does for stored video: face detection
  (Rekognition's DEFAULT attributes) -> a face tracker (:func:`face_tracker_config`) -> a
  :class:`TrackFaceIdentifier` (a track's face is embedded and searched a few times at most, when it is
  the first usable one or clearly better), with shot cuts ending tracks.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.aws import stream_records as records
from keeneye.config import Settings
from keeneye.core.types import Detections, FloatArray
from keeneye.models.base import ObjectDetector
from keeneye.pipeline.identification import TrackFaceIdentifier, faces_on_face_tracks
from keeneye.service.faces.collections import FaceMatch
from keeneye.service.video.face_search import face_tracker_config
from keeneye.service.video.tracking import build_tracking_detector, tracking_thresholds
from keeneye.streams.capture import CapturedFrame, CaptureSettings, CaptureStatus, LiveSource
from keeneye.streams.sinks import Sink
from keeneye.tracking.lines import Line, LineCounter
from keeneye.tracking.tracker import PersonTracker
from keeneye.tracking.zones import Zone, ZoneMonitor, signed_depth
from keeneye.video.cuts import ShotCutDetector

log = logging.getLogger(__name__)

CollectionSearch = Callable[[FloatArray, str, float], list[FaceMatch]]
"""(L2-normalised embedding, embedder id, FaceMatchThreshold 0-100) -> matches best first."""

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
    TrackFaceIdentifier): shorter than stored video's 1 s, as a live match is wanted soon; on_record: called
    in the processing thread with each record before the sinks (the CLI prints events with it).
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
    ) -> None:
        if face_search is None and connected_home is None:
            raise ValueError("a stream processor needs face_search or connected_home settings")
        if connected_home is not None and set(connected_home[0]) - {"PERSON"}:
            raise ValueError(f"only the PERSON label is supported, got {list(connected_home[0])}")
        if record_interval_s <= 0:
            raise ValueError("record_interval_s must be > 0")
        self.settings = settings
        self.source = LiveSource(source_url, capture)
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
        cut_threshold = s.persons.shot_cut_threshold
        self._cuts = None if cut_threshold is None else ShotCutDetector(cut_threshold)
        self._face_tracker: PersonTracker | None = None
        self._identifier: TrackFaceIdentifier | None = None
        if self._face_search is not None:
            if self._analyzer is None:
                from keeneye.models.registry import build_face_analyzer

                self._analyzer = build_face_analyzer(s, with_embedder=True)
            assert self._analyzer.embedder is not None, "face search needs an embedder"
            search, threshold = self._face_search

            def searcher(embedding: FloatArray, embedder_id: str) -> list[FaceMatch]:
                return search(embedding, embedder_id, threshold)

            self._face_tracker = PersonTracker(
                face_tracker_config(s.faces.detector.score_threshold, self._analyzer)
            )
            self._identifier = TrackFaceIdentifier(self._analyzer, searcher, retry_ms=self._identify_retry_ms)
        self._person_tracker: PersonTracker | None = None
        self._counter: LineCounter | None = None
        self._zone_monitor: ZoneMonitor | None = None
        if self._connected_home is not None:
            if self._person_detector is None:
                self._person_detector, config = build_tracking_detector(s)
            else:
                config = tracking_thresholds(s)
            floor = self._connected_home[1] / 100.0
            config = replace(
                config,
                high_score=max(config.high_score, floor),
                new_track_score=max(config.new_track_score, floor),
            )
            self._person_tracker = PersonTracker(config)
            self._counter = LineCounter(self._lines)
            self._zone_monitor = ZoneMonitor(self._zones)

    def _run(self) -> None:
        try:
            with self._lock:
                self._state = "running"
            while not self._stop.is_set():
                item = self.source.get(timeout_s=0.2)
                if item is None:
                    if self.source.status().state == "stopped":
                        break
                    continue
                self._process(item)
        except BaseException as e:
            # Never die silently: the state says so, then threading's excepthook logs it.
            with self._lock:
                self._state = "failed"
                self._error = f"processor crashed: {type(e).__name__}: {e}"
            self.source.stop()
            raise

    def _process(self, item: CapturedFrame) -> None:
        frame = item.frame
        height, width = frame.image.shape[:2]
        info = records.FrameInfo(
            self.stream_arn, item.connection, item.captured_at, frame.pts_ms, width, height
        )
        if self._cuts is not None and self._cuts.is_cut(frame.image):
            for tracker in (self._face_tracker, self._person_tracker):
                if tracker is not None:
                    tracker.cut()
            if self._counter is not None:
                self._counter.cut()
        out: list[dict[str, Any]] = []
        if self._face_tracker is not None:
            out += self._faces(item, info)
        if self._person_tracker is not None:
            out += self._persons(item, info)
        with self._lock:
            self._counters.frames += 1
        for record in out:
            self._emit(record, item.captured_at)

    def _faces(self, item: CapturedFrame, info: records.FrameInfo) -> list[dict[str, Any]]:
        assert self._analyzer is not None and self._face_tracker is not None and self._identifier is not None
        frame, tracker, identifier = item.frame, self._face_tracker, self._identifier
        faces = self._analyzer.analyze(frame.image, attributes="default")
        if self._regions:
            faces = [f for f in faces if self._in_regions(_centre(f.xyxy), frame.image.shape)]
        dets = Detections(
            xyxy=np.array([f.xyxy for f in faces], np.float32).reshape(-1, 4),
            score=np.array([f.score for f in faces], np.float32),
        )
        live = tracker.update(frame, dets)
        out = []
        now = time.time()
        for track, face in faces_on_face_tracks(live, faces):
            track_id = track.track_id
            if identifier.offer(frame.image, track_id, face, frame.pts_ms):
                new_id = tracker.attach_face_embedding(track_id, face)
                if new_id != track_id:
                    identifier.rekey(track_id, new_id)
                    self._face_emitted.pop(track_id, None)
                    track_id = new_id
            ident = identifier.identity(track_id)
            if ident is None:
                continue  # no face of this track embedded yet: nothing to say who it is
            key = tuple(m.face.face_id for m in ident.matches[:1])
            if not self._due(self._face_emitted, track_id, key, now):
                continue
            # The apparent expression of the face reported, computed for the record only (not per frame).
            self._analyzer.classify(frame.image, [face], frozenset({"emotions"}))
            extra = records.keeneye_fields(
                "face", track_id=track_id, info=info, identity=ident.name, face=face
            )
            out.append(records.face_search_record(info, [(face, ident.matches)], extra))
        return out

    def _persons(self, item: CapturedFrame, info: records.FrameInfo) -> list[dict[str, Any]]:
        assert self._person_detector is not None and self._person_tracker is not None
        assert self._counter is not None
        frame = item.frame
        detections = self._person_detector.detect(frame.image)
        if self._regions and len(detections):
            keep = [
                i
                for i, xyxy in enumerate(detections.xyxy)
                if self._in_regions(_anchor(xyxy), frame.image.shape)
            ]
            detections = detections.select(np.array(keep, np.int64))
        live = self._person_tracker.update(frame, detections)
        out = []
        for event in self._counter.update(frame, live):
            extra = records.keeneye_fields("line", track_id=event.track_id, info=info, lines=[event])
            out.append(records.face_search_record(info, [], extra))
        if self._zone_monitor is not None:
            for zone_event in self._zone_monitor.update(frame, live):
                extra = records.keeneye_fields(
                    "zone", track_id=zone_event.track_id, info=info, zones=[zone_event]
                )
                out.append(records.face_search_record(info, [], extra))
        now = time.time()
        for track in live:
            if track.state != "active" or not self._due(self._person_emitted, track.track_id, (), now):
                continue
            extra = records.keeneye_fields(
                "person", track_id=track.track_id, info=info, identity=track.identity, person_xyxy=track.xyxy
            )
            out.append(records.face_search_record(info, [], extra))
        return out

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

    def _emit(self, record: Mapping[str, Any], captured_at: float) -> None:
        errors = 0
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


def _centre(xyxy: Sequence[float] | FloatArray) -> tuple[float, float]:
    return (float(xyxy[0] + xyxy[2]) / 2.0, float(xyxy[1] + xyxy[3]) / 2.0)


def _anchor(xyxy: Sequence[float] | FloatArray) -> tuple[float, float]:
    """A person's ground point: the bottom centre of the box (what lines and zones use too)."""
    return (float(xyxy[0] + xyxy[2]) / 2.0, float(xyxy[3]))
