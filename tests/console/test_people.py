"""People and collections in the console, in headless Chromium on a real server with the real models:
create a collection, enrol a person by dropping three photos on the form (each photo's outcome shown),
search by photo, delete the person; a photo with no face is refused with its reason; a read-only key sees
the actions disabled and the server refuses them anyway; a change without the session's CSRF token is
refused.

The photos are real (../shared/data/faces/face_recognition, see its MANIFEST.md); what the pages show is
checked against what the Rekognition API says, through boto3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.remote.webdriver import WebDriver

from tests.console.pages import READ_ONLY, Console, new_key

pytestmark = [pytest.mark.browser, pytest.mark.models, pytest.mark.data]

Axe = Callable[[WebDriver], list[dict[str, Any]]]


@pytest.fixture
def obama_photos(shared_data: Path) -> list[Path]:
    """Three photos of one person (the enrolment) and, last, a fourth one for the search."""
    faces = shared_data / "faces/face_recognition"
    return [
        faces / "knn_examples/train/obama/obama.jpg",
        faces / "knn_examples/train/obama/obama2.jpg",
        faces / "obama3.jpg",
        faces / "knn_examples/test/obama1.jpg",
    ]


def create_collection(console: Console, collection_id: str) -> None:
    console.open("/console/collections")
    console.fill("#collection_id", collection_id)
    console.find("#create-collection-button").click()
    console.wait_for_path(f"/console/collections/{collection_id}")


def enrol(console: Console, user_id: str, photos: list[Path]) -> None:
    console.fill("#user_id", user_id)
    console.find("#photos").send_keys("\n".join(str(p) for p in photos))
    console.find("#enrol-button").click()
    console.find("ul#enrol-results")


def people(console: Console) -> dict[str, str]:
    """Person -> face count, from table#people."""
    return {cells[0]: cells[1] for cells in console.rows("table#people") if len(cells) > 1}


def accept_confirmation(driver: WebDriver) -> None:
    """Accept a confirm() dialog if the page asked one (a delete may)."""
    with contextlib.suppress(NoAlertPresentException):
        driver.switch_to.alert.accept()


def test_enrol_a_person_from_three_photos_search_by_photo_and_delete_them(
    console: Console, obama_photos: list[Path], screenshot: Callable[[str], Path], axe: Axe
) -> None:
    admin = console.server.client()
    console.signed_in()
    create_collection(console, "staff")
    assert admin.list_collections()["CollectionIds"] == ["staff"]
    screenshot("collection-empty")
    assert axe(console.driver) == []

    console.fill("#user_id", "obama")
    console.drop_files("#photos", obama_photos[:3])  # dropped on the form, as the page invites
    dropped = "return Array.from(document.getElementById('photos').files).map(f => f.name)"
    assert console.driver.execute_script(dropped) == [p.name for p in obama_photos[:3]]
    console.find("#enrol-button").click()
    console.find("ul#enrol-results")
    results = console.all("ul#enrol-results li")
    assert [r.get_attribute("class") for r in results] == ["indexed"] * 3
    assert [r.text.split(":")[0] for r in results] == [p.name for p in obama_photos[:3]]
    assert people(console) == {"obama": "3"}
    assert [u["UserId"] for u in admin.list_users(CollectionId="staff")["Users"]] == ["obama"]
    assert len(admin.list_faces(CollectionId="staff", UserId="obama")["Faces"]) == 3
    screenshot("collection-enrolled")
    assert axe(console.driver) == []
    console.find("table#people a").click()
    console.wait_for_path("/console/collections/staff/people/obama")
    assert len(console.rows("table#faces")) == 3
    screenshot("person")
    assert axe(console.driver) == []
    console.open("/console/collections/staff")

    console.find("#search_photo").send_keys(str(obama_photos[3]))
    console.find("#search-button").click()
    rows = console.rows("table#search-results")
    assert [r[0] for r in rows] == ["obama"] and float(rows[0][1]) >= 80
    screenshot("search-results")
    assert axe(console.driver) == []

    console.open("/console/collections/staff")
    row = next(r for r in console.all("table#people tbody tr") if r.text.startswith("obama"))
    row.find_element("css selector", "form.delete-person button").click()
    accept_confirmation(console.driver)
    console.wait(lambda: "obama" not in people(console), "obama to be gone from the people")
    assert console.path == "/console/collections/staff"
    console.open("/console/collections/staff")
    assert people(console) == {}
    assert admin.list_users(CollectionId="staff")["Users"] == []
    assert admin.list_faces(CollectionId="staff")["Faces"] == []  # their faces went with them


def test_a_photo_without_a_face_is_refused_with_its_reason(
    console: Console, shared_data: Path, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    console.server.client().create_collection(CollectionId="staff")
    console.signed_in()
    console.open("/console/collections/staff")
    enrol(console, "nobody", [shared_data / "faces/no_face/skimage_coffee.png"])
    assert console.status() == 400
    (result,) = console.all("ul#enrol-results li")
    assert result.get_attribute("class") == "refused"
    assert "skimage_coffee.png" in result.text and "no face" in result.text
    assert people(console) == {}
    screenshot("enrol-refused")
    assert axe(console.driver) == []


def test_a_read_only_key_sees_enrolment_disabled_and_the_server_refuses_it(
    console: Console, obama_photos: list[Path], screenshot: Callable[[str], Path], axe: Axe
) -> None:
    admin = console.server.client()
    admin.create_collection(CollectionId="staff")
    reader = new_key(console.server, "reader", READ_ONLY)
    console.signed_in(reader.access_key_id, reader.secret_access_key)
    assert console.find("#create-collection-button").get_attribute("disabled") is not None
    console.open("/console/collections/staff")
    for control in ("#user_id", "#photos", "#enrol-button"):
        assert console.find(control).get_attribute("disabled") is not None, control
    assert console.find("#search-button").get_attribute("disabled") is None  # it may search
    screenshot("collection-read-only")
    assert axe(console.driver) == []
    # What the disabled form would have sent, forged with the session's own CSRF token: refused.
    action = console.find("form#enrol").get_attribute("action") or ""
    forged = console.fetch(
        action.removeprefix(console.server.url),
        {"csrf_token": console.csrf_token(), "user_id": "obama"},
        {"photos": obama_photos[:3]},
    )
    assert forged.status == 403, forged.text[:500]
    assert "rekognition:IndexFaces" in forged.text
    assert admin.list_users(CollectionId="staff")["Users"] == []
    assert admin.describe_collection(CollectionId="staff")["FaceCount"] == 0


def test_a_change_without_the_session_csrf_token_is_refused(console: Console) -> None:
    console.signed_in()
    for fields in ({"collection_id": "forged"}, {"collection_id": "forged", "csrf_token": "0" * 64}):
        forged = console.fetch("/console/collections", fields)
        assert forged.status == 403 and "CSRF" in forged.text, forged.text[:500]
    assert console.server.client().list_collections()["CollectionIds"] == []
