"""The review queue end to end with a real stream processor: a real worker process on the RTSP test rig
(tests/rtsp/rig.py) searching a collection that requires review. Its matches are queued with the probe
face's crop, and their records are held from the webhook until a reviewer confirms one over the native
API; the held records then arrive marked CONFIRMED by that key; a rejected pair's records never arrive;
both decisions are in the audit log. A stored-video face search queues its match with the face crop, and
once a reviewer rejects it, the same video no longer matches that person (the probe is a negative)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from keeneye.config import VideoJobSettings
from tests.aws.signing import AKID
from tests.contract.conftest import RunningServer, all_persons, wait_for_job
from tests.contract.test_face_search_video import CLIP, POLL_TIMEOUT_S, SINGING_MS, enrol_hamilton
from tests.contract.test_stream_processors import (
    AUTH,
    START_S,
    _create,
    _index_hamilton,
    _stats,
    _wait_status,
)
from tests.receivers import wait_until, webhook_receiver
from tests.rtsp.rig import RtspServer, hamilton_rtsp

__all__ = ["hamilton_rtsp"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.models, pytest.mark.data]


def _queue(server: RunningServer) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/identifications?collection=hamilton", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["identifications"])


def _matched(messages: list[Any]) -> list[dict[str, Any]]:
    return [
        m.body
        for m in messages
        if m.body["FaceSearchResponse"] and m.body["FaceSearchResponse"][0]["MatchedFaces"]
    ]


def test_matches_wait_for_review_and_confirmed_ones_reach_the_sink(
    server: RunningServer, shared_data: Path, hamilton_rtsp: RtspServer
) -> None:
    client = server.client()
    _index_hamilton(client, shared_data)
    r = httpx.put(
        f"{server.url}/v1/collections/hamilton/review-required", json={"review_required": True}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    with webhook_receiver() as hook:
        r = httpx.put(f"{server.url}/v1/cameras/stage", json={"url": hamilton_rtsp.url}, headers=AUTH)
        camera_arn = r.json()["arn"]
        r = httpx.put(
            f"{server.url}/v1/data-streams/alerts",
            json={"sinks": [{"webhook": {"url": hook.url}}]},
            headers=AUTH,
        )
        settings = {"FaceSearch": {"CollectionId": "hamilton", "FaceMatchThreshold": 80}}
        _create(client, "stage", camera_arn, r.json()["arn"], settings)
        client.start_stream_processor(Name="stage")
        _wait_status(client, "stage", "RUNNING")
        wait_until(lambda: bool(_queue(server)), START_S, "an identification in the review queue")
        wait_until(
            lambda: _stats(server, "stage").get("capture", {}).get("reconnects", 0) >= 1,
            START_S,
            "the clip to end",
        )
        queued = _queue(server)
        assert all(i["status"] == "PENDING" and i["source_kind"] == "stream" for i in queued), queued
        assert all(i["source_name"] == "stage" and i["track_id"] is not None for i in queued), queued
        assert _matched(hook.messages()) == []  # held: nothing matched reached the sink before review
        first = queued[-1]  # the oldest
        assert first["has_crop"]
        crop = httpx.get(f"{server.url}/v1/identifications/{first['identification_id']}/crop", headers=AUTH)
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and 16 <= max(image.shape[:2]) <= 160
        others = [i for i in queued if i["identification_id"] != first["identification_id"]]
        for other in others:  # "not this person": its records are dropped, never sent
            r = httpx.post(
                f"{server.url}/v1/identifications/{other['identification_id']}/decision",
                json={"Decision": "REJECTED"},
                headers=AUTH,
            )
            assert r.status_code == 200, r.text
        r = httpx.post(
            f"{server.url}/v1/identifications/{first['identification_id']}/decision",
            json={"Decision": "CONFIRMED"},
            headers=AUTH,
        )
        assert r.status_code == 200 and r.json()["decided_by"] == AKID, r.text
        wait_until(lambda: bool(_matched(hook.messages())), 15, "the confirmed records")
        client.stop_stream_processor(Name="stage")
        _wait_status(client, "stage", "STOPPED", 30)
        released = _matched(hook.messages())
    reviews = [r["Keeneye"]["Review"] for r in released]
    assert {v["IdentificationId"] for v in reviews} == {first["identification_id"]}, reviews
    assert all(v["Status"] == "CONFIRMED" and v["By"] == AKID and v["At"] for v in reviews), reviews
    audit = httpx.get(f"{server.url}/v1/audit", headers=AUTH, timeout=10).json()["records"]
    decisions = [r for r in audit if r["operation"] == "ReviewIdentification"]
    assert [d["details"]["decision"] for d in decisions] == ["REJECTED"] * len(others) + ["CONFIRMED"]
    assert all(d["access_key"] == AKID and d["collection_id"] == "hamilton" for d in decisions)
    print(f"{len(queued)} identification(s) queued; {len(released)} record(s) released on confirmation")


def test_stored_video_face_search_queues_its_match_with_a_crop_and_a_rejection_stops_it(
    start_server: Callable[..., RunningServer], shared_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copyfile(shared_data / "video" / "face_clips" / CLIP, folder / CLIP)
    server = start_server(buckets={"videos": folder}, video_jobs=VideoJobSettings(workers=1, target_fps=5.0))
    client = server.client()
    face_ids = enrol_hamilton(client, shared_data)
    video = {"S3Object": {"Bucket": "videos", "Name": CLIP}}
    job_id = client.start_face_search(Video=video, CollectionId="hamilton")["JobId"]
    assert (
        wait_for_job(client, "get_face_search", job_id, timeout_s=POLL_TIMEOUT_S)["JobStatus"] == "SUCCEEDED"
    )
    (item,) = _queue(server)
    assert (item["source_kind"], item["source_name"], item["face_id"]) == (
        "video",
        job_id,
        face_ids["lin-manuel-miranda"],
    )
    assert item["status"] == "PENDING" and item["has_crop"] and item["track_id"] == 0
    assert SINGING_MS[0] <= item["pts_ms"] <= SINGING_MS[1], item
    r = httpx.post(
        f"{server.url}/v1/identifications/{item['identification_id']}/decision",
        json={"Decision": "REJECTED"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    # The same video again: the faces that were rejected as "not this person" no longer match him.
    again = client.start_face_search(Video=video, CollectionId="hamilton")["JobId"]
    assert (
        wait_for_job(client, "get_face_search", again, timeout_s=POLL_TIMEOUT_S)["JobStatus"] == "SUCCEEDED"
    )
    persons = all_persons(client, "get_face_search", again, "TIMESTAMP", page_size=1000)
    assert [i["identification_id"] for i in _queue(server)] == [item["identification_id"]]
    assert persons == []
