"""Multi-object tracker: ByteTrack-style association plus appearance re-identification.

Why our own tracker and not ``supervision.ByteTrack``: supervision's tracker (0.2x) keeps lost tracks for a
number of *frames* (``lost_track_buffer`` x frame rate), has no appearance model, cannot re-link a person
who leaves and re-enters, has no hook for a face embedding, and reports no lost/removed state or per-track
box history; its ``LineZone`` counts crossings of a box's anchors without a distance hysteresis. Wrapping it
would mean re-implementing its internals anyway, so this module is a compact tracker that
does exactly what keeneye needs (~450 lines with docs), on numpy and scipy's Hungarian assignment.

Per frame (``update``):

1. Kalman predict every track to ``frame.pts_ms`` (constant velocity on centre x/y, aspect ratio and height;
   velocities in pixels per *second*, so the sampling rate may change mid-stream).
2. High-score detections (``score >= high_score``) are matched to active and lost tracks by IoU.
3. Low-score detections (``low_score <= score < high_score``: often the occluded half of a person) are matched
   to the still-unmatched *active* tracks, with a stricter IoU; this is ByteTrack's second stage.
4. Remaining high-score detections are matched to tentative tracks; unmatched tentative tracks are dropped.
5. Remaining high-score detections first try re-identification: a lost track whose appearance (face
   embedding when both have one, else the body colour descriptor, see ``reid.py``) is similar enough and
   whose last position is reachable in the elapsed time is revived with the same id. Otherwise a
   tentative track is born; it becomes active after ``min_hits`` matches.
6. Tracks lost for longer than ``max_lost_ms`` (time, from ``pts_ms``) are removed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from keeneye.core.geometry import iou_matrix as iou_matrix  # re-exported
from keeneye.core.types import Detections, Face, FloatArray, Frame, Track, TrackPoint
from keeneye.tracking.reid import AppearanceModel, body_descriptor, face_quality_score

# ByteTrack's noise model: standard deviations proportional to the box height. Its per-frame velocity
# weight (1/160 at ~30 fps) is expressed here per second.
STD_POSITION = 1.0 / 20.0
STD_VELOCITY = 1.0 / 160.0 * 30.0
REFERENCE_DT_S = 0.1  # process noise is scaled by dt / REFERENCE_DT_S
CONFIRM_WINDOW = 100
"""A tentative track keeps its last 100 observations: confirm_score takes their median, and a false box that
stays tentative for days on a live camera costs bounded memory (the bench sets give the same results with
30, 100 and the whole history: no tentative track there lives that long)."""


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker parameters. Scores are detector scores in [0, 1]; IoU thresholds in [0, 1]; times in ms.

    high_score / low_score: the two association stages; new_track_score: minimum score to start a track;
    match_iou / low_match_iou / tentative_match_iou: least IoU with the predicted box for a match in stage 1,
    2 and 4; min_hits: matches before a track is reported; max_lost_ms: how long a lost track is kept for
    motion and appearance re-linking; reid_body_similarity / reid_face_similarity: least cosine similarity
    to re-link by body descriptor / face embedding; reid_margin: how much more similar than anyone in view
    the lost track must look; reid_max_scale: largest height ratio between the lost box and a new box
    near it; reid_max_speed: how far (in box heights per second,
    plus one box height) a person may have moved while lost; appearance_interval_ms: minimum time between
    two body-descriptor updates of a track.

    Slow births (issue 12: a woman standing still in plain view scored 0.24 for 13 s and never became
    a track): a detection scoring at least ``birth_score`` but under ``new_track_score`` starts a
    tentative track too; tentative tracks match any unclaimed detection down to ``birth_score``, and
    one that never reached ``new_track_score`` is confirmed once it has been matched in every analysed
    frame for ``slow_birth_ms``, instead of after ``min_hits`` matches. A person who stays put at a
    modest score is then tracked after a second; a low-scoring false box must persist as long, in the
    same place, to become a track (flickering ones are dropped at their first miss). Off by default
    (``birth_score`` = ``new_track_score``): measured on PETS09 with CenterNet, ``birth_score`` 0.25
    more than doubled false positives (1,100 -> 2,403 boxes; MOTA 0.657 -> 0.376), because that
    scene has persistent low-scoring false boxes. Turn it on (``persons.birth_score``) for scenes
    where people wait in place and the detector scores them low.

    Score evidence before a track is reported (``confirm_score``, as Frigate's ``threshold`` on the
    median of an object's scores): a tentative track born at ``new_track_score`` becomes active only once
    it has ``min_hits`` matches *and* the median of its scores (its last ``CONFIRM_WINDOW`` observations,
    all it keeps while tentative) reaches ``confirm_score``; until then it stays tentative (matched frame
    to frame, dropped at its first miss). A false box that keeps
    scoring just over the threshold (a traffic cone, a coat on a chair) never becomes a track, a person
    seen clearly for a few frames does. 0 turns it off (the tracker's default; persons set it through
    ``persons.confirm_score``, measured in docs/models.md). Slow births keep their own rule.
    """

    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.5
    birth_score: float = 0.5
    slow_birth_ms: float = 1000.0
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    tentative_match_iou: float = 0.3
    min_hits: int = 3
    confirm_score: float = 0.0
    max_lost_ms: float = 5000.0
    reid_body_similarity: float = 0.9
    reid_face_similarity: float = 0.5
    reid_max_speed: float = 1.5
    reid_margin: float = 0.05
    reid_max_scale: float = 1.25
    appearance_interval_ms: float = 200.0


