"""Accountability through the server in-process: Start*, cancel and channel changes are audited under
the caller's key; /v1/audit/verify; PUT /v1/collections/{id}/retention; the purge thread of the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keeneye.app import create_app
from keeneye.aws.images import ImageLoader
from keeneye.config import ImageLimits, NotificationSettings, RetentionSettings, Settings
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.retention import RetentionService
from keeneye.service.video.jobs import VideoJobs
from keeneye.service.video.notifications import NotificationService
from keeneye.store.db import Store
from tests.aws.conftest import Client
from tests.aws.signing import AKID, KEYS, SECRET, rekognition_request
from tests.aws.test_native_jobs import Gate
from tests.factories import fake_collections, fake_services

TOPIC = "arn:aws:sns:us-east-1:123456789012:AmazonRekognitionJobs"
AUTH = {"Authorization": f"Bearer {SECRET}"}
FAST = NotificationSettings(timeout_s=2.0, retry_initial_s=0.2, retry_max_s=0.4, poll_s=0.2)


class Server:
    def __init__(self, tmp_path: Path) -> None:
        bucket = tmp_path / "bucket"
        bucket.mkdir()
        (bucket / "clip.mp4").write_bytes(b"not decoded by the fake runner")
        self.gate = Gate()
        self.store = Store.open(tmp_path / "data")
        notifications = NotificationService(self.store, FAST, tmp_path / "data")
        self.jobs = VideoJobs(
            self.store,
            {"PersonTracking": self.gate},
            lambda ref: bucket / ref.name,
            notifications=notifications,
        )
        self.jobs.start_workers()
        self.services = fake_services({"videos": bucket})
        self.services.images = ImageLoader({"videos": bucket})
        self.services.video_jobs = self.jobs
        self.services.collections = FaceCollections(self.store, self.services.faces.analyzer, ImageLimits())
        self.audit = AuditLog(self.store)
        self.services.audit = self.audit
        self.settings = Settings(data_dir=tmp_path / "data")
        self.app = create_app(self.settings, services=self.services, keys=KEYS)
        self.client = Client(self.app)

    def close(self) -> None:
        self.gate.open.set()
        self.jobs.close()
        self.store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.close()


def _ops(server: Server) -> list[dict[str, Any]]:
    return [r for r in server.audit.read() if r["operation"] != "Purge"]


def test_job_and_channel_changes_are_audited_under_the_callers_key(server: Server) -> None:
    c = server.client
    r = c.request(
        "PUT", f"/v1/notification-channels/{TOPIC}", headers=AUTH, json={"jsonl": {"name": "j.jsonl"}}
    )
    assert r.status_code == 200
    params = {
        "Video": {"S3Object": {"Bucket": "videos", "Name": "clip.mp4"}},
        "JobTag": "t1",
        "NotificationChannel": {"SNSTopicArn": TOPIC, "RoleArn": "arn:aws:iam::123456789012:role/r"},
    }
    body, headers = rekognition_request("StartPersonTracking", params)
    job_id = c.post("/", content=body, headers=headers).json()["JobId"]
    assert c.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH).status_code == 200
    assert c.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH).status_code == 409  # refused: not audited
    assert c.request("DELETE", f"/v1/notification-channels/{TOPIC}", headers=AUTH).status_code == 204
    records = _ops(server)
    assert [r["operation"] for r in records] == [
        "PutNotificationChannel",
        "StartPersonTracking",
        "CancelJob",
        "DeleteNotificationChannel",
    ]
    assert {r["access_key"] for r in records} == {AKID}
    put, start, cancel, delete = (r["details"] for r in records)
    assert put == {"topic_arn": TOPIC, "kind": "jsonl"}  # never the sink's settings (secrets)
    assert start == {
        "job_id": job_id,
        "video": {"Bucket": "videos", "Name": "clip.mp4"},
        "job_tag": "t1",
        "notification_topic": TOPIC,
    }
    assert cancel == {"job_id": job_id, "kind": "PersonTracking"} and delete == {"topic_arn": TOPIC}


def test_verify_route(server: Server) -> None:
    c = server.client
    assert c.get("/v1/audit/verify").status_code == 401
    server.audit.append("SearchFaces", access_key="AK", collection_id="c")
    server.audit.append("SearchFaces", access_key="AK", collection_id="c")
    r = c.get("/v1/audit/verify", headers=AUTH)
    assert r.status_code == 200 and r.json()["ok"] and r.json()["records"] == 2
    with server.store.engine.begin() as conn:
        conn.execute(text("UPDATE audit SET collection_id = 'other' WHERE id = 1"))
    bad = c.get("/v1/audit/verify", headers=AUTH).json()
    assert not bad["ok"] and bad["first_bad_id"] == 1 and "do not match its hash" in bad["problem"]
    assert "/v1/audit/verify" in c.get("/openapi.json").json()["paths"]


def test_retention_route(server: Server) -> None:
    c = server.client
    assert c.request("PUT", "/v1/collections/x/retention", json={"days": 3}).status_code == 401
    missing = c.request("PUT", "/v1/collections/x/retention", headers=AUTH, json={"days": 3})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"
    assert server.services.collections is not None
    fake_collections(server.store).create_collection("x")  # the server's fake pipeline has no embedder
    ok = c.request("PUT", "/v1/collections/x/retention", headers=AUTH, json={"days": 30})
    assert ok.status_code == 200 and ok.json() == {
        "collection_id": "x",
        "retention_days": 30,
        "face_count": 0,
    }
    for bad in (b"nope", b"[]", b'{"days": 0}', b'{"days": "30"}', b'{"days": 3, "x": 1}'):
        r = c.request("PUT", "/v1/collections/x/retention", headers=AUTH, content=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter", bad
    cleared = c.request("PUT", "/v1/collections/x/retention", headers=AUTH, json={"days": None})
    assert cleared.json()["retention_days"] is None
    records = _ops(server)
    assert [(r["operation"], r["collection_id"], r["details"]) for r in records] == [
        ("SetCollectionRetention", "x", {"days": 30}),
        ("SetCollectionRetention", "x", {"days": None}),
    ]
    assert records[0]["access_key"] == AKID


def test_the_app_runs_the_purge_in_the_background(server: Server) -> None:
    assert server.services.collections is not None
    server.services.retention = RetentionService(
        server.store, RetentionSettings(), collections=server.services.collections, audit=server.audit
    )
    app = create_app(server.settings, services=server.services, keys=KEYS)

    async def serve_a_while() -> None:  # the app's startup and shutdown, as uvicorn runs them
        async with app.router.lifespan_context(app):
            deadline = time.monotonic() + 10
            while not server.audit.read() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    asyncio.run(serve_a_while())
    assert [r["operation"] for r in server.audit.read()] == ["Purge"]


def _pages(c: Client, query: str) -> list[list[int]]:
    """Every page of GET /v1/audit?{query}, following next_after; each page's record ids."""
    pages: list[list[int]] = []
    after = ""
    while True:
        r = c.get(f"/v1/audit?{query}{after}", headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([rec["id"] for rec in body["records"]])
        if body["next_after"] is None:
            return pages
        assert body["next_after"] == pages[-1][-1]
        after = f"&after={body['next_after']}"


def _flat(pages: list[list[int]]) -> list[int]:
    return [record_id for page in pages for record_id in page]


def test_audit_pages_oldest_or_newest_first(server: Server) -> None:
    """GET /v1/audit used to answer the oldest 1000 records and no way past them."""
    for i in range(1, 1204):
        server.audit.append("SearchFaces", access_key="AK", collection_id="even" if i % 2 == 0 else "odd")
    c = server.client
    first = c.get("/v1/audit", headers=AUTH).json()
    assert len(first["records"]) == 1000 and first["order"] == "oldest" and first["next_after"] == 1000
    oldest = _pages(c, "limit=500")
    assert [len(p) for p in oldest] == [500, 500, 203]
    assert _flat(oldest) == list(range(1, 1204))
    newest = _pages(c, "order=newest&limit=500")
    assert _flat(newest) == list(range(1203, 0, -1))
    assert _flat(_pages(c, "collection=even&order=newest&limit=100")) == list(range(1202, 0, -2))
    exact = c.get("/v1/audit?after=1000&limit=203", headers=AUTH).json()  # the last page, just full
    assert len(exact["records"]) == 203 and exact["next_after"] is None
    # Records appended while paging come in a later page, and nothing shifts.
    page = c.get("/v1/audit?limit=1000&order=oldest", headers=AUTH).json()
    server.audit.append("SearchFaces", access_key="AK", collection_id="odd")
    rest = c.get(f"/v1/audit?after={page['next_after']}", headers=AUTH).json()
    assert [r["id"] for r in rest["records"]] == list(range(1001, 1205)) and rest["next_after"] is None
    for bad in ("limit=0", "limit=1001", "order=sideways", "after=-1", "after=x"):
        r = c.get(f"/v1/audit?{bad}", headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter", bad
