"""The console's sessions and forms over HTTP, as an attacker would send them (the browser tests in
tests/console/ drive the same pages in Chromium): cookie flags, CSRF and Origin checks, sign-out that ends
the session, a read-only key refused by the server and not only by a disabled button, failed sign-ins
counted, rights filtered per collection, the security headers, and enrolment with each photo's outcome."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest

from keeneye.auth.keyring import AccessKey
from keeneye.config import RetentionSettings
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.keys import AccessKeys
from keeneye.service.governance.retention import RetentionService
from keeneye.store.db import Store
from tests.aws.signing import AKID, SECRET
from tests.contract.conftest import RunningServer
from tests.receivers import free_port

pytestmark = [pytest.mark.models, pytest.mark.data]

PHOTOS = ("obama3.jpg", "obama-480p.jpg", "obama-720p.jpg")


def _new_key(server: RunningServer, name: str, actions: list[str]) -> AccessKey:
    store = Store.open(server.data_dir, server.database_url)
    try:
        doc = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        return AccessKeys(store, server.data_dir, AuditLog(store)).create(name, doc, actor="test")[1]
    finally:
        store.close()


def _browser(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=60)


def _sign_in(client: httpx.Client, key_id: str, secret: str) -> httpx.Response:
    page = client.get("/console/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None, page.text
    return client.post(
        "/console/sign-in",
        data={"nonce": nonce.group(1), "access_key_id": key_id, "secret_access_key": secret},
    )


def _csrf(client: httpx.Client, path: str = "/console/collections") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def admin(server: RunningServer) -> Iterator[httpx.Client]:
    with _browser(server) as client:
        assert _sign_in(client, AKID, SECRET).status_code == 303
        yield client


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_it(server: RunningServer) -> None:
    with _browser(server) as client:
        assert client.get("/console/").headers["location"] == "/console/sign-in"
        response = _sign_in(client, AKID, SECRET)
        assert response.status_code == 303 and response.headers["location"] == "/console/collections"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("keeneye_console="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/console"} <= flags, cookie
        token = cookie.split(";")[0].split("=", 1)[1]
        assert token.startswith("ket_") and SECRET not in cookie
        page = client.get("/console/collections")
        assert page.status_code == 200 and 'id="sign-out"' in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        csrf = _csrf(client)
        assert client.post("/console/sign-out", data={"csrf_token": csrf}).status_code == 303
    # The old cookie, replayed by anyone who kept it, no longer opens anything.
    with _browser(server) as stolen:
        stolen.cookies.set("keeneye_console", token, path="/console")
        assert stolen.get("/console/collections").headers["location"] == "/console/sign-in"
        assert (
            httpx.get(f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )


def test_a_wrong_secret_or_unknown_key_gets_one_message_and_no_cookie(server: RunningServer) -> None:
    with _browser(server) as client:
        for key_id, secret in ((AKID, "wrong"), ("AKIANOBODY0000000000", SECRET)):
            response = _sign_in(client, key_id, secret)
            assert response.status_code == 401
            assert "unknown access key id or wrong secret access key" in response.text.lower()
            assert "keeneye_console=ket_" not in response.headers.get("set-cookie", "")


def test_a_sign_in_without_the_form_nonce_or_from_another_origin_is_refused(server: RunningServer) -> None:
    with _browser(server) as client:
        form = {"nonce": "guess", "access_key_id": AKID, "secret_access_key": SECRET}
        assert client.post("/console/sign-in", data=form).status_code == 403
        client.get("/console/sign-in")
        nonce = client.cookies.get("keeneye_console_sign_in")
        assert nonce
        evil = client.post(
            "/console/sign-in",
            data={**form, "nonce": nonce},
            headers={"Origin": "http://attacker.example"},
        )
        assert evil.status_code == 403 and "keeneye_console=ket_" not in evil.headers.get("set-cookie", "")


def test_changes_need_the_sessions_csrf_value_and_our_origin(
    server: RunningServer, admin: httpx.Client
) -> None:
    csrf = _csrf(admin)
    for data, headers in (
        ({"collection_id": "forged"}, {}),
        ({"collection_id": "forged", "csrf_token": "0" * 64}, {}),
        ({"collection_id": "forged", "csrf_token": csrf}, {"Origin": "http://attacker.example"}),
    ):
        response = admin.post("/console/collections", data=data, headers=headers)
        assert response.status_code == 403, (data, headers)
    assert "forged" not in admin.get("/console/collections").text
    good = admin.post("/console/collections", data={"collection_id": "watch", "csrf_token": csrf})
    assert good.status_code == 303 and good.headers["location"] == "/console/collections/watch"


def test_enrol_from_three_photos_shows_each_outcome_search_and_delete(
    server: RunningServer, admin: httpx.Client, shared_data: Path
) -> None:
    csrf = _csrf(admin)
    admin.post("/console/collections", data={"collection_id": "watch", "csrf_token": csrf})
    folder = shared_data / "faces/face_recognition"
    files = [("photos", (n, (folder / n).read_bytes(), "image/jpeg")) for n in PHOTOS]
    files.append(
        (
            "photos",
            (
                "empty.jpg",
                (shared_data / "faces/no_face").glob("*.jpg").__next__().read_bytes(),
                "image/jpeg",
            ),
        )
    )
    page = admin.post(
        "/console/collections/watch/enrol", data={"csrf_token": csrf, "user_id": "obama"}, files=files
    )
    assert page.status_code == 200, page.text
    outcomes = re.findall(r'<li class="(indexed|refused)">([^<]+)', page.text)
    assert [o[0] for o in outcomes] == ["indexed", "indexed", "indexed", "refused"], outcomes
    assert "no face" in outcomes[3][1]
    assert re.search(r">obama</a></td>\s*<td>3</td>", page.text), "the person is listed with 3 faces"
    query = (folder / "obama-1080p.jpg").read_bytes()
    found = admin.post(
        "/console/collections/watch/search",
        data={"csrf_token": csrf, "threshold": "80"},
        files=[("search_photo", ("query.jpg", query, "image/jpeg"))],
    )
    assert re.search(r'id="search-results".*<td>obama</td><td>(\d+\.\d)</td>', found.text, re.S), found.text
    gone = admin.post("/console/collections/watch/people/obama/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303
    after = admin.get("/console/collections/watch").text
    assert "Nobody enrolled yet" in after and ">obama</a>" not in after
    collections = server.services.collections if server.services else None
    assert collections is not None and collections.describe_collection("watch").face_count == 0
    audit = server.services.audit if server.services else None
    assert audit is not None
    operations = [r["operation"] for r in audit.read(collection_id="watch")]
    assert {"EnrolUser", "SearchUsersByImage", "DeleteUser"} <= set(operations)
    assert all(r["access_key"] == AKID for r in audit.read(collection_id="watch"))


def test_a_read_only_key_sees_the_page_but_cannot_enrol(
    server: RunningServer, admin: httpx.Client, shared_data: Path
) -> None:
    admin.post("/console/collections", data={"collection_id": "watch", "csrf_token": _csrf(admin)})
    reader = _new_key(server, "reader", ["rekognition:Describe*", "rekognition:List*", "rekognition:Search*"])
    with _browser(server) as client:
        assert _sign_in(client, reader.access_key_id, reader.secret_access_key).status_code == 303
        page = client.get("/console/collections/watch")
        assert page.status_code == 200
        assert re.search(r'<button id="enrol-button" type="submit" disabled', page.text)
        assert client.get("/console/keys").status_code == 403  # keys: administrators only
        photo = (shared_data / "faces/face_recognition/obama3.jpg").read_bytes()
        forged = client.post(
            "/console/collections/watch/enrol",
            data={"csrf_token": _csrf(client, "/console/collections/watch"), "user_id": "x"},
            files=[("photos", ("a.jpg", photo, "image/jpeg"))],
        )
        assert forged.status_code == 403 and "rekognition:IndexFaces" in forged.text
    collections = server.services.collections if server.services else None
    assert collections is not None and collections.describe_collection("watch").face_count == 0


def test_audit_page_filters_and_verifies_the_chain(server: RunningServer, admin: httpx.Client) -> None:
    csrf = _csrf(admin)
    admin.post("/console/collections", data={"collection_id": "watch", "csrf_token": csrf})
    page = admin.get("/console/audit", params={"operation": "CreateCollection"})
    rows = re.findall(r"<tr><td>\d+</td><td>[^<]+</td><td>([A-Za-z]+)</td>", page.text)
    assert rows == ["CreateCollection"], rows
    verified = admin.post("/console/audit/verify", data={"csrf_token": csrf})
    assert re.search(r'id="verify-result" role="status" class="ok">\s*Intact', verified.text)


def test_review_queue_confirm_and_reject_are_audited_under_the_reviewer(
    server: RunningServer, admin: httpx.Client, shared_data: Path
) -> None:
    """Identifications queued as a stream processor queues them (the browser test drives a real one);
    the console shows each with its crop, and each decision is the reviewer's, in the audit log."""
    csrf = _csrf(admin)
    admin.post("/console/collections", data={"collection_id": "watch", "csrf_token": csrf})
    folder = shared_data / "faces/face_recognition"
    files = [("photos", (n, (folder / n).read_bytes(), "image/jpeg")) for n in PHOTOS]
    admin.post("/console/collections/watch/enrol", data={"csrf_token": csrf, "user_id": "obama"}, files=files)
    services = server.services
    assert services is not None and services.collections is not None and services.review is not None
    face_id = services.collections.list_faces("watch").items[0].face_id
    # A face crop as the worker makes one (a JPEG of at most 160 px).
    photo = cv2.imread(str(folder / "obama3.jpg"))
    assert photo is not None
    crop = cv2.imencode(".jpg", cv2.resize(photo, (120, 120)))[1].tobytes()
    queued = [
        services.review.record(
            source_kind="stream",
            source_name="door",
            collection_id="watch",
            face_id=face_id,
            similarity=99.1 - n,
            track_id=n,
            session_id="s1",
            crop_jpeg=crop,
        )
        for n in (1, 2)
    ]
    ids = [q.identification_id for q in queued if q is not None]
    assert len(ids) == 2
    page = admin.get("/console/review")
    assert all(f'data-id="{i}"' in page.text for i in ids)
    got = admin.get(f"/console/identifications/{ids[0]}/crop")
    assert got.content == crop, got.text[-800:]
    for identification, decision in zip(ids, ("confirm", "reject"), strict=True):
        answer = admin.post(
            f"/console/review/{identification}",
            data={"csrf_token": csrf, "decision": decision, "status": "ALL"},
        )
        assert answer.status_code == 303
    assert [services.review.get(i).status for i in ids] == ["CONFIRMED", "REJECTED"]
    assert {services.review.get(i).decided_by for i in ids} == {AKID}
    audit = html.unescape(admin.get("/console/audit", params={"operation": "ReviewIdentification"}).text)
    assert audit.count("<td>ReviewIdentification</td>") == 2
    assert '"decision": "CONFIRMED"' in audit and '"decision": "REJECTED"' in audit
    # A key that may read the queue but not decide sees the buttons disabled and is refused anyway.
    reader = _new_key(server, "viewer", ["keeneye:List*", "rekognition:Describe*", "rekognition:List*"])
    with _browser(server) as client:
        assert _sign_in(client, reader.access_key_id, reader.secret_access_key).status_code == 303
        listed = client.get("/console/review", params={"status": "ALL"}).text
        assert f'data-id="{ids[0]}"' in listed and re.search(r'class="confirm" disabled', listed)
        refused = client.post(
            f"/console/review/{ids[0]}",
            data={"csrf_token": _csrf(client, "/console/review"), "decision": "reject"},
        )
        assert refused.status_code == 403
    assert services.review.get(ids[0]).status == "CONFIRMED"


