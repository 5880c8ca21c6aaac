"""A running processor's live view and snapshots, and one frame grabbed from a camera URL.

Live view: the runtime hands every processed frame to :meth:`LivePublisher.offer` (a reference kept under
a lock: the processing loop pays nothing else). A side thread of the worker turns the latest one, at most
every ``interval_s`` (4 a second) and only while someone asked for a view in the last ``ttl_s``
(:meth:`LivePublisher.want`), into a JPEG of at most ``max_width`` px with the face boxes and names, the
person boxes and track ids, the lines with their in/out counts and the zones drawn
(keeneye.analysis.annotate.draw_boxes, on the downscaled copy: drawing and encoding 640 px costs a few
ms), and sends it with its metadata (``captured_at``, ``pts_ms``, ``counts``, ``tracks``) as one bounded
message (:data:`MAX_VIEW_BYTES`: the quality, then the size, goes down until the JPEG fits).

Snapshot: :meth:`LivePublisher.request_snapshot` makes the side thread send the latest frame
un-annotated (width capped at :data:`SNAPSHOT_WIDTH`, :data:`MAX_SNAPSHOT_BYTES`), for drawing lines and
zones on. :func:`grab_frame` reads one frame of a camera that no processor runs, through the same
:class:`~keeneye.streams.capture.LiveSource` (and so the same egress checks and relay) as a worker, and
fails with the same neutral words as a worker's status (BackendUnavailable) when the camera does not give
a frame within its bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from keeneye.analysis.annotate import LabelledBox, draw_boxes
from keeneye.core.errors import BackendUnavailable, InvalidParameter
from keeneye.core.types import UInt8Image
from keeneye.streams.capture import CONNECT_FAILED, CaptureSettings, LiveSource
from keeneye.streams.egress import EgressPolicy
from keeneye.tracking.lines import Line
from keeneye.tracking.zones import Zone

log = logging.getLogger(__name__)

VIEW_INTERVAL_S = 0.25
"""Least time between two published views: 4 a second is smooth enough to watch, and costs the worker a
few ms of drawing and encoding per view."""
VIEW_WIDTH = 640
VIEW_TTL_S = 30.0
"""A view is published for this long after the last request for one (the console polls every 250 ms)."""
MAX_VIEW_BYTES = 256_000
SNAPSHOT_WIDTH = 1920
MAX_SNAPSHOT_BYTES = 2_000_000
MAX_BOXES = 64
"""Boxes drawn and listed per view (the message stays bounded whatever the scene)."""
MAX_LABEL = 64
GRAB_TIMEOUT_S = 5.0
_QUALITIES = (80, 65, 50, 35)

Send = Callable[[tuple[str, dict[str, Any]]], None]
"""The worker's pipe: ``("view", {...})`` and ``("snapshot", {...})`` messages."""


@dataclass(frozen=True)
class LiveBox:
    """One face or person of a frame: ``xyxy`` pixels of the frame, its track and its label (the name
    and similarity of a matched face, ``unknown``, or a person's ``#id``)."""

    kind: Literal["face", "person"]
    xyxy: tuple[float, float, float, float]
    track_id: int
    label: str


