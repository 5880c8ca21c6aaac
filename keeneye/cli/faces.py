"""``keeneye detect`` and ``keeneye compare``: Rekognition's DetectFaces and CompareFaces on local files.

Output is JSON in Rekognition's response shapes, so scripts can consume it the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from keeneye.cli.common import DataDirOption, fail, load_settings, print_json, user_errors
from keeneye.core.errors import ImageTooLarge, InvalidImage

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

EXIT_NO_FACE = 3  # detect: valid image without any face (the empty result is still printed)


def _read(path: Path, max_bytes: int, max_pixels: int) -> Any:
    """Read and decode a local image before any model is loaded, so bad input fails fast."""
    from keeneye.analysis.images import decode_image

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidImage(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise InvalidImage(f"{path} is not a file")
    if size > max_bytes:
        raise ImageTooLarge(f"{path} is {size} bytes; the limit is {max_bytes} bytes")
    try:
        return decode_image(path.read_bytes(), max_bytes=max_bytes, max_pixels=max_pixels)
    except (InvalidImage, ImageTooLarge) as exc:
        exc.message = f"{path}: {exc.message}"
        raise


def _service(settings: Any, *, with_embedder: bool) -> Any:
    from keeneye.analysis.builder import build_face_analyzer
    from keeneye.service.faces.analysis import FaceService

    return FaceService(build_face_analyzer(settings, with_embedder=with_embedder), settings.images)


def detect(
    image: Path = typer.Argument(
        ..., help="A JPEG or PNG photo (format is sniffed, EXIF orientation applied)"
    ),
    attributes: str = typer.Option(
        "DEFAULT",
        "--attributes",
        "-a",
        help="DEFAULT (box, confidence, landmarks, pose, quality) or ALL (+ emotions, smile, "
        "eyes/mouth open, "
        "age range, gender), or a comma-separated list of Rekognition attribute names",
    ),
    annotate: Path | None = typer.Option(
        None, "--annotate", help="Also write a copy of IMAGE with boxes, landmarks and labels (.jpg/.png)"
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Find faces in IMAGE and print Rekognition's DetectFaces response as JSON.

    Exit codes: 0 faces found, 3 no face found (empty FaceDetails printed), 1 bad input or missing model.
    Example: keeneye detect photo.jpg --attributes ALL --annotate faces.jpg
    """
    from keeneye.aws import shapes

    with user_errors():
        extras = shapes.requested_attributes([a.strip().upper() for a in attributes.split(",") if a.strip()])
        settings = load_settings(data_dir)
        pixels = _read(image, settings.images.max_bytes, settings.images.max_pixels)
        result = _service(settings, with_embedder=False).detect_faces(pixels, extras)
        details = [shapes.face_detail(f, result.width, result.height, extras) for f in result.faces]
        print_json({"FaceDetails": details})
        if annotate is not None:
            from keeneye.analysis.annotate import draw_faces, save_image

            save_image(draw_faces(pixels, result.faces), annotate)
    if not details:
        fail("NoFaceFound", f"no face found in {image} (printed an empty FaceDetails)", EXIT_NO_FACE)


def compare(
    source: Path = typer.Argument(..., help="Photo whose largest face is compared"),
    target: Path = typer.Argument(..., help="Photo with up to 100 faces to compare against"),
    threshold: float = typer.Option(
        80.0,
        "--threshold",
        "-t",
        min=0,
        max=100,
        help="Similarity (0-100) at or above which a target face is a match (Rekognition's default 80)",
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Compare the largest face in SOURCE with every face in TARGET (Rekognition's CompareFaces).

    Prints FaceMatches (Similarity >= threshold) and UnmatchedFaces as JSON (exit 0 whether or not they
    match; script on `jq '.FaceMatches | length'`). Exit 1 if SOURCE has no face or an input is bad.
    """
    from keeneye.aws import shapes

    with user_errors():
        settings = load_settings(data_dir)
        limits = (settings.images.max_bytes, settings.images.max_pixels)
        src, tgt = _read(source, *limits), _read(target, *limits)
        r = _service(settings, with_embedder=True).compare_faces(src, tgt, threshold)
        sw, sh, tw, th = r.source.width, r.source.height, r.target.width, r.target.height
        print_json(
            {
                "SourceImageFace": shapes.compared_source_face(r.source.faces[0], sw, sh),
                "FaceMatches": [
                    {"Similarity": sim, "Face": shapes.compared_face(f, tw, th)} for f, sim in r.matches
                ],
                "UnmatchedFaces": [shapes.compared_face(f, tw, th) for f in r.unmatched],
            }
        )
