"""Redacting one image: every face obscured, except those that match the collection to keep."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import decode_image, sniff_format
from keeneye.config import ImageLimits
from keeneye.core.types import UInt8Image
from keeneye.pipeline.identification import Searcher
from keeneye.service.faces.collections import FaceMatch
from keeneye.service.governance.redaction.face_regions import (
    DEFAULT_MARGIN,
    BoxMargin,
    RedactedFace,
    RedactionMode,
    enlarge,
    kept_face,
    min_side,
    obscure,
    overlapping_faces,
    xyxy_tuple,
)


@dataclass
class ImageRedaction:
    """A redacted image: ``image`` the encoded bytes (``format`` JPEG or PNG: the input's, unless asked
    otherwise; EXIF and other metadata are not carried over), its size, and every face region."""

    image: bytes
    format: str
    width: int
    height: int
    faces: list[RedactedFace]

    @property
    def redacted(self) -> list[RedactedFace]:
        return [f for f in self.faces if not f.kept]

    @property
    def kept(self) -> list[RedactedFace]:
        return [f for f in self.faces if f.kept]


def redact_pixels(
    image: UInt8Image,
    analyzer: FaceAnalyzer,
    *,
    mode: RedactionMode = "blur",
    margin: BoxMargin = DEFAULT_MARGIN,
    search: Searcher | None = None,
    min_embed_px: int = 16,
) -> tuple[UInt8Image, list[RedactedFace]]:
    """Redact one decoded image (HxWx3 uint8 RGB); returns the obscured copy and the face regions.
    ``search``: faces whose embedding matches it are kept visible (faces under ``min_embed_px`` on a side,
    and faces overlapping another face, are always obscured)."""
    height, width = image.shape[:2]
    faces = analyzer.analyze(image, attributes="none")
    overlapping = overlapping_faces(faces)
    matches: dict[int, list[FaceMatch]] = {}
    if search is not None:
        candidates = [
            i for i, f in enumerate(faces) if i not in overlapping and min_side(f.xyxy) >= min_embed_px
        ]
        analyzer.embed(image, [faces[i] for i in candidates])
        for i in candidates:
            emb, embedder_id = faces[i].embedding, faces[i].embedder_id
            assert emb is not None and embedder_id is not None
            found = search(emb, embedder_id)
            if found:
                matches[i] = found
    out: list[RedactedFace] = []
    for i, face in enumerate(faces):
        if i in matches:
            out.append(kept_face(face, matches[i]))
        else:
            box = enlarge(face.xyxy, margin, width, height)
            out.append(RedactedFace(xyxy_tuple(face.xyxy), box, round(float(face.score), 4)))
    return obscure(image, [f.box for f in out if f.box is not None], mode), out


def redact_image(
    data: bytes,
    analyzer: FaceAnalyzer,
    *,
    mode: RedactionMode = "blur",
    margin: BoxMargin = DEFAULT_MARGIN,
    search: Searcher | None = None,
    output_format: Literal["JPEG", "PNG"] | None = None,
    limits: ImageLimits | None = None,
    jpeg_quality: int = 92,
) -> ImageRedaction:
    """Image bytes (JPEG/PNG) in, redacted image bytes out: what a native API endpoint calls.

    output_format: JPEG or PNG (default: the input's). Raises InvalidImage / ImageTooLarge for bad input
    (``limits``: the service's image limits)."""
    lim = limits or ImageLimits()
    fmt = output_format or sniff_format(data)
    pixels = decode_image(data, max_bytes=lim.max_bytes, max_pixels=lim.max_pixels)
    redacted, faces = redact_pixels(pixels, analyzer, mode=mode, margin=margin, search=search)
    buffer = io.BytesIO()
    img = Image.fromarray(redacted)
    if fmt == "JPEG":
        img.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        img.save(buffer, format="PNG")
    return ImageRedaction(buffer.getvalue(), fmt, int(pixels.shape[1]), int(pixels.shape[0]), faces)
