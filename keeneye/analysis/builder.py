"""The configured face pipeline: the detector, embedder, landmarkers, face mesh and attribute models the
settings name (keeneye.models.registry builds each), assembled into one :class:`FaceAnalyzer`.

Here rather than in keeneye.models: models know nothing of the analysis built on them (the layering).
"""

from __future__ import annotations

from keeneye.analysis.confidence import calibration_for
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.models import onnx_runtime
from keeneye.models.facemesh import FaceMeshAnalysis
from keeneye.models.registry import (
    build_classifiers,
    build_detector,
    build_embedder,
    loaded_faceres,
    model_path,
)


def build_face_analyzer(
    settings: Settings, *, with_embedder: bool = True, live_frames: bool = False
) -> FaceAnalyzer:
    """The configured face pipeline (models load and warm up here, not at import time).

    Photos use ``faces.detector``; video frames (``FaceAnalyzer.analyze(..., video_frame=True)``) use
    ``faces.video_detector``, built once and shared when both settings are the same.

    ``live_frames``: for live camera streams only, whose frames mostly hold no face: the video detector
    for everything (the photo detector is not loaded) and no second look in a padded copy
    (``faces.detector.pad_retry``), which would cost one more detector pass on each such frame
    (BlazeFace on 640x480: 12 -> 25 ms) for faces filling the frame, rare in a camera's view.
    """
    onnx_runtime.configure(settings.threads)
    models_dir = settings.models_dir
    faces = settings.faces
    video_cfg = faces.video_detector
    video_detector = build_detector(video_cfg, models_dir)
    photo_cfg = video_cfg if live_frames else faces.detector
    same = photo_cfg.model_dump() == video_cfg.model_dump()
    detector = video_detector if same else build_detector(photo_cfg, models_dir)
    embedder, landmarkers = build_embedder(faces.embedder, models_dir) if with_embedder else (None, [])
    dense = None
    if faces.attributes.mesh:
        dense = FaceMeshAnalysis(model_path(models_dir, "human-facemesh"))
    return FaceAnalyzer(
        detector=detector,
        embedder=embedder,
        landmarkers=landmarkers,
        classifiers=build_classifiers(settings, loaded_faceres(embedder)),
        dense=dense,
        min_face_px=photo_cfg.min_face_px,
        calibrate=photo_cfg.calibrate,
        pad_retry=0.0 if live_frames else photo_cfg.pad_retry,
        video_detector=video_detector,
        video_min_face_px=video_cfg.min_face_px,
        video_confidence=calibration_for(video_detector.name) if video_cfg.calibrate else None,
    )
