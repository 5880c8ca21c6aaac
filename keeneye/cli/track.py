"""``keeneye track``: follow people through a video file, count line crossings and zone visits.

Coordinates of ``--line`` and ``--zone`` are ratios of the frame (0-1 of width and height, y down, like
Rekognition's BoundingBox). A track's anchor is the bottom-centre of its box (where the person stands).
For a line p1 -> p2 an anchor crossing from the side where cross(p2 - p1, q - p1) < 0 to the side where it
is > 0 is an ``in`` crossing, the reverse ``out`` (e.g. p1 at the bottom, p2 at the top of a vertical line:
left -> right is ``in``); a small hysteresis band keeps jitter on the line from counting.

stdout gets a short JSON summary; ``--output`` a JSON file with every track (ratio boxes over time,
timestamps in ms), every crossing and zone event; ``--annotate`` a video with boxes, ids, lines and zones.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from keeneye.cli.common import (
    DataDirOption,
    fail,
    load_settings,
    print_json,
    user_errors,
    video_progress,
    write_json,
)
from keeneye.core.geometry import to_ratio
from keeneye.tracking.lines import Line
from keeneye.tracking.zones import Zone

if TYPE_CHECKING:
    from keeneye.config import Settings
    from keeneye.core.types import Track
    from keeneye.service.video.tracking import FrameUpdate, TrackingResult
    from keeneye.video.writer import VideoWriter

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).


def parse_line(spec: str) -> Line:
    """``NAME:x1,y1,x2,y2`` (ratios 0-1) -> Line; ValueError naming the option and the problem."""
    name, values = _split(spec, "--line", "NAME:x1,y1,x2,y2")
    if len(values) != 4:
        raise ValueError(f"--line {spec!r}: expected NAME:x1,y1,x2,y2 (4 numbers), got {len(values)}")
    try:
        return Line(name, (values[0], values[1]), (values[2], values[3]))
    except ValueError as e:
        raise ValueError(f"--line {spec!r}: {e}") from e


def parse_zone(spec: str) -> Zone:
    """``NAME:x1,y1,x2,y2,x3,y3[,...]`` (ratios 0-1, >= 3 points) -> Zone."""
    name, values = _split(spec, "--zone", "NAME:x1,y1,x2,y2,x3,y3,...")
    if len(values) < 6 or len(values) % 2:
        raise ValueError(
            f"--zone {spec!r}: expected NAME:x1,y1,x2,y2,x3,y3,... (an even count of at least 6 numbers), "
            f"got {len(values)}"
        )
    points = tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))
    return Zone(name, points)


def _split(spec: str, option: str, form: str) -> tuple[str, list[float]]:
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"{option} {spec!r}: expected {form}")
    try:
        values = [float(v) for v in rest.split(",")]
    except ValueError:
        raise ValueError(f"{option} {spec!r}: coordinates must be numbers, as in {form}") from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{option} {spec!r}: coordinates are ratios of the frame, between 0 and 1")
    return name, values


def _parse_geometry(line_specs: list[str], zone_specs: list[str]) -> tuple[list[Line], list[Zone]]:
    try:
        lines = [parse_line(s) for s in line_specs]
        zones = [parse_zone(s) for s in zone_specs]
    except ValueError as e:
        fail("InvalidParameter", str(e))
    for option, names in (("--line", [x.name for x in lines]), ("--zone", [z.name for z in zones])):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            fail("InvalidParameter", f"{option} names must be unique; repeated: {', '.join(dupes)}")
    return lines, zones


# Over 80 lines for its typer options (42 lines) and --help text (8); the body is 38 lines.
def track(
    video: Path = typer.Argument(..., help="A video file (mp4, mkv, avi, ts, ...: what FFmpeg decodes)"),
    line: list[str] = typer.Option(
        [],
        "--line",
        help="Counting line NAME:x1,y1,x2,y2 in ratios 0-1 (y down); crossing from the side where "
        "cross(p2-p1, q-p1) < 0 to > 0 is `in`. Repeatable",
    ),
    zone: list[str] = typer.Option(
        [], "--zone", help="Zone NAME:x1,y1,x2,y2,x3,y3,... polygon in ratios 0-1. Repeatable"
    ),
    fps: float | None = typer.Option(
        None, "--fps", min=0.1, help="Frames per second analysed (default: settings, else every frame)"
    ),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", min=0.1, help="Analyse only the first S seconds of the video"
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write every track, crossing and zone event to this JSON file"
    ),
    annotate: Path | None = typer.Option(
        None,
        "--annotate",
        help="Write a video with boxes, track ids, lines and zones (H.264 .mp4; MJPEG .avi if this "
        "FFmpeg has no H.264 encoder)",
    ),
    collection: str | None = typer.Option(
        None,
        "--collection",
        help="Name the people whose faces match this collection (in the data directory; fill it with "
        "IndexFaces through the server). Each track's best face is embedded, not every frame",
    ),
    face_match_threshold: float = typer.Option(
        80.0,
        "--face-match-threshold",
        min=0.0,
        max=100.0,
        help="Least Similarity (0-100) for a face to match with --collection (80: 1 false match in "
        "10,000 comparisons on LFW; 99 for public-safety uses)",
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Track people through VIDEO; print persons tracked, in/out counts per line and zone entries as JSON.

    Example: keeneye track hall.mp4 --line door:0.5,1,0.5,0 --output tracks.json --annotate hall-tracks.mp4

    With --collection ID, tracks whose faces match the collection carry the match's UserId or
    ExternalImageId as their identity (in the summary, the --output file, the line and zone events and
    the annotated video), and the identification is written to the audit log.
    """
    from keeneye.service.video.tracking import track_video

    lines, zones = _parse_geometry(line, zone)
    if annotate is not None and annotate.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
        fail(
            "InvalidParameter",
            f"--annotate {str(annotate)!r}: the video must end in .mp4 (or .mkv, .mov, .avi)",
        )
    with user_errors():
        settings = load_settings(data_dir)
        max_ms = None if max_seconds is None else max_seconds * 1000.0
        annotation = None
        if annotate is not None:
            annotation = _Annotation(annotate, lines, zones, _playback_fps(video, fps, settings))
        search = None if collection is None else _FaceSearch(settings, collection, face_match_threshold)
        try:
            with video_progress("tracking", sys.stderr.isatty()) as bar:
                on_progress = None if bar is None else (lambda p: bar(p.pts_ms, p.end_ms, p.frames_analysed))
                result = track_video(
                    video,
                    settings,
                    lines,
                    zones,
                    target_fps=fps,
                    max_duration_ms=max_ms,
                    on_progress=on_progress,
                    on_frame=None if annotation is None else annotation.on_frame,
                    **({} if search is None else search.track_video_args()),
                )
        finally:
            if annotation is not None:
                annotation.close()
        identities = None if search is None else search.finish(result)
        _suggest_tiles(result.metadata.width, result.metadata.height, settings)
        if output is not None:
            write_json(output, details(result, video, lines, zones, identities), indent=1)
        writer = None if annotation is None else annotation.writer
        annotated = None if writer is None else {"path": str(writer.path), "codec": writer.codec}
        print_json(summary(result, video, output, annotated, identities))


