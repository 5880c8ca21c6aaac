"""Stream-processor records in Rekognition's Kinesis Data Streams face-search format, plus keeneye's fields.

Rekognition writes one JSON record per analysed frame to a Kinesis data stream (botocore documents the
shape in the Rekognition developer guide, "Reading streaming video analysis results")::

    {"InputInformation": {"KinesisVideo": {"StreamArn", "FragmentNumber", "ServerTimestamp",
                                           "ProducerTimestamp", "FrameOffsetInSeconds"}},
     "StreamProcessorInformation": {"Status": "RUNNING"},
     "FaceSearchResponse": [{"DetectedFace": {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"},
                             "MatchedFaces": [{"Similarity", "Face": {"BoundingBox", "FaceId", "Confidence",
                                                                      "ImageId", "ExternalImageId"}}]}]}

``MatchedFaces[].Face`` also carries ``UserId`` when the matched face is associated with a user: the
documented record predates Rekognition's users, and Rekognition's ``Face`` shape (service-2.json) has
``UserId``. When the collection has users, a track is identified as a user: the user appears once, with
their best face's Similarity (keeneye.service.faces.search.best_per_user), and ``Keeneye.Identity`` is the
UserId.

keeneye reads cameras directly, not Kinesis Video fragments, so the input fields are mapped as follows:
``StreamArn`` is the processor's input (camera ARN or URL, without a password); ``FragmentNumber`` is the
capture connection number as a string (it changes when the camera reconnects, as a new fragment would);
``ServerTimestamp`` and ``ProducerTimestamp`` are the wall-clock time (epoch seconds) the frame was decoded;
``FrameOffsetInSeconds`` is the frame's pts on the processor's timeline (seconds since the stream start,
increasing across reconnects).

keeneye's own fields go under one extra key, ``"Keeneye"`` (consumers that only know Rekognition's shape
ignore it): ``TrackId``, ``PersonBoundingBox`` (ratio box, when a person box is known), ``LineCrossings``
(``[{"Line", "Direction": "in"|"out", "TrackId", "Timestamp"}]``), ``ZoneEvents``, ``Expression`` (the
top expression of the detected face, when it was computed), ``Identity`` (the best match's UserId, else its
ExternalImageId, else its FaceId; None when unknown) and ``Kind`` (``face`` / ``person`` / ``line``).

The live runtime (keeneye.streams.runtime) emits typed events (keeneye.core.events); :func:`encode` is
the one place they become records, handed to the runtime by whoever builds it (the server's stream
processors, ``keeneye watch``), so that nothing below this adapter knows Rekognition's shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keeneye.aws import shapes
from keeneye.core.events import Event, FaceIdentified, LineCrossed, PersonSeen
from keeneye.core.types import Face
from keeneye.service.faces.collections import FaceMatch
from keeneye.tracking.lines import LineEvent
from keeneye.tracking.zones import ZoneEvent

KEENEYE_KEY = "Keeneye"
DETECTED_FACE_KEYS = ("BoundingBox", "Confidence", "Landmarks", "Pose", "Quality")
MATCHED_FACE_KEYS = ("BoundingBox", "FaceId", "Confidence", "ImageId", "ExternalImageId", "UserId")
PROCESSOR_STATUSES = ("STOPPED", "STARTING", "RUNNING", "FAILED", "STOPPING", "UPDATING")


@dataclass(frozen=True)
class FrameInfo:
    """Where a record's frame came from: input ARN/URL (no secrets), connection number, wall-clock decode
    time (epoch seconds), pts on the processor's timeline (ms), and the frame size in pixels."""

    stream_arn: str
    connection: int
    captured_at: float
    pts_ms: float
    width: int
    height: int


def input_information(info: FrameInfo) -> dict[str, Any]:
    """``InputInformation`` (see the module notes for how camera input maps to Kinesis Video fields)."""
    return {
        "KinesisVideo": {
            "StreamArn": info.stream_arn,
            "FragmentNumber": str(info.connection),
            "ServerTimestamp": float(info.captured_at),
            "ProducerTimestamp": float(info.captured_at),
            "FrameOffsetInSeconds": round(float(info.pts_ms) / 1000.0, 3),
        }
    }


