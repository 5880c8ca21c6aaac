"""Settings, loaded once at the entry point and passed down.

Every field has a default and a description; environment variables with the ``KEENEYE_`` prefix
override them (nested fields with ``__``, e.g. ``KEENEYE_FACES__EMBEDDER__KIND=human-faceres``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorSettings(_Strict):
    kind: Literal["blazeface", "scrfd", "yunet"] = Field(
        "blazeface",
        description="Face detector: the bundled BlazeFace, or a user-supplied SCRFD/YuNet ONNX file",
    )
    path: Path | None = Field(None, description="ONNX file for user-supplied detectors (scrfd, yunet)")
    score_threshold: float = Field(
        0.65,
        ge=0,
        le=1,
        description="Minimum detector score (0-1) to keep a face "
        "(0.65: chosen on dlib's annotated photos and "
        "the no-face set, see docs/models.md)",
    )
    min_face_px: int = Field(
        16, ge=1, description="Faces whose box is smaller than this (either side) are dropped"
    )


class EmbedderSettings(_Strict):
    kind: Literal["dlib-resnet", "human-faceres", "arcface", "sface"] = Field(
        "dlib-resnet",
        description="Face descriptor: bundled dlib ResNet (default), human faceres, or a user file",
    )
    path: Path | None = Field(None, description="ONNX file for user-supplied embedders (arcface, sface)")
    flip_tta: bool = Field(
        True, description="Average the descriptor of the face and its mirror image (better accuracy, 2x cost)"
    )


class AttributeSettings(_Strict):
    expression: Literal["fer", "human", "none"] = Field(
        "fer", description="Facial expression model (apparent expression, not inner emotion)"
    )
    age_gender: bool = Field(True, description="Estimate AgeRange and Gender with human's faceres heads")
    mesh: bool = Field(
        True, description="Dense landmarks (human facemesh): Landmarks, Pose, EyesOpen, MouthOpen"
    )


class FacesSettings(_Strict):
    detector: DetectorSettings = Field(default_factory=DetectorSettings, description="Face detection")
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings, description="Face descriptor")
    attributes: AttributeSettings = Field(default_factory=AttributeSettings, description="Face attributes")


class ImageLimits(_Strict):
    max_bytes: int = Field(15 * 1024 * 1024, description="Largest encoded image accepted (bytes)")
    max_pixels: int = Field(
        40_000_000,
        description="Largest decoded image (width x height), checked from the header before decoding",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KEENEYE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(
        Path("var"), description="Where models, databases and files live (KEENEYE_DATA_DIR)"
    )
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads per model (0: runtime default)")
    faces: FacesSettings = Field(default_factory=FacesSettings, description="Face analysis pipeline")
    images: ImageLimits = Field(default_factory=ImageLimits, description="Limits on input images")

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"
