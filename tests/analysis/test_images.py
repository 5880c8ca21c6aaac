from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keeneye.analysis.images import decode_image, sniff_format
from keeneye.core.errors import ImageTooLarge, InvalidImage
from tests.factories import encode, gradient, huge_png, with_exif_orientation


def test_jpeg_and_png_decode_to_rgb_uint8() -> None:
    card = gradient()
    for fmt in ("PNG", "JPEG"):
        img = decode_image(encode(card, fmt))
        assert img.shape == (60, 90, 3) and img.dtype == np.uint8
        # Red grows to the right, green downwards: channel order is RGB, not BGR.
        assert img[30, 85, 0] > img[30, 5, 0] + 150
        assert img[55, 45, 1] > img[5, 45, 1] + 150


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (b"hello, this is text and not an image", "not a JPEG or PNG"),
        (b"GIF89a" + b"\0" * 100, "not a JPEG or PNG"),
    ],
)
def test_not_an_image_is_refused_with_a_reason(data: bytes, needle: str) -> None:
    with pytest.raises(InvalidImage, match=needle):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_invalid(fmt: str) -> None:
    data = encode(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8), fmt)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_refused_from_the_header() -> None:
    data = huge_png()
    assert len(data) < 200_000  # tiny file ...
    with pytest.raises(ImageTooLarge, match="megapixels"):  # ... refused before its 108 MP are decoded
        decode_image(data)


def test_byte_limit() -> None:
    with pytest.raises(ImageTooLarge, match="bytes"):
        decode_image(encode(gradient(), "PNG"), max_bytes=100)


def test_content_is_sniffed_not_the_extension(tmp_path: Path) -> None:
    png_named_jpg = tmp_path / "photo.jpg"
    png_named_jpg.write_bytes(encode(gradient(), "PNG"))
    assert sniff_format(png_named_jpg.read_bytes()) == "PNG"
    assert decode_image(png_named_jpg.read_bytes()).shape == (60, 90, 3)


def test_exif_orientation_is_applied() -> None:
    card = gradient(60, 90)
    img = decode_image(with_exif_orientation(card, 6))  # 6: stored rotated, display rotated 90 deg CW
    assert img.shape == (90, 60, 3)
    # After a 90 deg clockwise turn the (red-growing) x axis runs top to bottom.
    assert img[85, 30, 0] > img[5, 30, 0] + 150


def test_rgba_png_from_real_data(shared_data: Path) -> None:
    img = decode_image((shared_data / "faces/face_recognition/32bit.png").read_bytes())
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