def detected_face(face: Face, width: int, height: int) -> dict[str, Any]:
    """``DetectedFace``: BoundingBox, Confidence, Landmarks, and Pose / Quality when computed."""
    detail = shapes.face_detail(face, width, height)
    return {k: detail[k] for k in DETECTED_FACE_KEYS if k in detail}


def matched_face(match: FaceMatch) -> dict[str, Any]:
    """``MatchedFaces`` item: Similarity (0-100) and the stored Face's documented fields."""
    stored = shapes.stored_face(match.face)
    return {
        "Similarity": float(match.similarity),
        "Face": {k: stored[k] for k in MATCHED_FACE_KEYS if k in stored},
    }


def expression(face: Face) -> str | None:
    """The most likely expression (Rekognition's emotion name) when the face's expression was computed."""
    probs = face.attributes.get("emotions")
    if not probs:
        return None
    top = shapes.emotions(probs)
    return str(top[0]["Type"]) if top else None


def line_crossing(event: LineEvent) -> dict[str, Any]:
    return {
        "Line": event.line,
        "Direction": event.direction,
        "TrackId": int(event.track_id),
        "Timestamp": round(float(event.pts_ms)),
    }


def zone_event(event: ZoneEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Zone": event.zone,
        "Kind": event.kind,
        "TrackId": int(event.track_id),
        "Timestamp": round(float(event.pts_ms)),
    }
    if event.dwell_ms is not None:
        out["DwellMillis"] = round(float(event.dwell_ms))
    return out


def keeneye_fields(
    kind: str,
    *,
    track_id: int | None,
    info: FrameInfo,
    identity: str | None = None,
    person_xyxy: Sequence[float] | None = None,
    lines: Sequence[LineEvent] = (),
    zones: Sequence[ZoneEvent] = (),
    face: Face | None = None,
) -> dict[str, Any]:
    """The value of the ``"Keeneye"`` key (see the module notes)."""
    out: dict[str, Any] = {"Kind": kind, "TrackId": track_id, "Identity": identity}
    if person_xyxy is not None:
        out["PersonBoundingBox"] = shapes.ratio_box(person_xyxy, info.width, info.height)
    if lines:
        out["LineCrossings"] = [line_crossing(e) for e in lines]
    if zones:
        out["ZoneEvents"] = [zone_event(e) for e in zones]
    if face is not None and (expr := expression(face)) is not None:
        out["Expression"] = expr
    return out


def face_search_record(
    info: FrameInfo,
    faces: Sequence[tuple[Face, Sequence[FaceMatch]]],
    extra: Mapping[str, Any],
    *,
    status: str = "RUNNING",
) -> dict[str, Any]:
    """One record: the frame's input information, the processor status, one FaceSearchResponse item per
    ``(detected face, its matches best first)`` (empty matches: an unknown face; no faces: a record about
    persons or lines only) and keeneye's fields under ``"Keeneye"``."""
    if status not in PROCESSOR_STATUSES:
        raise ValueError(f"unknown stream processor status {status!r}")
    return {
        "InputInformation": input_information(info),
        "StreamProcessorInformation": {"Status": status},
        "FaceSearchResponse": [
            {
                "DetectedFace": detected_face(face, info.width, info.height),
                "MatchedFaces": [matched_face(m) for m in matches],
            }
            for face, matches in faces
        ],
        KEENEYE_KEY: dict(extra),
    }


# -- validation (tests, and consumers that want to check what they receive) ---------------------------


def _box_problems(box: Any, where: str) -> list[str]:
    if not isinstance(box, dict) or set(box) != {"Width", "Height", "Left", "Top"}:
        return [f"{where}: BoundingBox must have Width, Height, Left, Top"]
    return [f"{where}.{k}: not a number" for k, v in box.items() if not isinstance(v, int | float)]


def _percent_problems(value: Any, where: str) -> list[str]:
    if not isinstance(value, int | float) or not 0 <= value <= 100:
        return [f"{where}: must be a number in 0-100"]
    return []


