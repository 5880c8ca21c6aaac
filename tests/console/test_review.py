"""The review queue in the console, in headless Chromium on a real server: confirm one identification,
reject another, see both decided (by whom) and find both decisions in the audit log, whose chain then
verifies.

The identifications are queued through the server's own ReviewQueue, as a stream processor, a video job
or an upload does (the live path from a camera is tests/console/test_live.py); the matched face is
a real one, indexed through boto3.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from tests.aws.signing import AKID
from tests.console.pages import Console, new_key
from tests.contract.conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.models, pytest.mark.data]

Axe = Callable[[WebDriver], list[dict[str, Any]]]


def queue_two_identifications(server: RunningServer, shared_data: Path) -> list[str]:
    """obama enrolled in "staff" from one photo, and two identifications of him waiting for review (the
    first queued is listed last: newest first); their ids, in queue order."""
    admin = server.client()
    admin.create_collection(CollectionId="staff")
    photo = (shared_data / "faces/face_recognition/obama3.jpg").read_bytes()
    indexed = admin.index_faces(CollectionId="staff", Image={"Bytes": photo})
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    admin.create_user(CollectionId="staff", UserId="obama")
    admin.associate_faces(CollectionId="staff", UserId="obama", FaceIds=[face_id])
    review = server.services.review if server.services is not None else None
    assert review is not None, "the server has no review queue"
    ids = []
    for n, (source, similarity) in enumerate([("front-door", 99.4), ("car-park", 91.2)]):
        item = review.record(
            source_kind="stream",
            source_name=source,
            collection_id="staff",
            face_id=face_id,
            similarity=similarity,
            track_id=n + 1,
            pts_ms=1000 * (n + 1),
        )
        assert item is not None
        ids.append(item.identification_id)
    return ids


def decide(console: Console, identification_id: str, button: str) -> None:
    console.find(f"tr.identification[data-id='{identification_id}'] button.{button}").click()
    console.wait(
        lambda: not console.all(f"tr.identification[data-id='{identification_id}']"),
        f"{identification_id} to leave the pending queue",
    )


def test_confirm_one_reject_another_and_find_both_in_the_audit_log(
    console: Console, shared_data: Path, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    confirmed, rejected = queue_two_identifications(console.server, shared_data)
    console.signed_in()
    console.open("/console/review")
    rows = console.all("table#queue tr.identification")
    assert {r.get_attribute("data-id") for r in rows} == {confirmed, rejected}
    assert all("obama" in r.text for r in rows)
    screenshot("review")
    assert axe(console.driver) == []

    decide(console, confirmed, "confirm")
    decide(console, rejected, "reject")
    assert console.all("table#queue tr.identification") == []  # nothing pending

    Select(console.find("select#status")).select_by_value("ALL")
    console.find("form#review-filter button[type=submit]").click()
    console.wait(lambda: len(console.all("table#queue tr.identification")) == 2, "both decisions listed")
    status = {
        r.get_attribute("data-id"): r.find_element("css selector", "td[class^=status-]").text
        for r in console.all("table#queue tr.identification")
    }
    assert status[confirmed].startswith("confirmed") and status[rejected].startswith("rejected")
    assert all(AKID in s for s in status.values())  # who decided
    review = console.server.services.review if console.server.services is not None else None
    assert review is not None
    assert (review.get(confirmed).status, review.get(rejected).status) == ("CONFIRMED", "REJECTED")
    screenshot("review-decided")
    assert axe(console.driver) == []

    console.open("/console/audit")
    console.fill("#f-operation", "ReviewIdentification")
    console.find("form#audit-filter button[type=submit]").click()
    console.wait(lambda: "ReviewIdentification" in console.driver.current_url, "the filtered audit log")
    decisions = {}
    for _, _, operation, key, collection, details in console.rows("table#audit"):
        assert (operation, key, collection) == ("ReviewIdentification", AKID, "staff")
        # JSON with sorted keys, cut at 300 characters on the page: decision and ids come first.
        found = re.search(r'"decision": "(\w+)".*"identification_id": "([\w-]+)"', details)
        assert found, details
        decisions[found[2]] = found[1]
    assert decisions == {confirmed: "CONFIRMED", rejected: "REJECTED"}
    screenshot("audit")
    assert axe(console.driver) == []

    console.find("#verify-chain").click()
    result = console.wait(lambda: console.find("#verify-result").text, "the chain's verification")
    assert result.startswith("Intact"), result
    screenshot("audit-verified")
    assert axe(console.driver) == []


def test_a_key_that_may_only_look_sees_the_decisions_disabled_and_cannot_decide(
    console: Console, shared_data: Path, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    first, _ = queue_two_identifications(console.server, shared_data)
    looks = ["keeneye:ListIdentifications", "rekognition:List*"]  # not keeneye:ReviewIdentification
    may_look = {"Effect": "Allow", "Action": looks, "Resource": "*"}
    looker = new_key(console.server, "looker", {"Version": "2012-10-17", "Statement": [may_look]})
    console.signed_in(looker.access_key_id, looker.secret_access_key)
    console.open("/console/review")
    buttons = console.all("table#queue tr.identification button")
    assert len(buttons) == 6 and all(b.get_attribute("disabled") is not None for b in buttons)
    screenshot("review-read-only")
    assert axe(console.driver) == []
    form = console.find(f"tr.identification[data-id='{first}'] button.confirm").find_element("xpath", "..")
    forged = console.fetch(
        (form.get_attribute("action") or "").removeprefix(console.server.url),
        {"csrf_token": console.csrf_token(), "decision": "confirm"},
    )
    assert forged.status == 403 and "keeneye:ReviewIdentification" in forged.text, forged.text[:500]
    review = console.server.services.review if console.server.services is not None else None
    assert review is not None and review.get(first).status == "PENDING"


def test_the_queue_can_be_worked_with_the_keyboard_alone(console: Console, shared_data: Path) -> None:
    """An operator on shift decides without a mouse: Tab moves through the page to each row's buttons in
    order (confirm, not this person, unsure) and Enter presses the focused one."""
    first, second = queue_two_identifications(console.server, shared_data)
    console.signed_in()
    console.open("/console/review")
    body = console.driver.find_element(By.TAG_NAME, "body")
    body.click()
    target = f"tr.identification[data-id='{second}'] button.confirm"  # the newest row comes first
    for _ in range(60):
        ActionChains(console.driver).send_keys(Keys.TAB).perform()
        focused = console.driver.switch_to.active_element
        if focused.get_attribute("class") == "confirm" and focused == console.find(target):
            break
    else:
        raise AssertionError("Tab never reached the first row's Confirm button")
    ActionChains(console.driver).send_keys(Keys.TAB).perform()  # on to "Not this person"
    assert "reject" in (console.driver.switch_to.active_element.get_attribute("class") or "")
    ActionChains(console.driver).send_keys(Keys.ENTER).perform()
    console.wait(lambda: not console.all(f"tr.identification[data-id='{second}']"), "the row to be decided")
    review = console.server.services.review if console.server.services else None
    assert review is not None
    assert review.get(second).status == "REJECTED" and review.get(first).status == "PENDING"
