"""The console's end-to-end rig: a real keeneye server on 127.0.0.1 (the contract tests' ``start_server``,
real models) and a real headless Chromium (tests/console/browser.py) at 1280x800.

Fixtures: ``server`` (a started :class:`RunningServer`), ``driver`` (a new browser per test, so no cookie
or session leaks from one test to the next), ``console`` (the browser pointed at that server, with the
steps every test repeats: tests/console/pages.py), ``screenshot(name)`` (a PNG of the viewport in
``$KEENEYE_DATA_DIR/console-screenshots/<name>.png``) and ``axe(driver)`` (axe-core's serious and critical
violations on the page now shown). A failed test leaves a screenshot of where the browser stood in
``console-screenshots/failed/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.console.browser import REPO, axe_violations, chromium
from tests.console.pages import Console
from tests.contract.conftest import RunningServer, face_service, start_server

__all__ = ["face_service", "start_server"]  # the contract tests' fixtures, imported to be used here

_FAILED = pytest.StashKey[bool]()


def screenshots_dir() -> Path:
    """``$KEENEYE_DATA_DIR/console-screenshots`` (the data directory defaults to the repository's var/)."""
    return Path(os.environ.get("KEENEYE_DATA_DIR", REPO / "var")).resolve() / "console-screenshots"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server()


@pytest.fixture
def driver(request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    with chromium() as d:
        yield d
        if request.node.stash.get(_FAILED, False):
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            path = screenshots_dir() / "failed" / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(str(path))


@pytest.fixture
def console(driver: WebDriver, server: RunningServer) -> Console:
    return Console(driver, server)


@pytest.fixture
def screenshot(driver: WebDriver) -> Callable[[str], Path]:
    """``screenshot(name)``: save the viewport (1280x800) as ``console-screenshots/<name>.png``."""

    def save(name: str) -> Path:
        path = screenshots_dir() / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(path)), f"no screenshot of {driver.current_url}"
        return path

    return save


@pytest.fixture
def axe() -> Callable[[WebDriver], list[dict[str, Any]]]:
    """``axe(driver)``: axe-core's serious and critical violations on the page now loaded."""
    return axe_violations
