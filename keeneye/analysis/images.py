"""Still-image decoding with the checks a service needs before any pixel is decoded.

The format is sniffed from the bytes (JPEG/PNG magic numbers), never from a file name. The pixel
count is read from the header and refused above the limit, so decompression bombs cost nothing.
EXIF orientation is applied, so a phone photo comes out upright. Output is ``HxWx3 uint8 RGB``.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keeneye.core.errors import ImageTooLarge, InvalidImage
from keeneye.core.types import UInt8Image

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

DEFAULT_MAX_BYTES = 15 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
# A progressive JPEG is decoded scan by scan, each a pass over the whole image, and a scan of a flat
# image is a few bytes: an 83 KB 16-megapixel JPEG of 650 scans takes 9 s to decode on 2 cores (5 MB
# of them, hours). Encoders write 1 (baseline) to about 10 (progressive) scans (at most 14 in the 2,000
# JPEGs of ../shared/data); 50 bounds a 40-megapixel decode to about 3 s (100 scans: 5.3 s).
MAX_JPEG_SCANS = 50
_SOS = b"\xff\xda"  # start of scan: in entropy-coded data 0xFF is always followed by 0x00 or RSTn


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
    # Counted over the whole file, so a marker in metadata (an EXIF thumbnail's scan) counts too: an
    # upper bound, far below the limit for real photos.
    if fmt == "JPEG" and (scans := data.count(_SOS)) > MAX_JPEG_SCANS:
        raise ImageTooLarge(
            f"the JPEG has {scans} scans; the limit is {MAX_JPEG_SCANS} (each scan is a pass over the image)"
        )
    with _pillow_errors(fmt, max_pixels):
        img = _open_header(data, fmt)
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"the image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                f"the limit is {max_pixels / 1e6:.1f} megapixels"
            )
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels as the header states them (before EXIF orientation), read without
    decoding a pixel. Raises InvalidImage when there is no readable JPEG/PNG header."""
    fmt = sniff_format(data)
    with _pillow_errors(fmt):
        width, height = _open_header(data, fmt).size
    return int(width), int(height)


def _open_header(data: bytes, fmt: str) -> Image.Image:
    """Pillow's lazy open: the header is parsed, no pixel is decoded."""
    return Image.open(io.BytesIO(data), formats=[fmt])


@contextmanager
def _pillow_errors(fmt: str, max_pixels: int | None = None) -> Iterator[None]:
    """Pillow's ways of saying "bad file" as InvalidImage (too big: ImageTooLarge), and its warnings
    silenced: it warns on huge images (our limit is stricter and clearer) and on damaged ones it
    decodes anyway ("Invalid APNG", bad EXIF), which are the sender's problem, not the server log's.
    The filter names Pillow's modules only, so if threads interleave catch_warnings (it swaps a
    process-wide list) the worst outcome is Pillow's warnings staying silenced."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=Warning, module=r"PIL(\.|$)")
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            yield
    except (ImageTooLarge, InvalidImage):
        raise
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (at twice its MAX_IMAGE_PIXELS) fired first, in open; it names the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too large to decode safely"
        limit = f"; the limit is {max_pixels / 1e6:.1f} megapixels" if max_pixels is not None else ""
        raise ImageTooLarge(f"the image is {size}{limit}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"the {fmt} image is truncated or corrupt ({exc})") from exc


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