def shape_problems(record: Any) -> list[str]:
    """What is wrong with ``record`` against the documented face-search record shape (empty: valid).
    Extra top-level keys other than ``"Keeneye"`` are problems; so are missing or mistyped fields."""
    if not isinstance(record, dict):
        return ["record is not an object"]
    problems: list[str] = []
    allowed = {"InputInformation", "StreamProcessorInformation", "FaceSearchResponse", KEENEYE_KEY}
    problems += [f"unexpected top-level key {k!r}" for k in set(record) - allowed]
    kv = record.get("InputInformation", {}).get("KinesisVideo")
    if not isinstance(kv, dict):
        problems.append("InputInformation.KinesisVideo missing")
    else:
        for key, types in (
            ("StreamArn", str),
            ("FragmentNumber", str),
            ("ServerTimestamp", int | float),
            ("ProducerTimestamp", int | float),
            ("FrameOffsetInSeconds", int | float),
        ):
            if not isinstance(kv.get(key), types):
                problems.append(f"InputInformation.KinesisVideo.{key}: missing or wrong type")
    status = record.get("StreamProcessorInformation", {}).get("Status")
    if status not in PROCESSOR_STATUSES:
        problems.append(f"StreamProcessorInformation.Status: {status!r}")
    response = record.get("FaceSearchResponse")
    if not isinstance(response, list):
        return [*problems, "FaceSearchResponse must be a list"]
    for i, item in enumerate(response):
        where = f"FaceSearchResponse[{i}]"
        detected = item.get("DetectedFace") if isinstance(item, dict) else None
        if not isinstance(detected, dict):
            problems.append(f"{where}.DetectedFace missing")
            continue
        undocumented = set(detected) - set(DETECTED_FACE_KEYS)
        problems += [f"{where}.DetectedFace.{k}: not documented" for k in undocumented]
        problems += _box_problems(detected.get("BoundingBox"), f"{where}.DetectedFace")
        problems += _percent_problems(detected.get("Confidence"), f"{where}.DetectedFace.Confidence")
        if not isinstance(detected.get("Landmarks", []), list):
            problems.append(f"{where}.DetectedFace.Landmarks: not a list")
        matched = item.get("MatchedFaces")
        if not isinstance(matched, list):
            problems.append(f"{where}.MatchedFaces must be a list")
            continue
        for j, m in enumerate(matched):
            mw = f"{where}.MatchedFaces[{j}]"
            problems += _percent_problems(m.get("Similarity"), f"{mw}.Similarity")
            face = m.get("Face")
            if not isinstance(face, dict):
                problems.append(f"{mw}.Face missing")
                continue
            problems += [f"{mw}.Face.{k}: not documented" for k in set(face) - set(MATCHED_FACE_KEYS)]
            problems += _box_problems(face.get("BoundingBox"), f"{mw}.Face")
            problems += _percent_problems(face.get("Confidence"), f"{mw}.Face.Confidence")
            for key in ("FaceId", "ImageId"):
                if not isinstance(face.get(key), str):
                    problems.append(f"{mw}.Face.{key}: missing")
    extra = record.get(KEENEYE_KEY)
    if extra is not None and not isinstance(extra, dict):
        problems.append(f"{KEENEYE_KEY} must be an object")
    return problems


# -- events -> records ----------------------------------------------------------------------------------


def encode(event: Event) -> dict[str, Any]:
    """The record of one pipeline event (see the module notes): a face search result for
    ``face_identified``, keeneye's fields only for persons, line crossings and zone events."""
    ctx = event.frame
    info = FrameInfo(event.source_id, ctx.connection, ctx.captured_at, ctx.pts_ms, ctx.width, ctx.height)
    payload = event.payload
    track_id = event.track_id
    if isinstance(payload, FaceIdentified):
        extra = keeneye_fields(
            "face", track_id=track_id, info=info, identity=payload.identity, face=payload.face
        )
        return face_search_record(info, [(payload.face, list(payload.matches))], extra)
    if isinstance(payload, PersonSeen):
        extra = keeneye_fields(
            "person", track_id=track_id, info=info, identity=payload.identity, person_xyxy=payload.xyxy
        )
        return face_search_record(info, [], extra)
    assert track_id is not None
    if isinstance(payload, LineCrossed):
        line = LineEvent(payload.line, track_id, event.pts_ms, payload.direction, payload.identity)
        return face_search_record(
            info, [], keeneye_fields("line", track_id=track_id, info=info, lines=[line])
        )
    zone = ZoneEvent(
        payload.zone,
        track_id,
        event.pts_ms,
        "enter" if event.kind == "zone_entered" else "exit",
        payload.dwell_ms,
        payload.identity,
    )
    return face_search_record(info, [], keeneye_fields("zone", track_id=track_id, info=info, zones=[zone]))
