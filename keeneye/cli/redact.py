"""``keeneye redact``: obscure every face in a photo or a video, except a collection's (docs/redaction.md).

stdout gets a JSON summary (frames, faces redacted per frame min/mean/max, kept identities, output);
``--report`` a JSON file with every frame's face regions. Images are recognised by their content (JPEG,
PNG), anything else is decoded as a video.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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

if TYPE_CHECKING:
    from keeneye.config import Settings
    from keeneye.service.faces.collections import FaceCollections, FaceMatch
    from keeneye.service.governance.redaction import (
        FrameRedaction,
        ImageRedaction,
        RedactedFace,
        RedactionMode,
        VideoRedaction,
    )
    from keeneye.store.db import Store

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")


def redact(
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="A photo (JPEG, PNG) or a video (mp4, mkv, avi, ...: what FFmpeg decodes)"
    ),
    out: Path = typer.Argument(
        ...,
        metavar="OUT",
        help="Where the redacted copy goes: .jpg/.png for a photo; .mp4 (or .mkv, .mov, .avi) for a video "
        "(H.264; MJPEG .avi if this FFmpeg has no H.264 encoder)",
    ),
    keep_collection: str | None = typer.Option(
        None,
        "--keep-collection",
        help="Leave visible the faces that match this collection (in the data directory); in a video, a "
        "face is obscured until its track has matched",
    ),
    face_match_threshold: float = typer.Option(
        80.0,
        "--face-match-threshold",
        min=0.0,
        max=100.0,
        help="Least Similarity (0-100) for a face to match --keep-collection",
    ),
    mode: str = typer.Option(
        "blur", "--mode", help="How faces are obscured: blur, pixelate or box (solid black: irreversible)"
    ),
    fps: float | None = typer.Option(
        None,
        "--fps",
        min=0.1,
        help="Run the detector on this many frames a second (default: every frame); every frame is "
        "still written, frames in between are obscured with the boxes of both neighbours",
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Write every frame's face regions to this JSON"
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Obscure every face in INPUT and write the result to OUT; print a JSON summary.

    Example: keeneye redact hall.mp4 hall-redacted.mp4 --keep-collection staff --report faces.json

    Faces are found with a lower detector threshold than `detect` uses, boxes are enlarged (hair, chin),
    and in a video faces are tracked so that a face the detector misses for a moment stays obscured.
    Faces the detector never finds (very small, strongly turned away) are not obscured: see
    docs/redaction.md for what is and is not guaranteed.
    """
    from keeneye.service.governance.redaction import REDACTION_MODES

    if mode not in REDACTION_MODES:
        fail("InvalidParameter", f"--mode {mode!r}: choose one of {', '.join(REDACTION_MODES)}")
    with user_errors():
        kind = _input_kind(input_path)
        _check_output(input_path, out, kind)
        settings = load_settings(data_dir)
        keeper = None if keep_collection is None else _Keeper(settings, keep_collection, face_match_threshold)
        try:
            if kind == "image":
                doc = _redact_image(input_path, out, settings, keeper, mode)
            else:
                doc = _redact_video(input_path, out, settings, keeper, mode, fps)
        finally:
            if keeper is not None:
                keeper.close()
        summary, details = doc
        if report is not None:
            write_json(report, details)
            summary["report"] = str(report)
        print_json(summary)


def _input_kind(path: Path) -> str:
    """``image`` for JPEG/PNG content, else ``video``; InvalidParameter for a missing file."""
    from keeneye.core.errors import InvalidParameter

    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as e:
        raise InvalidParameter(f"cannot read {str(path)!r}: {e.strerror or e}") from e
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image"
    return "video"


def _check_output(source: Path, out: Path, kind: str) -> None:
    from keeneye.core.errors import InvalidParameter

    suffix = out.suffix.lower()
    if kind == "image" and suffix not in IMAGE_SUFFIXES:
        raise InvalidParameter(f"OUT {str(out)!r}: a redacted photo is written as .jpg or .png")
    if kind == "video" and suffix not in VIDEO_SUFFIXES:
        raise InvalidParameter(f"OUT {str(out)!r}: a redacted video is written as .mp4 (or .mkv, .mov, .avi)")
    if out.resolve() == source.resolve():
        raise InvalidParameter("OUT must not be INPUT: the original is never overwritten")
    if not out.parent.is_dir():
        raise InvalidParameter(f"OUT {str(out)!r}: folder {str(out.parent)!r} does not exist")


class _Keeper:
    """``--keep-collection``: the collection's store and its search at the threshold."""

    def __init__(self, settings: Settings, collection_id: str, threshold: float) -> None:
        from keeneye.service.builder import ServiceBuilder
        from keeneye.service.governance.redaction import build_redaction_analyzer

        self.collection_id, self.threshold = collection_id, threshold
        self.analyzer = build_redaction_analyzer(settings, with_embedder=True)
        services = ServiceBuilder(settings, analyzer=self.analyzer)
        self.store: Store = services.store
        self.audit = services.audit
        self.collections: FaceCollections = services.collections
        self.collections.describe_collection(collection_id)  # NotFound before any pixel is decoded

    def search(self, embedding: Any, embedder_id: str) -> list[FaceMatch]:
        return self.collections.search_faces_by_vector(
            self.collection_id, embedding, embedder_id, self.threshold
        )

    def close(self) -> None:
        self.store.close()


