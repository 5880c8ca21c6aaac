"""Score fusion: the cosine of fused vectors is the weighted mean of the parts' cosines."""

from __future__ import annotations

import numpy as np

from keeneye.core.types import Face
from keeneye.models.fake import TableEmbedder
from keeneye.models.fusion import FusedEmbedder


def test_fused_cosine_is_weighted_mean_of_part_cosines() -> None:
    rng = np.random.default_rng(0)
    a = TableEmbedder(rng.normal(size=(2, 128)).astype(np.float32), "a", ("eyeLeft",))
    b = TableEmbedder(rng.normal(size=(2, 1024)).astype(np.float32), "b", ("eyeLeft", "nose"))
    fused = FusedEmbedder([(a, 0.83), (b, 0.17)])
    faces = [Face(xyxy=np.zeros(4, np.float32), score=1.0) for _ in range(2)]
    v = fused.embed(np.zeros((8, 8, 3), np.uint8), faces)
    assert v.shape == (2, 1152) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-6)
    ca = float(a.vectors[0] @ a.vectors[1])
    cb = float(b.vectors[0] @ b.vectors[1])
    assert abs(float(v[0] @ v[1]) - (0.83 * ca + 0.17 * cb)) < 1e-5
    assert fused.required_landmarks == ("eyeLeft", "nose")
    assert fused.embedder_id == "fusion(a*0.83+b*0.17)"
    assert fused.embed(np.zeros((8, 8, 3), np.uint8), []).shape == (0, 1152)