def test_events_timeline_shows_line_crossings_and_identifications(
    server: RunningServer, admin: httpx.Client
) -> None:
    services = server.services
    assert services is not None and services.stream_processors is not None
    events = services.stream_processors.events
    events.record(
        "door", "s1", {"kind": "line", "name": "exit", "direction": "out", "track_id": 5, "pts_ms": 4200.0}
    )
    events.record("door", "s1", {"kind": "zone", "name": "till", "direction": "enter", "track_id": 6})
    page = admin.get("/console/events")
    assert page.status_code == 200
    rows = re.findall(r'<tr class="event event-(\w+)">', page.text)
    assert rows == ["zone", "line"], rows
    assert "crossed line <strong>exit</strong> (out)" in page.text and "at 4.2 s" in page.text
    # A key without rights on stream processors sees none of them.
    reader = _new_key(server, "faces-only", ["rekognition:DescribeCollection"])
    with _browser(server) as client:
        assert _sign_in(client, reader.access_key_id, reader.secret_access_key).status_code == 303
        assert 'class="event' not in client.get("/console/events").text


def test_an_administrator_makes_a_key_shown_once_changes_and_disables_it(
    server: RunningServer, admin: httpx.Client
) -> None:
    csrf = _csrf(admin, "/console/keys")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["keeneye:ListIdentifications"], "Resource": "*"}],
    }
    made = admin.post(
        "/console/keys", data={"csrf_token": csrf, "key_name": "night-shift", "policy": json.dumps(policy)}
    )
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store", made.text[-1500:]
    key_id = re.search(r'id="new-key-id">([^<]+)<', made.text)
    secret = re.search(r'id="new-key-secret">([^<]+)<', made.text)
    assert key_id is not None and secret is not None
    listed = admin.get("/console/keys").text
    assert "night-shift" in listed and html.unescape(secret.group(1)) not in listed  # shown once only
    with _browser(server) as shift:
        assert _sign_in(shift, key_id.group(1), html.unescape(secret.group(1))).status_code == 303
        assert shift.get("/console/review").status_code == 200
        assert shift.get("/console/audit").status_code == 403  # keeneye:ReadAudit not granted
        forged = shift.post(
            "/console/keys", data={"csrf_token": _csrf(shift, "/console/review"), "key_name": "x"}
        )
        assert forged.status_code == 403  # not an administrator
        auditor = {
            **policy,
            "Statement": [{"Effect": "Allow", "Action": ["keeneye:ReadAudit"], "Resource": "*"}],
        }
        changed = admin.post(
            "/console/keys/night-shift/policy", data={"csrf_token": csrf, "policy": json.dumps(auditor)}
        )
        assert changed.status_code == 303
        assert shift.get("/console/audit").status_code == 200  # the new policy applies at once
        off = admin.post("/console/keys/night-shift/enabled", data={"csrf_token": csrf, "enabled": "false"})
        assert off.status_code == 303
        assert shift.get("/console/audit").headers["location"] == "/console/sign-in"  # its session ended
    assert server.services is not None and server.services.audit is not None
    operations = {r["operation"] for r in server.services.audit.read()}
    assert {"keys:create", "keys:set-policy", "keys:disable"} <= operations
    # The contract server is built without the purge thread's service; the real one has it (keeneye.app).
    services = server.services
    assert services.collections is not None
    services.retention = RetentionService(
        services.collections.store,
        RetentionSettings(),
        collections=services.collections,
        audit=services.audit,
    )
    preview = admin.post("/console/purge", data={"csrf_token": csrf, "dry_run": "true"})
    assert preview.status_code == 200 and "Would delete: 0 faces" in preview.text


