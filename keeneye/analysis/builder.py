"""The configured face pipeline: the detector, embedder, landmarkers, face mesh and attribute models the
settings name (keeneye.models.registry builds each), assembled into one :class:`FaceAnalyzer`.

Here rather than in keeneye.models: models know nothing of the analysis built on them (the layering).
"""

from __future__ import annotations

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

    ``live_frames``: for live camera streams, whose frames mostly hold no face: no second look in a padded
    copy (``faces.detector.pad_retry``), which would cost one more detector pass on each such frame
    (BlazeFace on 640x480: 12 -> 25 ms) for faces filling the frame, rare in a camera's view.
    """
    onnx_runtime.configure(settings.threads)
    models_dir = settings.models_dir
    faces = settings.faces
    detector = build_detector(faces.detector, models_dir)
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
        min_face_px=faces.detector.min_face_px,
        calibrate=faces.detector.calibrate,
        pad_retry=0.0 if live_frames else faces.detector.pad_retry,
    )
