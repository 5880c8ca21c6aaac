"""Every console page the other tests do not already go through, in headless Chromium at 1280x800: it
answers 200 to a signed-in admin, has the navigation and sign-out, is screenshotted, axe-core finds no
serious or critical violation on it, and everything it loads comes from this server. A key in the
database (with a policy) gives the keys page a row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.console.browser import describe
from tests.console.pages import READ_ONLY, Console, new_key

pytestmark = [pytest.mark.browser, pytest.mark.models]

Axe = Callable[[WebDriver], list[dict[str, Any]]]

# path, screenshot name, an element the page must have (the console's DOM contract)
PAGES = [
    ("/console/processors", "processors", "table#processors"),
    ("/console/events", "events", "main h1"),
    ("/console/video", "video", "main h1"),
    ("/console/redact", "redact", "main h1"),
    ("/console/keys", "keys", "table#keys"),
    ("/console/review", "review-empty", "table#queue"),
    ("/console/audit", "audit-all", "table#audit"),
]


def resources(driver: WebDriver) -> list[str]:
    """Every URL the page loaded (stylesheets, scripts, images, fetches): the console works offline,
    from this server alone (no CDN)."""
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [str(u) for u in urls if not str(u).startswith(("data:", "blob:"))]


def test_every_page_answers_with_navigation_and_no_serious_accessibility_violation(
    console: Console, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    reader = new_key(console.server, "reader", READ_ONLY)
    console.signed_in()
    problems = {}
    for path, name, element in PAGES:
        console.open(path)
        console.find(element)
        console.find("nav#nav")
        console.find("form#sign-out")
        screenshot(name)
        if violations := axe(console.driver):
            problems[path] = describe(violations)
        if elsewhere := [u for u in resources(console.driver) if not u.startswith(console.server.url)]:
            problems[path] = f"loads from elsewhere: {elsewhere}"
    assert problems == {}, problems
    console.open("/console/keys")
    assert [r[:3] for r in console.rows("table#keys")] == [["reader", reader.access_key_id, "yes"]]
