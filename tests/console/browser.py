"""Headless Chromium for the console's end-to-end tests: Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium 4.

Nothing is downloaded at run time: the driver is named by an explicit ``Service`` path, so Selenium Manager
is never consulted (``SE_OFFLINE`` says so too), and the browser resolves no name but 127.0.0.1: every
other host maps to "not found", so a page that reaches for a CDN shows it in the test rather than going
out. The accessibility checker is axe-core, an npm package of tests/js (``make js-deps``), injected into
the page under test. When a piece is missing the tests fail (never skip) naming the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.system import install_hint

REPO = Path(__file__).resolve().parents[2]
# Debian packages (tools/system-deps.sh installs them; tests/test_system_deps.py keeps the two lists in step).
PACKAGES = ("chromium", "chromium-driver")
# The browser itself, not /usr/bin/chromium: that launcher script sources /etc/chromium.d (remote
# extensions on, GPU rasterisation, a /dev/shm probe that prints shell errors on some machines); the
# flags below are the whole configuration instead.
# KEENEYE_CHROMIUM / KEENEYE_CHROMEDRIVER name others (Ubuntu's snap: /snap/bin/chromium and
# /snap/bin/chromium.chromedriver; tools/system-deps.sh says so there).
CHROMIUM = Path(os.environ.get("KEENEYE_CHROMIUM") or "/usr/lib/chromium/chromium")
CHROMEDRIVER = Path(os.environ.get("KEENEYE_CHROMEDRIVER") or "/usr/bin/chromedriver")
AXE = REPO / "tests/js/node_modules/axe-core/axe.min.js"
WIDTH, HEIGHT = 1280, 800
# What the tests refuse: axe-core's two highest impacts (the others are "moderate" and "minor").
BLOCKING_IMPACTS = ("serious", "critical")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it may not have
    "--disable-dev-shm-usage",
    "--disable-gpu",
    f"--window-size={WIDTH},{HEIGHT}",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",  # screenshots of the page, not of a scrollbar's width
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--lang=en-US",
)


def require_browser() -> None:
    """Fail with the install command when Chromium or its driver is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"headless Chromium not found ({', '.join(missing)}): run `make test`, or "
            + install_hint(*PACKAGES),
            pytrace=False,
        )


def require_axe() -> Path:
    """axe.min.js, or fail naming the command that installs it."""
    if not AXE.is_file():
        pytest.fail(
            f"axe-core not found at {AXE}: run `make test` (or `make js-deps`: npm ci in tests/js)",
            pytrace=False,
        )
    return AXE


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile and a 1280x800 viewport, quit (and its profile removed)
    at the end."""
    require_browser()
    os.environ["SE_OFFLINE"] = "true"  # should Selenium Manager ever be reached, it must not download
    profile = Path(tempfile.mkdtemp(prefix="keeneye-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            driver.set_page_load_timeout(30)
            driver.set_script_timeout(30)
            fit_viewport(driver)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def fit_viewport(driver: WebDriver) -> None:
    """Size the window so that the page's viewport is WIDTH x HEIGHT: headless Chromium's
    ``--window-size`` is the outer window, whose viewport is some 140 px shorter."""
    inner = viewport(driver)
    outer = driver.get_window_size()
    driver.set_window_size(outer["width"] + WIDTH - inner[0], outer["height"] + HEIGHT - inner[1])
    assert viewport(driver) == (WIDTH, HEIGHT), f"the viewport is {viewport(driver)}, not {WIDTH}x{HEIGHT}"


def viewport(driver: WebDriver) -> tuple[int, int]:
    """The page's CSS viewport (innerWidth, innerHeight), which the screenshots capture."""
    size = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    return int(size[0]), int(size[1])


def axe_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page now loaded (WCAG and best-practice rules,
    axe's defaults), each as axe reports it: ``id``, ``impact``, ``help``, ``nodes`` (with ``target``)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(require_axe().read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        "  .then(r => done(r.violations), e => done({error: String(e)}));"
    )
    assert isinstance(result, list), f"axe-core failed on {driver.current_url}: {result}"
    return [v for v in result if v.get("impact") in BLOCKING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation, for an assertion message."""
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}" for v in violations
    )
