"""Appearance descriptors for re-identification, and the choice of a track's best face.

Two kinds of evidence link a new track to one that was lost (occlusion, leaving and re-entering):

* a **body descriptor**: HSV colour histograms of the torso and legs regions of the person box, so that
  clothing colours, which survive pose and scale changes, identify a person when the face is not visible.
  It is cheap (numpy on a 24x24 grid sampled from each region; the whole tracker runs ~1.3 ms per PETS
  frame) and needs no model;
* a **face embedding** (``Face.embedding`` from the face pipeline) which, when both tracks have one from
  the same embedder, wins over the body descriptor: it identifies people, not clothes.

The best face of a track is chosen by :func:`face_quality_score` (large, sharp, frontal) so the pipeline
embeds one face per track instead of one per frame.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from keeneye.core.types import Face, FloatArray, UInt8Image

# Body regions as fractions of the box (top, bottom, left, right): the head is left out (small, often
# hair or background), the sides are trimmed because the box corners are mostly background.
TORSO = (0.18, 0.55, 0.2, 0.8)
LEGS = (0.55, 0.95, 0.25, 0.75)
HUE_BINS = 12
SAT_BINS = 3
VALUE_BINS = 4
# Pixels less saturated than this have no reliable hue: they vote in the value histogram only.
MIN_SATURATION = 0.15
SAMPLES_PER_SIDE = 24
DESCRIPTOR_DIM = 2 * (HUE_BINS * SAT_BINS + VALUE_BINS)


def _region_pixels(
    image: UInt8Image, xyxy: npt.ArrayLike, region: tuple[float, float, float, float]
) -> FloatArray:
    """RGB pixels in [0, 1] sampled on a SAMPLES_PER_SIDE grid over one region of a box: (M, 3) float32."""
    h_img, w_img = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(xyxy, dtype=np.float64).reshape(4))
    top, bottom, left, right = region
    bw, bh = x2 - x1, y2 - y1
    ys = np.linspace(y1 + top * bh, y1 + bottom * bh, SAMPLES_PER_SIDE)
    xs = np.linspace(x1 + left * bw, x1 + right * bw, SAMPLES_PER_SIDE)
    ys = ys[(ys >= 0) & (ys < h_img)].astype(np.int64)
    xs = xs[(xs >= 0) & (xs < w_img)].astype(np.int64)
    if ys.size == 0 or xs.size == 0:
        return np.zeros((0, 3), np.float32)
    crop = image[np.ix_(ys, xs)]
    out: FloatArray = crop.reshape(-1, 3).astype(np.float32) / 255.0
    return out


def _hsv_histogram(rgb: FloatArray) -> FloatArray:
    """Joint hue x saturation histogram of chromatic pixels plus a value histogram of all pixels,
    normalised to unit L1 each part; (HUE_BINS * SAT_BINS + VALUE_BINS,) float32."""
    out = np.zeros(HUE_BINS * SAT_BINS + VALUE_BINS, np.float32)
    if rgb.shape[0] == 0:
        return out
    mx = rgb.max(axis=1)
    mn = rgb.min(axis=1)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.maximum(mx, 1e-6), 0.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    safe = np.maximum(delta, 1e-6)
    hue = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    hue = hue / 6.0  # [0, 1)
    chroma = sat >= MIN_SATURATION
    if np.any(chroma):
        hb = np.minimum((hue[chroma] * HUE_BINS).astype(np.int64), HUE_BINS - 1)
        sb = np.minimum(
            ((sat[chroma] - MIN_SATURATION) / (1 - MIN_SATURATION) * SAT_BINS).astype(np.int64), SAT_BINS - 1
        )
        np.add.at(out, hb * SAT_BINS + sb, 1.0)
    vb = np.minimum((mx * VALUE_BINS).astype(np.int64), VALUE_BINS - 1)
    np.add.at(out, HUE_BINS * SAT_BINS + vb, 1.0)
    out /= float(rgb.shape[0])
    return out


def body_descriptor(image: UInt8Image, xyxy: npt.ArrayLike) -> FloatArray:
    """Colour descriptor of a person box: torso and legs HSV histograms, concatenated, L2-normalised.

    image: HxWx3 uint8 RGB; xyxy: (4,) pixels. Returns (DESCRIPTOR_DIM,) float32; all zeros when the box
    lies outside the image (compares as similarity 0 with everything).
    """
    parts = [_hsv_histogram(_region_pixels(image, xyxy, region)) for region in (TORSO, LEGS)]
    vec = np.concatenate(parts).astype(np.float32)
    norm = float(np.linalg.norm(vec))
    out: FloatArray = vec / norm if norm > 0 else vec
    return out


def cosine(a: FloatArray | None, b: FloatArray | None) -> float:
    """Cosine similarity of two L2-normalised vectors in [-1, 1]; 0.0 when either is missing."""
    if a is None or b is None or a.shape != b.shape:
        return 0.0
    return float(np.dot(a, b))


def face_quality_score(face: Face) -> float:
    """How good a face is for recognition, higher is better (unbounded, >= 0).

    The product of: the square root of the box area in pixels (bigger faces carry more detail; the root
    keeps size from swamping the other terms), sharpness (``attributes["quality"]["sharpness"]``, 0-100,
    treated as 50 when unknown) and frontality ``cos(yaw)`` (``attributes["pose"]`` = (roll, yaw, pitch)
    degrees; profiles embed badly), times the detector score.
    """
    size = math.sqrt(max(face.area, 0.0))
    quality = face.attributes.get("quality")
    sharpness = 50.0
    if isinstance(quality, dict) and quality.get("sharpness") is not None:
        sharpness = float(quality["sharpness"])
    pose = face.attributes.get("pose")
    frontal = 1.0
    if isinstance(pose, (tuple, list)) and len(pose) >= 2 and pose[1] is not None:
        frontal = max(0.0, math.cos(math.radians(min(abs(float(pose[1])), 90.0))))
    return size * (0.2 + sharpness / 100.0) * (0.2 + frontal) * max(float(face.score), 0.0)


class AppearanceModel:
    """A track's appearance: a running mean of body descriptors and, when known, a face embedding.

    The body descriptor is an exponential moving average (weight ``momentum`` on the past), re-normalised,
    so one odd frame (partial occlusion, motion blur) does not replace what the track looked like.
    """

    def __init__(self, momentum: float = 0.8) -> None:
        self.momentum = momentum
        self.body: FloatArray | None = None
        self.face_embedding: FloatArray | None = None
        self.embedder_id: str | None = None

    def add_body(self, descriptor: FloatArray) -> None:
        """Fold one body descriptor (L2-normalised, all-zero ones are ignored) into the running mean."""
        if not np.any(descriptor):
            return
        if self.body is None:
            self.body = descriptor.copy()
            return
        mixed = self.momentum * self.body + (1.0 - self.momentum) * descriptor
        self.body = (mixed / max(float(np.linalg.norm(mixed)), 1e-12)).astype(np.float32)

    def set_face(self, face: Face) -> None:
        """Use this face's embedding (if it has one) as the track's face identity."""
        if face.embedding is not None:
            self.face_embedding = np.asarray(face.embedding, np.float32)
            self.embedder_id = face.embedder_id

    def face_similarity(self, other: AppearanceModel) -> float | None:
        """Cosine similarity of face embeddings, or None when either lacks one or embedders differ
        (vectors of different embedders are never compared)."""
        if (
            self.face_embedding is None
            or other.face_embedding is None
            or self.embedder_id != other.embedder_id
        ):
            return None
        return cosine(self.face_embedding, other.face_embedding)

    def body_similarity(self, descriptor: FloatArray) -> float:
        """Cosine similarity of the running body descriptor with ``descriptor`` (0 when unknown)."""
        return cosine(self.body, descriptor)