def _xyxy_to_xyah(xyxy: npt.ArrayLike) -> FloatArray:
    x1, y1, x2, y2 = (float(v) for v in np.asarray(xyxy).reshape(4))
    h = max(y2 - y1, 1e-3)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / h, h], np.float64).astype(np.float32)


def _xyah_to_xyxy(xyah: npt.NDArray[np.float64]) -> FloatArray:
    cx, cy, a, h = (float(v) for v in xyah[:4])
    h = max(h, 1e-3)
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


class KalmanBoxFilter:
    """Constant-velocity Kalman filter over (cx, cy, aspect, height) and their velocities per second."""

    def __init__(self, xyxy: npt.ArrayLike) -> None:
        z = _xyxy_to_xyah(xyxy).astype(np.float64)
        self.mean = np.concatenate([z, np.zeros(4)])
        h = z[3]
        std = [
            2 * STD_POSITION * h,
            2 * STD_POSITION * h,
            1e-2,
            2 * STD_POSITION * h,
            10 * STD_VELOCITY * h,
            10 * STD_VELOCITY * h,
            1e-5,
            10 * STD_VELOCITY * h,
        ]
        self.cov = np.diag(np.square(std))

    def predict(self, dt_s: float) -> None:
        """Advance the state by ``dt_s`` seconds (no-op for dt <= 0)."""
        if dt_s <= 0:
            return
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt_s
        h = self.mean[3]
        scale = dt_s / REFERENCE_DT_S
        pos, vel = STD_POSITION * h, STD_VELOCITY * h
        q = np.square([pos, pos, 1e-2, pos, vel, vel, 1e-5, vel]) * scale
        self.mean = f @ self.mean
        self.mean[3] = max(self.mean[3], 1.0)
        self.cov = f @ self.cov @ f.T + np.diag(q)

    def update(self, xyxy: npt.ArrayLike) -> None:
        """Correct the state with an observed box (pixels)."""
        z = _xyxy_to_xyah(xyxy).astype(np.float64)
        h = self.mean[3]
        r = np.diag(np.square([STD_POSITION * h, STD_POSITION * h, 1e-1, STD_POSITION * h]))
        hm = np.eye(4, 8)
        s = hm @ self.cov @ hm.T + r
        k = np.linalg.solve(s, hm @ self.cov).T
        self.mean = self.mean + k @ (z - hm @ self.mean)
        self.cov = (np.eye(8) - k @ hm) @ self.cov

    def freeze_scale(self) -> None:
        """Stop the height/aspect velocities (ByteTrack does this for lost tracks: a box that keeps
        growing while unseen matches nothing)."""
        self.mean[6] = 0.0
        self.mean[7] = 0.0

    @property
    def xyxy(self) -> FloatArray:
        return _xyah_to_xyxy(self.mean)


