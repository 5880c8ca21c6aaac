"""Still-image decoding with the checks a service needs before any pixel is decoded.

The format is sniffed from the bytes (JPEG/PNG magic numbers), never from a file name. The pixel
count is read from the header and refused above the limit, so decompression bombs cost nothing.
EXIF orientation is applied, so a phone photo comes out upright. Output is ``HxWx3 uint8 RGB``.

Memory is bounded by what is decoded, not by the file: a 5 KB one-bit PNG of 6300x6300 is 40 MB in
Pillow's one byte per pixel and was 670 MB on its way through RGB and the detector. So:

* an image over ``max_decoded_pixels`` is decoded at a reduced size, by the smallest whole factor that
  brings it under (a JPEG by its decoder's DCT scaling, 1/2 to 1/8, without decoding the full size;
  other images decoded in their own mode, then reduced by averaging): face analysis shrinks images to
  its detector's input anyway;
* the conversion to RGB (a paletted or one-bit image grows 3x, through RGBA 4x) runs in bands of rows,
  straight into the output array, never as a whole RGB(A) copy of the full image;
* with a :class:`~keeneye.core.budget.Budget` of pixels, the pixels Pillow decodes are taken from it
  before decoding (:class:`~keeneye.core.errors.ServerBusy` if they do not fit) and, once reduced,
  the output's pixels stay taken until the returned array is freed: pixels in flight, server-wide.
"""

from __future__ import annotations

import io
import math
import re
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from keeneye.core.budget import Budget
from keeneye.core.errors import ImageTooLarge, InvalidImage, ServerBusy
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
# Rows converted to RGB at once: about this many pixels (a band of a 6300-wide image is 166 rows, 4 MB
# as RGBA), so no whole-image RGB(A) copy is ever made.
BAND_PIXELS = 1 << 20
# EXIF orientation -> what turns the stored image upright (ImageOps.exif_transpose's table, on arrays).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


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
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decoded_pixels: int | None = None,
    budget: Budget | None = None,
) -> UInt8Image:
    """Bytes of a JPEG/PNG -> upright ``HxWx3 uint8 RGB``, reduced to at most ``max_decoded_pixels``
    (width x height; None: full size) by the smallest whole factor (see the module docstring).

    Raises InvalidImage (empty, not JPEG/PNG, truncated, corrupt), ImageTooLarge (bytes or pixels over
    the limit) or ServerBusy (``budget`` has not the pixels to decode it now). Alpha is dropped
    (composited on black, as transparent pixels carry no face).
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
        if max_decoded_pixels is not None and fmt == "JPEG":
            factor = reduction(width, height, max_decoded_pixels)
            if factor > 1:  # the decoder scales by 1/2, 1/4 or 1/8, at most by ``factor``
                img.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
        decoded = img.size[0] * img.size[1]
        if budget is not None and not budget.take(decoded):
            raise ServerBusy(
                "too many image pixels are being decoded or analysed "
                f"({budget.capacity / 1e6:.0f} megapixels at once); retry"
            )
        try:
            img.load()
            factor = 1 if max_decoded_pixels is None else reduction(*img.size, max_decoded_pixels)
            out = _upright(_to_rgb(img, factor), img)
        except BaseException:
            if budget is not None:
                budget.give(decoded)
            raise
    if budget is not None:  # what stays in flight: the output, until it is freed
        kept = out.shape[0] * out.shape[1]
        budget.give(decoded - kept)
        weakref.finalize(out, budget.give, kept)
    return out


def reduction(width: int, height: int, max_pixels: int) -> int:
    """The smallest whole factor ``f`` (1, 2, 3, ...) with ``ceil(width / f) * ceil(height / f)`` at most
    ``max_pixels``: how much an image is reduced when decoded."""
    factor = max(1, math.ceil(math.sqrt(width * height / max(1, max_pixels))))
    while math.ceil(width / factor) * math.ceil(height / factor) > max_pixels:
        factor += 1
    return factor


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


def _to_rgb(img: Image.Image, factor: int) -> UInt8Image:
    """A loaded image in any mode -> ``HxWx3 uint8 RGB``, reduced by ``factor`` (box average), converted a
    band of rows at a time into the output array. Bands are whole multiples of ``factor`` rows, so the
    result is the same as converting, then reducing, the whole image."""
    width, height = img.size
    if width < 1 or height < 1:
        raise InvalidImage(f"unexpected decoded image size {width}x{height}")
    out = np.empty((math.ceil(height / factor), math.ceil(width / factor), 3), np.uint8)
    rows = max(factor, BAND_PIXELS // width // factor * factor)
    for top in range(0, height, rows):
        band = _rgb_band(img.crop((0, top, width, min(height, top + rows))))
        if factor > 1:
            band = band.reduce(factor)
        part = np.asarray(band, dtype=np.uint8)
        if part.ndim != 3 or part.shape[2] != 3:
            raise InvalidImage(f"unexpected decoded image shape {part.shape}")
        out[top // factor : top // factor + part.shape[0]] = part
    return out


def _rgb_band(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img if img.mode == "RGB" else img.convert("RGB")


def _upright(pixels: UInt8Image, img: Image.Image) -> UInt8Image:
    """``pixels`` (decoded from ``img``) turned as its EXIF orientation says, contiguous."""
    orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return pixels if turn is None else np.ascontiguousarray(turn(pixels))


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
