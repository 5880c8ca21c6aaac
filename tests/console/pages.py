"""The steps the console's tests repeat, on a real browser pointed at a real server.

Element ids and classes are the console's DOM contract (keeneye/console/templates/): the sign-in form's
``#access_key_id``, ``#secret_access_key`` and ``#sign-in``; every signed-in page's ``nav#nav`` and
``form#sign-out``; the session cookie ``keeneye_console``; a hidden ``csrf_token`` in every POST form.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.credentials import AccessKey
from keeneye.service.governance.keys import AccessKeys
from keeneye.store.db import Store
from tests.aws.signing import AKID, SECRET
from tests.contract.conftest import RunningServer

COOKIE = "keeneye_console"
WAIT_S = 15.0  # bound on a page or a form's answer: enrolment analyses photos on a busy 2-core machine
SIGN_IN = "/console/sign-in"
LANDING = "/console/collections"
# A key that may look (describe, list, search) but change nothing, as tests/contract/test_access_keys.py.
READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["rekognition:Describe*", "rekognition:List*", "rekognition:Search*"],
            "Resource": "*",
        }
    ],
}


@dataclass
class Response:
    """What a ``fetch`` from the page got: status, final URL (after redirects) and body text."""

    status: int
    url: str
    text: str


def new_key(server: RunningServer, name: str, policy: dict[str, Any] | None) -> AccessKey:
    """A key pair made in the server's own database, as ``keeneye keys create`` does."""
    store = Store.open(server.data_dir)
    try:
        return AccessKeys(store, server.data_dir, AuditLog(store)).create(name, policy, actor="cli")[1]
    finally:
        store.close()


class Console:
    """The browser on one server's console."""

    def __init__(self, driver: WebDriver, server: RunningServer) -> None:
        self.driver = driver
        self.server = server

    # -- where the browser is -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def open(self, path: str, *, status: int = 200) -> None:
        """Load ``path`` (Selenium waits for the load event) and check the status it answered with (after
        redirects): a page that is not there fails here, at once, saying so."""
        self.driver.get(self.url(path))
        got = self.status()
        assert got == status, f"GET {path} answered {got} (at {self.driver.current_url}), not {status}"

    def status(self) -> int:
        """The HTTP status of the page now shown (the navigation's final response)."""
        return int(
            self.driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")
        )

    @property
    def path(self) -> str:
        return urlparse(self.driver.current_url).path

    def wait(self, until: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        """Poll ``until`` (bounded) until it returns something true; that value. An element that goes
        stale while it is read (the page was replaced: a form's answer arriving) is read again."""
        try:
            stale = (StaleElementReferenceException,)
            waiting = WebDriverWait(self.driver, timeout_s, poll_frequency=0.05, ignored_exceptions=stale)
            return waiting.until(lambda _: until())
        except TimeoutException:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what} (at {self.driver.current_url})"
            ) from None

    def wait_for_path(self, path: str, timeout_s: float = WAIT_S) -> None:
        self.wait(lambda: self.path == path, f"the browser to reach {path}", timeout_s)

    # -- the page -------------------------------------------------------------------------------------

    def find(self, css: str) -> WebElement:
        """The one element ``css`` names, waited for (bounded): a page that lacks it fails here."""
        found: list[WebElement] = self.wait(lambda: self.driver.find_elements(By.CSS_SELECTOR, css), css)
        return found[0]

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def texts(self, css: str) -> list[str]:
        return [e.text for e in self.all(css)]

    def rows(self, table: str) -> list[list[str]]:
        """The text of each cell of each body row of ``table`` (a row "nothing yet" is one cell)."""
        return [
            [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td")]
            for row in self.find(table).find_elements(By.CSS_SELECTOR, "tbody tr")
        ]

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def drop_files(self, css: str, paths: list[Path]) -> None:
        """Drag ``paths`` from outside the browser and drop them on the element ``css`` names, as a person
        dropping photos from their file manager does (DevTools' Input.dispatchDragEvent: the browser's own
        drop handling, not a script's imitation of it)."""
        box = self.find(css).rect
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        data = {"items": [], "files": [str(p) for p in paths], "dragOperationsMask": 1}  # 1: copy
        for kind in ("dragEnter", "dragOver", "drop"):
            event = {"type": kind, "x": x, "y": y, "data": data}
            self.driver.execute_cdp_cmd("Input.dispatchDragEvent", event)

    def csrf_token(self) -> str:
        """The CSRF token the page's forms carry (a hidden ``csrf_token``; the sign-out form has one)."""
        tokens = {e.get_attribute("value") or "" for e in self.all("input[name=csrf_token]")}
        assert len(tokens) == 1 and "" not in tokens, f"one CSRF token expected, found {tokens}"
        return tokens.pop()

    # -- session --------------------------------------------------------------------------------------

    def sign_in(self, access_key_id: str = AKID, secret: str = SECRET) -> None:
        """Fill and submit the sign-in form (lands on /console/collections when the key is right)."""
        self.open(SIGN_IN)
        self.fill("#access_key_id", access_key_id)
        self.fill("#secret_access_key", secret)
        self.find("#sign-in").click()

    def signed_in(self, access_key_id: str = AKID, secret: str = SECRET) -> None:
        self.sign_in(access_key_id, secret)
        self.wait_for_path(LANDING)

    def cookie(self) -> dict[str, Any] | None:
        return self.driver.get_cookie(COOKIE)

    # -- requests the forms do not make ---------------------------------------------------------------

    def fetch(
        self,
        path: str,
        fields: dict[str, str],
        files: dict[str, list[Path]] | None = None,
    ) -> Response:
        """POST a multipart form from the page (same origin, with the browser's cookies), as a script or a
        hand-made request would, whatever the page shows; redirects are followed."""
        encoded = {
            name: [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]
            for name, paths in (files or {}).items()
        }
        result = self.driver.execute_async_script(
            "const [path, fields, files, done] = arguments;"
            "const body = new FormData();"
            "for (const [k, v] of Object.entries(fields)) body.append(k, v);"
            "for (const [k, list] of Object.entries(files)) for (const f of list) {"
            "  const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));"
            "  body.append(k, new Blob([bytes], {type: 'image/jpeg'}), f.name);"
            "}"
            "fetch(path, {method: 'POST', body, credentials: 'same-origin'})"
            "  .then(async r => done({status: r.status, url: r.url, text: await r.text()}))"
            "  .catch(e => done({status: -1, url: '', text: String(e)}));",
            path,
            fields,
            encoded,
        )
        assert isinstance(result, dict), json.dumps(result)[:500]
        return Response(int(result["status"]), str(result["url"]), str(result["text"]))
