"""Score-level fusion of several face embedders, presented as one embedder.

Each part's L2-normalised vector is scaled by ``sqrt(w_i)`` and the parts are concatenated and
divided by ``sqrt(sum w)``. The result is again a unit vector, and the cosine of two fused vectors
is the weighted mean of the parts' cosines::

    cos(a, b) = sum_i w_i * cos_i(a_i, b_i) / sum_i w_i

So a vector index with plain inner product search gets fused scores for free, and a collection
built with a fused embedder is searched exactly like any other. Weights account for the parts'
different score spreads (see docs/models.md for how the default weights were chosen).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keeneye.core.types import Face, FloatArray, UInt8Image
from keeneye.models.base import FaceEmbedder


class FusedEmbedder:
    """Concatenation of weighted unit vectors from ``parts`` (embedder, weight > 0)."""

    def __init__(self, parts: Sequence[tuple[FaceEmbedder, float]], embedder_id: str | None = None) -> None:
        if not parts or any(w <= 0 for _, w in parts):
            raise ValueError("fusion needs at least one embedder, each with a positive weight")
        self.parts = list(parts)
        total = sum(w for _, w in parts)
        self._scales = [float(np.sqrt(w / total)) for _, w in parts]
        self.dim = sum(e.dim for e, _ in parts)
        self.embedder_id = (
            embedder_id or "fusion(" + "+".join(f"{e.embedder_id}*{w:g}" for e, w in parts) + ")"
        )
        names: list[str] = []
        for e, _ in parts:
            names.extend(n for n in e.required_landmarks if n not in names)
        self.required_landmarks = tuple(names)

    def embed(self, image: UInt8Image, faces: Sequence[Face]) -> FloatArray:
        """(N, dim) unit vectors: each part's vectors scaled by sqrt(w_i / sum w) side by side."""
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        blocks = [e.embed(image, faces) * s for (e, _), s in zip(self.parts, self._scales, strict=True)]
        out: FloatArray = np.concatenate(blocks, axis=1).astype(np.float32)
        return out
