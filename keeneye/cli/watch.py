"""``keeneye watch``: one stream processor in the foreground over a live camera, printing its events.

It runs :class:`~keeneye.streams.runtime.StreamProcessorRuntime` in this process (no server): face
search against a collection (``--collection``) and/or ConnectedHome PERSON tracking with counting lines
(``--persons``, ``--line``). Each event is printed when the runtime emits it (its ``on_event`` callback,
called in the processing thread): one human-readable line (rich) by default, or with ``--json`` the
Rekognition-shaped record itself, one JSON object per line on stdout, for scripts. ``--sink`` URLs send the
same records on (webhook, MQTT, JSONL file).

stdout carries the events only; everything about the run (connection status while the camera cannot be
reached, the summary at the end, errors) goes to stderr, so ``--json`` output can be piped as it is.
Ctrl-C (SIGINT) or SIGTERM stops cleanly: the summary is printed and the exit code is 0. A run that ended
without a single frame from the camera (``--duration`` passed while it was unreachable) exits 1.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from keeneye.aws import stream_records
from keeneye.cli.common import DataDirOption, fail, load_settings, user_errors
from keeneye.cli.track import parse_line
from keeneye.core.events import Event, FaceIdentified, LineCrossed, PersonSeen, ZoneVisit

if TYPE_CHECKING:
    from keeneye.config import Settings
    from keeneye.core.types import FloatArray
    from keeneye.service.faces.collections import FaceCollections, FaceMatch
    from keeneye.store.db import Store
    from keeneye.streams.capture import CaptureSettings
    from keeneye.streams.runtime import ProcessorStats, StreamProcessorRuntime
    from keeneye.streams.sinks import Sink
    from keeneye.tracking.lines import Line

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

STATUS_EVERY_S = 5.0
"""How often the camera's state is repeated on stderr while it is not delivering frames."""
SINK_TIMEOUT_S = 5.0


