"""Signing in and out of the console in headless Chromium on a real server: the redirect to sign-in, the
session cookie's attributes, a wrong secret, the keyboard alone, and an old cookie after sign-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from keeneye.config import ServerSettings
from tests.aws.signing import AKID, SECRET
from tests.console.pages import COOKIE, LANDING, SIGN_IN, Console

pytestmark = [pytest.mark.browser, pytest.mark.models]

Axe = Callable[[WebDriver], list[dict[str, Any]]]
SESSION_S = ServerSettings().console_session_s


def test_signing_in_lands_on_collections_with_a_strict_http_only_session_cookie(
    console: Console, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    console.open("/console/")
    assert console.path == SIGN_IN  # not signed in: sent to sign in
    console.find("form#sign-in-form")
    screenshot("sign-in")
    assert axe(console.driver) == []
    console.signed_in()
    cookie = console.cookie()
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert abs(cookie["expiry"] - (time.time() + SESSION_S)) < 120  # it expires, after the session's length
    assert console.driver.execute_script("return document.cookie").find(COOKIE) == -1  # no script reads it
    console.find("nav#nav")
    console.find("form#sign-out button#sign-out-button")
    console.find("table#collections")
    screenshot("collections")
    assert axe(console.driver) == []


def test_a_wrong_secret_shows_an_error_and_opens_no_session(
    console: Console, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    console.sign_in(AKID, SECRET + "x")
    alert = console.find("[role=alert]")
    assert console.path == SIGN_IN and console.status() == 401
    assert "wrong secret" in alert.text
    assert console.cookie() is None
    console.find("form#sign-in-form")  # the form is there to try again
    screenshot("sign-in-error")
    assert axe(console.driver) == []
    console.open(LANDING)
    assert console.path == SIGN_IN


def test_the_sign_in_form_is_filled_and_sent_with_the_keyboard_alone(console: Console) -> None:
    console.open(SIGN_IN)
    keys = ActionChains(console.driver)

    def focused() -> str:
        """The focused element's id, checked to show where the focus is (an outline)."""
        element_id, outline = console.driver.execute_script(
            "const e = document.activeElement;"
            "return [e.id, e === document.body ? 'body' : getComputedStyle(e).outlineStyle];"
        )
        assert outline != "none", f"#{element_id} has the focus but shows no outline"
        return str(element_id)

    for _ in range(10):  # past the skip link and the header, if focus does not start in the form
        if focused() == "access_key_id":
            break
        keys.send_keys(Keys.TAB).perform()
    assert focused() == "access_key_id"
    keys.send_keys(AKID).perform()
    keys.send_keys(Keys.TAB).perform()
    assert focused() == "secret_access_key"
    keys.send_keys(SECRET).perform()
    keys.send_keys(Keys.TAB).perform()
    assert focused() == "sign-in"
    keys.send_keys(Keys.ENTER).perform()
    console.wait_for_path(LANDING)
    assert console.cookie() is not None


def test_sign_out_ends_the_session_and_the_old_cookie_no_longer_works(
    console: Console, screenshot: Callable[[str], Path]
) -> None:
    console.signed_in()
    old = console.cookie()
    assert old is not None
    csrf = console.csrf_token()
    console.find("#sign-out-button").click()
    console.wait_for_path(SIGN_IN)
    assert console.cookie() is None
    # The token itself is revoked: the same cookie, sent again, opens nothing.
    jar = {COOKIE: old["value"]}
    page = httpx.get(console.url(LANDING), cookies=jar, follow_redirects=False, timeout=10)
    assert (page.status_code, page.headers["location"]) == (303, SIGN_IN)
    change = httpx.post(
        console.url("/console/collections"),
        cookies=jar,
        data={"csrf_token": csrf, "collection_id": "after-sign-out"},
        headers={"Origin": console.server.url},
        follow_redirects=False,
        timeout=10,
    )
    assert change.status_code == 401
    assert console.server.client().list_collections()["CollectionIds"] == []
    console.driver.add_cookie({"name": COOKIE, "value": old["value"], "path": "/console", "httpOnly": True})
    console.open(LANDING)
    assert console.path == SIGN_IN
    screenshot("signed-out")
