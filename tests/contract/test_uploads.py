"""Analysis on upload on a real server: S3 event notifications from an S3 API on loopback (moto's
server, as in test_video_s3_endpoint.py), rules, exactly-once per object version, retries, failures,
audit and authorization; and ``keeneye watch-folder`` as a subprocess."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from keeneye.app import build_collection_services
from keeneye.config import Settings
from keeneye.service.faces.analysis import FaceService
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.credentials import AccessKey
from keeneye.service.governance.keys import AccessKeys
from keeneye.store.db import Store
from tests.aws.signing import AKID, SECRET
from tests.contract.conftest import RunningServer

pytestmark = [pytest.mark.models, pytest.mark.data]

ADMIN = {"Authorization": f"Bearer {SECRET}"}
WAIT_S = 30.0
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class S3Api:
    """moto's S3 server on a fixed loopback port; stop() and start() again keep its objects (moto's
    backends live in this process)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Api]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "KEENEYE_UPLOADS__RETRY_INITIAL_S": "0.3",  # retries in the test's time
    }.items():
        monkeypatch.setenv(key, value)
    api = S3Api()
    api.start()
    api.client().create_bucket(Bucket="photos")
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def photos(shared_data: Path) -> Path:
    return shared_data / "faces" / "face_recognition"


def event(
    bucket: str, key: str, *, etag: str = "e1", sequencer: str = "0001", name: str = ""
) -> dict[str, Any]:
    """An S3 notification record as S3/MinIO send it (the key URL-encoded)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name or "s3:ObjectCreated:Put",
        "s3": {
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": 1, "eTag": etag, "sequencer": sequencer},
        },
    }


def post(server: RunningServer, *records: dict[str, Any], headers: dict[str, str] = ADMIN) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/upload-events", json={"Records": list(records)}, headers=headers)


def wait_done(
    server: RunningServer, event_id: str, *, until: Callable[[dict[str, Any]], bool] | None = None
) -> Any:
    """The event once it is succeeded or failed (or ``until`` holds), polling for at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        info: dict[str, Any] = httpx.get(f"{server.url}/v1/upload-events/{event_id}", headers=ADMIN).json()
        if until(info) if until else info["state"] in ("succeeded", "failed"):
            return info
        assert time.monotonic() < deadline, f"event still {info['state']} after {WAIT_S} s: {info}"
        time.sleep(0.1)


def put_rule(
    server: RunningServer, bucket: str, rule: dict[str, Any], headers: dict[str, str] = ADMIN
) -> Any:
    return httpx.put(f"{server.url}/v1/upload-rules/{bucket}", json=rule, headers=headers)


def test_event_delivered_twice_indexes_the_object_once(
    start_server: Callable[..., RunningServer], s3: S3Api, photos: Path
) -> None:
    server = start_server(s3_endpoint=s3.url)
    rekognition = server.client()
    rekognition.create_collection(CollectionId="staff")
    r = put_rule(
        server, "photos", {"task": "index-faces", "collection_id": "staff", "external_image_id": "basename"}
    )
    assert r.status_code == 200, r.text
    s3.client().put_object(
        Bucket="photos", Key="people/obama 3.jpg", Body=(photos / "obama3.jpg").read_bytes()
    )

    record = event("photos", "people/obama 3.jpg")
    first = post(
        server,
        record,
        event("photos", "people/obama 3.jpg", name="s3:ObjectRemoved:Delete", sequencer="0002"),
        event("other-bucket", "x.jpg"),
    )
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["accepted"], body["duplicate"], body["ignored"]) == (1, 0, 2)
    assert "no upload rule" in body["records"][2]["reason"]
    event_id = body["records"][0]["event_id"]
    done = wait_done(server, event_id)
    assert done["state"] == "succeeded", done
    assert len(done["result"]["face_ids"]) == 1

    again = post(server, record).json()  # the same event, delivered again
    assert again["duplicate"] == 1 and again["records"][0]["event_id"] == event_id
    time.sleep(0.5)
    faces = rekognition.list_faces(CollectionId="staff")["Faces"]
    assert [f["ExternalImageId"] for f in faces] == ["obama_3.jpg"]
    assert [
        e["event_id"] for e in httpx.get(f"{server.url}/v1/upload-events", headers=ADMIN).json()["events"]
    ] == [event_id]

    records = httpx.get(f"{server.url}/v1/audit", headers=ADMIN, params={"collection": "staff"}).json()[
        "records"
    ]
    indexed = [r for r in records if r["operation"] == "IndexFaces"]
    assert len(indexed) == 1
    assert indexed[0]["details"]["face_ids"] == done["result"]["face_ids"]
    assert indexed[0]["details"]["event_id"] == event_id and indexed[0]["access_key"]


