"""Enrol a person from several photos in one step: Rekognition's users as the normal way to enrol.

On Rekognition this takes a CreateUser, one IndexFaces per photo and an AssociateFaces, and a script
that gets any of them wrong leaves faces nobody is associated with. :func:`enrol` does it as one use
case, shared by ``keeneye enrol`` / ``keeneye enrol-folder`` (keeneye/cli/enrol.py) and
``POST /v1/collections/{id}/users/{user}/photos`` (keeneye/api/enrol.py):

1. **Check every photo first**, writing nothing: decode it, find its faces, keep those that pass the
   QualityFilter. A photo is usable with exactly one such face; otherwise it is skipped with the
   reason ("no face", "several faces (2): crop to one person", "face below QualityFilter AUTO: too
   small (SMALL_BOUNDING_BOX)", "unreadable: ..."). Nothing usable: nothing is written, and
   :class:`NothingEnrolled` lists each photo's reason.
2. **Write**: create the collection (only if asked) and the user (if new), store every usable face in
   ONE transaction (ExternalImageId: the photo's file name, made to fit Rekognition's pattern), then
   AssociateFaces them with the user (UserMatchThreshold 75, Rekognition's default: a face that does
   not match the faces accepted before it is skipped and deleted again).
3. **Nothing half-written**: if a write fails midway (an error, the user's 100-face limit reached by
   a concurrent call), the faces this call stored are deleted, and the user and collection too if
   this call created them, before the error is raised. A process killed between the transactions of
   step 2 can leave this call's faces unassociated (their ExternalImageIds name the photos); they are
   never associated with a wrong user.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

import numpy as np

from keeneye.analysis.quality_filter import QualityFilter, UnindexedReason, quality_reasons
from keeneye.core.errors import (
    AlreadyExists,
    ImageTooLarge,
    InvalidImage,
    InvalidParameter,
    KeeneyeError,
    LimitExceeded,
    NotFound,
)
from keeneye.core.types import Face
from keeneye.service.faces import validation as v
from keeneye.service.faces.collections import EmbeddedImage, FaceCollections, Unsuccessful

USER_MATCH_THRESHOLD = 75.0  # AssociateFaces' default UserMatchThreshold

# Rekognition's UnindexedFaces reasons, for a person reading why a photo was skipped.
_REASON_WORDS: dict[UnindexedReason, str] = {
    "SMALL_BOUNDING_BOX": "too small",
    "LOW_SHARPNESS": "blurred",
    "LOW_BRIGHTNESS": "too dark",
    "EXTREME_POSE": "turned away",
    "LOW_CONFIDENCE": "unclear",
    "LOW_FACE_QUALITY": "poor quality",
    "EXCEEDS_MAX_FACES": "too many faces",
}
_NOT_ID_CHARACTER = re.compile(r"[^a-zA-Z0-9_.\-:]")


@dataclass(frozen=True)
class Photo:
    """One photo of the person: its name (a file name; it becomes the face's ExternalImageId) and its
    encoded bytes (JPEG or PNG), or ``data=None`` with ``problem`` saying why it could not be read."""

    name: str
    data: bytes | None
    problem: str = ""


@dataclass
class PhotoOutcome:
    """What became of one photo: ``indexed`` (face_id set) or ``skipped`` (reason set)."""

    photo: str
    status: Literal["indexed", "skipped"]
    face_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"photo": self.photo, "status": self.status}
        if self.face_id is not None:
            out["face_id"] = self.face_id
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class EnrolResult:
    collection_id: str
    user_id: str
    user_created: bool
    collection_created: bool
    photos: list[PhotoOutcome] = field(default_factory=list)

    @property
    def face_ids(self) -> list[str]:
        return [p.face_id for p in self.photos if p.face_id is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection_id": self.collection_id,
            "user_id": self.user_id,
            "user_created": self.user_created,
            "collection_created": self.collection_created,
            "indexed": len(self.face_ids),
            "skipped": len(self.photos) - len(self.face_ids),
            "photos": [p.to_dict() for p in self.photos],
        }


class NothingEnrolled(InvalidParameter):
    """No photo could be enrolled; ``photos`` says why for each (nothing was written)."""

    def __init__(self, user_id: str, photos: list[PhotoOutcome]) -> None:
        reasons = "; ".join(f"{p.photo}: {p.reason}" for p in photos) or "no photos given"
        super().__init__(f"nothing enrolled for user {user_id}: {reasons}")
        self.photos = photos


def external_image_id(name: str) -> str:
    """A photo's file name as an ExternalImageId (Rekognition's ``[a-zA-Z0-9_.\\-:]{1,255}``): the last
    path component, other characters as ``_``, at most 255 characters (``photo`` if nothing is left)."""
    base = PurePath(name.replace("\\", "/")).name
    return _NOT_ID_CHARACTER.sub("_", base)[:255] or "photo"


def quality_reason(reasons: Sequence[UnindexedReason], quality_filter: QualityFilter) -> str:
    words = ", ".join(f"{_REASON_WORDS.get(r, r.lower())} ({r})" for r in reasons)
    return f"face below QualityFilter {quality_filter}: {words}"


@dataclass
class _Usable:
    """A photo that passed the checks: its one face, embedded, and the image's size."""

    index: int
    face: Face
    width: int
    height: int


