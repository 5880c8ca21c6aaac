"""Builders for test inputs: real-looking image files made on the fly (never stored in the repo)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(image: np.ndarray | Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(height: int = 60, width: int = 90) -> np.ndarray:
    """An RGB test card: red grows left to right, green top to bottom, blue constant."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return np.stack([x, y, np.full_like(x, 64)], axis=2).astype(np.uint8)


def huge_png(width: int = 12_000, height: int = 9_000) -> bytes:
    """A 108-megapixel PNG of a few kilobytes: a decompression bomb in miniature."""
    return encode(Image.new("1", (width, height)), "PNG", optimize=True)


def with_exif_orientation(image: np.ndarray, orientation: int) -> bytes:
    img = Image.fromarray(image)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)