def test_search_rule_sends_matches_to_a_jsonl_sink(
    start_server: Callable[..., RunningServer], s3: S3Api, photos: Path
) -> None:
    server = start_server(s3_endpoint=s3.url)
    rekognition = server.client()
    rekognition.create_collection(CollectionId="staff")
    face_id = rekognition.index_faces(
        CollectionId="staff", Image={"Bytes": (photos / "obama3.jpg").read_bytes()}, ExternalImageId="obama"
    )["FaceRecords"][0]["Face"]["FaceId"]
    rule = {
        "task": "search-faces",
        "collection_id": "staff",
        "threshold": 90,
        "sink": {"jsonl": {"name": "m.jsonl"}},
    }
    assert put_rule(server, "photos", rule).status_code == 200
    s3.client().put_object(Bucket="photos", Key="door/1.jpg", Body=(photos / "obama-480p.jpg").read_bytes())
    event_id = post(server, event("photos", "door/1.jpg")).json()["records"][0]["event_id"]
    done = wait_done(server, event_id)
    assert done["state"] == "succeeded", done
    lines = (server.data_dir / "notifications" / "m.jsonl").read_text().splitlines()
    assert len(lines) == 1
    message = json.loads(lines[0])
    assert [m["FaceId"] for m in message["matches"]] == [face_id]
    assert message["key"] == "door/1.jpg" and message["matches"][0]["Similarity"] >= 90
    records = httpx.get(f"{server.url}/v1/audit", headers=ADMIN, params={"collection": "staff"}).json()[
        "records"
    ]
    searched = [r for r in records if r["operation"] == "SearchFacesByImage"]
    assert searched and searched[-1]["matches"][0]["FaceId"] == face_id and searched[-1]["threshold"] == 90
    # The match waits for a person's review, with the searched face's crop (keeneye/service/review).
    assert server.services is not None and server.services.review is not None
    (queued,) = server.services.review.list()
    assert (queued.source_kind, queued.source_name) == ("upload", "photos/door/1.jpg")
    assert queued.face_id == face_id and queued.has_crop and queued.status == "PENDING"
    assert queued.session_id == event_id
    # Sent before any review (the collection does not require one), and the record says so.
    review = {"IdentificationId": queued.identification_id, "Status": "PENDING", "By": None, "At": None}
    assert message["Keeneye"] == {"Review": review} and done["result"]["review"] == review


