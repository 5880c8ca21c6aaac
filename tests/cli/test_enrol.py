"""`keeneye enrol` and `keeneye enrol-folder` as a user runs them: a real subprocess, real photos, real
models; what they wrote is read back from the data directory's store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from keeneye.service.faces.collections import FaceCollections
from keeneye.store.db import Store
from tests.cli.test_cli import assert_one_line_error, run
from tests.factories import encode, gradient

pytestmark = [pytest.mark.models, pytest.mark.data]


def lfw(shared_data: Path, person: str, n: int) -> Path:
    return shared_data / "faces/lfw" / person / f"{person}_{n:04d}.jpg"


def stored(data_dir: Path) -> tuple[int, list[str]]:
    """(faces in collection staff, its users)."""
    store = Store.open(data_dir)
    try:
        fc = FaceCollections(store)
        return fc.describe_collection("staff").face_count, [u.user_id for u in fc.list_users("staff").items]
    finally:
        store.close()


def test_enrol_reports_each_photo(tmp_path: Path, shared_data: Path) -> None:
    no_face = tmp_path / "wall.jpg"
    no_face.write_bytes(encode(gradient(300, 300)))
    notes = tmp_path / "notes.jpg"
    notes.write_bytes(b"a text file, not a photo")
    good = [lfw(shared_data, "Colin_Powell", n) for n in (1, 2, 3)]
    group = shared_data / "faces/face_recognition/two_people.jpg"
    args: list[str | Path] = ["enrol", "staff", "colin", *good, no_face, group, notes, tmp_path / "gone.jpg"]
    proc = run(*args, "--create-collection", data_dir=tmp_path / "var")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["collection_id"], doc["user_id"], doc["indexed"], doc["skipped"]) == ("staff", "colin", 3, 4)
    reasons = {p["photo"]: p.get("reason") for p in doc["photos"]}
    assert reasons["wall.jpg"] == "no face"
    assert reasons["two_people.jpg"] == "several faces (2): crop to one person"
    assert "unreadable: " in reasons["notes.jpg"] and "not a JPEG or PNG" in reasons["notes.jpg"]
    assert reasons["gone.jpg"] == f"unreadable: {tmp_path / 'gone.jpg'} not found"
    assert [p["status"] for p in doc["photos"][:3]] == ["indexed"] * 3
    assert stored(tmp_path / "var") == (3, ["colin"])


def test_enrol_with_nothing_usable_writes_nothing(tmp_path: Path, shared_data: Path) -> None:
    data_dir = tmp_path / "var"
    run(
        "enrol", "staff", "first", lfw(shared_data, "Tony_Blair", 1), "--create-collection", data_dir=data_dir
    )
    no_face = tmp_path / "wall.png"
    no_face.write_bytes(encode(gradient(200, 200), "PNG"))
    proc = run(
        "enrol",
        "staff",
        "colin",
        no_face,
        shared_data / "faces/face_recognition/two_people.jpg",
        data_dir=data_dir,
    )
    assert_one_line_error(proc, "NothingEnrolled: nothing enrolled for user colin: wall.png: no face;")
    assert [p["status"] for p in json.loads(proc.stdout)["photos"]] == ["skipped", "skipped"]
    assert stored(data_dir) == (1, ["first"])


def test_enrol_folder(tmp_path: Path, shared_data: Path) -> None:
    people = tmp_path / "people"
    for person, user in (("Colin_Powell", "colin"), ("Tony_Blair", "tony")):
        (people / user).mkdir(parents=True)
        for n in (1, 2):
            shutil.copy(lfw(shared_data, person, n), people / user / f"{n}.JPG")
    (people / "tony" / "notes.txt").write_text("not a photo: not looked at")
    (people / "wall").mkdir()
    (people / "wall" / "1.png").write_bytes(encode(gradient(200, 200), "PNG"))
    (people / "bad name").mkdir()
    proc = run("enrol-folder", "staff", people, "--create-collection", data_dir=tmp_path / "var")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["persons_enrolled"], doc["persons_failed"], doc["indexed"], doc["skipped"]) == (2, 2, 4, 1)
    by_user = {p["user_id"]: p for p in doc["persons"]}
    assert [p["photo"] for p in by_user["tony"]["photos"]] == ["1.JPG", "2.JPG"]
    assert by_user["wall"]["photos"][0]["reason"] == "no face"
    assert "no photos" in by_user["bad name"]["error"]
    assert stored(tmp_path / "var") == (4, ["colin", "tony"])


def test_enrol_help_and_bad_options(tmp_path: Path) -> None:
    for command in ("enrol", "enrol-folder"):
        proc = run(command, "--help")
        assert proc.returncode == 0 and "Example" in proc.stdout and "--quality-filter" in proc.stdout
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"")
    assert_one_line_error(run("enrol", "staff", "x", photo, "--quality-filter", "BEST"), "--quality-filter")
    assert_one_line_error(run("enrol-folder", "staff", tmp_path / "nowhere"), "is not a folder")
