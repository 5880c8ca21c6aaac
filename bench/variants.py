"""The embedder configurations the LFW benchmarks compare (name -> faces settings)."""

from __future__ import annotations

from typing import Any

_NO_ATTRS = {"expression": "none", "age_gender": "none", "mesh": False}

VARIANTS: dict[str, dict[str, Any]] = {
    "dlib+faceres": {"embedder": {"kind": "dlib+faceres"}, "attributes": _NO_ATTRS},
    "dlib-resnet": {"embedder": {"kind": "dlib-resnet", "flip_tta": False}, "attributes": _NO_ATTRS},
    "dlib-resnet+flip": {"embedder": {"kind": "dlib-resnet", "flip_tta": True}, "attributes": _NO_ATTRS},
    "human-faceres": {"embedder": {"kind": "human-faceres"}, "attributes": _NO_ATTRS},
}
