"""Still-image decoding with the checks a service needs before any pixel is decoded.

The format is sniffed from the bytes (JPEG/PNG magic numbers), never from a file name. The pixel
count is read from the header and refused above the limit, so decompression bombs cost nothing.
EXIF orientation is applied, so a phone photo comes out upright. Output is ``HxWx3 uint8 RGB``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keeneye.core.errors import ImageTooLarge, InvalidImage
from keeneye.core.types import UInt8Image

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

DEFAULT_MAX_BYTES = 15 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000


def sniff_format(data: bytes) -> str:
    """``"JPEG"`` or ``"PNG"`` from the magic bytes; InvalidImage for anything else."""
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    if data.startswith(PNG_MAGIC):
        return "PNG"
    raise InvalidImage("not a JPEG or PNG image (unrecognised content; only JPEG and PNG are supported)")


def decode_image(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> UInt8Image:
    """Bytes of a JPEG/PNG -> upright ``HxWx3 uint8 RGB``.

    Raises InvalidImage (empty, not JPEG/PNG, truncated, corrupt) or ImageTooLarge (bytes or pixels
    over the limit). Alpha is dropped (composited on black, as transparent pixels carry no face).
    """
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    fmt = sniff_format(data)
    try:
        with warnings.catch_warnings():
            # Pillow warns (and at 2x errors) on huge images; our own limit below is stricter and clearer.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"the image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                    f"the limit is {max_pixels / 1e6:.1f} megapixels"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
    except (ImageTooLarge, InvalidImage):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image is too large to decode safely: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"the {fmt} image is truncated or corrupt ({exc})") from exc
    return _to_rgb(img)


def _to_rgb(img: Image.Image) -> UInt8Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidImage(f"unexpected decoded image shape {arr.shape}")
    return np.ascontiguousarray(arr)


def read_image_file(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> UInt8Image:
    """Read and decode a local file (CLI use); the size is checked before reading it all."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidImage(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise InvalidImage(f"{path} is not a file")
    if size > max_bytes:
        raise ImageTooLarge(f"{path} is {size} bytes; the limit is {max_bytes} bytes")
    return decode_image(path.read_bytes(), max_bytes=max_bytes, max_pixels=max_pixels)