LARGE_FRAME_PX = 1280
"""Frames wider or taller than this are shrunk > 2.5x into the person models' 512 / 416 px input."""


def _suggest_tiles(width: int, height: int, settings: Settings) -> None:
    """A note on stderr when the frames are large and tiles are off: people who are small next to the
    frame are mostly missed (MOT17 1080p: recall 0.22 without tiles, 0.56 with; docs/models.md)."""
    if max(width, height) > LARGE_FRAME_PX and not settings.persons.tile_px:
        print(
            f"note: frames are {width}x{height}: the person detector sees them at 512 px, so people "
            "under ~160 px tall are mostly missed; KEENEYE_PERSONS__TILE_PX=960 also runs it on 960 px "
            "tiles (more people found, ~7x slower; docs/models.md)",
            file=sys.stderr,
        )


def _playback_fps(video: Path, fps: float | None, settings: Settings) -> float:
    """Frame rate of the annotated video: the analysed rate (--fps, settings), else the source's own."""
    target = fps or settings.persons.target_fps
    if target:
        return float(target)
    from keeneye.video.sources import open_video

    with open_video(video) as source:
        return source.metadata.fps or 10.0


class _FaceSearch:
    """``--collection``: the face pipeline, the collection search and the identities of the tracks."""

    def __init__(self, settings: Settings, collection_id: str, threshold: float) -> None:
        from keeneye.service.builder import ServiceBuilder

        self.collection_id, self.threshold = collection_id, threshold
        services = ServiceBuilder(settings)
        self.store, self.analyzer, self.collections = services.store, services.analyzer, services.collections
        self.audit = services.audit
        self.collections.describe_collection(collection_id)  # NotFound before any video is decoded
        self.settings = settings

    def track_video_args(self) -> dict[str, Any]:
        from dataclasses import replace

        from keeneye.pipeline.identification import PersonFaceIdentities, TrackFaceIdentifier, relink_cosine
        from keeneye.service.video.tracking import build_tracking_detector

        def search(embedding: Any, embedder_id: str) -> Any:
            return self.collections.search_faces_by_vector(
                self.collection_id, embedding, embedder_id, self.threshold
            )

        self.identifier = TrackFaceIdentifier(self.analyzer, search, fuse=self.settings.faces.track_fusion)
        detector, config = build_tracking_detector(self.settings)
        return {
            "detector": detector,
            "tracker_config": replace(config, reid_face_similarity=relink_cosine(self.analyzer)),
            "identities": PersonFaceIdentities(self.analyzer, self.identifier),
        }

    def finish(self, result: TrackingResult) -> dict[int, dict[str, Any]]:
        """``{track_id: {"identity", "similarity", "face_id", "timestamp_ms"}}`` of the matched tracks;
        the identification is appended to the audit log."""

        found: dict[int, dict[str, Any]] = {}
        for track in result.tracks:
            ident = self.identifier.identity(track.track_id)
            if ident is None or not ident.matches:
                continue
            best = ident.matches[0]
            found[track.track_id] = {
                "identity": ident.name,
                "similarity": round(best.similarity, 2),
                "face_id": best.face.face_id,
                "timestamp_ms": None if ident.pts_ms is None else round(ident.pts_ms),
            }
        self.audit.append(
            "keeneye track --collection",
            access_key=None,
            collection_id=self.collection_id,
            request_faces=len(self.identifier.identities),
            matches=[
                {
                    "FaceId": v["face_id"],
                    "Similarity": v["similarity"],
                    "PersonIndex": k,
                    "Timestamp": v["timestamp_ms"],
                }
                for k, v in found.items()
            ],
            threshold=self.threshold,
        )
        self.store.close()
        return found


