"""Recorded video and redaction in the console, in headless Chromium on a real server with a served
bucket: upload a video, draw a counting line on its first frame with two clicks, start person tracking,
follow the job until it ends (the page reloads itself), then find the player with its track overlay and
the in/out plot of the line; pick a video already in the bucket and find the people of a collection in
it; and redact a photo with two faces in the browser."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from keeneye.config import VideoJobSettings
from tests.console.pages import Console
from tests.contract.conftest import RunningServer
from tests.contract.test_face_search_video import enrol_hamilton

pytestmark = [pytest.mark.browser, pytest.mark.models, pytest.mark.data]

Axe = Callable[[WebDriver], list[dict[str, Any]]]
JOB_S = 240.0  # person tracking of a 10 s clip on a busy 2-core machine


@pytest.fixture
def bucket_console(driver: WebDriver, start_server: Callable[..., RunningServer], tmp_path: Path) -> Console:
    """The console of a server that serves the bucket ``videos`` (an empty folder)."""
    (tmp_path / "videos").mkdir()
    return Console(driver, start_server(buckets={"videos": tmp_path / "videos"}))


def start_and_follow_job(console: Console) -> str:
    """Press Start on the new-video page and follow the job's page until it ends; its JobStatus."""
    console.find("#start-job-button").click()
    console.wait(
        lambda: console.path.startswith("/console/video/") and console.path != "/console/video/new", "job"
    )
    # Read in one script call, holding no element across the page's own reloads.
    ended = "const s = document.getElementById('job-state'); return s && s.dataset.state"
    return str(
        console.wait(
            lambda: (
                console.driver.execute_script(ended) in ("SUCCEEDED", "FAILED")
                and console.driver.execute_script(ended)
            ),
            "the job to end (the page reloads itself)",
            JOB_S,
        )
    )


def test_upload_a_video_draw_a_line_track_people_and_see_the_plot(
    bucket_console: Console, shared_data: Path, tmp_path: Path, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    console = bucket_console
    clip = shared_data / "video/face_clips/short_hamilton_clip.mp4"
    console.signed_in()
    console.open("/console/video")
    console.find("#u-file").send_keys(str(clip))
    console.find("#upload-button").click()
    console.wait_for_path("/console/video/new")
    assert (tmp_path / "videos/console-uploads" / clip.name).read_bytes() == clip.read_bytes()
    frame = console.find("img#snapshot")
    console.wait(
        lambda: console.driver.execute_script("return arguments[0].naturalWidth", frame), "the frame"
    )
    console.fill("#line-name", "stage-edge")
    width, height = frame.size["width"], frame.size["height"]
    clicks = ActionChains(console.driver)
    for x, y in ((0.5, 0.1), (0.5, 0.9)):  # offsets from the image's centre
        clicks.move_to_element_with_offset(frame, round((x - 0.5) * width), round((y - 0.5) * height)).click()
    clicks.perform()
    (line,) = json.loads(console.find("#lines").get_attribute("value") or "[]")
    assert line["name"] == "stage-edge"
    assert line["p1"] == pytest.approx([0.5, 0.1], abs=0.02) and line["p2"] == pytest.approx(
        [0.5, 0.9], abs=0.02
    )
    screenshot("video-new")
    assert axe(console.driver) == []

    state = start_and_follow_job(console)
    assert state == "SUCCEEDED", console.find("#job-state").text
    console.find("video#player")
    console.wait(
        lambda: console.driver.execute_script("return document.getElementById('player').readyState") >= 1,
        "the video",
    )
    meta = console.find("#player-meta")
    drawn = console.wait(lambda: re.search(r"(\d+) people drawn", meta.text), "the tracks over the player")
    assert int(drawn[1]) > 0  # the tracks are drawn over the player at its time
    assert console.rows("table#line-totals")[0][0] == "stage-edge"
    assert "stage-edge in" in console.find("svg#counts-plot").text
    screenshot("video-job")
    assert axe(console.driver) == []
    console.open("/console/video")
    (job,) = console.rows("table#jobs")
    assert job[1:4] == ["PersonTracking", "videos/console-uploads/short_hamilton_clip.mp4", "succeeded"]
    screenshot("video")
    assert axe(console.driver) == []


def test_redact_a_photo_in_the_browser(
    console: Console, shared_data: Path, screenshot: Callable[[str], Path], axe: Axe
) -> None:
    console.signed_in()
    console.open("/console/redact")
    console.find("#r-photo").send_keys(str(shared_data / "faces/face_recognition/two_people.jpg"))
    console.find("#redact-button").click()
    image = console.find("img#redacted")
    assert "two_people.jpg: 2 faces obscured" in console.find("main").text
    console.wait(
        lambda: console.driver.execute_script("return arguments[0].naturalWidth", image), "the result"
    )
    screenshot("redact-result")
    assert axe(console.driver) == []


def test_pick_a_served_video_and_find_the_people_of_a_collection(
    driver: WebDriver,
    start_server: Callable[..., RunningServer],
    shared_data: Path,
    tmp_path: Path,
    axe: Axe,
) -> None:
    """A face search started from the console on a video already in a bucket: the job page lists the
    matches (Lin-Manuel Miranda, enrolled from one photo; nobody else), and each is a lead queued for
    review, as the API's StartFaceSearch does."""
    clip = "short_hamilton_clip.mp4"
    (tmp_path / "videos").mkdir()
    shutil.copyfile(shared_data / "video/face_clips" / clip, tmp_path / "videos" / clip)
    server = start_server(
        buckets={"videos": tmp_path / "videos"}, video_jobs=VideoJobSettings(workers=1, target_fps=5.0)
    )
    admin = server.client()
    face_ids = enrol_hamilton(admin, shared_data)
    console = Console(driver, server)
    console.signed_in()
    console.open(f"/console/video/new?bucket=videos&video={clip}")
    Select(console.find("#v-kind")).select_by_value("FaceSearch")
    Select(console.find("#v-collection")).select_by_visible_text("hamilton")
    state = start_and_follow_job(console)
    assert state == "SUCCEEDED", console.find("#job-state").text
    rows = console.rows("table#job-matches")
    assert len(rows) >= 5, rows  # he sings for ~4 s, analysed at 5 frames a second
    matched = " ".join(r[2] for r in rows)
    assert face_ids["lin-manuel-miranda"] in matched and face_ids["alex-lacamoire"] not in matched
    assert axe(console.driver) == []
    job_id = console.path.rsplit("/", 1)[1]
    assert admin.get_face_search(JobId=job_id)["JobStatus"] == "SUCCEEDED"
    review = server.services.review if server.services is not None else None
    assert review is not None
    queued = review.list(status="PENDING", source_kind="video")
    assert queued and {i.face_id for i in queued} == {face_ids["lin-manuel-miranda"]}
