"""A stream processor worker's side of the human review queue (keeneye/service/review/queue.py).

:class:`ReviewGate` sits between the runtime's face identifications and the sinks, in the worker process:

* each identification (a face track's record with a match) is reported to the server with an
  ``identification_id`` the gate makes once per (track, person), the probe face's crop (a JPEG of the
  face box with a margin, at most ``CROP_PX`` a side: :func:`face_crop`) and the probe embedding when the
  face was embedded on that frame; the server queues it for review;
* a (track, person) pair a reviewer REJECTED is not reported or sent to sinks again for that track in
  this run: the server tells the worker over its pipe (``("review", {...})``). Why the worker and not
  only the queue: the records go from the worker straight to the sinks, so only the worker can stop
  alerting; the queue also answers None for the pair (a report already on its way is not queued);
* with ``review_required`` (the collection's setting at the processor's start), the records of a match
  are held in the worker until a reviewer CONFIRMED it, then sent (at most ``HOLD_MAX`` per pair, the
  oldest dropped first; a run that stops first never sends them: unconfirmed, they stay in the queue
  only); UNSURE keeps holding, REJECTED drops them;
* every face record with a match carries ``Keeneye.Review``: ``{"IdentificationId", "Status", "By",
  "At"}``, Status PENDING (sent before any review), CONFIRMED or UNSURE.

Thread-safe: :meth:`admit` and :meth:`encode` run in the processing thread, :meth:`release` in the
worker's main thread (the sinks' ``send`` is a locked disk append).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from keeneye.core.events import Event, FaceIdentified
from keeneye.core.types import FloatArray, Frame, UInt8Image
from keeneye.streams.runtime import RecordEncoder
from keeneye.streams.sinks import Sink

log = logging.getLogger(__name__)

CROP_PX = 160  # the crop's longer side at most: enough for a reviewer to tell faces apart, ~5-10 kB
CROP_MARGIN = 0.25  # of the face box's size, on each side (hair, chin, ears help a reviewer)
CROP_QUALITY = 85
HOLD_MAX = 20  # held records per (track, person) while waiting for review

Key = tuple[int | None, str]  # (track id, person: user id, else face id)


def face_crop(image: UInt8Image, xyxy: Sequence[float] | FloatArray) -> bytes | None:
    """The face box of an RGB ``image`` (HxWx3 uint8) with ``CROP_MARGIN`` around it, scaled to at most
    ``CROP_PX`` a side, as JPEG; None when the box lies outside the image."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    mx, my = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        return None
    crop = image[top:bottom, left:right]
    scale = CROP_PX / max(crop.shape[:2])
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, CROP_QUALITY]
    )
    return bytes(jpeg.tobytes()) if ok else None


def person_of(match: Any) -> str:
    """Who a match (keeneye.store.collections.FaceMatch) names: its user, else its face."""
    return str(match.face.user_id or match.face.face_id)


def review_field(identification_id: str, status: str, by: str | None, at: str | None) -> dict[str, Any]:
    """``Keeneye.Review`` as every record with a match carries it (stream records and upload messages):
    ``at`` an ISO 8601 time or None while undecided."""
    return {"IdentificationId": identification_id, "Status": status, "By": by, "At": at}


@dataclass
class _Pair:
    identification_id: str
    reported_crop: bool = False
    status: str = "PENDING"
    by: str | None = None
    at: str | None = None
    held: deque[Event] = field(default_factory=lambda: deque(maxlen=HOLD_MAX))


class ReviewGate:
    """See the module notes. ``report(payload)``: sends one identification to the server;
    ``encode``: the processor's record encoder; ``review_required``: hold matches until CONFIRMED."""

    def __init__(
        self,
        *,
        session_id: str,
        report: Callable[[dict[str, Any]], None],
        encode: RecordEncoder,
        review_required: bool = False,
    ) -> None:
        self.session_id = session_id
        self.review_required = review_required
        self._report = report
        self._encode = encode
        self._lock = threading.Lock()
        self._pairs: dict[Key, _Pair] = {}
        self._rejected: set[Key] = set()

    @staticmethod
    def _key(event: Event) -> Key | None:
        payload = event.payload
        if not isinstance(payload, FaceIdentified) or not payload.matches:
            return None
        return (event.track_id, person_of(payload.matches[0]))

    def admit(self, event: Event, frame: Frame) -> bool:
        """Whether a face event goes on to the sinks now (the runtime's ``admit``): reports each match;
        False for a rejected pair and for a match held for review."""
        key = self._key(event)
        if key is None:
            return True  # an unknown face: nothing to review
        payload = event.payload
        assert isinstance(payload, FaceIdentified)
        with self._lock:
            if key in self._rejected:
                return False
            pair = self._pairs.get(key)
            if pair is None:
                pair = self._pairs[key] = _Pair(str(uuid.uuid4()))
            first, pair.reported_crop = not pair.reported_crop, True
            hold = self.review_required and pair.status != "CONFIRMED"
            if hold:
                pair.held.append(event)
        top = payload.matches[0]
        report: dict[str, Any] = {
            "identification_id": pair.identification_id,
            "matches": [
                {"FaceId": m.face.face_id, "Similarity": float(m.similarity)} for m in payload.matches
            ],
            "user_id": top.face.user_id,
            "track_id": event.track_id,
            "pts_ms": int(event.pts_ms),
        }
        if first:  # the crop and the probe once per pair: a track repeats its record every interval
            report["crop"] = face_crop(frame.image, payload.face.xyxy)
            if payload.face.embedding is not None and payload.face.embedder_id is not None:
                report["embedding"] = np.asarray(payload.face.embedding, np.float32)
                report["embedder_id"] = payload.face.embedder_id
        self._report(report)
        return not hold

    def encode(self, event: Event) -> Mapping[str, Any]:
        """The record of ``event`` with ``Keeneye.Review`` on a face record with a match."""
        record = self._encode(event)
        key = self._key(event)
        if key is None:
            return record
        with self._lock:
            pair = self._pairs.get(key)
            review = (
                None if pair is None else review_field(pair.identification_id, pair.status, pair.by, pair.at)
            )
        if review is None:
            return record
        return {**record, "Keeneye": {**dict(record.get("Keeneye") or {}), "Review": review}}

    def decided(self, message: Mapping[str, Any]) -> list[Event]:
        """A reviewer's decision, as the server sends it (``{"session_id", "track_id", "person",
        "status", "by", "at"}``); the held events now due (CONFIRMED), oldest first."""
        if message.get("session_id") != self.session_id:
            return []
        key: Key = (message.get("track_id"), str(message.get("person")))
        status = str(message.get("status"))
        with self._lock:
            pair = self._pairs.get(key)
            if status == "REJECTED":
                self._rejected.add(key)
                if pair is not None:
                    pair.held.clear()
                return []
            self._rejected.discard(key)  # a decision changed after a rejection
            if pair is None:
                return []
            pair.status, pair.by, pair.at = status, message.get("by"), message.get("at")
            if status != "CONFIRMED":
                return []
            due = list(pair.held)
            pair.held.clear()
        return due

    def release(self, message: Mapping[str, Any], sinks: Sequence[Sink]) -> int:
        """:meth:`decided`, then the due records sent to ``sinks``; how many records went out."""
        sent = 0
        for event in self.decided(message):
            record = self.encode(event)
            for sink in sinks:
                try:
                    sink.send(record)
                except Exception:  # one sink's failure must not keep the others from the record; logged
                    log.warning("sink %r failed on a reviewed record", sink, exc_info=True)
            sent += 1
        return sent
