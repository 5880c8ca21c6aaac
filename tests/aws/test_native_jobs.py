"""The native jobs and notification API in-process: auth, channels, Start* with NotificationChannel,
cancel, the outbox, OpenAPI (fake runners, real store and JSONL sink)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from keeneye.app import create_app
from keeneye.aws.images import ImageLoader
from keeneye.config import ImageLimits, NotificationSettings, Settings
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.video.jobs import JobOutput, VideoJobs
from keeneye.service.video.notifications import NotificationService
from keeneye.store.db import Store
from tests.aws.conftest import Client
from tests.aws.signing import KEYS, SECRET, rekognition_request, sign
from tests.factories import fake_services, loopback_egress
from tests.receivers import wait_until

TOPIC = "arn:aws:sns:us-east-1:123456789012:AmazonRekognitionJobs"
ROLE = "arn:aws:iam::123456789012:role/keeneye"
AUTH = {"Authorization": f"Bearer {SECRET}"}
FAST = NotificationSettings(timeout_s=2.0, retry_initial_s=0.2, retry_max_s=0.4, poll_s=0.2)


class Gate:
    """A runner that waits (checking its checkpoint) until the test opens the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.running = threading.Event()

    def __call__(self, path: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        self.running.set()
        deadline = time.monotonic() + 20
        while not self.open.is_set() and time.monotonic() < deadline:
            checkpoint()
            time.sleep(0.01)
        return JobOutput({"width": 4, "height": 3}, [])


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def app_client(tmp_path: Path, gate: Gate) -> Iterator[tuple[Client, VideoJobs]]:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "clip.mp4").write_bytes(b"not decoded by the fake runner")
    store = Store.open(tmp_path / "data")
    notifications = NotificationService(store, FAST, tmp_path / "data", egress=loopback_egress())
    jobs = VideoJobs(
        store, {"PersonTracking": gate}, lambda ref: bucket / ref.name, notifications=notifications
    )
    jobs.start_workers()
    services = fake_services({"videos": bucket})
    services.images = ImageLoader({"videos": bucket})
    services.video_jobs = jobs
    # the Rekognition layer serves video operations on servers with collections
    services.collections = FaceCollections(store, services.faces.analyzer, ImageLimits())
    app = create_app(Settings(data_dir=tmp_path / "data"), services=services, keys=KEYS)
    yield Client(app), jobs
    gate.open.set()
    jobs.close()
    store.close()


def _start(client: Client, **extra: Any) -> Any:
    params = {"Video": {"S3Object": {"Bucket": "videos", "Name": "clip.mp4"}}, **extra}
    body, headers = rekognition_request("StartPersonTracking", params)
    return client.post("/", content=body, headers=headers)