def _assign(iou: FloatArray, min_iou: float) -> list[tuple[int, int]]:
    """Hungarian assignment maximising IoU; pairs below ``min_iou`` are rejected. Returns (row, col)."""
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(1.0 - iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


class _TrackState:
    """Internal per-track bookkeeping beside the public ``Track``."""

    def __init__(self, track: Track, xyxy: FloatArray) -> None:
        self.track = track
        self.kf = KalmanBoxFilter(xyxy)
        self.hits = 1
        self.appearance = AppearanceModel()
        self.appearance_pts_ms = -math.inf
        self.predicted_pts_ms = track.last_pts_ms
        self.best_score = 0.0  # best detection score seen (slow births, see TrackerConfig)


class PersonTracker:
    """ByteTrack-style multi-object tracker with appearance re-identification (see module docstring).

    One instance per video/stream; ``update`` must be called with frames in presentation order.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[int, _TrackState] = {}
        self._next_id = 1
        self.removed: list[Track] = []

    @property
    def tracks(self) -> list[Track]:
        """Every track not yet removed (tentative, active and lost)."""
        return [s.track for s in self._tracks.values()]

    def all_tracks(self) -> list[Track]:
        """Every confirmed track ever seen (removed ones included), ordered by id: the video's result."""
        seen = [t for t in self.removed if t.state != "tentative"]
        seen += [s.track for s in self._tracks.values() if s.track.state != "tentative"]
        return sorted(seen, key=lambda t: t.track_id)

    def cut(self) -> None:
        """A shot cut in an edited video: where things were before it says nothing about where they are
        after it, so nothing may be matched across it by position. Tentative tracks are dropped, the others
        are removed (they stay in ``all_tracks``); ids go on counting, so they stay unique in the video."""
        for tid, s in list(self._tracks.items()):
            del self._tracks[tid]
            if s.track.state != "tentative":
                s.track.state = "removed"
                self.removed.append(s.track)

    def drain_removed(self) -> list[Track]:
        """Removed tracks since the last call, and forget them: long-running streams call this to hand
        finished tracks to a sink and keep memory bounded (``all_tracks`` then no longer lists them)."""
        out, self.removed = self.removed, []
        return out

    def update(self, frame: Frame, dets: Detections) -> list[Track]:
        """Advance to ``frame`` with its detections; returns the active tracks matched in this frame.

        dets: boxes in ``frame``'s pixels, scores in [0, 1]. The returned ``Track`` objects are live: their
        ``history`` grows with later updates.
        """
        cfg = self.config
        now = frame.pts_ms
        for s in self._tracks.values():
            s.kf.predict((now - s.predicted_pts_ms) / 1000.0)
            s.predicted_pts_ms = now
        high = np.flatnonzero(dets.score >= cfg.high_score)
        low = np.flatnonzero((dets.score >= cfg.low_score) & (dets.score < cfg.high_score))

        confirmed = [s for s in self._tracks.values() if s.track.state in ("active", "lost")]
        tentative = [s for s in self._tracks.values() if s.track.state == "tentative"]
        matched: list[tuple[_TrackState, int]] = []

        # Stage 1: high-score detections vs confirmed tracks (active and lost).
        pairs = _assign(iou_matrix(self._predicted(confirmed), dets.xyxy[high]), cfg.match_iou)
        matched += [(confirmed[r], int(high[c])) for r, c in pairs]
        used_high = {c for _, c in pairs}
        rest_high = [int(high[i]) for i in range(len(high)) if i not in used_high]
        matched_ids = {confirmed[r].track.track_id for r, _ in pairs}

        # Stage 2: low-score detections vs still-unmatched active tracks.
        remaining = [
            s for s in confirmed if s.track.track_id not in matched_ids and s.track.state == "active"
        ]
        pairs = _assign(iou_matrix(self._predicted(remaining), dets.xyxy[low]), cfg.low_match_iou)
        matched += [(remaining[r], int(low[c])) for r, c in pairs]
        matched_ids |= {remaining[r].track.track_id for r, _ in pairs}

        # Stage 3: leftover detections down to ``birth_score`` vs tentative tracks (slow births).
        used_low = {d for s_, d in matched}
        rest_birth = rest_high + [
            int(d) for d in low if int(d) not in used_low and dets.score[d] >= cfg.birth_score
        ]
        pairs = _assign(
            iou_matrix(self._predicted(tentative), dets.xyxy[rest_birth]), cfg.tentative_match_iou
        )
        matched += [(tentative[r], rest_birth[c]) for r, c in pairs]
        used = {c for _, c in pairs}
        unmatched_high = [d for i, d in enumerate(rest_birth) if i not in used]
        tentative_matched = {tentative[r].track.track_id for r, _ in pairs}

        for s, d in matched:
            self._apply(s, frame, dets, d)
        for s in tentative:
            if s.track.track_id not in tentative_matched:
                del self._tracks[s.track.track_id]
        for s in confirmed:
            if s.track.track_id not in matched_ids and s.track.state == "active":
                s.track.state = "lost"
                s.kf.freeze_scale()

        self._births(frame, dets, unmatched_high)
        self._expire(now)
        return [
            s.track for s in self._tracks.values() if s.track.state == "active" and s.track.last_pts_ms == now
        ]

    def _predicted(self, states: list[_TrackState]) -> FloatArray:
        if not states:
            return np.zeros((0, 4), np.float32)
        return np.stack([s.kf.xyxy for s in states]).astype(np.float32)

    def _apply(self, s: _TrackState, frame: Frame, dets: Detections, d: int) -> None:
        """Record detection ``d`` as the track's observation in ``frame``."""
        box = dets.xyxy[d]
        s.kf.update(box)
        s.hits += 1
        t = s.track
        t.last_pts_ms = frame.pts_ms
        t.history.append(TrackPoint(frame.pts_ms, _box_tuple(box), float(dets.score[d])))
        s.best_score = max(s.best_score, float(dets.score[d]))
        if t.state == "tentative" and len(t.history) > CONFIRM_WINDOW:
            del t.history[0]
            t.first_pts_ms = t.history[0].pts_ms
        if t.state == "lost" or (t.state == "tentative" and self._confirmed(s, frame.pts_ms)):
            t.state = "active"
        if (
            dets.score[d] >= self.config.high_score
            and frame.pts_ms - s.appearance_pts_ms >= self.config.appearance_interval_ms
            and _isolated(dets.xyxy, d)
        ):
            s.appearance.add_body(body_descriptor(frame.image, box))
            s.appearance_pts_ms = frame.pts_ms

    def _confirmed(self, s: _TrackState, now: float) -> bool:
        """A tentative track becomes active: ``min_hits`` matches once one of them scored
        ``new_track_score`` and the median of its scores reaches ``confirm_score``, else (a slow birth)
        matched in every analysed frame for ``slow_birth_ms``."""
        if s.best_score >= self.config.new_track_score:
            if s.hits < self.config.min_hits:
                return False
            if self.config.confirm_score <= 0.0:
                return True
            return float(np.median([p.score for p in s.track.history])) >= self.config.confirm_score
        return s.hits >= self.config.min_hits and now - s.track.first_pts_ms >= self.config.slow_birth_ms

    def coast(self, frame: Frame) -> list[Track]:
        """A frame the detector did not run on (every Nth frame, motion gating): tracks are predicted
        to ``frame.pts_ms`` and nothing else changes (no track is lost, born or removed). Returns the
        active tracks; their ``xyxy`` is still their last observation (``predicted_boxes`` has where
        the motion model puts them)."""
        for s in self._tracks.values():
            s.kf.predict((frame.pts_ms - s.predicted_pts_ms) / 1000.0)
            s.predicted_pts_ms = frame.pts_ms
        return [s.track for s in self._tracks.values() if s.track.state == "active"]

    def predicted_boxes(self) -> dict[int, FloatArray]:
        """Active tracks' motion-model boxes (xyxy pixels) at the last ``update`` / ``coast`` time."""
        return {tid: s.kf.xyxy for tid, s in self._tracks.items() if s.track.state == "active"}

    def _births(self, frame: Frame, dets: Detections, candidates: Iterable[int]) -> None:
        """Re-link unmatched high-score detections to lost tracks by appearance, or start new tracks."""
        lost = [s for s in self._tracks.values() if s.track.state == "lost"]
        present = [
            s
            for s in self._tracks.values()
            if s.track.state == "active" and s.track.last_pts_ms == frame.pts_ms
        ]
        for d in candidates:
            if dets.score[d] < self.config.birth_score:
                continue
            box = dets.xyxy[d]
            descriptor = body_descriptor(frame.image, box)
            high = dets.score[d] >= self.config.new_track_score
            revived = self._best_lost(lost, present, box, descriptor, frame.pts_ms) if high else None
            if revived is not None:
                lost.remove(revived)
                revived.kf = KalmanBoxFilter(box)  # the old motion says nothing after a long gap
                revived.predicted_pts_ms = frame.pts_ms
                self._apply(revived, frame, dets, d)
                revived.appearance.add_body(descriptor)
                continue
            track = Track(
                track_id=self._next_id,
                label=int(dets.label[d]),
                first_pts_ms=frame.pts_ms,
                last_pts_ms=frame.pts_ms,
                state="active"
                if self.config.min_hits <= 1 and high and dets.score[d] >= self.config.confirm_score
                else "tentative",
                history=[TrackPoint(frame.pts_ms, _box_tuple(box), float(dets.score[d]))],
            )
            self._next_id += 1
            s = _TrackState(track, box)
            s.best_score = float(dets.score[d])
            s.appearance.add_body(descriptor)
            s.appearance_pts_ms = frame.pts_ms
            self._tracks[track.track_id] = s

    def _best_lost(
        self,
        lost: list[_TrackState],
        present: list[_TrackState],
        box: FloatArray,
        descriptor: FloatArray,
        now: float,
    ) -> _TrackState | None:
        """The lost track most similar in body appearance to a new box, if similar enough, reachable, and
        unambiguous: when a person in view right now looks about as similar (within ``reid_margin``), the
        clothes do not tell people apart in this scene (groups in dark coats) and re-linking would more
        often swap identities than keep them."""
        best: _TrackState | None = None
        best_sim = self.config.reid_body_similarity
        crowd = max((s.appearance.body_similarity(descriptor) for s in present), default=-1.0)
        best_sim = max(best_sim, crowd + self.config.reid_margin)
        for s in lost:
            gap_s = max(now - s.track.last_pts_ms, 0.0) / 1000.0
            last = np.asarray(s.track.xyxy, np.float32)
            height = max(float(last[3] - last[1]), float(box[3] - box[1]), 1.0)
            dist = math.hypot(
                float(last[0] + last[2] - box[0] - box[2]) / 2, float(last[1] + last[3] - box[1] - box[3]) / 2
            )
            if dist > height * (1.0 + self.config.reid_max_speed * gap_s):
                continue
            # Perspective: the same person near the same place has about the same height; a clearly
            # taller or shorter box is someone nearer or farther away.
            ratio = float(box[3] - box[1]) / max(float(last[3] - last[1]), 1.0)
            if dist < 2.0 * height and not (
                1.0 / self.config.reid_max_scale <= ratio <= self.config.reid_max_scale
            ):
                continue
            sim = s.appearance.body_similarity(descriptor)
            if sim >= best_sim:
                best, best_sim = s, sim
        return best

    def _expire(self, now: float) -> None:
        for tid in [
            tid
            for tid, s in self._tracks.items()
            if s.track.state == "lost" and now - s.track.last_pts_ms > self.config.max_lost_ms
        ]:
            s = self._tracks.pop(tid)
            s.track.state = "removed"
            self.removed.append(s.track)

    def offer_face(self, track_id: int, face: Face) -> bool:
        """Offer a face seen on a track; it becomes the track's ``best_face`` if it scores higher
        (:func:`face_quality_score`). Returns True when it did, so the caller knows to embed it (once,
        later: the embedding is attached with :meth:`attach_face_embedding`). Unknown ids return False."""
        s = self._tracks.get(track_id)
        if s is None:
            return False
        score = face_quality_score(face)
        if s.track.best_face is not None and score <= s.track.best_face_score:
            return False
        s.track.best_face = face
        s.track.best_face_score = score
        if face.embedding is not None:
            self.attach_face_embedding(track_id, face)
        return True

    def attach_face_embedding(self, track_id: int, face: Face) -> int:
        """Attach an embedded face to a track and re-link it to a lost track of the same person.

        When a track that ended *before* this one started has a face embedding from the same embedder with
        cosine similarity >= ``reid_face_similarity``, the two are the same person: this track takes the
        older id and history (the face wins over body appearance and motion). Returns the track's id after
        re-linking, which callers must use from then on; events emitted earlier keep the old id.
        """
        s = self._tracks.get(track_id)
        if s is None:
            return track_id
        s.appearance.set_face(face)
        if s.track.best_face is None:
            s.track.best_face = face
            s.track.best_face_score = face_quality_score(face)
        best: Track | None = None
        best_sim = self.config.reid_face_similarity
        candidates = [(o.track, o.appearance) for o in self._tracks.values() if o is not s]
        for other, appearance in candidates:
            if other.last_pts_ms >= s.track.first_pts_ms:
                continue  # overlapping in time: two different people
            sim = s.appearance.face_similarity(appearance)
            if sim is not None and sim >= best_sim:
                best, best_sim = other, sim
        if best is None:
            return track_id
        older = self._tracks.pop(best.track_id)
        del self._tracks[track_id]
        merged = s.track
        merged.track_id = best.track_id
        merged.first_pts_ms = best.first_pts_ms
        merged.history = best.history + merged.history
        if best.best_face_score > merged.best_face_score and best.best_face is not None:
            merged.best_face, merged.best_face_score = best.best_face, best.best_face_score
        merged.identity = merged.identity or best.identity
        if older.appearance.body is not None:
            s.appearance.add_body(older.appearance.body)
        self._tracks[merged.track_id] = s
        return merged.track_id


def _box_tuple(box: FloatArray) -> tuple[float, float, float, float]:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _isolated(boxes: FloatArray, d: int, max_iou: float = 0.1) -> bool:
    """True when box ``d`` overlaps no other box by more than ``max_iou``: only then is its crop a clean
    sample of that person's appearance (occluders would pollute the colour histogram)."""
    if boxes.shape[0] <= 1:
        return True
    iou = iou_matrix(boxes[d : d + 1], boxes)[0]
    iou[d] = 0.0
    return bool(iou.max() <= max_iou)