def summary(
    result: TrackingResult,
    video: Path,
    output: Path | None,
    annotated: dict[str, str] | None,
    identities: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The short stdout summary: persons, identities (with --collection), line counts, zone entries,
    where the files went, timing."""
    md = result.metadata
    entries: dict[str, dict[str, Any]] = {}
    for name, dwell in result.zone_dwell_ms.items():
        visits = [e for e in result.zone_events if e.zone == name and e.kind == "enter"]
        entries[name] = {
            "entries": len(visits),
            "persons": len({e.track_id for e in visits}),
            "dwell_ms_total": round(sum(dwell.values())),
        }
    processed_ms = result.end_pts_ms or 0.0
    total_s = result.seconds.get("total", 0.0)
    named: dict[str, list[int]] = {}
    for track_id, found in (identities or {}).items():
        named.setdefault(str(found["identity"]), []).append(track_id)
    out = {
        "video": str(video),
        "width": md.width,
        "height": md.height,
        "duration_ms": None if md.duration_ms is None else round(md.duration_ms),
        "analysed_until_ms": round(processed_ms),
        "frames_analysed": result.frames_analysed,
        "persons_tracked": len(result.tracks),
        "identities": None if identities is None else named,
        "lines": result.line_counts,
        "zones": entries,
        "output": None if output is None else str(output),
        "annotated": annotated,
        "processing_s": round(total_s, 2),
        "frames_per_s": round(result.frames_analysed / total_s, 1) if total_s > 0 else None,
    }
    if identities is None:
        del out["identities"]
    return out


def details(
    result: TrackingResult,
    video: Path,
    lines: list[Line],
    zones: list[Zone],
    identities: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``--output`` document: video metadata, geometry, every track with its boxes over time (ratio
    boxes ``{left, top, width, height}`` like Rekognition's BoundingBox, ``timestamp_ms`` integers), its
    best face and (with --collection) its match, line crossings and zone events in time order (with the
    identity where it was known at that time), counts and dwell times."""
    md = result.metadata
    return {
        "video": str(video),
        "video_metadata": {
            "codec": md.codec,
            "format": md.format,
            "duration_ms": None if md.duration_ms is None else round(md.duration_ms),
            "frame_rate": md.fps,
            "width": md.width,
            "height": md.height,
        },
        "analysed_fps": result.target_fps,
        "frames_analysed": result.frames_analysed,
        "lines": [{"name": x.name, "p1": list(x.p1), "p2": list(x.p2)} for x in lines],
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in zones],
        "tracks": [_track(t, md.width, md.height, (identities or {}).get(t.track_id)) for t in result.tracks],
        "line_crossings": [
            {
                "line": e.line,
                "track_id": e.track_id,
                "timestamp_ms": round(e.pts_ms),
                "direction": e.direction,
                "identity": e.identity,
            }
            for e in result.line_events
        ],
        "line_counts": result.line_counts,
        "zone_events": [
            {
                "zone": e.zone,
                "track_id": e.track_id,
                "timestamp_ms": round(e.pts_ms),
                "kind": e.kind,
                "dwell_ms": None if e.dwell_ms is None else round(e.dwell_ms),
                "identity": e.identity,
            }
            for e in result.zone_events
        ],
        "zone_dwell_ms": {
            name: {str(k): round(v) for k, v in sorted(d.items())} for name, d in result.zone_dwell_ms.items()
        },
        "processing_seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }


def _track(track: Track, width: int, height: int, match: dict[str, Any] | None) -> dict[str, Any]:
    face = track.best_face
    return {
        "track_id": track.track_id,
        "first_timestamp_ms": round(track.first_pts_ms),
        "last_timestamp_ms": round(track.last_pts_ms),
        "identity": None if match is None else match["identity"],
        "match": match,
        "best_face": None
        if face is None
        else {"box": _ratio_box(_box_tuple(face.xyxy), width, height), "score": round(face.score, 3)},
        "boxes": [
            {
                "timestamp_ms": round(p.pts_ms),
                "box": _ratio_box(p.xyxy, width, height),
                "score": round(p.score, 3),
            }
            for p in track.history
        ],
    }


def _box_tuple(xyxy: Any) -> tuple[float, float, float, float]:
    return (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))


