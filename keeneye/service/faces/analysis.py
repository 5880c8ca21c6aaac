"""Face use cases the adapters call: DetectFaces and CompareFaces on image bytes.

Returns plain results (``Face`` objects plus image size); the AWS layer turns them into shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import decode_image
from keeneye.analysis.quality_filter import QualityFilter, quality_reasons
from keeneye.analysis.similarity import calibration_for, cosine
from keeneye.config import ImageLimits
from keeneye.core.budget import Budget
from keeneye.core.errors import InvalidParameter
from keeneye.core.types import Face, UInt8Image

MAX_COMPARE_TARGET_FACES = 100  # Rekognition compares against the 100 largest target faces

# Attribute keys (analysis/faces.py) each Rekognition attribute name needs.
ATTRIBUTE_KEYS = {
    "AGE_RANGE": "age",
    "GENDER": "gender",
    "EMOTIONS": "emotions",
    "SMILE": "emotions",
    "EYES_OPEN": "eyes_open",
    "MOUTH_OPEN": "mouth_open",
}


@dataclass
class AnalyzedImage:
    width: int
    height: int
    faces: list[Face]


@dataclass
class CompareResult:
    source: AnalyzedImage  # faces[0] is the source face used
    target: AnalyzedImage
    matches: list[tuple[Face, float]] = field(default_factory=list)  # (target face, Similarity 0-100)
    unmatched: list[Face] = field(default_factory=list)


@dataclass
class FaceService:
    """Face analysis of image bytes. ``budget``: the server's pixels in flight (ServerBusy when an image
    does not fit; None: no bound, as in the CLI)."""

    analyzer: FaceAnalyzer
    limits: ImageLimits = field(default_factory=lambda: ImageLimits())
    budget: Budget | None = None

    def decode(self, data: bytes | UInt8Image) -> UInt8Image:
        """Bytes are decoded under the configured limits, large images at a reduced size
        (``limits.max_analysed_pixels``: the answers are ratios of the decoded size), their pixels taken
        from ``budget`` until the array is freed; an already decoded RGB array passes through."""
        if isinstance(data, np.ndarray):
            return data
        return decode_image(
            data,
            max_bytes=self.limits.max_bytes,
            max_pixels=self.limits.max_pixels,
            max_decoded_pixels=self.limits.max_analysed_pixels,
            budget=self.budget,
        )

    def detect_faces(
        self, image_bytes: bytes | UInt8Image, extras: frozenset[str] = frozenset()
    ) -> AnalyzedImage:
        """All faces with Rekognition's DEFAULT attributes, plus the extra attribute names asked for."""
        image = self.decode(image_bytes)
        want = frozenset(ATTRIBUTE_KEYS[e] for e in extras if e in ATTRIBUTE_KEYS)
        faces = self.analyzer.analyze(image, attributes="all" if want else "default", want=want)
        return AnalyzedImage(image.shape[1], image.shape[0], faces)

    def compare_faces(
        self,
        source_bytes: bytes | UInt8Image,
        target_bytes: bytes | UInt8Image,
        similarity_threshold: float = 80.0,
        quality_filter: QualityFilter = "NONE",
    ) -> CompareResult:
        """The largest source face against up to 100 target faces, matches sorted by Similarity.

        ``quality_filter`` (CompareFaces' QualityFilter, default NONE): faces below that bar are not
        compared, as Rekognition does: a source face below it is no source face (InvalidParameter),
        target faces below it are in neither the matches nor the unmatched faces."""
        if not 0 <= similarity_threshold <= 100:
            raise InvalidParameter("SimilarityThreshold must be between 0 and 100")
        quality_reasons(Face(np.zeros(4, np.float32), 1.0), quality_filter)  # validates the name
        src_img = self.decode(source_bytes)
        tgt_img = self.decode(target_bytes)
        filtering = quality_filter != "NONE"
        src_faces = self.analyzer.analyze(
            src_img, attributes="default" if filtering else "none", embed=False, max_faces=1
        )
        src_faces = [f for f in src_faces if not quality_reasons(f, quality_filter)]
        if not src_faces:
            raise InvalidParameter("there are no faces in the source image; it should contain at least 1")
        self.analyzer.embed(src_img, src_faces)
        tgt_faces = self.analyzer.analyze(
            tgt_img,
            attributes="all",
            embed=False,
            max_faces=MAX_COMPARE_TARGET_FACES,
            want=frozenset({"emotions"}),
        )
        tgt_faces = [f for f in tgt_faces if not quality_reasons(f, quality_filter)]
        if tgt_faces:
            self.analyzer.embed(tgt_img, tgt_faces)
        result = CompareResult(
            AnalyzedImage(src_img.shape[1], src_img.shape[0], src_faces),
            AnalyzedImage(tgt_img.shape[1], tgt_img.shape[0], tgt_faces),
        )
        if not tgt_faces:
            return result
        source = src_faces[0]
        assert source.embedding is not None and source.embedder_id is not None
        sims = calibration_for(source.embedder_id).similarity(
            cosine(
                source.embedding[None, :],
                np.stack([f.embedding for f in tgt_faces if f.embedding is not None]),
            )
        )[0]
        for face, sim in zip(tgt_faces, sims, strict=True):
            if float(sim) >= similarity_threshold:
                result.matches.append((face, float(sim)))
            else:
                result.unmatched.append(face)
        result.matches.sort(key=lambda m: -m[1])
        return result
