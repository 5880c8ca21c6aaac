"""``keeneye enrol`` and ``keeneye enrol-folder``: enrol persons from several photos each, as
Rekognition users (keeneye/service/faces/enrol.py), on the data directory's store.

Each photo's outcome is printed as JSON (indexed with its FaceId, or skipped with the reason); each
enrolment is audited (access key ``-``: the operator at the machine). Nothing enrolled at all: the
JSON is still printed, with a one-line error on stderr and exit code 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from keeneye.cli.common import DataDirOption, count_progress, fail, load_settings, print_json, user_errors
from keeneye.core.errors import InvalidParameter, KeeneyeError

if TYPE_CHECKING:
    from keeneye.analysis.quality_filter import QualityFilter
    from keeneye.service.builder import ServiceBuilder
    from keeneye.service.faces.enrol import Photo

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

QUALITY_FILTERS = ("AUTO", "NONE", "LOW", "MEDIUM", "HIGH")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")

QualityFilterOption = typer.Option(
    "AUTO",
    "--quality-filter",
    help="Faces below this bar are not enrolled (Rekognition's QualityFilter): AUTO (= MEDIUM), NONE, "
    "LOW, MEDIUM or HIGH",
)
CreateCollectionOption = typer.Option(
    False, "--create-collection", help="Create the collection if it does not exist yet"
)


def _quality_filter(value: str) -> QualityFilter:
    name = value.upper()
    if name not in QUALITY_FILTERS:
        fail("InvalidParameter", f"--quality-filter {value!r}: choose one of {', '.join(QUALITY_FILTERS)}")
    return cast("QualityFilter", name)


def _read_photo(path: Path, max_bytes: int) -> Photo:
    """The photo's bytes, or why they cannot be had (reported for this photo, not a command error)."""
    from keeneye.service.faces.enrol import Photo

    try:
        if not path.is_file():
            return Photo(path.name, None, f"{path} is not a file" if path.exists() else f"{path} not found")
        size = path.stat().st_size
        if size > max_bytes:
            return Photo(path.name, None, f"{path} is {size} bytes; the limit is {max_bytes} bytes")
        return Photo(path.name, path.read_bytes())
    except OSError as exc:
        return Photo(path.name, None, f"cannot read {path}: {exc.strerror or exc}")


def _enrol_one(
    services: ServiceBuilder,
    collection_id: str,
    user_id: str,
    photos: list[Photo],
    quality_filter: QualityFilter,
    create_collection: bool,
) -> tuple[dict[str, Any], str | None]:
    """One person: (its JSON summary, None) or (the summary, why nothing was enrolled)."""
    from keeneye.service.faces.enrol import NothingEnrolled, enrol

    try:
        result = enrol(
            services.collections,
            collection_id,
            user_id,
            photos,
            quality_filter=quality_filter,
            create_collection=create_collection,
        )
    except NothingEnrolled as exc:
        summary = {"user_id": user_id, "indexed": 0, "skipped": len(exc.photos)}
        return {**summary, "photos": [p.to_dict() for p in exc.photos]}, exc.message
    services.audit.append(
        "EnrolUser",
        access_key=None,
        collection_id=collection_id,
        details={
            "user_id": user_id,
            "face_ids": result.face_ids,
            "skipped": len(result.photos) - len(result.face_ids),
        },
    )
    doc = result.to_dict()
    doc.pop("collection_id")
    return doc, None