def test_cameras_page_registers_a_data_stream_creates_a_processor_and_saves_lines_and_zones(
    server: RunningServer, admin: httpx.Client
) -> None:
    csrf = _csrf(admin, "/console/processors")
    jsonl = admin.post(
        "/console/data-streams",
        data={
            "csrf_token": csrf,
            "stream_name": "events",
            "sink_kind": "jsonl",
            "sink_target": "door-events",
        },
    )
    assert jsonl.status_code == 303
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nobody serves it: the processor is only created
    made = admin.post(
        "/console/processors",
        data={
            "csrf_token": csrf,
            "name": "door",
            "input_url": url,
            "collection": "",
            "data_stream": "events",
        },
    )
    assert made.status_code == 303 and made.headers["location"] == "/console/processors/door"
    processors = server.services.stream_processors if server.services else None
    assert processors is not None
    info = processors.describe("door")
    assert info.request["Output"]["KinesisDataStream"]["Arn"].endswith(":stream/events")
    assert info.request["Settings"] == {"ConnectedHome": {"Labels": ["PERSON"], "MinConfidence": 50.0}}
    lines = [{"name": "door", "p1": [0.1, 0.5], "p2": [0.9, 0.5]}]
    zones = [{"name": "till", "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]}]
    saved = admin.post(
        "/console/processors/door/lines",
        data={"csrf_token": csrf, "lines": json.dumps(lines), "zones": json.dumps(zones)},
    )
    assert saved.status_code == 303
    options = processors.describe("door").options
    assert [x["name"] for x in options["lines"]] == ["door"] and [x["name"] for x in options["zones"]] == [
        "till"
    ]
    page = admin.get("/console/processors/door").text
    assert "&#34;till&#34;" in page or '"till"' in html.unescape(page)
    bad = admin.post(
        "/console/processors/door/lines", data={"csrf_token": csrf, "lines": '[{"name": "x"}]', "zones": "[]"}
    )
    assert bad.status_code == 400
