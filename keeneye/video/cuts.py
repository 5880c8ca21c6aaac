"""Shot cuts in edited video (PySceneDetect's content detector), so trackers do not link across them.

A tracker matches boxes by position; across a cut a face at the same place in the frame is usually
someone else (stage -> audience), and a track linked across it would hand one person's identity to
another. PySceneDetect's ``ContentDetector`` scores each frame by its change in hue, saturation,
lightness and edges from the previous one (0-255). keeneye feeds it the *sampled* frames, so camera
motion between two samples scores higher than at full rate: the threshold here (45) sits above the
scores of panning shots in ``short_hamilton_clip.mp4`` at 5 fps (<= 42) and below its three real cuts
(48-56). A false cut only splits a track (face re-identification joins the parts again); a missed cut
is caught only if the faces differ.
"""

from __future__ import annotations

from scenedetect import FrameTimecode
from scenedetect.detectors import ContentDetector

from keeneye.core.types import UInt8Image

DEFAULT_CUT_THRESHOLD = 45.0


class ShotCutDetector:
    """Feed it the analysed frames in order; ``is_cut`` says whether a frame starts a new shot."""

    def __init__(self, threshold: float = DEFAULT_CUT_THRESHOLD) -> None:
        self._detector = ContentDetector(threshold=threshold, min_scene_len=1)
        self._index = 0

    def is_cut(self, image: UInt8Image) -> bool:
        """image: HxWx3 uint8 RGB (the detector's colour space conversion expects BGR: channels are
        swapped here)."""
        # The frame rate only labels timecodes inside PySceneDetect; one "frame" per analysed frame.
        cuts = self._detector.process_frame(FrameTimecode(self._index, fps=1.0), image[:, :, ::-1].copy())
        self._index += 1
        return bool(cuts)