# Over 80 lines for its typer options (63 lines) and --help text (22); the body is 46 lines.
def watch(
    source: str = typer.Argument(
        ...,
        help="Camera URL: rtsp://, rtsps://, http(s):// (MJPEG, HLS) or file:// (plays a file as a camera)",
    ),
    collection: str | None = typer.Option(
        None,
        "--collection",
        help="Face search: match the faces seen against this collection (in the data directory)",
    ),
    threshold: float = typer.Option(
        80.0,
        "--threshold",
        min=0.0,
        max=100.0,
        help="FaceMatchThreshold: least Similarity (0-100) for a match with --collection",
    ),
    persons: bool = typer.Option(
        False, "--persons", help="ConnectedHome PERSON tracking: report persons and line crossings"
    ),
    min_confidence: float = typer.Option(
        50.0,
        "--min-confidence",
        min=0.0,
        max=100.0,
        help="ConnectedHome MinConfidence (0-100): least person score that starts or confirms a track",
    ),
    line: list[str] = typer.Option(
        [],
        "--line",
        help="Counting line NAME:x1,y1,x2,y2 in ratios 0-1 (y down), needs --persons; crossing from the "
        "side where cross(p2-p1, q-p1) < 0 to > 0 is `in`. Repeatable",
    ),
    sink: list[str] = typer.Option(
        [],
        "--sink",
        help="Also send every record to http(s)://... (POST, JSON), mqtt://HOST[:PORT]/TOPIC (mqtts:// "
        "for TLS) or file://PATH.jsonl (appended). Repeatable",
    ),
    fps: float = typer.Option(
        5.0, "--fps", min=0.1, help="Frames per second analysed (the camera's frames are sampled down)"
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print each record as one line of JSON (Rekognition's shape) on stdout"
    ),
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Stop after S seconds (default: run until Ctrl-C)"
    ),
    listen: bool = typer.Option(
        False,
        "--listen",
        help="Wait for the camera to push to SOURCE (rtsp:// or rtmp://, e.g. rtsp://0.0.0.0:8554/door: "
        "`ffmpeg -re -i clip.mp4 -c copy -f rtsp rtsp://HOST:8554/door`); 0.0.0.0 listens on every interface",
    ),
    record_interval: float = typer.Option(
        10.0,
        "--record-interval",
        min=0.1,
        help="Seconds before a face or person still in view is reported again (a new identity, a line "
        "crossing or a new track is reported at once)",
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Watch a live camera: print who is seen (face search), persons and line crossings as they happen.

    Needs --collection ID (face search), --persons (person tracking, --line counting) or both. Events go
    to stdout, one per line; the camera's connection state and the summary at the end (frames, records,
    dropped frames, latency) go to stderr. Ctrl-C stops. An unreachable camera is retried with backoff,
    and its state is repeated on stderr every few seconds. A file:// source (for trials) plays at its own
    speed, as a camera would send it, and starts again at its end. With --listen, keeneye waits for the
    camera (or an encoder) to push to SOURCE instead of reading from it.

    Examples:

    keeneye watch rtsp://user:pass@192.168.1.20:554/stream1 --collection staff

    keeneye watch rtsp://cam.local/live --persons --line door:0.5,1,0.5,0 --json > events.jsonl

    keeneye watch rtsps://cam.local/live --collection staff --persons --sink https://hooks.example/in
    --sink mqtt://broker.local:1883/keeneye/hall --sink file://hall.jsonl

    keeneye watch file:///videos/hall.mp4 --persons --duration 60

    keeneye watch rtsp://127.0.0.1:8554/door --listen --collection staff
    """
    if collection is None and not persons:
        fail(
            "InvalidParameter",
            "watch needs --collection ID (face search), --persons (person tracking), or both",
        )
    if line and not persons:
        fail("InvalidParameter", "--line counts person tracks: add --persons")
    lines = _parse_lines(line)
    _check_source(source, listen)
    with user_errors():
        from keeneye.streams.capture import CaptureSettings

        settings = load_settings(data_dir)
        sinks = _sinks(sink, settings, source)
        printer = _Printer(json_output)
        search = None
        try:
            search = None if collection is None else _CollectionSearch(settings, collection, threshold)
            runtime = _runtime(
                source,
                settings,
                search,
                persons,
                min_confidence,
                lines,
                sinks,
                CaptureSettings(target_fps=fps, listen=listen),
                record_interval,
                printer,
            )
            sinks = []  # the runtime closes them from now on
            _run(runtime, duration)
            stats = runtime.stats()
            _print_summary(stats)
            if search is not None:
                search.audit(printer.matches)
        finally:
            for made in sinks:
                made.close()
            if search is not None:
                search.close()
    if stats.state == "failed":
        fail("ProcessorFailed", stats.error or "the stream processor failed")
    if stats.capture.frames_read == 0:
        last = stats.capture.last_error or "no frame arrived"
        fail("StreamUnavailable", f"no frame from {runtime.source.safe_url} ({last})")


# -- options ---------------------------------------------------------------------------------------------


def _parse_lines(specs: list[str]) -> list[Line]:
    try:
        lines = [parse_line(s) for s in specs]
    except ValueError as e:
        fail("InvalidParameter", str(e))
    names = [x.name for x in lines]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        fail("InvalidParameter", f"--line names must be unique; repeated: {', '.join(dupes)}")
    return lines


def _check_source(url: str, listen: bool) -> None:
    """Refuse what LiveSource would refuse before any model is loaded; a file:// that does not exist is
    a typo, not a camera to wait for."""
    from keeneye.streams.capture import LIVE_SCHEMES

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in LIVE_SCHEMES:
        fail(
            "InvalidParameter",
            f"SOURCE {url!r}: expected a camera URL starting with "
            + ", ".join(s + "://" for s in LIVE_SCHEMES),
        )
    if listen and scheme not in ("rtsp", "rtmp"):
        fail("InvalidParameter", f"SOURCE {url!r}: --listen takes an rtsp:// or rtmp:// URL to listen on")
    if scheme == "file":
        path = Path(url[len("file://") :])
        if not path.is_file():
            fail("NotFound", f"SOURCE {url!r}: no such file {str(path)!r}")
    elif not parts.hostname:
        fail("InvalidParameter", f"SOURCE {url!r}: the URL names no host")


def _sinks(urls: list[str], settings: Settings, source: str) -> list[Sink]:
    """The --sink URLs as sinks (s3:// writes to the buckets the settings serve), each behind a spool on
    disk (``<data_dir>/watch-spool/``, one folder per source and sink): records wait there while a sink is
    down and a later run with the same source and sink delivers what this one could not. Fails on a bad
    URL."""
    import hashlib

    from keeneye.core.errors import InvalidParameter
    from keeneye.streams.egress import EgressPolicy
    from keeneye.streams.sink_urls import build_local_sink
    from keeneye.streams.sinks import SinkError, redacted_url
    from keeneye.streams.spool import SpooledSink
    from keeneye.streams.worker import s3_put_object

    put_object = s3_put_object(settings)
    sinks: list[Sink] = []
    for url in urls:
        folder = (
            settings.data_dir / "watch-spool" / hashlib.sha256(f"{source}\n{url}".encode()).hexdigest()[:16]
        )
        try:
            inner = build_local_sink(
                url, timeout_s=SINK_TIMEOUT_S, put_object=put_object, egress=EgressPolicy.unrestricted()
            )
            sinks.append(
                SpooledSink(inner, folder, max_bytes=settings.streams.spool_max_bytes, name=redacted_url(url))
            )
        except (InvalidParameter, SinkError) as e:
            for made in sinks:
                made.close()
            fail("InvalidParameter", f"--sink: {e.message}")
    return sinks


# -- running ---------------------------------------------------------------------------------------------


class _CollectionSearch:
    """``--collection``: the face pipeline, the collection's search, and the audit record at the end."""

    def __init__(self, settings: Settings, collection_id: str, threshold: float) -> None:
        from keeneye.service.builder import ServiceBuilder

        self.collection_id, self.threshold = collection_id, threshold
        services = ServiceBuilder(settings)
        self.store: Store = services.store
        self.audit_log = services.audit
        self.collections: FaceCollections | None = None
        try:
            self.analyzer = services.analyzer
            self.collections = services.collections
            self.collections.describe_collection(collection_id)  # NotFound before the camera is opened
        except BaseException:
            self.close()
            raise

    def search(self, embedding: FloatArray, embedder_id: str, threshold: float) -> list[FaceMatch]:
        """The runtime's CollectionSearch (called in its processing thread)."""
        assert self.collections is not None
        return self.collections.search_faces_by_vector(self.collection_id, embedding, embedder_id, threshold)

    def audit(self, matches: list[dict[str, Any]]) -> None:
        """One audit record for the whole run with the matches reported (as ``keeneye track`` does)."""

        self.audit_log.append(
            "keeneye watch --collection",
            access_key=None,
            collection_id=self.collection_id,
            request_faces=len(matches),
            matches=matches,
            threshold=self.threshold,
        )

    def close(self) -> None:
        if self.collections is not None:
            self.collections.close()
            self.collections = None
        self.store.close()


def _runtime(
    source: str,
    settings: Settings,
    search: _CollectionSearch | None,
    persons: bool,
    min_confidence: float,
    lines: list[Line],
    sinks: list[Sink],
    capture: CaptureSettings,
    record_interval: float,
    printer: _Printer,
) -> StreamProcessorRuntime:
    from keeneye.streams.egress import EgressPolicy
    from keeneye.streams.runtime import StreamProcessorRuntime

    return StreamProcessorRuntime(
        source,
        settings,
        face_search=None if search is None else (search.search, search.threshold),
        connected_home=(["PERSON"], min_confidence) if persons else None,
        lines=lines,
        sinks=sinks,
        record_interval_s=record_interval,
        capture=capture,
        analyzer=None if search is None else search.analyzer,
        on_event=printer,
        encode=stream_records.encode,
        egress=EgressPolicy.unrestricted(),  # the operator's own camera and sinks (docs/security.md)
    )


def _run(runtime: StreamProcessorRuntime, duration_s: float | None) -> None:
    """Start the runtime (models load first), report the camera's state while it delivers nothing, and
    stop at ``duration_s`` (counted from the start of capture), at Ctrl-C / SIGTERM or if it fails."""
    with _stop_signals() as stopping:
        try:
            runtime.start()  # inside: a start that fails (a model missing) still closes the sinks
            started = time.monotonic()
            reporter = _StatusReporter(runtime.source.safe_url)
            while not stopping.is_set():
                stats = runtime.stats()
                if stats.state == "failed":
                    break
                reporter.update(stats.capture.state, stats.capture.last_error, stats.capture.reconnects)
                wait_s = 0.2
                if duration_s is not None:
                    wait_s = min(wait_s, started + duration_s - time.monotonic())
                    if wait_s <= 0:
                        break
                stopping.wait(wait_s)
        finally:
            runtime.stop()


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT (Ctrl-C) and SIGTERM while inside; the previous handlers come back after.
    Outside the main thread (where handlers cannot be set) the event is only set by the caller."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _StatusReporter:
    """Says on stderr when the camera's state changes, and repeats it every ``STATUS_EVERY_S`` seconds
    while the camera delivers no frames (connecting / reconnecting), so a dead camera is never silent."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.last: tuple[str, str | None] | None = None
        self.last_at = 0.0

    def update(self, state: str, error: str | None, reconnects: int) -> None:
        now = time.monotonic()
        changed = (state, error) != self.last
        waiting = ("connecting", "reconnecting", "listening")
        repeat = state in waiting and now - self.last_at >= STATUS_EVERY_S
        if not (changed or repeat) or state == "stopped":
            return
        self.last, self.last_at = (state, error), now
        if state == "running":
            message = "receiving frames"
        elif state == "connecting":
            message = "connecting"
        elif state == "listening":
            message = "waiting for the camera to push" + (f" ({error})" if error else "")
        else:
            message = f"reconnecting after: {error or 'an error'} ({reconnects} reconnects so far)"
        _stderr(f"keeneye: {self.url}: {message}")


class _Printer:
    """The runtime's ``on_event``: prints each event (a human line, or with ``--json`` the record the
    sinks get) and notes the matches for the audit log. Called from the processing thread only."""

    def __init__(self, json_output: bool) -> None:
        self.json_output = json_output
        self.matches: list[dict[str, Any]] = []
        self._persons_seen: set[int] = set()
        self._console: Any = None
        if not json_output:
            from rich.console import Console

            self._console = Console(file=sys.stdout, highlight=False, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, FaceIdentified):
            for m in payload.matches[:1]:
                self.matches.append(
                    {
                        "FaceId": m.face.face_id,
                        "Similarity": round(float(m.similarity), 2),
                        "TrackId": event.track_id,
                        "Timestamp": round(event.frame.pts_ms),
                    }
                )
        if self.json_output:
            sys.stdout.write(json.dumps(stream_records.encode(event), separators=(",", ":")) + "\n")
            sys.stdout.flush()
        else:
            self._console.print(self.describe(event))

    def describe(self, event: Event) -> str:
        """One rich-markup line: wall time, stream time, kind, track and what happened."""
        from rich.markup import escape

        when = datetime.fromtimestamp(event.frame.captured_at).strftime("%H:%M:%S.%f")[:-3]
        head = f"{when}  [dim]+{event.frame.pts_ms / 1000.0:7.2f}s[/dim]"
        track = f"track {event.track_id}"
        payload = event.payload
        if isinstance(payload, LineCrossed):
            crossed = f"crossed [bold]{escape(payload.line)}[/bold] {payload.direction}"
            return f"{head}  [magenta]line  [/magenta]  {track}  {crossed}"
        if isinstance(payload, ZoneVisit):
            verb = "entered" if event.kind == "zone_entered" else "left"
            return f"{head}  [blue]zone  [/blue]  {track}  {verb} [bold]{escape(payload.zone)}[/bold]"
        if isinstance(payload, PersonSeen):
            first = event.track_id not in self._persons_seen
            if event.track_id is not None:
                self._persons_seen.add(event.track_id)
            what = "person appeared" if first else "person still in view"
            if payload.identity:
                what += f" ({escape(payload.identity)})"
            return f"{head}  [cyan]person[/cyan]  {track}  {what}"
        if not payload.matches:
            return f"{head}  [yellow]face  [/yellow]  {track}  unknown face"
        best = payload.matches[0]
        name = payload.identity or best.face.external_image_id or best.face.face_id
        return (
            f"{head}  [green]face  [/green]  {track}  [bold]{escape(str(name))}[/bold]  "
            f"Similarity {float(best.similarity):.1f}%"
        )


def _print_summary(stats: ProcessorStats) -> None:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    c = stats.capture
    _stderr(
        f"keeneye: stopped: {stats.frames_processed} frames analysed ({c.frames_read} read, "
        f"{stats.frames_dropped} dropped), {stats.records} records ({stats.sink_errors} sink errors), "
        f"latency p50 {seconds(stats.latency_p50_s)} p95 {seconds(stats.latency_p95_s)}, "
        f"{c.reconnects} reconnects"
    )


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
