"""A collection's settings and the cameras in the console, in headless Chromium on a real server: set a
collection's retention and require review, delete the collection; register a camera (its password never
shown) and find it among the cameras a new processor may use; both with the keyboard alone too. What the
pages did is checked through the API and in the audit log, under the signed-in key."""

from __future__ import annotations

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
from tests.console.pages import Console
from tests.console.test_people import accept_confirmation
from tests.receivers import free_port

pytestmark = [pytest.mark.browser]

Axe = Callable[[WebDriver], list[dict[str, Any]]]


def _console_audit(console: Console, operation: str) -> list[dict[str, Any]]:
    audit = console.server.services.audit if console.server.services is not None else None
    assert audit is not None
    return [
        r
        for r in audit.read()
        if r["operation"] == operation and (r.get("details") or {}).get("via") == "console"
    ]


def test_retention_review_and_deleting_a_collection(
    console: Console, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    admin = console.server.client()
    admin.create_collection(CollectionId="visitors")
    console.signed_in()
    console.open("/console/collections/visitors")
    assert "faces kept until deleted" in console.find("main").text

    console.fill("#retention_days", "30")
    console.find("form#retention button[type=submit]").click()
    console.wait(lambda: "Retention saved." in console.find("main").text, "the retention saved")
    assert "faces kept 30 days" in console.find("main").text
    (record,) = _console_audit(console, "SetCollectionRetention")
    assert record["details"]["days"] == 30 and record["access_key"] == AKID
    assert record["collection_id"] == "visitors"

    console.fill("#retention_days", "forever")  # refused with what to type, nothing changed
    console.find("form#retention button[type=submit]").click()
    console.wait(lambda: "whole number of days" in console.find("main").text, "the refusal")
    assert console.status() == 400
    console.open("/console/collections/visitors")
    assert "faces kept 30 days" in console.find("main").text

    assert "matches wait for review" not in console.find("main").text
    console.find("#review_required").click()
    console.find("form#review-required-form button[type=submit]").click()
    console.wait(lambda: "matches wait for review" in console.find("main").text, "review required")
    assert console.find("#review_required").is_selected()
    (record,) = _console_audit(console, "SetCollectionReviewRequired")
    assert record["details"]["required"] is True and record["collection_id"] == "visitors"
    screenshot("collection-settings")
    assert axe(console.driver) == []

    console.find("form#delete-collection button[type=submit]").click()
    accept_confirmation(console.driver)
    console.wait_for_path("/console/collections")
    assert admin.list_collections()["CollectionIds"] == []
    (record,) = _console_audit(console, "DeleteCollection")
    assert record["collection_id"] == "visitors" and record["access_key"] == AKID


def test_register_a_camera_with_its_password_hidden(
    console: Console, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    # Nothing listens there and nothing connects: registering stores the camera, it does not open it.
    url = f"rtsp://guard:hunter2@127.0.0.1:{free_port()}/door"
    console.signed_in()
    console.open("/console/processors")
    console.fill("#c-name", "door")
    console.fill("#c-url", url)
    console.find("form#register-camera button[type=submit]").click()
    console.wait(lambda: any(r[0] == "door" for r in console.rows("table#cameras")), "the camera listed")
    (row,) = [r for r in console.rows("table#cameras") if r[0] == "door"]
    assert row[1].startswith("rtsp://guard:") and row[1].endswith("/door")
    assert "hunter2" not in console.driver.page_source  # nowhere on the page, not even in a form
    cameras = [o.get_attribute("value") for o in Select(console.find("#p-camera")).options]
    assert "door" in cameras  # a processor can now be created on it
    (record,) = _console_audit(console, "PutCamera")
    assert record["details"]["name"] == "door" and "hunter2" not in str(record)
    screenshot("cameras-registered")
    assert axe(console.driver) == []

    console.fill("#c-name", "bad name!")  # refused with the reason, and nothing registered
    console.fill("#c-url", url)
    console.find("form#register-camera button[type=submit]").click()
    console.wait(lambda: console.status() == 400, "the refusal")
    console.open("/console/processors")
    assert [r[0] for r in console.rows("table#cameras")] == ["door"]


def _tab_to(console: Console, css: str, limit: int = 80) -> None:
    """Press Tab until the element ``css`` has the focus (AssertionError after ``limit`` presses)."""
    target = console.find(css)
    for _ in range(limit):
        ActionChains(console.driver).send_keys(Keys.TAB).perform()
        if console.driver.switch_to.active_element == target:
            return
    raise AssertionError(f"Tab never reached {css}")


def test_a_camera_and_a_collection_setting_with_the_keyboard_alone(console: Console) -> None:
    """The forms an operator fills most are reachable and usable without a mouse: Tab to each field in
    turn, type, Enter on the button (the order is the page's, top to bottom)."""
    console.server.client().create_collection(CollectionId="night-shift")
    url = f"rtsp://127.0.0.1:{free_port()}/gate"  # stored, never opened
    console.signed_in()
    console.open("/console/processors")
    console.driver.find_element(By.TAG_NAME, "body").click()
    _tab_to(console, "#c-name")
    ActionChains(console.driver).send_keys("gate").perform()
    ActionChains(console.driver).send_keys(Keys.TAB).perform()
    assert console.driver.switch_to.active_element == console.find("#c-url")
    ActionChains(console.driver).send_keys(url).perform()
    ActionChains(console.driver).send_keys(Keys.TAB).perform()
    assert console.driver.switch_to.active_element.text == "Register"
    ActionChains(console.driver).send_keys(Keys.ENTER).perform()
    console.wait(lambda: any(r[0] == "gate" for r in console.rows("table#cameras")), "the camera listed")

    console.open("/console/collections/night-shift")
    console.driver.find_element(By.TAG_NAME, "body").click()
    _tab_to(console, "#retention_days")
    ActionChains(console.driver).send_keys("7", Keys.ENTER).perform()  # Enter in a field submits its form
    console.wait(lambda: "faces kept 7 days" in console.find("main").text, "the retention saved")
    _tab_to(console, "#review_required")
    ActionChains(console.driver).send_keys(Keys.SPACE).perform()  # Space ticks a checkbox
    ActionChains(console.driver).send_keys(Keys.TAB, Keys.ENTER).perform()  # on to Save, pressed
    console.wait(lambda: "matches wait for review" in console.find("main").text, "review required")
