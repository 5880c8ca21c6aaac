"""Builds configured backends from settings: the one place that maps ``kind`` names to classes.

Imports of backend modules are lazy, so ``keeneye --help`` and unrelated commands stay fast.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from keeneye.config import DetectorSettings, EmbedderSettings, Settings
from keeneye.core.errors import BackendUnavailable, InvalidParameter
from keeneye.models.base import (
    FaceAttributeClassifier,
    FaceDetector,
    FaceEmbedder,
    FaceLandmarker,
    ObjectDetector,
)
from keeneye.models.catalog import MODELS


def model_path(models_dir: Path, model_id: str) -> Path:
    path = models_dir / MODELS[model_id].output
    if not path.is_file():
        raise BackendUnavailable(
            f"model {model_id} is not installed in {models_dir}: run `keeneye models install`"
            + ("" if MODELS[model_id].default else f" {model_id}")
        )
    return path


def _user_file(path: Path | None, kind: str) -> Path:
    if path is None:
        raise InvalidParameter(f"the {kind} backend needs a path to your ONNX file (faces.*.path)")
    if not path.is_file():
        raise BackendUnavailable(f"{kind} model file {path} does not exist")
    return path


def _user_embedder_id(kind: str, path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{kind}-{digest}"


def build_detector(cfg: DetectorSettings, models_dir: Path) -> FaceDetector:
    """The configured face detector, wrapped to run over tiles too when ``tile_px`` is set."""
    detector = _base_detector(cfg, models_dir)
    if cfg.tile_px:
        from keeneye.models.tiling import TiledDetector

        return TiledDetector(detector, cfg.tile_px)
    return detector


def _base_detector(cfg: DetectorSettings, models_dir: Path) -> FaceDetector:
    threshold = cfg.score_threshold
    if cfg.kind == "blazeface":
        from keeneye.models.human import BlazeFaceDetector

        return BlazeFaceDetector(model_path(models_dir, "human-blazeface"), score_threshold=threshold)
    if cfg.kind == "mtcnn":
        from keeneye.models.mtcnn import MtcnnDetector

        return MtcnnDetector(
            *(model_path(models_dir, f"mtcnn-{net}") for net in ("pnet", "rnet", "onet")),
            min_face_px=cfg.mtcnn_min_face_px,
            thresholds=(*cfg.mtcnn_stage_thresholds, 0.7),
            score_threshold=threshold,
            full_scale_pixels=cfg.mtcnn_full_scale_pixels,
        )
    if cfg.kind == "scrfd":
        from keeneye.models.insightface import ScrfdDetector

        return ScrfdDetector(_user_file(cfg.path, "scrfd"), score_threshold=threshold)
    from keeneye.models.opencv_zoo import YuNetDetector

    return YuNetDetector(_user_file(cfg.path, "yunet"), score_threshold=threshold)


def build_embedder(cfg: EmbedderSettings, models_dir: Path) -> tuple[FaceEmbedder, list[FaceLandmarker]]:
    """The embedder and the landmarkers it needs for alignment."""
    if cfg.kind in ("dlib-resnet", "dlib+faceres"):
        from keeneye.models.dlib import DlibResNetEmbedder, DlibShapeLandmarker

        dlib: FaceEmbedder = DlibResNetEmbedder(
            model_path(models_dir, "dlib-resnet-v1"), flip_tta=cfg.flip_tta
        )
        landmarkers: list[FaceLandmarker] = [DlibShapeLandmarker(model_path(models_dir, "dlib-shape5"))]
        if cfg.kind == "dlib-resnet":
            return dlib, landmarkers
        from keeneye.models.fusion import FusedEmbedder
        from keeneye.models.human import FaceResEmbedder

        w_dlib, w_faceres = cfg.fusion_weights
        faceres = FaceResEmbedder(model_path(models_dir, "human-faceres"))
        fused_id = f"dlib-resnet-v1+human-faceres@{w_dlib:g}:{w_faceres:g}"
        return FusedEmbedder([(dlib, w_dlib), (faceres, w_faceres)], embedder_id=fused_id), landmarkers
    if cfg.kind == "human-faceres":
        from keeneye.models.human import FaceResEmbedder

        return FaceResEmbedder(model_path(models_dir, "human-faceres")), []
    if cfg.kind == "arcface":
        from keeneye.models.insightface import ArcFaceEmbedder

        path = _user_file(cfg.path, "arcface")
        return ArcFaceEmbedder(path, embedder_id=_user_embedder_id("arcface", path)), []
    from keeneye.models.opencv_zoo import SFaceEmbedder

    path = _user_file(cfg.path, "sface")
    return SFaceEmbedder(path, embedder_id=_user_embedder_id("sface", path)), []


def build_classifiers(
    settings: Settings, faceres: FaceAttributeClassifier | None = None
) -> list[FaceAttributeClassifier]:
    """Attribute models; ``faceres``, when the embedder already loaded FaceRes, is reused for age/gender."""
    attrs, models_dir = settings.faces.attributes, settings.models_dir
    out: list[FaceAttributeClassifier] = []
    if attrs.expression == "faceapi":
        from keeneye.models.faceapi import FaceApiExpression

        out.append(FaceApiExpression(model_path(models_dir, "faceapi-expression")))
    elif attrs.expression == "fer":
        from keeneye.models.fer import FerExpressionClassifier

        out.append(FerExpressionClassifier(model_path(models_dir, "fer-minixception")))
    elif attrs.expression == "human":
        from keeneye.models.human import HumanEmotionClassifier

        out.append(HumanEmotionClassifier(model_path(models_dir, "human-emotion")))
    if attrs.age_gender in ("faceapi+faceres", "faceapi"):
        from keeneye.models.faceapi import FaceApiAgeGender, FusedAgeGender

        faceapi = FaceApiAgeGender(model_path(models_dir, "faceapi-age-gender"))
        if attrs.age_gender == "faceapi":
            out.append(faceapi)
        else:
            from keeneye.models.human import FaceResEmbedder

            out.append(
                FusedAgeGender(faceapi, faceres or FaceResEmbedder(model_path(models_dir, "human-faceres")))
            )
    elif attrs.age_gender == "faceres":
        from keeneye.models.human import FaceResEmbedder

        out.append(faceres or FaceResEmbedder(model_path(models_dir, "human-faceres")))
    return out


def loaded_faceres(embedder: FaceEmbedder | None) -> FaceAttributeClassifier | None:
    """The FaceRes instance inside the (possibly fused) embedder, so its model is loaded only once."""
    from keeneye.models.fusion import FusedEmbedder
    from keeneye.models.human import FaceResEmbedder

    parts = [e for e, _ in embedder.parts] if isinstance(embedder, FusedEmbedder) else [embedder]
    return next(
        (e for e in parts if isinstance(e, FaceResEmbedder) and e.embedder_id == "human-faceres"), None
    )


# Above any score (scores are in [0, 1]): CenterNet's other COCO classes never come out of a person detector.
_DROP_CLASS = 2.0


def build_person_detector(settings: Settings) -> ObjectDetector:
    """The configured video person detector (``settings.persons``); its ``label`` 0 is ``person``.

    CenterNet keeps only class ``person`` (every other COCO class gets a threshold above any score);
    NanoDet and MoveNet decode the person class only; the ensemble pools its members' boxes (NMS).
    HOG needs no model file; its scores are a logistic of the SVM margin (keeneye.models.hog).
    ``persons.score_threshold`` is the lowest score returned.
    """
    cfg = settings.persons
    if cfg.kind == "hog":
        from keeneye.models.hog import HogPersonDetector

        return HogPersonDetector(upscale=cfg.hog_upscale, score_threshold=cfg.score_threshold)
    from keeneye.models import onnx_runtime

    onnx_runtime.configure(settings.threads)
    detector: ObjectDetector
    if cfg.kind == "ensemble":
        from keeneye.models.ensemble import EnsemblePersonDetector

        # The members side by side, the cores shared between them (see EnsemblePersonDetector).
        share = onnx_runtime.intra_op_threads() // len(cfg.ensemble)
        members = [_person_model(settings, kind, max(share, 1)) for kind in cfg.ensemble]
        detector = EnsemblePersonDetector(members, parallel=share >= 1)
    else:
        detector = _person_model(settings, cfg.kind)
    if cfg.tile_px:
        from keeneye.models.tiling import TiledPersonDetector

        return TiledPersonDetector(detector, cfg.tile_px)
    return detector


def _person_model(settings: Settings, kind: str, threads: int | None = None) -> ObjectDetector:
    """One person-detector model (not HOG, not the ensemble) at ``persons.score_threshold``;
    ``threads``: its intra-op threads (None: the process default)."""
    cfg, models_dir = settings.persons, settings.models_dir
    if kind == "nanodet":
        from keeneye.models.nanodet import NanoDetPersonDetector

        return NanoDetPersonDetector(
            model_path(models_dir, "human-nanodet"),
            score_threshold=cfg.score_threshold,
            canvas=cfg.nanodet_canvas,
            threads=threads,
        )
    if kind == "movenet":
        from keeneye.models.movenet import MoveNetPersonDetector

        return MoveNetPersonDetector(
            model_path(models_dir, "human-movenet-multipose"),
            score_threshold=cfg.score_threshold,
            input_size=cfg.input_size,
            threads=threads,
        )
    from keeneye.models.human import CenterNetPersonDetector

    return CenterNetPersonDetector(
        model_path(models_dir, "human-centernet"),
        class_thresholds={"person": cfg.score_threshold},
        default_threshold=_DROP_CLASS,
        resize=cfg.resize,
        input_size=cfg.input_size,
        threads=threads,
    )