def _ratio_box(xyxy: tuple[float, float, float, float], width: int, height: int) -> dict[str, float]:
    """Pixel xyxy -> ``{left, top, width, height}`` ratios, clipped to the frame (detector boxes may
    reach slightly past the border)."""
    left, top, w, h = to_ratio(xyxy, width, height, clip=True)
    return {"left": round(left, 5), "top": round(top, 5), "width": round(w, 5), "height": round(h, 5)}


class _Annotation:
    """Draws each analysed frame (``on_frame``) into the ``--annotate`` video; the writer opens on the
    first frame (its size is the video's) and :attr:`writer` then says where it went and which codec."""

    def __init__(self, path: Path, lines: list[Line], zones: list[Zone], fps: float) -> None:
        self.path, self.lines, self.zones, self.fps = path, lines, zones, fps
        self.writer: VideoWriter | None = None

    def on_frame(self, update: FrameUpdate) -> None:
        from keeneye.analysis.annotate import draw_tracks
        from keeneye.video.writer import VideoWriter

        frame = update.frame
        if self.writer is None:
            height, width = frame.image.shape[:2]
            self.writer = VideoWriter(self.path, width, height, self.fps)
        image = draw_tracks(frame.image, update.tracks, self.lines, self.zones, update.line_counts)
        self.writer.write(image, frame.pts_ms)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