def enrol(
    collection_id: str = typer.Argument(..., help="The collection (CollectionId)"),
    person: str = typer.Argument(..., help="The person's UserId (letters, digits, _ . - :)"),
    photos: list[Path] = typer.Argument(..., help="Photos of the person (JPEG or PNG), one face each"),
    create_collection: bool = CreateCollectionOption,
    quality_filter: str = QualityFilterOption,
    data_dir: Path | None = DataDirOption,
) -> None:
    """Enrol PERSON in COLLECTION from several PHOTOS (a Rekognition user with one face per photo).

    Every photo is checked first: it must hold exactly one face good enough for --quality-filter.
    The photos that pass are indexed (ExternalImageId: the file name) and associated with the user
    (created if new); the others are skipped with the reason (no face, several faces, too small,
    unreadable...). Prints each photo's outcome as JSON. Nothing passes: nothing is written, exit 1.

    Example: keeneye enrol staff ada_lovelace ada1.jpg ada2.jpg ada3.jpg --create-collection
    """
    from keeneye.service.builder import ServiceBuilder

    quality = _quality_filter(quality_filter)
    with user_errors():
        settings = load_settings(data_dir)
        services = ServiceBuilder(settings)
        read = [_read_photo(p, settings.images.max_bytes) for p in photos]
        doc, problem = _enrol_one(services, collection_id, person, read, quality, create_collection)
        services.collections.close()
        print_json({"collection_id": collection_id, **doc})
    if problem is not None:
        fail("NothingEnrolled", problem)


def _person_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        fail("InvalidParameter", f"{folder} is not a folder")
    people = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        fail(
            "InvalidParameter", f"{folder} has no person folders (one subfolder per person, named by UserId)"
        )
    return people


def _photos_in(person: Path) -> list[Path]:
    return sorted(
        p for p in person.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith(".")
    )


def enrol_folder(
    collection_id: str = typer.Argument(..., help="The collection (CollectionId)"),
    folder: Path = typer.Argument(
        ..., help="One subfolder per person, named by UserId, holding their photos"
    ),
    create_collection: bool = CreateCollectionOption,
    quality_filter: str = QualityFilterOption,
    data_dir: Path | None = DataDirOption,
) -> None:
    """Enrol every person of FOLDER in COLLECTION: each subfolder is one person (its name is the
    UserId), its *.jpg, *.jpeg and *.png files their photos (as `keeneye enrol` does for one person).

    Prints JSON with each person's and each photo's outcome; a person none of whose photos passes is
    listed with the error and nothing is written for them. Exit 1 if nobody could be enrolled.

    Example (staff/ada_lovelace/1.jpg, staff/ada_lovelace/2.jpg, staff/alan_turing/1.png, ...):
    keeneye enrol-folder staff ./staff --create-collection
    """
    from keeneye.service.builder import ServiceBuilder

    quality = _quality_filter(quality_filter)
    people = _person_folders(folder)
    persons: list[dict[str, Any]] = []
    with user_errors():
        settings = load_settings(data_dir)
        services = ServiceBuilder(settings)
        if not create_collection:
            services.collections.describe_collection(collection_id)  # NotFound before any photo is read
        with count_progress("enrolling", sys.stderr.isatty()) as bar:
            for n, person in enumerate(people, 1):
                photos = [_read_photo(p, settings.images.max_bytes) for p in _photos_in(person)]
                try:
                    if not photos:
                        raise InvalidParameter(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {person}")
                    doc, problem = _enrol_one(
                        services, collection_id, person.name, photos, quality, create_collection
                    )
                except KeeneyeError as exc:  # this person only (a bad UserId, no photos, too many faces)
                    problem = f"{exc.code}: {exc.message}"
                    skipped = [{"photo": p.name, "status": "skipped", "reason": problem} for p in photos]
                    doc = {"user_id": person.name, "indexed": 0, "skipped": len(photos), "photos": skipped}
                if problem is not None:
                    doc["error"] = problem
                persons.append(doc)
                if bar is not None:
                    bar(n, len(people), sum("error" in p for p in persons))
        services.collections.close()
    indexed = sum(int(p["indexed"]) for p in persons)
    print_json(
        {
            "collection_id": collection_id,
            "persons_enrolled": sum("error" not in p for p in persons),
            "persons_failed": sum("error" in p for p in persons),
            "indexed": indexed,
            "skipped": sum(int(p["skipped"]) for p in persons),
            "persons": persons,
        }
    )
    if indexed == 0:
        fail(
            "NothingEnrolled", f"nobody in {folder} could be enrolled (each person's reasons are in the JSON)"
        )