@dataclass(frozen=True)
class LiveFrame:
    """A processed frame as the live view shows it: ``image`` HxWx3 uint8 RGB (the frame's own array,
    not copied: stages never change it), ``captured_at`` wall-clock seconds of its capture, ``pts_ms``,
    the boxes found on it and the running ``{line: {"in": n, "out": m}}``."""

    image: UInt8Image
    captured_at: float
    pts_ms: float
    boxes: Sequence[LiveBox] = ()
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def encode_jpeg(image: UInt8Image, *, max_width: int, max_bytes: int) -> bytes:
    """``image`` (HxWx3 uint8 RGB) as a JPEG at most ``max_width`` px wide (aspect kept) and at most
    ``max_bytes`` long: the quality goes down first, then the size halves."""
    if image.shape[1] > max_width:
        image = _resized(image, max_width)
    bgr: UInt8Image = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), np.uint8)
    while True:
        for quality in _QUALITIES:
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise InvalidParameter("the frame could not be encoded as JPEG")
            if len(data) <= max_bytes:
                return bytes(data)
        if bgr.shape[1] <= 16:
            return bytes(data)  # a 16 px image of more than max_bytes: max_bytes is absurd, not the image
        bgr = _resized(bgr, bgr.shape[1] // 2)


def _resized(image: UInt8Image, width: int) -> UInt8Image:
    """``image`` scaled to ``width`` px wide, aspect kept (area interpolation: a downscale)."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8)


def render_view(frame: LiveFrame, lines: Sequence[Line], zones: Sequence[Zone]) -> dict[str, Any]:
    """The ``view`` message of a frame: the annotated JPEG (``VIEW_WIDTH``, ``MAX_VIEW_BYTES``) and its
    metadata; ``tracks`` boxes are ratios of the frame."""
    height, width = frame.image.shape[:2]
    scale = min(1.0, VIEW_WIDTH / width)
    small = _resized(frame.image, VIEW_WIDTH) if scale < 1.0 else frame.image
    boxes = list(frame.boxes)[:MAX_BOXES]
    scaled = [
        LabelledBox(
            (b.xyxy[0] * scale, b.xyxy[1] * scale, b.xyxy[2] * scale, b.xyxy[3] * scale),
            b.label[:MAX_LABEL],
            b.track_id,
        )
        for b in boxes
    ]
    drawn = draw_boxes(small, scaled, lines, zones, frame.counts)
    counts = {
        str(k): {"in": int(v.get("in", 0)), "out": int(v.get("out", 0))} for k, v in frame.counts.items()
    }
    tracks = [
        {
            "kind": b.kind,
            "track_id": b.track_id,
            "box": [
                round(b.xyxy[0] / width, 4),
                round(b.xyxy[1] / height, 4),
                round(b.xyxy[2] / width, 4),
                round(b.xyxy[3] / height, 4),
            ],
            "label": b.label[:MAX_LABEL],
        }
        for b in boxes
    ]
    return {
        "jpeg": encode_jpeg(drawn, max_width=VIEW_WIDTH, max_bytes=MAX_VIEW_BYTES),
        "captured_at": frame.captured_at,
        "pts_ms": int(frame.pts_ms),
        "counts": counts,
        "tracks": tracks,
    }


def face_label(name: str | None, similarity: float | None) -> str:
    """What a face box says: the matched name and similarity (0-100), or ``unknown``."""
    if name is None or similarity is None:
        return "unknown"
    return f"{name[: MAX_LABEL - 6]} {similarity:.0f}%"


class LivePublisher:
    """A worker's live view and snapshots (see the module notes): ``offer`` each processed frame, ``want``
    a view, ``request_snapshot``; ``start`` / ``stop`` its side thread. ``send`` is called in that thread."""

    def __init__(
        self,
        send: Send,
        *,
        lines: Sequence[Line] = (),
        zones: Sequence[Zone] = (),
        interval_s: float = VIEW_INTERVAL_S,
        ttl_s: float = VIEW_TTL_S,
    ) -> None:
        self._send = send
        self._lines, self._zones = list(lines), list(zones)
        self._interval_s, self._ttl_s = interval_s, ttl_s
        self._cond = threading.Condition()
        self._latest: LiveFrame | None = None
        self._fresh = False  # the latest frame has not been published yet
        self._wanted_until = 0.0
        self._next_at = 0.0
        self._snapshots: list[int] = []
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.views = 0
        self.seconds = 0.0  # time spent drawing and encoding views (the side thread's, not the loop's)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)

    def offer(self, frame: LiveFrame) -> None:
        """The latest processed frame (called in the processing thread: O(1))."""
        with self._cond:
            self._latest, self._fresh = frame, True
            self._cond.notify_all()

    def want(self) -> None:
        """Someone is watching: publish views for the next ``ttl_s``."""
        with self._cond:
            self._wanted_until = time.monotonic() + self._ttl_s
            self._cond.notify_all()

    def request_snapshot(self, request_id: int) -> None:
        with self._cond:
            self._snapshots.append(request_id)
            self._cond.notify_all()

    def _next(self) -> tuple[str, LiveFrame | None, int] | None:
        """Wait for work: ("snapshot", frame, id), ("view", frame, 0), or None once stopped."""
        with self._cond:
            while not self._stopped:
                if self._snapshots:
                    return ("snapshot", self._latest, self._snapshots.pop(0))
                now = time.monotonic()
                wanted = now < self._wanted_until
                if wanted and self._fresh and now >= self._next_at:
                    self._fresh = False
                    self._next_at = now + self._interval_s
                    return ("view", self._latest, 0)
                # Watched: until the next view is due (a frame waits) or until the watch ends.
                timeout = None
                if wanted:
                    timeout = (self._next_at if self._fresh else self._wanted_until) - now
                self._cond.wait(timeout)
            return None

    def _run(self) -> None:
        while (work := self._next()) is not None:
            kind, frame, request_id = work
            try:
                message = self._message(kind, frame, request_id)
            except Exception:  # a drawing bug must not end the live view for good (nor the processor); logged
                log.exception("live view failed")
                continue
            if message is None:
                continue
            try:
                self._send(message)
            except (OSError, ValueError):  # the pipe closed: the worker is ending
                return

    def _message(
        self, kind: str, frame: LiveFrame | None, request_id: int
    ) -> tuple[str, dict[str, Any]] | None:
        if kind == "snapshot":
            jpeg = None
            if frame is not None:
                jpeg = encode_jpeg(frame.image, max_width=SNAPSHOT_WIDTH, max_bytes=MAX_SNAPSHOT_BYTES)
            return ("snapshot", {"id": request_id, "jpeg": jpeg})
        if frame is None:
            return None
        t0 = time.perf_counter()
        view = render_view(frame, self._lines, self._zones)
        self.seconds += time.perf_counter() - t0
        self.views += 1
        return ("view", view)


def grab_frame(url: str, egress: EgressPolicy, *, timeout_s: float = GRAB_TIMEOUT_S) -> UInt8Image:
    """One frame (HxWx3 uint8 RGB) of a camera URL, read as a worker reads it (LiveSource: the egress
    policy at every connection); BackendUnavailable with the capture's neutral words when the camera gives
    no frame within ``timeout_s`` (or its first connection fails), EgressRefused when the policy refuses
    it. Connection errors are not retried: a snapshot is asked for by someone waiting."""
    if not url.lower().startswith("file:"):  # a file:// input was checked to be in a served bucket
        egress.check_url(url, "camera", what="the camera")
    settings = CaptureSettings(
        queue_size=1,
        open_timeout_s=timeout_s,
        stall_timeout_s=timeout_s,
        backoff_initial_s=timeout_s,
        backoff_max_s=timeout_s,
        stop_timeout_s=0.5,
        pace_files=False,
    )
    source = LiveSource(url, settings, egress=egress)
    deadline = time.monotonic() + timeout_s
    with source:
        while (remaining := deadline - time.monotonic()) > 0:
            item = source.get(min(0.1, remaining))
            if item is not None:
                return item.frame.image
            status = source.status()
            if status.state in ("reconnecting", "stopped"):
                raise BackendUnavailable(f"the camera gave no frame: {status.last_error or CONNECT_FAILED}")
    # The words a worker's status has for any failure before a first frame (a timeout is not told from
    # a refusal: see keeneye.streams.capture).
    raise BackendUnavailable(f"the camera gave no frame: {CONNECT_FAILED}")
