"""Enrolling a person from several photos (keeneye/service/faces/enrol.py): real models, real photos.

Colin Powell's LFW photos 1-3 are enrolled, photo 4 searched with; two_people.jpg has two faces; a
gradient has none. Every failure case checks that nothing was left behind: no face, no user.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter, KeeneyeError, LimitExceeded, NotFound
from keeneye.service.faces import validation
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.faces.enrol import NothingEnrolled, Photo, enrol, external_image_id
from keeneye.store.db import Store
from tests.factories import encode, gradient

pytestmark = [pytest.mark.models, pytest.mark.data]

PERSON = "Colin_Powell"


@pytest.fixture(scope="module")
def analyzer(models_dir: Path) -> FaceAnalyzer:
    return build_face_analyzer(Settings(data_dir=models_dir.parent))


@pytest.fixture
def fc(store: Store, analyzer: FaceAnalyzer) -> FaceCollections:
    fc = FaceCollections(store, analyzer)
    fc.create_collection("staff")
    return fc


def lfw(shared_data: Path, n: int) -> Photo:
    path = shared_data / "faces/lfw" / PERSON / f"{PERSON}_{n:04d}.jpg"
    return Photo(path.name, path.read_bytes())


def bad_photos(shared_data: Path) -> list[Photo]:
    two = shared_data / "faces/face_recognition/two_people.jpg"
    return [
        Photo("gradient.jpg", encode(gradient(300, 300))),
        Photo("two_people.jpg", two.read_bytes()),
        Photo("notes.jpg", b"a text file, not a photo"),
        Photo("gone.jpg", None, "cannot read gone.jpg: No such file or directory"),
    ]


def nothing_written(fc: FaceCollections) -> None:
    info = fc.describe_collection("staff")
    assert (info.face_count, info.user_count) == (0, 0)


def test_three_photos_enrol_a_user_found_by_a_fourth(fc: FaceCollections, shared_data: Path) -> None:
    result = enrol(fc, "staff", "colin", [lfw(shared_data, n) for n in (1, 2, 3)])
    assert [p.status for p in result.photos] == ["indexed"] * 3
    assert result.user_created and not result.collection_created
    faces = fc.list_faces("staff", user_id="colin").items
    assert sorted(f.face_id for f in faces) == sorted(result.face_ids)
    assert {f.external_image_id for f in faces} == {f"{PERSON}_000{n}.jpg" for n in (1, 2, 3)}
    assert [(u.user_id, u.status) for u in fc.list_users("staff").items] == [("colin", "ACTIVE")]
    _, users = fc.search_users_by_image("staff", lfw(shared_data, 4).data or b"")
    assert [u.user.user_id for u in users] == ["colin"]

    # More photos later join the same user.
    again = enrol(fc, "staff", "colin", [lfw(shared_data, 5)])
    assert not again.user_created and len(fc.list_faces("staff", user_id="colin").items) == 4


def test_bad_photos_are_reported_one_by_one(fc: FaceCollections, shared_data: Path) -> None:
    photos = [lfw(shared_data, 1), *bad_photos(shared_data), lfw(shared_data, 2)]
    result = enrol(fc, "staff", "colin", photos)
    outcome = {p.photo: p for p in result.photos}
    assert [p.photo for p in result.photos] == [p.name for p in photos]  # in the order given
    assert outcome["gradient.jpg"].reason == "no face"
    assert outcome["two_people.jpg"].reason == "several faces (2): crop to one person"
    assert (outcome["notes.jpg"].reason or "").startswith("unreadable: ")
    assert "not a JPEG or PNG" in (outcome["notes.jpg"].reason or "")
    assert outcome["gone.jpg"].reason == "unreadable: cannot read gone.jpg: No such file or directory"
    assert {p.photo for p in result.photos if p.status == "indexed"} == {
        f"{PERSON}_0001.jpg",
        f"{PERSON}_0002.jpg",
    }
    assert fc.describe_collection("staff").face_count == 2  # the bad photos left nothing


def test_a_face_below_the_quality_bar_is_named(fc: FaceCollections, shared_data: Path) -> None:
    photo = Image.open(io.BytesIO(lfw(shared_data, 1).data or b"")).resize((100, 100))  # a ~45 px face
    with pytest.raises(NothingEnrolled) as err:
        enrol(fc, "staff", "colin", [Photo("small.jpg", encode(photo))], quality_filter="HIGH")
    [outcome] = err.value.photos
    assert (outcome.reason or "").startswith("face below QualityFilter HIGH: too small (SMALL_BOUNDING_BOX)")
    nothing_written(fc)


def test_all_bad_is_an_error_and_writes_nothing(fc: FaceCollections, shared_data: Path) -> None:
    with pytest.raises(NothingEnrolled) as err:
        enrol(fc, "staff", "colin", bad_photos(shared_data))
    assert isinstance(err.value, InvalidParameter)
    assert "gradient.jpg: no face" in err.value.message
    assert "two_people.jpg: several faces (2)" in err.value.message
    assert [p.status for p in err.value.photos] == ["skipped"] * 4
    nothing_written(fc)


def test_a_failure_midway_leaves_nothing(
    fc: FaceCollections, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Mocked: AssociateFaces fails after the faces were stored (as a disk error or a concurrent call
    # filling the user's 100 faces would make it).
    def fail(*_: object, **__: object) -> None:
        raise LimitExceeded("a user can have at most 100 faces")

    monkeypatch.setattr(fc, "associate_faces", fail)
    with pytest.raises(LimitExceeded):
        enrol(fc, "staff", "colin", [lfw(shared_data, n) for n in (1, 2)])
    nothing_written(fc)
    monkeypatch.undo()

    # An existing user keeps its faces and gets none of the failed call's.
    first = enrol(fc, "staff", "colin", [lfw(shared_data, 1)])
    monkeypatch.setattr(fc, "associate_faces", fail)
    with pytest.raises(LimitExceeded):
        enrol(fc, "staff", "colin", [lfw(shared_data, 2)])
    assert [f.face_id for f in fc.list_faces("staff").items] == first.face_ids


def test_a_new_collection_is_removed_again_when_nothing_is_enrolled(
    store: Store, analyzer: FaceAnalyzer, shared_data: Path
) -> None:
    fc = FaceCollections(store, analyzer)
    with pytest.raises(NotFound):
        enrol(fc, "new", "colin", [lfw(shared_data, 1)])
    with pytest.raises(NothingEnrolled):
        enrol(fc, "new", "colin", bad_photos(shared_data)[:1], create_collection=True)
    with pytest.raises(NotFound):
        fc.describe_collection("new")
    result = enrol(fc, "new", "colin", [lfw(shared_data, 1)], create_collection=True)
    assert result.collection_created and fc.describe_collection("new").user_count == 1


def test_a_photo_of_someone_else_is_skipped(fc: FaceCollections, shared_data: Path) -> None:
    other = shared_data / "faces/face_recognition/obama3.jpg"
    result = enrol(fc, "staff", "colin", [lfw(shared_data, 1), Photo("obama3.jpg", other.read_bytes())])
    assert result.photos[1].status == "skipped"
    assert (result.photos[1].reason or "").startswith("does not match the user's other faces")
    assert fc.describe_collection("staff").face_count == 1  # the refused face was deleted again


def test_the_user_face_limit_is_checked_before_writing(
    fc: FaceCollections, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "MAX_FACES_PER_USER", 2)
    with pytest.raises(LimitExceeded):
        enrol(fc, "staff", "colin", [lfw(shared_data, n) for n in (1, 2, 3)])
    nothing_written(fc)


@pytest.mark.parametrize(
    ("user_id", "photos"),
    [("bad user", [Photo("a.jpg", b"")]), ("colin", [])],
)
def test_bad_arguments(fc: FaceCollections, user_id: str, photos: list[Photo]) -> None:
    with pytest.raises(KeeneyeError):
        enrol(fc, "staff", user_id, photos)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photos/Ada Lovelace (1).jpg", "Ada_Lovelace__1_.jpg"),
        ("C:\\in\\été.png", "_t_.png"),
        ("", "photo"),
        ("x" * 300 + ".jpg", "x" * 255),
    ],
)
def test_external_image_id_from_a_file_name(name: str, expected: str) -> None:
    assert external_image_id(name) == expected
