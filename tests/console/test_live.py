"""A camera's live identification, end to end in the console: enrol two people from their photos, create
a face-search stream processor on the RTSP test rig (tests/rtsp/rig.py: GStreamer's RTSP server playing
the Hamilton clip), start it, watch the live view name Lin-Manuel Miranda while the clip plays, less than
a second behind the camera, find his identification waiting in the review queue, confirm it, and find the
decision in the audit log.

The processor's worker is a real process loading its own models (seconds on a busy machine); the clip plays
once (10 s) from when the worker connects, and Lin-Manuel Miranda's close-up starts at 2.8 s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from tests.aws.signing import AKID
from tests.console.pages import Console
from tests.console.test_people import create_collection, enrol
from tests.rtsp.rig import RtspServer, hamilton_rtsp

__all__ = ["hamilton_rtsp"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.browser, pytest.mark.models, pytest.mark.data]

Axe = Callable[[WebDriver], list[dict[str, Any]]]
LIN = "lin-manuel-miranda"
START_S = 60.0  # a worker process starting (spawn, imports, models) on a busy 2-core machine
MAX_BEHIND_S = 1.0  # the bound on the live view's delay behind the camera


def live_meta(console: Console, name: str) -> dict[str, Any] | None:
    """What the live view's script fetches (live.json), fetched from the page; None while there is none."""
    got = console.driver.execute_async_script(
        "const [url, done] = arguments;"
        "fetch(url, {cache: 'no-store', credentials: 'same-origin'})"
        "  .then(async r => done(r.ok ? {at: Date.now() / 1000, meta: await r.json()} : null))"
        "  .catch(() => done(null));",
        f"/console/processors/{name}/live.json",
    )
    if got is None:
        return None
    meta: dict[str, Any] = got["meta"]
    meta["behind_s"] = got["at"] - meta["captured_at"]
    return meta


def test_a_live_identification_appears_and_is_confirmed_in_the_review_queue(
    console: Console,
    shared_data: Path,
    hamilton_rtsp: RtspServer,
    screenshot: Callable[[str], Path],
    axe: Axe,
) -> None:
    console.signed_in()
    create_collection(console, "hamilton")
    for person in (LIN, "alex-lacamoire"):
        enrol(console, person, [shared_data / "faces/face_recognition" / f"{person}.png"])
        assert [r.get_attribute("class") for r in console.all("ul#enrol-results li")] == ["indexed"]

    console.open("/console/processors")
    console.fill("#p-name", "stage")
    console.fill("#p-url", hamilton_rtsp.url)
    Select(console.find("#p-collection")).select_by_value("hamilton")
    console.find("#create-processor-button").click()
    console.wait_for_path("/console/processors/stage")
    assert console.find("#stop-button").get_attribute("disabled") is not None
    console.find("#start-button").click()
    console.wait(lambda: console.find("#stop-button").get_attribute("disabled") is None, "stop to be enabled")

    # The page's script polls the live view; the test reads the same metadata until Lin is named in it.
    samples: list[dict[str, Any]] = []
    named_at = None
    deadline = time.monotonic() + START_S + 10
    while named_at is None and time.monotonic() < deadline:
        meta = live_meta(console, "stage")
        if meta is not None:
            samples.append(meta)
            if any(t["kind"] == "face" and t["label"].startswith(LIN) for t in meta["tracks"]):
                named_at = meta["pts_ms"]
        time.sleep(0.1)
    labels = {t["label"] for s in samples for t in s["tracks"]}
    assert named_at is not None, f"{LIN} never named in the live view ({len(samples)} views: {labels})"
    assert not any(label.startswith("alex") for label in labels), labels
    console.wait(
        lambda: console.driver.execute_script("return document.getElementById('live').naturalWidth") > 0,
        "the page to show a live frame",
    )
    assert console.find("#live-meta").text.startswith("Frame at")
    behind = statistics.median(s["behind_s"] for s in samples)
    assert behind < MAX_BEHIND_S, f"the live view is {behind:.2f} s behind the camera (median)"
    screenshot("processor-live")
    assert axe(console.driver) == []

    def queued() -> list[WebElement]:
        console.open("/console/review")
        return [r for r in console.all("table#queue tr.identification") if LIN in r.text]

    rows = console.wait(queued, f"{LIN}'s identification in the review queue")
    assert all("stage" in r.text for r in rows)
    crop = rows[0].find_element("css selector", "img.crop")  # the face that matched, kept for review
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    console.wait(lambda: console.driver.execute_script(loaded, crop), "the face crop to load")
    assert not [r for r in console.all("table#queue tr.identification") if "alex" in r.text]
    screenshot("review-live")
    identification = rows[0].get_attribute("data-id")
    rows[0].find_element("css selector", "button.confirm").click()
    console.wait(
        lambda: not console.all(f"tr.identification[data-id='{identification}']"), "the decision to be saved"
    )

    console.open("/console/events")  # the timeline has it too, now confirmed
    events = [r for r in console.all("table#timeline tr.event-identification") if LIN in r.text]
    assert events and all("stage" in e.text for e in events)
    # The one decided is confirmed; a track of him in another shot (the clip has cuts) still waits.
    assert sum("confirmed" in e.text for e in events) == 1, [e.text for e in events]
    screenshot("events-live")
    assert axe(console.driver) == []

    console.open("/console/audit?operation=ReviewIdentification")
    (record,) = console.rows("table#audit")
    assert (record[2], record[3], record[4]) == ("ReviewIdentification", AKID, "hamilton")
    details = record[5]  # JSON, cut at 300 characters on the page: its first keys (sorted) are there
    assert f'"identification_id": "{identification}"' in details and '"decision": "CONFIRMED"' in details
    review = console.server.services.review if console.server.services is not None else None
    assert review is not None and identification is not None
    decided = review.get(identification)
    assert (decided.status, decided.decided_by, decided.source_name, decided.user_id) == (
        "CONFIRMED",
        AKID,
        "stage",
        LIN,
    )

    console.open("/console/processors")
    (listed,) = console.rows("table#processors")
    assert listed[:3] == ["stage", "running", "face search in hamilton"]
    screenshot("processors-running")
    assert axe(console.driver) == []
    console.find("table#processors a").click()
    console.wait_for_path("/console/processors/stage")
    console.find("#stop-button").click()
    console.wait(lambda: console.find("#start-button").get_attribute("disabled") is None, "the stop")