def _check_photo(
    collections: FaceCollections, index: int, photo: Photo, quality_filter: QualityFilter
) -> tuple[_Usable | None, str]:
    """(the photo's usable face, "") or (None, why it is skipped). The decoded pixels are freed when
    this returns (they are held in the server's pixel budget)."""
    if photo.data is None:
        return None, f"unreadable: {photo.problem or 'no data'}"
    try:
        pixels, passing, failing = collections.screen_faces(photo.data, quality_filter)
    except (InvalidImage, ImageTooLarge) as exc:
        return None, f"unreadable: {exc.message}"
    if len(passing) > 1:
        return None, f"several faces ({len(passing)}): crop to one person"
    if not passing:
        if not failing:
            return None, "no face"
        return None, quality_reason(failing[0][1], quality_filter)  # the largest face's reasons
    collections.embed_faces(pixels, passing)
    return _Usable(index, passing[0], int(pixels.shape[1]), int(pixels.shape[0])), ""


def enrol(
    collections: FaceCollections,
    collection_id: str,
    user_id: str,
    photos: Sequence[Photo],
    *,
    quality_filter: QualityFilter = "AUTO",
    create_collection: bool = False,
    before_create_user: Callable[[], None] | None = None,
    user_match_threshold: float = USER_MATCH_THRESHOLD,
) -> EnrolResult:
    """Enrol ``user_id`` in ``collection_id`` from ``photos``: see the module docstring.

    create_collection: create the collection when it does not exist (else NotFound). before_create_user:
    called before anything is analysed when the user does not exist yet (the native API checks the
    caller's right to CreateUser there). Raises NothingEnrolled (InvalidParameter) when no photo could be
    enrolled, LimitExceeded when the user would pass 100 faces; InvalidParameter for a bad UserId,
    QualityFilter or no photos.
    """
    v.check(v.USER_ID, user_id, "UserId")
    v.check_range(user_match_threshold, 0, 100, "UserMatchThreshold")
    quality_reasons(Face(np.zeros(4, np.float32), 1.0), quality_filter)  # validates the name
    if not photos:
        raise InvalidParameter("give at least one photo")
    if len(photos) > v.MAX_FACES_PER_USER:
        raise LimitExceeded(f"a user can have at most {v.MAX_FACES_PER_USER} faces; got {len(photos)} photos")
    embedder_id = collections.embedder_id  # InvalidParameter without an embedder
    try:
        info = collections.describe_collection(collection_id)
    except NotFound:
        if not create_collection:
            raise
        collections.key(collection_id)  # a bad CollectionId is reported before any photo is analysed
        collection_exists, user_exists, current = False, False, 0
    else:
        if info.face_model_version != embedder_id:
            raise InvalidParameter(
                f"collection {info.collection_id} holds vectors of face model {info.face_model_version}; "
                f"the configured embedder is {embedder_id}: vectors of different models are never compared"
            )
        collection_exists = True
        count = collections.user_face_count(collection_id, user_id)
        user_exists, current = count is not None, count or 0
    if not user_exists and before_create_user is not None:
        before_create_user()

    outcomes: list[PhotoOutcome] = []
    usable: list[_Usable] = []
    for i, photo in enumerate(photos):
        found, reason = _check_photo(collections, i, photo, quality_filter)
        if found is None:
            outcomes.append(PhotoOutcome(photo.name, "skipped", reason=reason))
        else:
            usable.append(found)
            outcomes.append(PhotoOutcome(photo.name, "indexed"))
    if not usable:
        raise NothingEnrolled(user_id, outcomes)
    if current + len(usable) > v.MAX_FACES_PER_USER:
        raise LimitExceeded(
            f"user {user_id} has {current} faces and {len(usable)} more would pass the limit of "
            f"{v.MAX_FACES_PER_USER} faces a user can have"
        )
    result = EnrolResult(collection_id, user_id, not user_exists, not collection_exists, outcomes)
    _write(collections, result, photos, usable, user_match_threshold)
    return result


