"""Who is on a track: faces handed to tracks, each track's best face embedded and searched in a collection.

Used by the video use cases (``keeneye track --collection``, StartFaceSearch): the per-frame cost is face
*detection* only; a track's face is embedded when it is the first usable face of that track or clearly
better than the last one embedded (``min_gain`` times its quality score, :func:`face_quality_score`:
large, sharp, frontal), and at most ``max_embeddings`` times per track, so a person standing in view for an
hour costs a handful of embeddings, not one per frame. A track with no match at the threshold has no
identity (and is never given a name by guessing).

Fusion (``fuse`` faces, ``faces.track_fusion``, default 3): a track is searched with the normalised mean
of the descriptors of its best ``fuse`` embedded faces by quality (:func:`fused_query`), searched again
each time a face joins them, and its identity is the latest fused search's result. On LFW, with 3 photos
of a person as a track (bench/lfw_track_fusion.py), FNIR at FPIR 1 % is 7.6 % fused against 13.0 % for
the best of 3 separate searches and 31.1 % for one photo. A mean of several faces is closer to everyone
than one face is (impostor cosines rise too: at Similarity 80 the raw mean of 3 gives 8 times the
single-face false-match rate), so the fused query is scaled by :data:`FUSED_COSINE_SCALE`: Similarity 80
then keeps the single-face false-match rate (1 in 10,000 impostor comparisons on LFW, docs/models.md).
With ``fuse=1`` each embedded face is searched alone and the identity is the search whose best match is
the most similar, which raises the false-match rate per track up to ``max_embeddings`` times.

Matches come from the collection's search (keeneye.service.faces.search): each user once, at their best
face's Similarity, so a track is identified as a user when the collection has users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.core.types import Face, FloatArray, Track, UInt8Image
from keeneye.store.collections import FaceMatch
from keeneye.tracking.reid import face_quality_score
from keeneye.tracking.tracker import PersonTracker, TrackerConfig

Searcher = Callable[[FloatArray, str], list[FaceMatch]]
"""(query, embedder id) -> the collection's faces at or above the threshold, best first (each user once).
The query is an L2-normalised embedding or a :func:`fused_query` (whose norm is slightly below 1: Similarity
is calibrated on the inner product)."""

FUSED_COSINE_SCALE = {1: 1.0, 2: 0.9864, 3: 0.9820}
"""Faces fused -> the factor on the fused query: the mean template's cosine at which the impostor
false-match rate equals one face's at Similarity 80, mapped onto that cosine (bench/lfw_track_fusion.py,
default embedder dlib+faceres, LFW: fused cosine 0.898 for 2 faces and 0.902 for 3 vs 0.886 for one)."""


def fused_query(embeddings: Sequence[FloatArray]) -> FloatArray:
    """The query of a track's best faces: the normalised mean of their L2-normalised (D,) descriptors,
    times :data:`FUSED_COSINE_SCALE` for their number (one face: itself)."""
    if not 1 <= len(embeddings) <= max(FUSED_COSINE_SCALE):
        raise ValueError(f"fuse 1 to {max(FUSED_COSINE_SCALE)} faces, not {len(embeddings)}")
    if len(embeddings) == 1:
        return np.asarray(embeddings[0], np.float32)
    mean = np.mean(np.stack(embeddings).astype(np.float32), axis=0)
    out: FloatArray = (mean / np.linalg.norm(mean) * FUSED_COSINE_SCALE[len(embeddings)]).astype(np.float32)
    return out


# A face belongs to a person box when its centre lies inside the box, in its top part (the head).
HEAD_REGION = 0.45


@dataclass
class TrackIdentity:
    """What the face search found for one track.

    face / pts_ms: the best embedded face of the search that gave ``matches`` (and when it was seen);
    matches: the collection's users and faces at or above the threshold, best first (empty: not on the
    watchlist); embeddings: how many of the track's faces were embedded; best_quality: the quality score
    of the best face embedded so far; fused: the faces searched together, ``(quality, pts_ms, face)``
    best first; searched_with: how many faces the search that gave ``matches`` fused.
    """

    track_id: int
    face: Face | None = None
    pts_ms: float | None = None
    matches: list[FaceMatch] = field(default_factory=list)
    embeddings: int = 0
    best_quality: float = 0.0
    fused: list[tuple[float, float, Face]] = field(default_factory=list)
    searched_with: int = 0

    @property
    def top_similarity(self) -> float:
        return self.matches[0].similarity if self.matches else -1.0

    @property
    def name(self) -> str | None:
        """The best match's UserId, else its ExternalImageId, else its FaceId; None when unmatched."""
        if not self.matches:
            return None
        face = self.matches[0].face
        return face.user_id or face.external_image_id or face.face_id


