"""TiledDetector: tile placement, mapping back to image pixels, cut faces dropped, NMS merge."""

from __future__ import annotations

import numpy as np
import pytest

from keeneye.core.types import Detections, UInt8Image
from keeneye.models.fake import SquaresFaceDetector
from keeneye.models.tiling import TiledDetector, tile_origins


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "want"),
    [
        (300, 512, 0.25, [0]),
        (1024, 512, 0.25, [0, 256, 512]),
        (768, 512, 0.25, [0, 256]),
        (1000, 400, 0.0, [0, 300, 600]),
    ],
)
def test_tile_origins_cover_the_axis(length: int, tile: int, overlap: float, want: list[int]) -> None:
    got = tile_origins(length, tile, overlap)
    assert got == want
    assert got[-1] + tile >= length


def test_faces_from_tiles_come_back_in_image_pixels_once() -> None:
    image = np.zeros((600, 900, 3), np.uint8)
    image[100:112, 700:712] = 255  # inside one tile only
    image[290:310, 390:410] = 255  # straddles tile edges: found whole by some tile or the full pass
    dets = TiledDetector(SquaresFaceDetector(), tile_px=400, overlap=0.25).detect(image)
    boxes = sorted(map(tuple, dets.xyxy.astype(int).tolist()))
    assert boxes == [(390, 290, 410, 310), (700, 100, 712, 112)]
    assert dets.landmarks is not None
    assert sorted(map(tuple, dets.landmarks[:, 0].astype(int).tolist())) == [(390, 290), (700, 100)]


def test_small_image_runs_once() -> None:
    calls = []

    class Counting(SquaresFaceDetector):
        def detect(self, image: UInt8Image) -> Detections:
            calls.append(image.shape)
            return super().detect(image)

    TiledDetector(Counting(), tile_px=512).detect(np.zeros((300, 400, 3), np.uint8))
    assert calls == [(300, 400, 3)]
