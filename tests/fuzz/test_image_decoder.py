"""Fuzzing the image decoder: hostile bytes give an image, InvalidImage or ImageTooLarge, and quickly.

Inputs are real JPEG/PNG files (from ../shared/data and small ones encoded here with the features a
decoder trips on: EXIF orientation, palettes with transparency, 16-bit, interlacing, progressive
JPEG) with bytes overwritten, cut, duplicated or inserted, PNG chunks edited with valid CRCs, and
random bytes behind a valid magic number. Anything else (a KeyError from an EXIF parser, a
MemoryError from a header that lies about the size) would reach a client as a 500.
"""

from __future__ import annotations

import io
import time
import zlib
from functools import cache

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageFile

from keeneye.analysis.images import JPEG_MAGIC, MAX_JPEG_SCANS, PNG_MAGIC, decode_image, image_size
from keeneye.core.errors import ImageTooLarge, InvalidImage
from tests.factories import encode, with_exif_orientation
from tests.fuzz.strategies import SHARED_DATA, fuzz_settings, mutated, png_from_chunks, png_mutated

SHARED = SHARED_DATA / "faces" / "face_recognition"
# Small limits keep every decode fast; the limits themselves are part of what is fuzzed.
MAX_PIXELS = 2_000_000


@cache
def seeds() -> dict[str, bytes]:
    """Small valid images, each exercising another decoder path."""
    rng = np.random.default_rng(7)
    photo = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    real = SHARED / "obama_small.jpg"
    if real.is_file():
        small = Image.open(real)
        small.draft("RGB", (80, 80))
        photo = np.asarray(small.convert("RGB").resize((56, 40)))
    palette = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    out = {
        "jpeg": encode(photo, "JPEG", quality=80),
        "jpeg-progressive": encode(photo, "JPEG", progressive=True, quality=60),
        "jpeg-exif": with_exif_orientation(photo, 6),
        "png-rgb-interlaced": encode(photo, "PNG", interlace=1),  # Pillow reads Adam7
        "png-palette-trns": encode(palette, "PNG"),
        "png-rgba": encode(Image.fromarray(photo).convert("RGBA"), "PNG"),
        "png-16bit-grey": encode(Image.fromarray(photo[..., 0].astype(np.uint16) * 257), "PNG"),
    }
    if real.is_file():
        out["real-jpeg"] = real.read_bytes()
    return out


def check(data: bytes) -> None:
    """The decoder's whole contract on one input."""
    started = time.perf_counter()
    try:
        img = decode_image(data, max_pixels=MAX_PIXELS)
    except (InvalidImage, ImageTooLarge) as exc:
        assert exc.message  # a reason a client can read
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.shape[0] * img.shape[1] <= MAX_PIXELS
    assert time.perf_counter() - started < 2.0


SEED_NAMES = sorted(seeds())


@pytest.mark.parametrize("name", SEED_NAMES)
def test_seeds_decode(name: str) -> None:
    assert decode_image(seeds()[name]).shape[2] == 3


@fuzz_settings(max_examples=300, deadline_s=2.0)
@given(st.sampled_from(SEED_NAMES).flatmap(lambda name: mutated(seeds()[name])))
def test_mutated_images(data: bytes) -> None:
    check(data)


@fuzz_settings(max_examples=200, deadline_s=2.0)
@given(
    st.sampled_from([n for n in SEED_NAMES if n.startswith("png")]).flatmap(
        lambda name: png_mutated(seeds()[name])
    )
)
def test_png_chunks_with_valid_crcs(data: bytes) -> None:
    check(data)


@fuzz_settings(max_examples=150, deadline_s=2.0)
@given(st.sampled_from([b"", JPEG_MAGIC, PNG_MAGIC]), st.binary(max_size=2048))
def test_random_bytes(prefix: bytes, tail: bytes) -> None:
    check(prefix + tail)


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header says ``width x height`` (1-bit grey) with the first rows of black pixels:
    a few kilobytes that would be ``width x height`` bytes once decoded."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    row = b"\0" * (1 + (width + 7) // 8)
    idat = zlib.compress(row * 64, 9)
    return png_from_chunks([(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b"")])


def test_decompression_bomb_refused_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """30000 x 30000 = 900 megapixels in a few KB: refused before a pixel is decoded (load is never
    called, so nothing is allocated), in milliseconds, whatever Pillow's own bomb limit is."""
    data = bomb_png(30_000, 30_000)
    assert len(data) < 1_000

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own guard off: ours must hold
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="30000x30000"):
        decode_image(data)
    assert time.perf_counter() - started < 0.1
    assert image_size(data) == (30_000, 30_000)


def test_bomb_message_names_our_limit_when_pillows_guard_fires_first() -> None:
    """Pillow refuses > 179 MP itself, in open; the client still reads the size and keeneye's limit."""
    with pytest.raises(ImageTooLarge, match=r"^the image is 900.0 megapixels; the limit is 40.0 megapixels$"):
        decode_image(bomb_png(30_000, 30_000))


def test_jpeg_bomb_refused_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for a JPEG whose SOF header claims 60000 x 60000."""
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60_000).to_bytes(2, "big") * 2
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageTooLarge, match="60000x60000"):
        decode_image(bytes(data))


def test_truncated_image_is_not_padded() -> None:
    """Pillow's LOAD_TRUNCATED_IMAGES (a process-wide switch) stays off: half a photo is refused."""
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    data = seeds()["jpeg"]
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])
    with pytest.raises(InvalidImage):
        decode_image(io.BytesIO(seeds()["png-rgba"]).read()[:-40])


def many_scans_jpeg(width: int, height: int, scans: int) -> bytes:
    """A progressive JPEG of a flat grey image with its smallest scan repeated up to ``scans`` scans:
    each repeat is a few bytes and one more pass over the whole image for the decoder."""
    data = encode(Image.new("L", (width, height), 128), "JPEG", progressive=True)
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    end = data.rindex(b"\xff\xd9")
    bounds = [*starts[1:], end]
    smallest = min((data[a:b] for a, b in zip(starts, bounds, strict=True)), key=len)
    return data[:end] + smallest * (scans - len(starts)) + b"\xff\xd9"


def test_jpeg_with_hundreds_of_scans_is_refused_before_decoding() -> None:
    """650 scans of a 16-megapixel image: 83 KB that took 9 s of CPU to decode; now refused at once."""
    data = many_scans_jpeg(4000, 4000, 650)
    assert len(data) < 100_000
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="650 scans; the limit is 50"):
        decode_image(data)
    assert time.perf_counter() - started < 0.05


def test_jpeg_at_the_scan_limit_decodes() -> None:
    assert decode_image(many_scans_jpeg(256, 256, MAX_JPEG_SCANS)).shape == (256, 256, 3)
