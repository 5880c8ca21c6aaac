"""Searching a stored video for the faces of a collection (Rekognition's StartFaceSearch / GetFaceSearch).

Pipeline per analysed frame (``video_jobs.target_fps``): face detection with Rekognition's DEFAULT
attributes (box, landmarks, pose, quality: the pose and sharpness choose a track's best face) -> the
tracker (keeneye.tracking.tracker, run on face boxes) -> :class:`TrackFaceIdentifier`, which embeds a
track's face only when it is the first usable one or clearly better than the last embedded, and searches
the collection with it. When an embedded face matches a face track that ended earlier (the person turned
away, or the camera cut away and back), the tracker re-links them: both parts share one ``index``.

A track's identity holds for its whole length, so every analysed frame where a matched track's face is
visible is reported with the track's matches: the result says *when* the person is in view, not only
when their face was frontal. Tracks with no match at the threshold are not reported (GetFaceSearch lists
matched persons). A track is searched with the fused descriptor of its best faces (``faces.track_fusion``,
keeneye.pipeline.identification), and when the collection has users, a track is identified as a user:
``FaceMatches`` names each user once, with their best face (its ``Face.UserId`` set) and that face's
Similarity, the rule of SearchUsers; faces not associated with a user are matched as before. Here the
"person" of GetFaceSearch is the face track: ``Person.BoundingBox`` is the face's box
(docs/rekognition-coverage.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.core.types import Face, Frame, Track
from keeneye.pipeline.faces import FaceSteps
from keeneye.pipeline.faces import face_tracker_config as face_tracker_config  # re-exported
from keeneye.pipeline.identification import Searcher, TrackFaceIdentifier, TrackIdentity
from keeneye.pipeline.loop import run_frames
from keeneye.service.faces.collections import FaceMatch
from keeneye.service.video.jobs import JobOutput, JobRunner
from keeneye.service.video.results import match_record, person_indexes
from keeneye.streams.review import face_crop, person_of
from keeneye.tracking.tracker import PersonTracker
from keeneye.video.cuts import DEFAULT_CUT_THRESHOLD
from keeneye.video.sources import VideoInput, VideoMetadata, open_video


@dataclass
class FaceSighting:
    """One analysed frame where a face track was seen: time, the face (box in pixels, attributes)."""

    pts_ms: float
    face: Face


@dataclass
class Probe:
    """The face that first identified a track as one person, for the review queue: when (``pts_ms``),
    its crop (JPEG, keeneye.streams.review.face_crop) and its embedding when it was embedded then."""

    pts_ms: float
    crop: bytes | None
    embedding: Any = None  # (D,) float32 or None
    embedder_id: str | None = None


@dataclass
class FaceSearchResult:
    """Face tracks of a video and who they are. ``sightings[track_id]`` in time order; ``identities``
    for every track whose face was embedded (``matches`` empty when not on the watchlist); ``cuts_ms``:
    the shot cuts found (no track spans one)."""

    metadata: VideoMetadata
    tracks: list[Track]
    sightings: dict[int, list[FaceSighting]]
    identities: dict[int, TrackIdentity]
    frames_analysed: int = 0
    embeddings: int = 0
    searches: int = 0
    cuts_ms: list[float] = field(default_factory=list)
    # track id -> person (user id, else face id) -> the face that first identified the track as them
    probes: dict[int, dict[str, Probe]] = field(default_factory=dict)

    def matched(self) -> list[tuple[Track, TrackIdentity]]:
        """The tracks with at least one match, by track id."""
        out = []
        for track in self.tracks:
            ident = self.identities.get(track.track_id)
            if ident is not None and ident.matches:
                out.append((track, ident))
        return out


def search_video(
    source: VideoInput,
    analyzer: FaceAnalyzer,
    search: Searcher,
    *,
    face_threshold: float,
    target_fps: float | None,
    max_duration_ms: float | None = None,
    checkpoint: Callable[[], None] | None = None,
    cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
    max_pixels: int | None = None,
    fuse: int = 3,
) -> FaceSearchResult:
    """Track the faces of ``source`` and search each track's best face with ``search``.

    face_threshold: the face detector's score threshold (``faces.video_detector.score_threshold``);
    checkpoint: called once per analysed frame (a job's stop / cancel hook, may raise); cut_threshold:
    shot cuts (keeneye.video.cuts), None: never; max_pixels: largest frame accepted (LimitExceeded);
    fuse: a track is searched with its best ``fuse`` faces fused (``faces.track_fusion``).
    """
    steps = FaceSteps(
        analyzer,
        PersonTracker(face_tracker_config(face_threshold, analyzer)),
        TrackFaceIdentifier(analyzer, search, fuse=fuse),
    )
    sightings: dict[int, list[FaceSighting]] = {}
    probes: dict[int, dict[str, Probe]] = {}

    def step(frame: Frame) -> None:
        update = steps.step(frame)
        for old, new in update.rekeyed.items():
            sightings[new] = sightings.get(new, []) + sightings.pop(old, [])
            probes[new] = probes.pop(old, {}) | probes.get(new, {})
        for seen in update.tracked:
            sightings.setdefault(seen.track_id, []).append(FaceSighting(frame.pts_ms, seen.face))
            ident = seen.identity
            if ident is not None and ident.matches:  # a crop once per track and person: cheap
                mine = probes.setdefault(seen.track_id, {})
                person = person_of(ident.matches[0])
                if person not in mine:
                    face = seen.face
                    mine[person] = Probe(
                        frame.pts_ms, face_crop(frame.image, face.xyxy), face.embedding, face.embedder_id
                    )

    with open_video(source, max_pixels=max_pixels) as video:
        loop = run_frames(
            video.frames(target_fps),
            step,
            cut=steps.cut,
            cut_threshold=cut_threshold,
            max_duration_ms=max_duration_ms,
            checkpoint=checkpoint,
        )
        metadata = video.metadata
    assert steps.identifier is not None
    return FaceSearchResult(
        metadata=metadata,
        tracks=steps.tracker.all_tracks(),
        sightings=sightings,
        identities=steps.identifier.identities,
        frames_analysed=loop.frames_analysed,
        embeddings=steps.identifier.embeddings_total,
        searches=steps.identifier.searches_total,
        cuts_ms=loop.cuts_ms,
        probes=probes,
    )


AuditHook = Callable[[Mapping[str, Any], list[dict[str, Any]], int], None]
"""(job params, matches ``[{"FaceId", "Similarity", "PersonIndex", "Timestamp"}]``, face tracks searched)."""
ReviewHook = Callable[[Mapping[str, Any], list[dict[str, Any]]], None]
"""(job params, identifications ``[{"index", "face_id", "user_id", "similarity", "pts_ms", "crop",
"embedding", "embedder_id"}]``: each matched track's best match, ``index`` its Person.Index) -> queued
for review (keeneye/service/review/queue.py)."""


def face_search_runner(
    settings: Settings,
    analyzer: FaceAnalyzer,
    search_collection: Callable[[str, Any, str, float], list[FaceMatch]],
    audit: AuditHook | None = None,
    review: ReviewHook | None = None,
) -> JobRunner:
    """The FaceSearch runner. params: ``collection_id``, ``threshold`` (FaceMatchThreshold, 0-100).
    search_collection(collection_id, embedding, embedder_id, threshold) -> matches best first.

    Items: one per analysed frame where a matched face track is visible: ``{"pts_ms", "index": the
    track (0, 1, ... by first appearance), "xyxy": the face box in pixels, "face": Face.to_record(),
    "matches": [match_record(...), ...]}`` (keeneye.service.video.results; the AWS adapter makes
    Rekognition's shapes of them on GetFaceSearch). The identification is audited once per job (every
    matched FaceId with the track and first time)."""

    def run(video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        collection_id, threshold = str(params["collection_id"]), float(params["threshold"])

        def search(embedding: Any, embedder_id: str) -> list[FaceMatch]:
            return search_collection(collection_id, embedding, embedder_id, threshold)

        max_s = settings.video_jobs.max_duration_s
        result = search_video(
            video,
            analyzer,
            search,
            face_threshold=settings.faces.video_detector.score_threshold,
            target_fps=settings.video_jobs.target_fps,
            max_duration_ms=None if max_s is None else max_s * 1000.0,
            checkpoint=checkpoint,
            cut_threshold=settings.persons.shot_cut_threshold,
            max_pixels=settings.video_jobs.max_pixels,
            fuse=settings.faces.track_fusion,
        )
        items: list[dict[str, Any]] = []
        audited: list[dict[str, Any]] = []
        for track, ident in result.matched():
            matches = [match_record(m) for m in ident.matches]
            seen = result.sightings.get(track.track_id, [])
            for s in seen:
                items.append(
                    {
                        "pts_ms": float(s.pts_ms),
                        "index": int(track.track_id),
                        "xyxy": [float(v) for v in s.face.xyxy],
                        "face": s.face.to_record(),
                        "matches": matches,
                    }
                )
            first = round(seen[0].pts_ms) if seen else None
            audited += [
                {
                    "FaceId": m.face.face_id,
                    "Similarity": float(m.similarity),
                    "PersonIndex": int(track.track_id),
                    "Timestamp": first,
                }
                for m in ident.matches
            ]
        # Person.Index as Rekognition numbers persons: 0, 1, ... by first appearance, no gaps.
        renumber = person_indexes(items)
        items = [{**it, "index": renumber[it["index"]]} for it in items]
        for entry in audited:
            entry["PersonIndex"] = renumber.get(entry["PersonIndex"], entry["PersonIndex"])
        if audit is not None:
            audit(params, audited, len(result.identities))
        if review is not None:
            review(params, _identifications(result, renumber))
        return JobOutput(asdict(result.metadata), items)

    return run


def _identifications(result: FaceSearchResult, renumber: Mapping[int, int]) -> list[dict[str, Any]]:
    """Each matched track's best match with the face that first identified it (ReviewHook's items)."""
    out = []
    for track, ident in result.matched():
        top = ident.matches[0]
        probe = result.probes.get(track.track_id, {}).get(person_of(top))
        out.append(
            {
                "index": renumber.get(track.track_id, track.track_id),
                "face_id": top.face.face_id,
                "user_id": top.face.user_id,
                "similarity": float(top.similarity),
                "pts_ms": None if probe is None else round(probe.pts_ms),
                "crop": None if probe is None else probe.crop,
                "embedding": None if probe is None else probe.embedding,
                "embedder_id": None if probe is None else probe.embedder_id,
            }
        )
    return out
