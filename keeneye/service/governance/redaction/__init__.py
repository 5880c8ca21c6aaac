"""Bystander redaction: every face in an image or a video is obscured, except the faces of a collection
the caller asks to keep (docs/redaction.md).

Recall comes first: a face left visible is the failure that matters, an obscured patch of wall is not.

* The face detector runs at :data:`REDACTION_SCORE_THRESHOLD` (below the 0.65 that DetectFaces uses,
  measured in docs/redaction.md) and keeps faces of any size it finds (``min_face_px`` 1).
* Each detected box is enlarged by :data:`DEFAULT_MARGIN` (BlazeFace's boxes are tight: brows to mouth;
  the margin takes in hair, ears and chin) before it is obscured.
* In a video, faces are tracked (keeneye's tracker on face boxes, as StartFaceSearch does). A face the
  detector misses for a few frames keeps being obscured at its track's *predicted* box (the last box moved
  by the track's recent velocity, enlarged further the longer it is unseen) for up to ``keep_lost_ms``
  (1 s). Tracks end at shot cuts, so a prediction never lands on the next shot.
* With ``--fps`` below the video's rate, the frames between two analysed frames are obscured with the boxes
  of *both* (and, for a face seen in both, the box spanning its two positions); every frame is written.

What "kept" means (``search`` given): a face is left visible only when the track it belongs to has been
matched to the collection (:class:`~keeneye.pipeline.identification.TrackFaceIdentifier` embeds a track's
first usable face at once and, while unmatched, retries every :data:`RETRY_MS`, at most 6 times); until
then it is obscured like any other. A newly embedded face of the track must itself match. A kept face is
obscured again when its box overlaps another face (the tracker could swap the two) and, after its track
was lost and found again, until a new search of the re-found face matches again: a person who steps
into the place where a kept person was is not shown on the strength of the other's match. A lost kept
track's predicted box is not obscured (it is the kept person, unseen). A face under ``min_embed_px`` is
never embedded, so never kept.

Nothing un-redacted is written: frames are obscured in memory before they reach the encoder, and the
video is written to a temporary name beside the output and renamed only when complete (deleted on error).

The package, by what it redacts:

* ``face_regions.py``: box margins and the obscuring modes, the face pipeline
  (:func:`build_redaction_analyzer`), :class:`RedactedFace`, and :func:`unobscured` (the check);
* ``images.py``: :func:`redact_image` / :func:`redact_pixels`;
* ``video.py``: :func:`redact_video` (tracking, prediction, keeping, the frames in between).
"""

from __future__ import annotations

from keeneye.service.governance.redaction.face_regions import (
    DEFAULT_MARGIN,
    KEPT_OVERLAP_IOU,
    REDACTION_MODES,
    REDACTION_SCORE_THRESHOLD,
    BoxMargin,
    RedactedFace,
    RedactionMode,
    build_redaction_analyzer,
    enlarge,
    obscure,
    redaction_settings,
    unobscured,
)
from keeneye.service.governance.redaction.images import ImageRedaction, redact_image, redact_pixels
from keeneye.service.governance.redaction.video import (
    KEEP_LOST_MS,
    RETRY_MS,
    FrameRedaction,
    KeptTrack,
    RedactionProgress,
    VideoRedaction,
    between,
    predicted_box,
    redact_video,
    redaction_tracker_config,
)

__all__ = [
    "DEFAULT_MARGIN",
    "KEEP_LOST_MS",
    "KEPT_OVERLAP_IOU",
    "REDACTION_MODES",
    "REDACTION_SCORE_THRESHOLD",
    "RETRY_MS",
    "BoxMargin",
    "FrameRedaction",
    "ImageRedaction",
    "KeptTrack",
    "RedactedFace",
    "RedactionMode",
    "RedactionProgress",
    "VideoRedaction",
    "between",
    "build_redaction_analyzer",
    "enlarge",
    "obscure",
    "predicted_box",
    "redact_image",
    "redact_pixels",
    "redact_video",
    "redaction_settings",
    "redaction_tracker_config",
    "unobscured",
]