ROUTES = [
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/x"),
    ("POST", "/v1/jobs/x/cancel"),
    ("GET", "/v1/notification-channels"),
    ("GET", f"/v1/notification-channels/{TOPIC}"),
    ("PUT", f"/v1/notification-channels/{TOPIC}"),
    ("DELETE", f"/v1/notification-channels/{TOPIC}"),
    ("GET", "/v1/notifications"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_routes_need_authentication(app_client: tuple[Client, VideoJobs], method: str, path: str) -> None:
    client, _ = app_client
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.request(method, path, headers=headers, content=b'{"jsonl": {"name": "a.jsonl"}}')
        assert r.status_code == 401, r.text
        assert set(r.json()["error"]) == {"code", "message"}
    assert client.get(f"/v1/notification-channels/{TOPIC}", headers=AUTH).status_code == 404


def test_channels_put_get_list_delete(app_client: tuple[Client, VideoJobs]) -> None:
    client, _ = app_client
    spec = {"webhook": {"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Bearer hook-secret"}}}
    r = client.request("PUT", f"/v1/notification-channels/{TOPIC}", headers=AUTH, json=spec)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["topic_arn"] == TOPIC and shown["kind"] == "webhook" and shown["pending"] == 0
    assert shown["sink"]["webhook"]["headers"] == {"Authorization": "***"}
    assert "hook-secret" not in client.get("/v1/notification-channels", headers=AUTH).text
    # SigV4 over the body works as well as the bearer token
    body = json.dumps({"jsonl": {"name": "jobs.jsonl"}}).encode()
    url = f"http://testserver/v1/notification-channels/{TOPIC}"
    headers = sign(body, {"Content-Type": "application/json"}, url=url, method="PUT")
    assert (
        client.request("PUT", f"/v1/notification-channels/{TOPIC}", headers=headers, content=body).status_code
        == 200
    )
    listed = client.get("/v1/notification-channels", headers=AUTH).json()["channels"]
    assert [(c["topic_arn"], c["sink"]) for c in listed] == [(TOPIC, {"jsonl": {"name": "jobs.jsonl"}})]
    assert client.request("DELETE", f"/v1/notification-channels/{TOPIC}", headers=AUTH).status_code == 204
    r = client.request("DELETE", f"/v1/notification-channels/{TOPIC}", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NotFound"


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        (f"/v1/notification-channels/{TOPIC}", b'{"jsonl": {"name": "../x.jsonl"}}', "jsonl.name"),
        (f"/v1/notification-channels/{TOPIC}", b'{"ftp": {}}', "ftp"),
        (f"/v1/notification-channels/{TOPIC}", b"not json", "not JSON"),
        (f"/v1/notification-channels/{TOPIC}", b"[]", "JSON object"),
        (
            "/v1/notification-channels/arn:aws:sqs:us-east-1:123456789012:q",
            b'{"jsonl": {"name": "a.jsonl"}}',
            "SNS",
        ),
    ],
)
def test_bad_channels_are_400_with_a_message(
    app_client: tuple[Client, VideoJobs], path: str, body: bytes, needle: str
) -> None:
    client, _ = app_client
    r = client.request("PUT", path, headers=AUTH, content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "InvalidParameter" and needle in r.json()["error"]["message"]


def test_start_with_a_channel_cancel_and_the_outbox(
    app_client: tuple[Client, VideoJobs], gate: Gate, tmp_path: Path
) -> None:
    client, _ = app_client
    channel = {"SNSTopicArn": TOPIC, "RoleArn": ROLE}
    refused = _start(client, NotificationChannel=channel)
    assert refused.status_code == 400
    assert refused.json()["__type"] == "InvalidParameterException"
    assert f"PUT /v1/notification-channels/{TOPIC}" in refused.json()["message"]

    client.request(
        "PUT", f"/v1/notification-channels/{TOPIC}", headers=AUTH, json={"jsonl": {"name": "jobs.jsonl"}}
    )
    r = _start(client, NotificationChannel=channel, JobTag="t1")
    assert r.status_code == 200, r.text
    job_id = r.json()["JobId"]
    assert gate.running.wait(10)
    job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
    assert (job["state"], job["kind"], job["notification_topic"]) == ("RUNNING", "PersonTracking", TOPIC)
    assert job["video"] == {"bucket": "videos", "name": "clip.mp4", "version": None}

    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200
    assert (
        cancelled.json()["status"] == "FAILED"
        and cancelled.json()["status_message"] == "cancelled by the operator"
    )
    again = client.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH)
    assert again.status_code == 409 and again.json()["error"]["code"] == "Conflict"
    assert "already ended" in again.json()["error"]["message"]
    assert client.post("/v1/jobs/nope/cancel", headers=AUTH).status_code == 404

    got = client.post("/", **_get_args(job_id)).json()
    assert got["JobStatus"] == "FAILED" and got["StatusMessage"] == "cancelled by the operator"

    def delivered() -> bool:
        n = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["notification"]
        return n is not None and n["state"] == "delivered"

    wait_until(delivered, what="the cancel notification")
    outbox = client.get("/v1/notifications", headers=AUTH, params={"state": "delivered"}).json()[
        "notifications"
    ]
    assert [n["job_id"] for n in outbox] == [job_id]
    message = json.loads(outbox[0]["message"]["Message"])
    assert (
        message["Status"] == "FAILED"
        and message["JobTag"] == "t1"
        and message["API"] == "StartPersonTracking"
    )
    line = json.loads((tmp_path / "data" / "notifications" / "jobs.jsonl").read_text())
    assert line == outbox[0]["message"]
    assert client.get("/v1/notifications", headers=AUTH, params={"state": "pending"}).json() == {
        "notifications": []
    }


def _get_args(job_id: str) -> dict[str, Any]:
    body, headers = rekognition_request("GetPersonTracking", {"JobId": job_id})
    return {"content": body, "headers": headers}


def test_list_jobs_and_query_errors(app_client: tuple[Client, VideoJobs], gate: Gate) -> None:
    client, _ = app_client
    ids = [_start(client).json()["JobId"] for _ in range(3)]
    listed = client.get("/v1/jobs", headers=AUTH).json()["jobs"]
    assert [j["job_id"] for j in listed] == ids[::-1]
    assert [
        j["job_id"] for j in client.get("/v1/jobs", headers=AUTH, params={"limit": 1}).json()["jobs"]
    ] == [ids[2]]
    assert client.get("/v1/jobs", headers=AUTH, params={"kind": "FaceDetection"}).json() == {"jobs": []}
    gate.open.set()
    wait_until(
        lambda: len(client.get("/v1/jobs", headers=AUTH, params={"status": "SUCCEEDED"}).json()["jobs"]) == 3,
        what="three jobs to succeed",
    )
    for params in ({"status": "CANCELLED"}, {"limit": "many"}, {"limit": 0}):
        r = client.get("/v1/jobs", headers=AUTH, params=params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter", params
    r = client.get("/v1/jobs/nope", headers=AUTH)
    assert r.status_code == 404 and r.json() == {
        "error": {"code": "NotFound", "message": "job 'nope' not found"}
    }
    assert client.get("/v1/notifications", headers=AUTH, params={"state": "lost"}).status_code == 400


def test_openapi_documents_the_routes(app_client: tuple[Client, VideoJobs]) -> None:
    client, _ = app_client
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in ROUTES:
        template = path.replace("/x", "/{job_id}").replace(TOPIC, "{topic_arn}")
        assert paths[template][method.lower()]["summary"], (method, template)
    body = paths["/v1/notification-channels/{topic_arn}"]["put"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"webhook", "mqtt", "jsonl"} and "$defs" not in json.dumps(schema)