def _redact_image(
    path: Path, out: Path, settings: Settings, keeper: _Keeper | None, mode: RedactionMode
) -> tuple[dict[str, Any], dict[str, Any]]:
    from keeneye.core.errors import InvalidParameter
    from keeneye.service.governance.redaction import build_redaction_analyzer, redact_image

    t0 = time.perf_counter()
    analyzer = keeper.analyzer if keeper is not None else build_redaction_analyzer(settings)
    data = path.read_bytes()
    fmt: Literal["JPEG", "PNG"] = "PNG" if out.suffix.lower() == ".png" else "JPEG"
    result: ImageRedaction = redact_image(
        data,
        analyzer,
        mode=mode,
        search=None if keeper is None else keeper.search,
        output_format=fmt,
        limits=settings.images,
    )
    try:
        out.write_bytes(result.image)
    except OSError as e:
        raise InvalidParameter(f"cannot write {out}: {e.strerror or e}") from e
    n = len(result.redacted)
    summary = {
        "input": str(path),
        "kind": "image",
        "width": result.width,
        "height": result.height,
        "frames": 1,
        "faces_redacted": {"min": n, "mean": float(n), "max": n, "total": n},
        "kept": _kept_names(result.kept),
        "mode": mode,
        "output": str(out),
        "processing_s": round(time.perf_counter() - t0, 3),
    }
    details = {
        "input": str(path),
        "kind": "image",
        "width": result.width,
        "height": result.height,
        "frames": [{"index": 0, "timestamp_ms": 0, "analysed": True, "faces": _faces(result.faces)}],
    }
    return summary, details


def _redact_video(
    path: Path, out: Path, settings: Settings, keeper: _Keeper | None, mode: RedactionMode, fps: float | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    from keeneye.service.governance.redaction import build_redaction_analyzer, redact_video

    analyzer = keeper.analyzer if keeper is not None else build_redaction_analyzer(settings)
    with video_progress("redacting", sys.stderr.isatty()) as bar:
        on_progress = None if bar is None else (lambda p: bar(p.pts_ms, p.end_ms, p.frames))
        result: VideoRedaction = redact_video(
            path,
            out,
            analyzer,
            mode=mode,
            search=None if keeper is None else keeper.search,
            target_fps=fps,
            cut_threshold=settings.persons.shot_cut_threshold,
            on_progress=on_progress,
        )
    if keeper is not None and result.kept:
        _audit(keeper, result)
    counts = [f.redacted for f in result.frames]
    total_s = result.seconds.get("total", 0.0)
    named: dict[str, list[int]] = {}
    for k in result.kept:
        named.setdefault(k.identity, []).append(k.track_id)
    md = result.metadata
    summary = {
        "input": str(path),
        "kind": "video",
        "width": md.width,
        "height": md.height,
        "duration_ms": None if md.duration_ms is None else round(md.duration_ms),
        "frames": len(result.frames),
        "frames_analysed": result.frames_analysed,
        "faces_redacted": {
            "min": min(counts, default=0),
            "mean": round(statistics.fmean(counts), 2) if counts else 0.0,
            "max": max(counts, default=0),
            "frames_with_faces": sum(1 for c in counts if c),
        },
        "face_tracks": result.tracks,
        "kept": named if keeper is not None else {},
        "shot_cuts_ms": [round(c) for c in result.cuts_ms],
        "mode": mode,
        "output": str(result.path),
        "codec": result.codec,
        "processing_s": round(total_s, 2),
        "frames_per_s": round(len(result.frames) / total_s, 1) if total_s > 0 else None,
    }
    details = {
        "input": str(path),
        "kind": "video",
        "width": md.width,
        "height": md.height,
        "kept_tracks": [
            {
                "track_id": k.track_id,
                "identity": k.identity,
                "similarity": k.similarity,
                "face_id": k.face_id,
                "first_kept_ms": None if k.matched_pts_ms is None else round(k.matched_pts_ms),
            }
            for k in result.kept
        ],
        "frames": [_frame(f) for f in result.frames],
    }
    return summary, details


def _audit(keeper: _Keeper, result: VideoRedaction) -> None:
    """Keeping a face identifies it: the identification goes to the audit log, as for track/face search."""

    keeper.audit.append(
        "keeneye redact --keep-collection",
        access_key=None,
        collection_id=keeper.collection_id,
        request_faces=result.tracks,
        matches=[
            {
                "FaceId": k.face_id,
                "Similarity": k.similarity,
                "PersonIndex": k.track_id,
                "Timestamp": None if k.matched_pts_ms is None else round(k.matched_pts_ms),
            }
            for k in result.kept
        ],
        threshold=keeper.threshold,
    )


def _kept_names(faces: list[RedactedFace]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in faces:
        if f.identity is not None:
            out[f.identity] = out.get(f.identity, 0) + 1
    return out


def _frame(f: FrameRedaction) -> dict[str, Any]:
    return {
        "index": f.index,
        "timestamp_ms": round(f.pts_ms, 1),
        "analysed": f.analysed,
        "faces": _faces(f.faces),
    }


def _faces(faces: list[RedactedFace]) -> list[dict[str, Any]]:
    return [
        {
            "kept": f.kept,
            "source": f.source,
            "track_id": f.track_id,
            "face_xyxy": [round(v, 1) for v in f.xyxy],
            "obscured_xyxy": None if f.box is None else list(f.box),
            "score": f.score,
            **({"identity": f.identity, "similarity": f.similarity} if f.kept else {}),
        }
        for f in faces
    ]