class TrackFaceIdentifier:
    """Embeds each track's best face a few times at most and searches with its best ``fuse`` faces."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        search: Searcher,
        *,
        min_gain: float = 1.25,
        max_embeddings: int = 4,
        retry_ms: float = 1000.0,
        fuse: int = 3,
    ) -> None:
        if analyzer.embedder is None:
            raise ValueError("face search needs a face pipeline with an embedder")
        if min_gain < 1.0 or max_embeddings < 1:
            raise ValueError("min_gain must be >= 1 and max_embeddings >= 1")
        if fuse not in FUSED_COSINE_SCALE:
            raise ValueError(f"fuse must be 1 to {max(FUSED_COSINE_SCALE)}")
        self.fuse = fuse
        self._analyzer = analyzer
        self._search = search
        self.min_gain = min_gain
        self.max_embeddings = max_embeddings
        self.retry_ms = retry_ms
        self._last_try: dict[int, float] = {}
        self._ids: dict[int, TrackIdentity] = {}
        self.embeddings_total = 0
        self.searches_total = 0

    def offer(self, image: UInt8Image, track_id: int, face: Face, pts_ms: float) -> bool:
        """Consider a face seen on a track in ``image``; embeds and searches it when it is worth it.
        Returns True when it was embedded (``face.embedding`` is then set)."""
        state = self._ids.setdefault(track_id, TrackIdentity(track_id))
        quality = face_quality_score(face)
        if state.embeddings >= self.max_embeddings:
            return False
        if state.embeddings:
            better = quality >= state.best_quality * self.min_gain
            retry = not state.matches and pts_ms - self._last_try.get(track_id, -1e18) >= self.retry_ms
            if not (better or retry):
                return False
        self._last_try[track_id] = pts_ms
        self._analyzer.embed(image, [face])
        assert face.embedding is not None and face.embedder_id is not None
        state.embeddings += 1
        state.best_quality = max(state.best_quality, quality)
        self.embeddings_total += 1
        if self.fuse == 1:
            matches = self._search(face.embedding, face.embedder_id)
            self.searches_total += 1
            top = matches[0].similarity if matches else -1.0
            if state.face is None or top > state.top_similarity:
                state.face, state.pts_ms, state.matches = face, pts_ms, list(matches)
                state.searched_with = 1
            return True
        state.fused = sorted([*state.fused, (quality, pts_ms, face)], key=lambda q: -q[0])
        state.fused = state.fused[: self.fuse]
        if all(f is not face for _, _, f in state.fused):
            return True  # not among the best faces: the fused query would not change
        self._search_fused(state)
        return True

    def _search_fused(self, state: TrackIdentity) -> None:
        best = state.fused[: self.fuse]
        face = best[0][2]
        assert face.embedder_id is not None
        matches = self._search(
            fused_query([f.embedding for _, _, f in best if f.embedding is not None]), face.embedder_id
        )
        self.searches_total += 1
        state.face, state.pts_ms, state.matches = face, best[0][1], list(matches)
        state.searched_with = len(best)

    def rekey(self, old_id: int, new_id: int) -> None:
        """The tracker re-linked track ``old_id`` to the older ``new_id``: merge what both found."""
        if old_id == new_id or old_id not in self._ids:
            return
        moved = self._ids.pop(old_id)
        kept = self._ids.get(new_id)
        if self.fuse > 1 and kept is not None:
            # One person: the faces of both parts fused, searched again when the best ones changed.
            before = [id(f) for _, _, f in kept.fused[: self.fuse]]
            kept.fused = sorted([*kept.fused, *moved.fused], key=lambda q: -q[0])[: self.fuse]
            kept.embeddings += moved.embeddings
            kept.best_quality = max(moved.best_quality, kept.best_quality)
            self._last_try[new_id] = max(self._last_try.pop(old_id, -1e18), self._last_try.get(new_id, -1e18))
            if [id(f) for _, _, f in kept.fused[: self.fuse]] != before:
                self._search_fused(kept)
            return
        if kept is None or moved.top_similarity > kept.top_similarity:
            moved.track_id = new_id
            if kept is not None:
                moved.embeddings += kept.embeddings
                moved.best_quality = max(moved.best_quality, kept.best_quality)
            self._ids[new_id] = moved
            self._last_try[new_id] = max(self._last_try.pop(old_id, -1e18), self._last_try.get(new_id, -1e18))
        else:
            kept.embeddings += moved.embeddings
            kept.best_quality = max(moved.best_quality, kept.best_quality)

    def identity(self, track_id: int) -> TrackIdentity | None:
        return self._ids.get(track_id)

    @property
    def identities(self) -> dict[int, TrackIdentity]:
        """Every track that had a face embedded, by track id (matched or not)."""
        return dict(self._ids)


def offer_face(
    image: UInt8Image,
    pts_ms: float,
    tracker: PersonTracker,
    identifier: TrackFaceIdentifier,
    track_id: int,
    face: Face,
) -> tuple[int, bool]:
    """The face-track identification step, written once for face search, live cameras, redaction and
    person tracks: offer a track's face to ``identifier`` (embedded and searched when it is worth it);
    an embedded face goes to the tracker, which re-links the track to an older one whose face matches,
    and the identifier follows the re-link. Returns (the track's id after any re-link, embedded)."""
    if not identifier.offer(image, track_id, face, pts_ms):
        return track_id, False
    new_id = tracker.attach_face_embedding(track_id, face)
    if new_id != track_id:
        identifier.rekey(track_id, new_id)
    return new_id, True


RELINK_SIMILARITY = 90.0
"""Similarity (0-100, calibrated per embedder) at which two tracks of one video whose faces match are the
same person and share one id: stricter than the default search threshold (80), as a wrong re-link hands
one person's identity to another."""


def relink_cosine(analyzer: FaceAnalyzer) -> float:
    """The tracker's ``reid_face_similarity`` for ``analyzer``'s embedder: RELINK_SIMILARITY as a cosine."""
    from keeneye.analysis.similarity import calibration_for

    if analyzer.embedder is None:
        raise ValueError("re-linking tracks by face needs a face pipeline with an embedder")
    return calibration_for(analyzer.embedder.embedder_id).cosine_at(RELINK_SIMILARITY)


def face_box_tracker_config(
    score_threshold: float, *, max_lost_ms: float, relink_cosine: float | None
) -> TrackerConfig:
    """Tracker settings for *face* boxes (face search, redaction): one association stage (the face
    detector has one threshold), a face is reported from its first detection, a face unseen for
    ``max_lost_ms`` is forgotten, and no re-linking by colour histograms (a face crop's colours do not tell
    people apart): only face embeddings re-link tracks, at cosine ``relink_cosine`` (None: never)."""
    return TrackerConfig(
        high_score=score_threshold,
        low_score=score_threshold,
        new_track_score=score_threshold,
        match_iou=0.2,
        tentative_match_iou=0.2,
        min_hits=1,
        max_lost_ms=max_lost_ms,
        reid_body_similarity=2.0,  # cosine similarity never reaches it: colour re-linking off
        reid_face_similarity=2.0 if relink_cosine is None else relink_cosine,
    )


def faces_on_person_tracks(tracks: Sequence[Track], faces: Sequence[Face]) -> list[tuple[Track, Face]]:
    """Pair faces with the person boxes they belong to: a face's centre must lie inside a track's last
    box, in its top ``HEAD_REGION``; each face and each track is used once (Hungarian assignment on the
    distance from the face centre to the expected head position, the top-centre of the box)."""
    if not tracks or not faces:
        return []
    cost = np.full((len(tracks), len(faces)), np.inf)
    for i, t in enumerate(tracks):
        x1, y1, x2, y2 = t.xyxy
        head_x, head_y = (x1 + x2) / 2, y1 + 0.12 * (y2 - y1)
        for j, f in enumerate(faces):
            cx, cy = float(f.xyxy[0] + f.xyxy[2]) / 2, float(f.xyxy[1] + f.xyxy[3]) / 2
            if x1 <= cx <= x2 and y1 <= cy <= y1 + HEAD_REGION * (y2 - y1):
                cost[i, j] = np.hypot(cx - head_x, cy - head_y) / max(y2 - y1, 1.0)
    finite = np.isfinite(cost)
    if not finite.any():
        return []
    rows, cols = linear_sum_assignment(np.where(finite, cost, 1e6))
    return [(tracks[r], faces[c]) for r, c in zip(rows, cols, strict=True) if finite[r, c]]


def faces_on_face_tracks(tracks: Sequence[Track], faces: Sequence[Face]) -> list[tuple[Track, Face]]:
    """Pair face tracks with the face detection each was matched to in this frame (same box)."""
    out = []
    for t in tracks:
        box = np.asarray(t.xyxy, np.float32)
        for f in faces:
            if np.allclose(np.asarray(f.xyxy, np.float32), box, atol=1e-3):
                out.append((t, f))
                break
    return out


class PersonFaceIdentities:
    """Identities for *person* tracks (``keeneye track --collection``): in each analysed frame, the faces
    found are handed to the person whose head they are (:func:`faces_on_person_tracks`), the identifier
    embeds and searches them, the tracker re-links tracks whose faces match, and ``Track.identity`` is set
    as soon as a track has a match, so that line and zone events after that carry the name. The tracker's
    ``reid_face_similarity`` decides the re-linking (set it from the embedder's calibration)."""

    def __init__(self, analyzer: FaceAnalyzer, identifier: TrackFaceIdentifier) -> None:
        self._analyzer = analyzer
        self.identifier = identifier
        self.frames_with_faces = 0

    def step(self, image: UInt8Image, pts_ms: float, tracker: PersonTracker, live: Sequence[Track]) -> None:
        """Process one analysed frame's live person tracks (after ``tracker.update``)."""
        if not live:
            return
        # A video frame: the video detector, no padded second look (as FaceSteps; FaceAnalyzer.detect).
        faces = self._analyzer.analyze(image, attributes="default", video_frame=True)
        if not faces:
            return
        self.frames_with_faces += 1
        for track, face in faces_on_person_tracks(live, faces):
            tracker.offer_face(track.track_id, face)
            track_id, _ = offer_face(image, pts_ms, tracker, self.identifier, track.track_id, face)
            ident = self.identifier.identity(track_id)
            if ident is not None and ident.name is not None:
                track.identity = ident.name