def _write(
    collections: FaceCollections,
    result: EnrolResult,
    photos: Sequence[Photo],
    usable: list[_Usable],
    threshold: float,
) -> None:
    """Step 2 of the module docstring; on any error, undo what this call wrote (step 3) and re-raise."""
    collection_id, user_id = result.collection_id, result.user_id
    stored: list[str] = []
    try:
        if result.collection_created:
            try:
                collections.create_collection(collection_id)
            except AlreadyExists:  # created meanwhile by another caller: not ours to delete
                result.collection_created = False
        if result.user_created:
            try:
                collections.create_user(collection_id, user_id)
            except AlreadyExists:
                result.user_created = False
        images = [
            EmbeddedImage(
                str(uuid.uuid4()), u.width, u.height, [u.face], external_image_id(photos[u.index].name)
            )
            for u in usable
        ]
        faces = collections.index_embedded_faces(collection_id, images)
        for u, [face] in zip(usable, faces, strict=True):
            stored.append(face.face_id)
            result.photos[u.index].face_id = face.face_id
        _, failed, _ = collections.associate_faces(collection_id, user_id, stored, threshold)
        if failed:
            _skip_unassociated(collections, result, failed, stored, threshold)
        if not result.face_ids:
            raise NothingEnrolled(user_id, result.photos)
    except BaseException as exc:
        _undo(collections, result, stored, exc)
        for p in result.photos:
            if p.status == "indexed":  # nothing stayed
                p.status, p.face_id, p.reason = "skipped", None, "not written: " + _short(exc)
        raise


def _skip_unassociated(
    collections: FaceCollections,
    result: EnrolResult,
    failed: Sequence[Unsuccessful],
    stored: list[str],
    threshold: float,
) -> None:
    """Faces AssociateFaces refused (they match none of the user's other faces): deleted again, their
    photos skipped with the reason."""
    by_face = {p.face_id: p for p in result.photos if p.face_id is not None}
    refused = [f.face_id for f in failed]
    collections.delete_faces(result.collection_id, refused)
    for f in failed:
        stored.remove(f.face_id)
        photo = by_face[f.face_id]
        photo.status, photo.face_id = "skipped", None
        if "LOW_MATCH_CONFIDENCE" in f.reasons:
            best = f"{f.confidence:.1f}" if f.confidence is not None else "?"
            photo.reason = (
                f"does not match the user's other faces (best Similarity {best} < UserMatchThreshold "
                f"{threshold:g})"
            )
        else:
            photo.reason = "not associated: " + ", ".join(f.reasons)


def _undo(collections: FaceCollections, result: EnrolResult, stored: list[str], exc: BaseException) -> None:
    """Delete what this call wrote. A failure here is noted on ``exc`` (which is raised), not hidden."""
    collection_id, user_id = result.collection_id, result.user_id
    try:
        if result.collection_created:
            collections.delete_collection(collection_id)
            return
        if stored:
            if result.user_created:
                collections.delete_user(collection_id, user_id)  # disassociates its faces
            else:
                collections.disassociate_faces(collection_id, user_id, stored)
            collections.delete_faces(collection_id, stored)
        elif result.user_created:
            collections.delete_user(collection_id, user_id)
    except KeeneyeError as undo_error:
        exc.add_note(f"undoing the enrolment failed too: {undo_error.code}: {undo_error.message}")


def _short(exc: BaseException) -> str:
    if isinstance(exc, NothingEnrolled):
        return "no photo matched the user"
    if isinstance(exc, KeeneyeError):
        return f"{exc.code}: {exc.message}"
    return type(exc).__name__