def test_a_collection_that_requires_review_holds_upload_matches_until_confirmed(
    start_server: Callable[..., RunningServer], s3: S3Api, photos: Path
) -> None:
    """Held durably (a restart in between), sent once CONFIRMED and marked so; a REJECTED one never."""
    server = start_server(s3_endpoint=s3.url)
    rekognition = server.client()
    rekognition.create_collection(CollectionId="staff")
    rekognition.index_faces(
        CollectionId="staff", Image={"Bytes": (photos / "obama3.jpg").read_bytes()}, ExternalImageId="obama"
    )
    r = httpx.put(
        f"{server.url}/v1/collections/staff/review-required", json={"review_required": True}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    rule = {"task": "search-faces", "collection_id": "staff", "sink": {"jsonl": {"name": "m.jsonl"}}}
    assert put_rule(server, "photos", rule).status_code == 200
    for key in ("door/1.jpg", "door/2.jpg"):
        s3.client().put_object(Bucket="photos", Key=key, Body=(photos / "obama-480p.jpg").read_bytes())
    body = post(server, event("photos", "door/1.jpg"), event("photos", "door/2.jpg", sequencer="0002")).json()
    confirmed, rejected = (record["event_id"] for record in body["records"])
    settled = ("held", "succeeded", "failed")
    for event_id in (confirmed, rejected):
        held = wait_done(server, event_id, until=lambda info: info["state"] in settled)
        assert held["state"] == "held" and held["result"]["review"]["Status"] == "PENDING", held
    sink = server.data_dir / "notifications" / "m.jsonl"
    assert not sink.exists()  # nothing reached the sink before review

    server.stop()  # what is held is in the database: a restart loses nothing
    server = start_server(data_dir=server.data_dir, s3_endpoint=s3.url)
    ids = {i["session_id"]: i["identification_id"] for i in _identifications(server)}
    assert set(ids) == {confirmed, rejected}
    for event_id, decision in ((rejected, "REJECTED"), (confirmed, "CONFIRMED")):
        state = httpx.get(f"{server.url}/v1/upload-events/{event_id}", headers=ADMIN).json()["state"]
        assert state == "held"
        r = httpx.post(
            f"{server.url}/v1/identifications/{ids[event_id]}/decision",
            json={"Decision": decision},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
    sent = wait_done(server, confirmed)
    dropped = wait_done(server, rejected)
    assert (sent["state"], dropped["state"]) == ("succeeded", "succeeded"), (sent, dropped)
    assert dropped["result"]["review"]["Status"] == "REJECTED"
    (line,) = sink.read_text().splitlines()
    message = json.loads(line)
    assert message["key"] == "door/1.jpg" and message["matches"][0]["ExternalImageId"] == "obama"
    review = message["Keeneye"]["Review"]
    assert review["IdentificationId"] == ids[confirmed] and review["Status"] == "CONFIRMED"
    assert review["By"] == AKID and review["At"] and sent["result"]["review"] == review
    time.sleep(0.5)
    assert len(sink.read_text().splitlines()) == 1  # the rejected one never follows


def _identifications(server: RunningServer) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/identifications?collection=staff", headers=ADMIN)
    assert r.status_code == 200, r.text
    return list(r.json()["identifications"])


def test_s3_down_is_retried_and_a_corrupt_object_fails(
    start_server: Callable[..., RunningServer], s3: S3Api, photos: Path
) -> None:
    server = start_server(s3_endpoint=s3.url)
    server.client().create_collection(CollectionId="staff")
    assert put_rule(server, "photos", {"task": "index-faces", "collection_id": "staff"}).status_code == 200
    s3.client().put_object(Bucket="photos", Key="a.jpg", Body=(photos / "obama3.jpg").read_bytes())
    s3.client().put_object(Bucket="photos", Key="bad.jpg", Body=b"\xff\xd8 not really a JPEG")

    bad_id = post(server, event("photos", "bad.jpg")).json()["records"][0]["event_id"]
    bad = wait_done(server, bad_id)
    assert bad["state"] == "failed" and bad["attempts"] == 1 and bad["last_error"], bad

    s3.stop()
    event_id = post(server, event("photos", "a.jpg")).json()["records"][0]["event_id"]
    retried = wait_done(server, event_id, until=lambda e: e["attempts"] >= 2)
    assert retried["state"] in ("queued", "running") and "Unable to get object" in retried["last_error"]
    s3.start()
    done = wait_done(server, event_id)
    assert done["state"] == "succeeded", done
    assert len(done["result"]["face_ids"]) == 1
    failed = httpx.get(f"{server.url}/v1/upload-events", headers=ADMIN, params={"state": "failed"}).json()[
        "events"
    ]
    assert [e["event_id"] for e in failed] == [bad_id]


def _key(server: RunningServer, name: str, *actions: str) -> dict[str, str]:
    store = server.open_store()
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
    key: AccessKey = AccessKeys(store, server.data_dir, AuditLog(store)).create(name, doc, actor="cli")[1]
    return {"Authorization": f"Bearer {key.secret_access_key}"}


def test_upload_endpoints_are_authenticated_and_authorized(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server()
    server.client().create_collection(CollectionId="staff")
    rule = {"task": "index-faces", "collection_id": "staff"}
    assert post(server, event("photos", "a.jpg"), headers={}).status_code == 401
    assert put_rule(server, "photos", rule, headers={"Authorization": "Bearer wrong"}).status_code == 401

    poster = _key(server, "minio", "keeneye:PostUploadEvent")
    assert post(server, event("photos", "a.jpg"), headers=poster).status_code == 202
    assert put_rule(server, "photos", rule, headers=poster).status_code == 403
    assert httpx.get(f"{server.url}/v1/upload-events", headers=poster).status_code == 403

    manager = _key(server, "rules", "keeneye:ManageUploadRules")  # may not index into the collection
    r = put_rule(server, "photos", rule, headers=manager)
    assert r.status_code == 403 and "rekognition:IndexFaces" in r.json()["error"]["message"]
    assert post(server, event("photos", "a.jpg"), headers=manager).status_code == 403

    assert put_rule(server, "photos", {"task": "index-faces"}).status_code == 400
    assert put_rule(server, "photos", {**rule, "collection_id": "nope"}).status_code == 404
    assert put_rule(server, "photos", rule).status_code == 200
    assert (
        httpx.get(f"{server.url}/v1/upload-rules/photos", headers=ADMIN).json()["rule"]["task"]
        == "index-faces"
    )
    assert httpx.delete(f"{server.url}/v1/upload-rules/photos", headers=ADMIN).status_code == 204
    assert httpx.get(f"{server.url}/v1/upload-rules/photos", headers=ADMIN).status_code == 404


@contextmanager
def watching(cmd: list[str], env: dict[str, str]) -> Iterator[queue.Queue[str]]:
    """``keeneye watch-folder`` as a subprocess, once it watches: its stdout lines; SIGTERM at the end."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    lines: queue.Queue[str] = queue.Queue()
    started = threading.Event()
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr

    def read_stdout() -> None:
        for line in stdout:
            lines.put(line)

    def read_stderr() -> None:  # drained so that the child never blocks on a full pipe
        for line in stderr:
            if "watching" in line:
                started.set()

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not started.wait(0.1):
            assert proc.poll() is None and time.monotonic() < deadline, "watch-folder did not start"
        yield lines
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        for reader in readers:
            reader.join(timeout=5)
        stdout.close()
        stderr.close()


def test_watch_folder_processes_each_file_version_once(
    tmp_path: Path, models_dir: Path, face_service: FaceService, photos: Path
) -> None:
    data_dir, folder = tmp_path / "data", tmp_path / "inbox"
    folder.mkdir()
    settings = Settings(data_dir=data_dir, models_path=models_dir)
    collections, _ = build_collection_services(settings, face_service)
    collections.create_collection("folk")
    env = {
        **os.environ,
        "KEENEYE_MODELS_PATH": str(models_dir),
        "KEENEYE_UPLOADS__STABLE_S": "0.3",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "keeneye.cli", "watch-folder", str(folder), "--task", "index-faces"]
    cmd += ["--collection", "folk", "--data-dir", str(data_dir)]
    with watching(cmd, env) as lines:
        shutil.copy(photos / "obama3.jpg", folder / "a.jpg")
        shutil.copy(photos / "alex-lacamoire.png", folder / "b.png")
        got = [json.loads(lines.get(timeout=WAIT_S)) for _ in range(2)]
        shutil.copy(photos / "obama3.jpg", folder / "a.jpg")  # the same bytes again: not a new version
        time.sleep(1.5)
        assert lines.empty(), lines.get()
    assert sorted(Path(g["file"]).name for g in got) == ["a.jpg", "b.png"]
    assert all(g["state"] == "succeeded" and len(g["face_ids"]) == 1 for g in got), got
    with watching(cmd, env) as lines:  # a restart scans the folder: nothing new to do
        time.sleep(1.5)
        assert lines.empty(), lines.get()
    store_faces = collections.list_faces("folk").items
    assert sorted(f.external_image_id or "" for f in store_faces) == ["a.jpg", "b.png"]
    records = [
        r for r in AuditLog(Store.open(data_dir)).read(collection_id="folk") if r["operation"] == "IndexFaces"
    ]
    assert len(records) == 2
