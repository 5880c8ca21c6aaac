"""Shot cuts in edited video (PySceneDetect's content detector), so trackers do not link across them.

A tracker matches boxes by position; across a cut a face at the same place in the frame is usually
someone else (stage -> audience), and a track linked across it would hand one person's identity to
another. PySceneDetect's ``ContentDetector`` scores each frame by its change in hue, saturation,
lightness and edges from the previous one (0-255). keeneye feeds it the *sampled* frames, so camera
motion between two samples scores higher than at full rate: the threshold here (45) sits above the
scores of panning shots in ``short_hamilton_clip.mp4`` at 5 fps (<= 42) and below its three real cuts
(48-56). A false cut only splits a track (face re-identification joins the parts again); a missed cut
is caught only if the faces differ.

Frames are scored at about 256-512 px wide (shrunk by the whole factor ``width // 256``, as PySceneDetect's
own SceneManager shrinks them by default): on the Hamilton clip the cut and panning scores move by under
0.6 of 255 against full size (cuts 56.3 / 52.6 / 47.7 at 5 fps, panning at most 41.8), while scoring a
640x360 frame costs 0.4 ms instead of 1-2 ms, which a live camera pays on every analysed frame.
"""

from __future__ import annotations

import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import ContentDetector

from keeneye.core.types import UInt8Image

DEFAULT_CUT_THRESHOLD = 45.0
SCORED_WIDTH = 256
"""Frames are shrunk by the whole factor ``width // SCORED_WIDTH`` before scoring (PySceneDetect's default
minimum width)."""


class ShotCutDetector:
    """Feed it the analysed frames in order; ``is_cut`` says whether a frame starts a new shot."""

    def __init__(self, threshold: float = DEFAULT_CUT_THRESHOLD) -> None:
        self._threshold = threshold
        self._detector = ContentDetector(threshold=threshold, min_scene_len=1)
        self._index = 0
        self._shape: tuple[int, ...] | None = None

    def is_cut(self, image: UInt8Image) -> bool:
        """image: HxWx3 uint8 RGB (the detector's colour space conversion expects BGR: channels are
        swapped here). A frame of another size than the previous one is a cut."""
        height, width = image.shape[:2]
        factor = max(1, width // SCORED_WIDTH)
        if factor > 1:
            size = (max(1, width // factor), max(1, height // factor))
            image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
        bgr = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), np.uint8)
        resized = self._shape is not None and bgr.shape != self._shape
        if resized:
            # A new frame size (a camera that came back at another resolution): boxes from before mean
            # nothing now, so it is a cut, and the detector starts again (it compares same-sized frames).
            self._detector = ContentDetector(threshold=self._threshold, min_scene_len=1)
            self._index = 0
        self._shape = bgr.shape
        # The frame rate only labels timecodes inside PySceneDetect; one "frame" per analysed frame.
        cuts = self._detector.process_frame(FrameTimecode(self._index, fps=1.0), bgr)
        self._index += 1
        return resized or bool(cuts)
