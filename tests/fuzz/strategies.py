"""Hypothesis strategies and settings shared by the fuzz tests.

Every fuzz test runs under the ``fuzz`` settings: a fixed number of examples, derandomized (the same
examples on every run, so CI is repeatable and bounded), no example database, and a per-example
deadline that turns a hang into a failure. ``KEENEYE_FUZZ_EXAMPLES`` raises the count for a longer
local hunt (``KEENEYE_FUZZ_EXAMPLES=5000 pytest tests/fuzz``).
"""

from __future__ import annotations

import os
import zlib
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Chunks a PNG decoder must survive, inserted anywhere with random payloads.
EXTRA_CHUNKS = [b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tRNS", b"PLTE", b"IDAT", b"acTL", b"fcTL"]
# ../shared/data as tests/conftest.py finds it (the fuzzers run without it, on their own seeds only).
SHARED_DATA = Path(
    os.environ.get("KEENEYE_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")
)
EXAMPLES = int(os.environ.get("KEENEYE_FUZZ_EXAMPLES", "0")) or None


def fuzz_settings(max_examples: int, deadline_s: float) -> settings:
    """Bounded, repeatable settings: ``max_examples`` (or ``KEENEYE_FUZZ_EXAMPLES``), a deadline for
    each example."""
    return settings(
        max_examples=EXAMPLES or max_examples,
        deadline=timedelta(seconds=deadline_s),
        derandomize=EXAMPLES is None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` after a few random edits: bytes overwritten, a slice cut out or duplicated, random bytes
    inserted, or the tail cut off (a truncated upload)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        kind = draw(st.sampled_from(["overwrite", "cut", "duplicate", "insert", "truncate", "flip"]))
        # Half the edits land in the first 1 KB: headers, where parsers make their decisions.
        at = draw(st.integers(0, min(len(data), 1024) - 1) | st.integers(0, len(data) - 1))
        if kind == "overwrite":
            new = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(new)] = new
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            end = min(len(data), at + draw(st.integers(1, 256)))
            data[at:at] = data[at:end]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[at:]
    return bytes(data)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, payload)`` of each chunk of a PNG (CRCs dropped)."""
    out, at = [], 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        out.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def png_from_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG from ``(type, payload)`` chunks, with correct lengths and CRCs."""
    parts = [b"\x89PNG\r\n\x1a\n"]
    for kind, payload in chunks:
        body = kind + payload
        parts.append(len(payload).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big"))
    return b"".join(parts)


@st.composite
def png_mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """A PNG whose chunk payloads (IHDR, PLTE, tRNS, IDAT, text, eXIf ...) are edited, inserted or
    dropped *with valid CRCs*, so the edits get past the CRC check into the decoder proper."""
    chunks = png_chunks(seed)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(chunks) - 1))
        kind, payload = chunks[i]
        action = draw(st.sampled_from(["edit", "drop", "insert", "resize"]))
        if action == "edit" and payload:
            payload = draw(mutated(payload))
            chunks[i] = (kind, payload)
        elif action == "drop" and len(chunks) > 2:
            del chunks[i]
        elif action == "insert":
            new_kind = draw(st.sampled_from(EXTRA_CHUNKS))
            chunks.insert(i, (new_kind, draw(st.binary(max_size=64))))
        elif action == "resize" and kind == b"IHDR" and len(payload) == 13:
            width = draw(st.integers(0, 2**31))
            height = draw(st.integers(0, 2**31))
            depth = draw(st.sampled_from([0, 1, 2, 4, 8, 16, 3]))
            colour = draw(st.sampled_from([0, 2, 3, 4, 6, 1, 7]))
            size = width.to_bytes(4, "big") + height.to_bytes(4, "big")
            payload = size + bytes([depth, colour]) + payload[10:]
            chunks[i] = (kind, payload)
    return png_from_chunks(chunks)
