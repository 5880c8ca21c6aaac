"""What a stream processor is: the parts of its CreateStreamProcessor request keeneye checks and keeps,
and keeneye's own options (native API ``PUT /v1/stream-processors/{name}/options``).

* RegionsOfInterest (BoundingBox or Polygon, ratio coordinates) become polygons;
* ConnectedHome labels: PERSON only (ALL means PERSON), MinConfidence 0-100;
* a FaceSearch collection is the one of the processor's region (keeneye.core.regions);
* options: directed ``lines`` and ``zones`` for ConnectedHome person tracks, ``record_interval_s``,
  ``target_fps`` (lines and zones are parsed as the worker parses them: keeneye.streams.supervisor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keeneye.core import regions
from keeneye.core.errors import InvalidParameter
from keeneye.streams.worker import line_of, zone_of

SUPPORTED_LABELS = ("PERSON",)


@dataclass(frozen=True)
class ProcessorInfo:
    """A processor as DescribeStreamProcessor shows it (the request's AWS shapes kept as given)."""

    name: str
    arn: str
    status: str
    status_message: str | None
    created_at: datetime
    updated_at: datetime
    request: dict[str, Any]
    options: dict[str, Any]
    session_id: str | None


@dataclass(frozen=True)
class ProcessorOptions:
    """keeneye's own options of a processor (native API), validated."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    record_interval_s: float | None = None
    target_fps: float | None = None

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> ProcessorOptions:
        """``{"lines": [{"name", "p1": [x, y], "p2": [x, y], "hysteresis"?}], "zones": [{"name", "polygon":
        [[x, y], ...]}], "record_interval_s": s, "target_fps": n}`` (all optional, ratio coordinates)."""
        unknown = set(raw) - {"lines", "zones", "record_interval_s", "target_fps"}
        if unknown:
            raise InvalidParameter(
                f"unknown options {sorted(unknown)}: lines, zones, record_interval_s, target_fps"
            )
        lines, zones = list(raw.get("lines") or []), list(raw.get("zones") or [])
        try:
            for line in lines:
                line_of(line)
            for zone in zones:
                zone_of(zone)
        except (TypeError, ValueError, KeyError) as err:
            raise InvalidParameter(
                f"bad line or zone ({err}): a line is {{'name': 'door', 'p1': [0.1, 0.5], "
                "'p2': [0.9, 0.5]}, a zone {'name': 'lobby', 'polygon': [[x, y], ...]} "
                "in 0-1 ratio coordinates"
            ) from None
        names = [x["name"] for x in lines + zones]
        if len(set(names)) != len(names):
            raise InvalidParameter("line and zone names must be unique")
        interval, fps = raw.get("record_interval_s"), raw.get("target_fps")
        for value, what in ((interval, "record_interval_s"), (fps, "target_fps")):
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise InvalidParameter(f"{what} must be a number > 0")
        return ProcessorOptions(lines, zones, interval, fps)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lines": self.lines, "zones": self.zones}
        if self.record_interval_s is not None:
            out["record_interval_s"] = self.record_interval_s
        if self.target_fps is not None:
            out["target_fps"] = self.target_fps
        return out


def regions_of_interest(rois: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[float, float], ...]]:
    """RegionsOfInterest (each a BoundingBox or a Polygon of 3+ points, ratio coordinates) as polygons."""
    out: list[tuple[tuple[float, float], ...]] = []
    for i, roi in enumerate(rois):
        box, polygon = roi.get("BoundingBox"), roi.get("Polygon")
        if (box is None) == (polygon is None):
            raise InvalidParameter(f"RegionsOfInterest[{i}] needs exactly one of BoundingBox or Polygon")
        if box is not None:
            left, top = float(box.get("Left", 0)), float(box.get("Top", 0))
            width, height = float(box.get("Width", 0)), float(box.get("Height", 0))
            if width <= 0 or height <= 0:
                raise InvalidParameter(f"RegionsOfInterest[{i}].BoundingBox needs Width and Height > 0")
            out.append(((left, top), (left + width, top), (left + width, top + height), (left, top + height)))
        else:
            points = tuple((float(p.get("X", 0)), float(p.get("Y", 0))) for p in polygon or ())
            if len(points) < 3:
                raise InvalidParameter(f"RegionsOfInterest[{i}].Polygon needs at least 3 points")
            out.append(points)
    return out


# What of a CreateStreamProcessor request is stored (DescribeStreamProcessor gives it back).
REQUEST_KEYS = (
    "Input",
    "Output",
    "Settings",
    "RoleArn",
    "Tags",
    "NotificationChannel",
    "KmsKeyId",
    "RegionsOfInterest",
    "DataSharingPreference",
)


def collection_key(processor: str, collection_id: str) -> str:
    """The store key of a FaceSearch collection: the one of the processor's region."""
    return regions.scoped_key(regions.split_key(processor)[0], collection_id)


def labels_of(labels: Sequence[str]) -> list[str]:
    """ConnectedHome labels as keeneye reads them: ALL is PERSON."""
    return ["PERSON" if label == "ALL" else label for label in labels]


def check_connected_home(labels: Sequence[str], min_confidence: float | None) -> None:
    if not labels:
        raise InvalidParameter("Settings.ConnectedHome.Labels needs at least one label: PERSON")
    unsupported = sorted(set(labels_of(labels)) - set(SUPPORTED_LABELS))
    if unsupported:
        raise InvalidParameter(
            f"ConnectedHome labels {unsupported} are not supported: keeneye detects PERSON only "
            "(ALL means PERSON here)"
        )
    if min_confidence is not None and not 0 <= min_confidence <= 100:
        raise InvalidParameter("ConnectedHome.MinConfidence must be in 0-100")
