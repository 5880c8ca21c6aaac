"""The browser rig itself: headless Chromium at 1280x800 on a real server (the console's sign-in page), a
screenshot of that size, axe-core that does find a violation where there is one (so its silence on the
console's pages means something), and the messages a machine without the browser or axe-core gets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from selenium.webdriver.remote.webdriver import WebDriver

from tests.console import browser
from tests.console.browser import HEIGHT, WIDTH, viewport
from tests.console.pages import SIGN_IN, Console

pytestmark = [pytest.mark.browser]

Axe = Callable[[WebDriver], list[dict[str, Any]]]


@pytest.mark.models
def test_the_sign_in_page_loads_at_1280x800(console: Console, screenshot: Callable[[str], Path]) -> None:
    console.open(SIGN_IN)
    console.find("form#sign-in-form")
    assert viewport(console.driver) == (WIDTH, HEIGHT)
    with Image.open(screenshot("sign-in")) as png:
        assert png.size == (WIDTH, HEIGHT)


def test_axe_reports_a_form_field_without_a_label(driver: WebDriver, axe: Axe) -> None:
    driver.get("data:text/html,<!doctype html><html lang=en><title>t</title><main><input id=x></main>")
    assert [v["id"] for v in axe(driver)] == ["label"]


def test_a_missing_browser_or_axe_core_is_named_with_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(browser, "CHROMEDRIVER", tmp_path / "chromedriver")
    with pytest.raises(pytest.fail.Exception) as failed:
        browser.require_browser()
    message = str(failed.value)
    assert "run `make test`" in message and str(tmp_path / "chromedriver") in message
    assert "apt-get install -y --no-install-recommends chromium chromium-driver" in message
    monkeypatch.setattr(browser, "AXE", tmp_path / "axe.min.js")
    with pytest.raises(pytest.fail.Exception) as failed:
        browser.require_axe()
    assert "run `make test` (or `make js-deps`: npm ci in tests/js)" in str(failed.value)
