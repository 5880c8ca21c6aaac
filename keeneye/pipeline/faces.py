"""Face tracking, written once for every frame loop (face search in stored video, live cameras,
redaction): face detection -> a tracker on face boxes -> each track's best face identified
(keeneye.pipeline.identification.offer_face).

:class:`FaceSteps` gives, per analysed frame, every face found, the live face tracks and, for each
tracked face, its track (after any re-link) and what the identifier knows of it so far. What a use case
does with that (sightings for GetFaceSearch, records for a live camera, what to obscure) is its own.

With a ``schedule`` (keeneye.pipeline.schedule.DetectionSchedule, the same one person tracking uses: every
Nth frame, motion gating, a detection at least every ``max_skip_ms``) the detector runs only on the frames
it says; on the others the face tracker predicts its tracks (nothing is born, lost or identified) and the
update says ``detected=False`` with no faces. Live cameras use it (``streams.face_detect_every``,
``streams.face_motion_gating``); stored video and redaction detect on every analysed frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from keeneye.analysis.faces import AttributeLevel, FaceAnalyzer
from keeneye.analysis.similarity import calibration_for
from keeneye.core.types import Detections, Face, Frame, Track
from keeneye.pipeline.identification import (
    RELINK_SIMILARITY,
    TrackFaceIdentifier,
    TrackIdentity,
    face_box_tracker_config,
    faces_on_face_tracks,
    offer_face,
)
from keeneye.pipeline.schedule import DetectionSchedule
from keeneye.tracking.tracker import PersonTracker, TrackerConfig

FaceFilter = Callable[[Frame, Face], bool]
"""Which detected faces are tracked (e.g. only those whose centre is in a region of interest)."""


def face_tracker_config(face_threshold: float, analyzer: FaceAnalyzer) -> TrackerConfig:
    """Face-box tracking for face search and live cameras (``face_box_tracker_config``): a face unseen
    for 2 s is lost; tracks re-link when their embedded faces match at RELINK_SIMILARITY."""
    if analyzer.embedder is None:
        raise ValueError("re-linking tracks by face needs a face pipeline with an embedder")
    relink = calibration_for(analyzer.embedder.embedder_id).cosine_at(RELINK_SIMILARITY)
    return face_box_tracker_config(face_threshold, max_lost_ms=2000.0, relink_cosine=relink)


@dataclass(frozen=True)
class TrackedFace:
    """A face seen on a track in this frame: ``track_id`` after any re-link, whether it was embedded
    (and searched) now, and the track's identity so far (None: no face of it embedded yet)."""

    track_id: int
    face: Face
    embedded: bool
    identity: TrackIdentity | None


@dataclass(frozen=True)
class FaceUpdate:
    """One analysed frame: every face found (after the filter), the live face tracks, the tracked faces
    (``rekeyed``: old track id -> new one, for re-links made in this frame); ``detected``: False on a
    frame the schedule skipped (no faces, the tracks only predicted)."""

    frame: Frame
    faces: Sequence[Face]
    tracks: Sequence[Track]
    tracked: Sequence[TrackedFace]
    rekeyed: dict[int, int]
    detected: bool = True


class FaceSteps:
    """Faces detected (``attributes``: the analysis level), tracked on their boxes, and, with an
    ``identifier``, each track's face identified (faces under ``min_embed_px`` are never embedded);
    ``schedule``: on which frames the detector runs (None: every frame)."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        tracker: PersonTracker,
        identifier: TrackFaceIdentifier | None = None,
        *,
        attributes: AttributeLevel = "default",
        keep: FaceFilter | None = None,
        min_embed_px: float = 0.0,
        schedule: DetectionSchedule | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.tracker = tracker
        self.identifier = identifier
        self.attributes: AttributeLevel = attributes
        self.keep = keep
        self.min_embed_px = min_embed_px
        self.schedule = schedule
        self.frames_detected = 0

    def cut(self) -> None:
        self.tracker.cut()

    def step(self, frame: Frame) -> FaceUpdate:
        if self.schedule is not None and not self.schedule.due(frame):
            return FaceUpdate(frame, [], self.tracker.coast(frame), [], {}, detected=False)
        self.frames_detected += 1
        # A video frame: the video detector, no padded second look (analysis.faces.FaceAnalyzer.detect).
        faces = self.analyzer.analyze(frame.image, attributes=self.attributes, video_frame=True)
        if self.keep is not None:
            faces = [f for f in faces if self.keep(frame, f)]
        detections = Detections(
            xyxy=np.array([f.xyxy for f in faces], np.float32).reshape(-1, 4),
            score=np.array([f.score for f in faces], np.float32),
        )
        live = self.tracker.update(frame, detections)
        tracked: list[TrackedFace] = []
        rekeyed: dict[int, int] = {}
        for track, face in faces_on_face_tracks(live, faces):
            track_id, embedded = track.track_id, False
            if self.identifier is not None and _min_side(face) >= self.min_embed_px:
                track_id, embedded = offer_face(
                    frame.image, frame.pts_ms, self.tracker, self.identifier, track.track_id, face
                )
                if track_id != track.track_id:
                    rekeyed[track.track_id] = track_id
            identity = None if self.identifier is None else self.identifier.identity(track_id)
            tracked.append(TrackedFace(track_id, face, embedded, identity))
        return FaceUpdate(frame, faces, live, tracked, rekeyed)


def _min_side(face: Face) -> float:
    x1, y1, x2, y2 = (float(v) for v in face.xyxy)
    return min(x2 - x1, y2 - y1)
