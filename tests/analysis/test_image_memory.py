"""Decoding within a memory bound (issue 13, item 6): large images decoded at a reduced size, the RGB
conversion in bands, the pixels in flight taken from a budget; the one-bit PNG that cost 670 MB
decoded within a bound measured in a subprocess."""

from __future__ import annotations

import gc
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keeneye.analysis.images import decode_image, reduction
from keeneye.core.budget import Budget
from keeneye.core.errors import InvalidImage, ServerBusy
from tests.factories import encode, gradient, with_exif_orientation

SIDE = 6300  # 39.7 megapixels, under the 40 MP limit


def _png(img: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def one_bit_png(side: int = SIDE) -> bytes:
    """The finding: a one-bit PNG of ``side`` x ``side``, a few KB; white square in the top-left quarter."""
    img = Image.new("1", (side, side), 0)
    img.paste(1, (0, 0, side // 2, side // 2))
    return _png(img)


@pytest.mark.parametrize(
    ("width", "height", "limit", "factor"),
    [
        (4000, 3000, 16_000_000, 1),
        (6300, 6300, 16_000_000, 2),
        (7900, 5000, 16_000_000, 2),
        (100, 100, 2500, 2),
        (100, 100, 99, 12),
    ],
)
def test_reduction_is_the_smallest_whole_factor_under_the_limit(
    width: int, height: int, limit: int, factor: int
) -> None:
    assert reduction(width, height, limit) == factor


def test_large_png_is_decoded_reduced_with_its_content_in_place() -> None:
    data = one_bit_png()
    assert len(data) < 10_000
    img = decode_image(data, max_decoded_pixels=16_000_000)
    assert img.shape == (3150, 3150, 3)
    assert img[:1575, :1575].min() == 255 and img[1575:, :].max() == 0 and img[:, 1575:].max() == 0


def test_large_jpeg_is_decoded_reduced_by_its_decoder() -> None:
    card = np.repeat(np.repeat(gradient(50, 80), 100, axis=0), 100, axis=1)  # 8000 x 5000
    data = encode(card, "JPEG")
    img = decode_image(data, max_decoded_pixels=16_000_000)
    assert img.shape == (2500, 4000, 3)
    assert img[1250, 3900, 0] > img[1250, 100, 0] + 150  # red still grows to the right
    assert decode_image(data).shape == (5000, 8000, 3)  # no limit: full size


@pytest.mark.parametrize("factor", [1, 3])
@pytest.mark.parametrize("mode", ["P+transparency", "LA", "RGBA", "1", "L"])
def test_banded_conversion_equals_converting_the_whole_image(mode: str, factor: int) -> None:
    """Bands of rows convert exactly as the whole image would (then reduced by box averaging)."""
    rng = np.random.default_rng(1)
    height, width = 1100, 1000  # more than one band of BAND_PIXELS at factor 1 and 3
    if mode == "P+transparency":
        img = Image.fromarray(rng.integers(0, 8, (height, width), dtype=np.uint8), "P")
        img.putpalette([v for i in range(256) for v in (i * 30 % 256, 255 - i, 7 * i % 256)])
        data = _png(img, transparency=3)
    else:
        channels = {"LA": 2, "RGBA": 4, "1": 1, "L": 1}[mode]
        pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, "L" if channels == 1 else mode)
        data = _png(img.convert(mode))
    # The whole image, as decode_image converted it before it worked in bands.
    reference: Image.Image = Image.open(io.BytesIO(data))
    if reference.mode in ("RGBA", "LA") or "transparency" in reference.info:
        reference = reference.convert("RGBA")
        reference = Image.alpha_composite(Image.new("RGBA", reference.size, (0, 0, 0, 255)), reference)
    reference = reference.convert("RGB")
    expected = np.asarray(reference.reduce(factor) if factor > 1 else reference)
    limit = None if factor == 1 else 334 * 367  # 1000 x 1100 at 1/3; at 1/2 it would be 500 x 550
    assert limit is None or reduction(width, height, limit) == 3
    got = decode_image(data, max_decoded_pixels=limit)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_exif_orientation_is_applied_to_the_reduced_image() -> None:
    card = np.repeat(np.repeat(gradient(60, 90), 40, axis=0), 40, axis=1)  # 3600 x 2400
    img = decode_image(with_exif_orientation(card, 6), max_decoded_pixels=1_000_000)  # 1/4 by the decoder
    assert img.shape == (900, 600, 3)  # upright: turned 90 degrees clockwise
    assert img[850, 300, 0] > img[50, 300, 0] + 150


def test_decoded_pixels_are_taken_from_the_budget_until_the_image_is_freed() -> None:
    budget = Budget(20_000_000, "pixels")
    img = decode_image(one_bit_png(), max_decoded_pixels=16_000_000, budget=budget)
    assert budget.in_use == 3150 * 3150  # the output's pixels, not the 39.7 MP decoded on the way
    with pytest.raises(ServerBusy, match="megapixels at once"):  # 39.7 MP do not fit beside them
        decode_image(one_bit_png(), budget=budget)
    assert budget.in_use == 3150 * 3150  # the refused image took nothing
    del img
    gc.collect()
    assert budget.in_use == 0


def test_a_failed_decode_gives_its_pixels_back() -> None:
    budget = Budget(20_000_000, "pixels")
    data = encode(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8), "PNG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2], budget=budget)
    assert budget.in_use == 0


_MEASURE = """
import json, re, sys
from keeneye.analysis.images import decode_image

def status_mb(field):
    return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

data = open(sys.argv[1], "rb").read()
limit = int(sys.argv[2]) or None
try:
    open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from the current RSS
except OSError:
    pass
before = status_mb("VmRSS")
image = decode_image(data, max_decoded_pixels=limit)
print(json.dumps({"shape": image.shape, "peak_mb": status_mb("VmHWM") - before}))
"""


def _peak_mb(path: Path, limit: int) -> tuple[list[int], float]:
    """Decode ``path`` in a fresh interpreter: the output's shape and how far its peak RSS (VmHWM, Linux)
    rose over its RSS before (ru_maxrss would not do: it keeps the parent's peak across exec)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    return result["shape"], float(result["peak_mb"])


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from Linux's /proc")
def test_one_bit_png_decodes_within_a_memory_bound(tmp_path: Path) -> None:
    """The 6300x6300 one-bit PNG of the finding (670 MB through the server, 417 MB to decode alone):
    for analysis (reduced to 16 MP) the decoder's peak grows by about 75 MB (40 MB of Pillow's one byte
    per pixel, 30 MB of RGB output); at full size (redaction) about 170 MB (the RGB output is 119 MB)."""
    path = tmp_path / "one-bit.png"
    path.write_bytes(one_bit_png())
    shape, reduced_mb = _peak_mb(path, 16_000_000)
    assert shape == [3150, 3150, 3] and reduced_mb < 120
    shape, full_mb = _peak_mb(path, 0)
    assert shape == [SIDE, SIDE, 3] and full_mb < 220
