"""Redacting one image: every face obscured, except those that match the collection to keep."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import decode_image, reduction, sniff_format
from keeneye.config import ImageLimits
from keeneye.core.budget import Budget
from keeneye.core.errors import InvalidImage
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
    photo_faces,
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
    faces = find_regions(image, analyzer, margin=margin, search=search, min_embed_px=min_embed_px)
    return obscure(image, [f.box for f in faces if f.box is not None], mode), faces


def find_regions(
    image: UInt8Image,
    analyzer: FaceAnalyzer,
    *,
    margin: BoxMargin = DEFAULT_MARGIN,
    search: Searcher | None = None,
    min_embed_px: int = 16,
    size: tuple[int, int] | None = None,
) -> list[RedactedFace]:
    """The face regions of ``image`` (HxWx3 uint8 RGB), to obscure or (matching ``search``) to keep, as
    :func:`redact_pixels` describes; ``size``: the (width, height) of the image they are for when
    ``image`` is a reduced copy of it (boxes are scaled up to it; ``min_embed_px`` counts in ``image``)."""
    height, width = image.shape[:2]
    full_w, full_h = size or (width, height)
    scale = np.array([full_w / width, full_h / height] * 2, np.float32)
    faces = photo_faces(analyzer, image)
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
        if size is not None:
            face = dataclasses.replace(face, xyxy=(face.xyxy * scale).astype(np.float32))
        if i in matches:
            out.append(kept_face(face, matches[i]))
        else:
            box = enlarge(face.xyxy, margin, full_w, full_h)
            out.append(RedactedFace(xyxy_tuple(face.xyxy), box, round(float(face.score), 4)))
    return out


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
    budget: Budget | None = None,
) -> ImageRedaction:
    """Image bytes (JPEG/PNG) in, redacted image bytes out: what a native API endpoint calls.

    output_format: JPEG or PNG (default: the input's). Raises InvalidImage / ImageTooLarge for bad input
    (``limits``: the service's image limits), ServerBusy when the image's pixels do not fit ``budget``
    (the server's pixels in flight).

    The answer is the whole image, so it is decoded at full size; faces are found in a copy reduced to
    ``limits.max_analysed_pixels`` (as every analysis sees large images), the regions obscured in the
    decoded image itself and encoded from it: beside the decoded image (3 bytes a pixel) only that copy
    and the encoder's output are held (a 40-megapixel PNG: about 250 MB at the peak, was 675 MB)."""
    lim = limits or ImageLimits()
    fmt = output_format or sniff_format(data)
    pixels = decode_image(data, max_bytes=lim.max_bytes, max_pixels=lim.max_pixels, budget=budget)
    height, width = pixels.shape[:2]
    analysed = reduced(pixels, lim.max_analysed_pixels)
    faces = find_regions(analysed, analyzer, margin=margin, search=search, size=(width, height))
    del analysed
    obscure(pixels, [f.box for f in faces if f.box is not None], mode, in_place=True)
    return ImageRedaction(encode(pixels, fmt, jpeg_quality), fmt, width, height, faces)


def reduced(pixels: UInt8Image, max_pixels: int | None) -> UInt8Image:
    """``pixels`` reduced by the smallest whole factor that brings them to ``max_pixels`` (box average,
    as keeneye.analysis.images decodes large images); the same array when they fit (or no limit)."""
    height, width = pixels.shape[:2]
    factor = 1 if max_pixels is None else reduction(width, height, max_pixels)
    if factor == 1:
        return pixels
    size = (math.ceil(width / factor), math.ceil(height / factor))
    return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), np.uint8)


def encode(pixels: UInt8Image, fmt: str, jpeg_quality: int = 92) -> bytes:
    """``pixels`` (HxWx3 uint8 RGB, **turned to BGR in place**: the caller's last use of them) as JPEG or
    PNG bytes, without metadata. OpenCV encodes from the array itself (Pillow would first copy it into
    its own 4-bytes-a-pixel image: 160 MB for 40 megapixels)."""
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR, dst=pixels)
    if fmt == "JPEG":
        ok, out = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    else:  # zlib level 6, as Pillow writes PNGs (OpenCV's default, 1, makes larger files)
        ok, out = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise InvalidImage(f"the redacted image could not be encoded as {fmt}")
    return out.tobytes()
