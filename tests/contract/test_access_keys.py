"""Access keys with IAM-shaped policies, enforced on a real server through boto3 and the native API."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

import tests.contract.conftest as contract
from keeneye.config import ServerSettings
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.credentials import AccessKey
from keeneye.service.governance.keys import AccessKeys
from tests.aws.signing import SECRET, sign
from tests.contract.conftest import RunningServer
from tests.pg import database_dump

pytestmark = [pytest.mark.models, pytest.mark.data]

STAFF_ARN = "arn:aws:rekognition:us-east-1:000000000000:collection/staff"
ADMIN = {"Authorization": f"Bearer {SECRET}"}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


def access_keys(server: RunningServer) -> AccessKeys:
    """Key management on the server's own data directory (as `keeneye keys` does)."""
    store = server.open_store()
    return AccessKeys(store, server.data_dir, AuditLog(store))


def new_key(server: RunningServer, name: str, doc: dict[str, Any] | None) -> AccessKey:
    return access_keys(server).create(name, doc, actor="cli")[1]


def client_for(server: RunningServer, key: AccessKey) -> Any:
    return server.client(aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key)


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def bearer(key: AccessKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret_access_key}"}


@pytest.fixture
def obama(shared_data: Path) -> dict[str, bytes]:
    return {"Bytes": (shared_data / "faces/face_recognition/obama3.jpg").read_bytes()}


@pytest.fixture
def obama_query(shared_data: Path) -> dict[str, bytes]:
    return {"Bytes": (shared_data / "faces/face_recognition/obama-480p.jpg").read_bytes()}


def test_read_only_key_can_search_but_not_change(
    server: RunningServer, obama: dict[str, bytes], obama_query: dict[str, bytes]
) -> None:
    admin = server.client()
    admin.create_collection(CollectionId="staff")
    face_id = admin.index_faces(CollectionId="staff", Image=obama)["FaceRecords"][0]["Face"]["FaceId"]
    reader_key = new_key(
        server,
        "reader",
        policy(allow(["rekognition:Search*", "rekognition:Describe*", "rekognition:List*"])),
    )
    reader = client_for(server, reader_key)
    hits = reader.search_faces_by_image(CollectionId="staff", Image=obama_query)["FaceMatches"]
    assert [m["Face"]["FaceId"] for m in hits] == [face_id]
    assert reader.describe_collection(CollectionId="staff")["FaceCount"] == 1
    code, message = error_of(lambda: reader.index_faces(CollectionId="staff", Image=obama))
    assert code == "AccessDeniedException"
    assert (
        "rekognition:IndexFaces" in message and STAFF_ARN in message and reader_key.access_key_id in message
    )
    for call in (
        lambda: reader.delete_faces(CollectionId="staff", FaceIds=[face_id]),
        lambda: reader.delete_collection(CollectionId="staff"),
        lambda: reader.create_collection(CollectionId="mine"),
        lambda: reader.detect_faces(Image=obama),
    ):
        assert error_of(call)[0] == "AccessDeniedException"
    assert admin.describe_collection(CollectionId="staff")["FaceCount"] == 1  # nothing changed
    assert access_keys(server).get("reader").last_used_at is not None


def test_key_limited_to_one_collection_cannot_see_another(
    server: RunningServer, obama: dict[str, bytes], obama_query: dict[str, bytes]
) -> None:
    admin = server.client()
    for cid in ("staff", "stuff", "vip"):
        admin.create_collection(CollectionId=cid)
    admin.index_faces(CollectionId="vip", Image=obama)
    # `?` matches one character: staff and stuff, not vip.
    key = new_key(
        server, "staff-only", policy(allow("rekognition:*", "arn:aws:rekognition:*:*:collection/st?ff"))
    )
    limited = client_for(server, key)
    assert sorted(limited.list_collections()["CollectionIds"]) == ["staff", "stuff"]
    assert sorted(admin.list_collections()["CollectionIds"]) == ["staff", "stuff", "vip"]
    limited.describe_collection(CollectionId="staff")
    limited.index_faces(CollectionId="staff", Image=obama)
    assert limited.search_faces_by_image(CollectionId="staff", Image=obama_query)["FaceMatches"]
    vip = "arn:aws:rekognition:us-east-1:000000000000:collection/vip"
    for call in (
        lambda: limited.describe_collection(CollectionId="vip"),
        lambda: limited.search_faces_by_image(CollectionId="vip", Image=obama_query),
        lambda: limited.list_faces(CollectionId="vip"),
        lambda: limited.list_tags_for_resource(ResourceArn=vip),
    ):
        code, message = error_of(call)
        assert code == "AccessDeniedException" and vip in message
    # No resource-free operation is allowed by a collection-scoped policy.
    assert error_of(lambda: limited.detect_faces(Image=obama))[0] == "AccessDeniedException"
    # Without ListCollections anywhere, listing is refused outright.
    describe_only = client_for(
        server, new_key(server, "describe", policy(allow("rekognition:DescribeCollection")))
    )
    assert error_of(lambda: describe_only.list_collections())[0] == "AccessDeniedException"


def test_deny_wins_over_allow(server: RunningServer) -> None:
    admin = server.client()
    admin.create_collection(CollectionId="staff")
    admin.create_collection(CollectionId="scratch")
    key = new_key(server, "careful", policy(allow("*"), deny("rekognition:Delete*", STAFF_ARN)))
    careful = client_for(server, key)
    code, message = error_of(lambda: careful.delete_collection(CollectionId="staff"))
    assert code == "AccessDeniedException" and "explicit deny" in message
    careful.delete_collection(CollectionId="scratch")
    careful.describe_collection(CollectionId="staff")
    assert admin.list_collections()["CollectionIds"] == ["staff"]


def test_disabled_and_deleted_keys_are_refused(server: RunningServer) -> None:
    server.client().create_collection(CollectionId="staff")
    keys = access_keys(server)
    key = new_key(server, "temp", policy(allow("rekognition:DescribeCollection"), allow("keeneye:ListJobs")))
    temp = client_for(server, key)
    temp.describe_collection(CollectionId="staff")
    keys.set_enabled("temp", False, actor="cli")
    assert (
        error_of(lambda: temp.describe_collection(CollectionId="staff"))[0] == "UnrecognizedClientException"
    )
    assert httpx.get(f"{server.url}/v1/jobs", headers=bearer(key), timeout=10).status_code == 401
    keys.set_enabled("temp", True, actor="cli")
    temp.describe_collection(CollectionId="staff")
    assert httpx.get(f"{server.url}/v1/jobs", headers=bearer(key), timeout=10).status_code == 200
    keys.delete("temp", actor="cli")
    assert (
        error_of(lambda: temp.describe_collection(CollectionId="staff"))[0] == "UnrecognizedClientException"
    )


def test_native_routes_enforce_their_actions(server: RunningServer) -> None:
    jobs_only = new_key(server, "jobs", policy(allow("keeneye:ListJobs")))
    nothing = new_key(server, "nothing", None)
    url = server.url
    assert httpx.get(f"{url}/v1/jobs", headers=bearer(jobs_only), timeout=10).json() == {"jobs": []}
    topic = "arn:aws:sns:us-east-1:000000000000:done"
    refused = {
        "GET /v1/audit": "keeneye:ReadAudit",
        "GET /v1/notifications": "keeneye:ReadNotifications",
        "GET /v1/notification-channels": "keeneye:ManageNotificationChannels",
        f"DELETE /v1/notification-channels/{topic}": "keeneye:ManageNotificationChannels",
        "POST /v1/jobs/nope/cancel": "keeneye:CancelJob",
    }
    for route, action in refused.items():
        method, path = route.split(" ")
        r = httpx.request(method, url + path, headers=bearer(jobs_only), timeout=10)
        assert r.status_code == 403, route
        error = r.json()["error"]
        assert error["code"] == "AccessDenied" and action in error["message"]
    assert httpx.get(f"{url}/v1/jobs", headers=bearer(nothing), timeout=10).status_code == 403
    # SigV4-signed native requests work for database keys too.
    signed = sign(
        b"",
        {},
        url=f"{url}/v1/jobs",
        method="GET",
        akid=jobs_only.access_key_id,
        secret=jobs_only.secret_access_key,
    )
    assert httpx.get(f"{url}/v1/jobs", headers=signed, timeout=10).status_code == 200
    # The bootstrap key is admin.
    assert httpx.get(f"{url}/v1/audit", headers=ADMIN, timeout=10).status_code == 200
    # A topic-scoped channel manager can touch only its topic.
    mine = new_key(server, "mine", policy(allow("keeneye:ManageNotificationChannels", topic)))
    other = "arn:aws:sns:us-east-1:000000000000:other"
    spec = {"jsonl": {"path": "events.jsonl"}}
    put_other = httpx.put(
        f"{url}/v1/notification-channels/{other}", json=spec, headers=bearer(mine), timeout=10
    )
    assert put_other.status_code == 403
    got_mine = httpx.get(f"{url}/v1/notification-channels/{topic}", headers=bearer(mine), timeout=10)
    assert got_mine.status_code == 404  # authorized; there is no such channel


def test_throttling_triggers_and_recovers(
    start_server: Callable[..., RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def limited(**kwargs: Any) -> ServerSettings:
        return ServerSettings(rate_limit_per_s=0.5, rate_limit_burst=3, **kwargs)

    monkeypatch.setattr(contract, "ServerSettings", limited)
    server = start_server()
    admin = server.client()
    admin.create_collection(CollectionId="staff")
    for _ in range(2):
        admin.describe_collection(CollectionId="staff")
    code, message = error_of(lambda: admin.describe_collection(CollectionId="staff"))
    assert code == "ThrottlingException" and "Rate exceeded" in message
    native = httpx.get(f"{server.url}/v1/jobs", headers=ADMIN, timeout=10)
    assert native.status_code == 429 and native.json()["error"]["code"] == "Throttling"
    assert int(native.headers["Retry-After"]) >= 1
    # Buckets are per key: another key is not throttled by the first one's use.
    other = client_for(server, new_key(server, "other", policy(allow("rekognition:DescribeCollection"))))
    other.describe_collection(CollectionId="staff")
    time.sleep(2.1)  # a token every 2 s
    admin.describe_collection(CollectionId="staff")


def test_secrets_never_appear_in_logs_errors_or_audit(
    server: RunningServer, caplog: pytest.LogCaptureFixture, obama: dict[str, bytes]
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = access_keys(server)
    key = new_key(server, "probe", policy(allow("rekognition:DescribeCollection", STAFF_ARN)))
    probe = client_for(server, key)
    seen: list[str] = []
    for call in (
        lambda: probe.describe_collection(CollectionId="staff"),  # allowed, not found
        lambda: probe.index_faces(CollectionId="staff", Image=obama),  # denied
        lambda: probe.detect_faces(Image=obama),  # denied
    ):
        seen.append(json.dumps(error_of(call)))
    wrong = server.client(aws_access_key_id=key.access_key_id, aws_secret_access_key="x" * 40)
    seen.append(json.dumps(error_of(lambda: wrong.describe_collection(CollectionId="staff"))))
    for method, path in (("GET", "/v1/audit"), ("GET", "/v1/jobs"), ("GET", "/v1/notifications")):
        seen.append(httpx.request(method, server.url + path, headers=bearer(key), timeout=10).text)
    keys.set_policy("probe", policy(allow("rekognition:*")), actor="cli")
    keys.set_enabled("probe", False, actor="cli")
    seen.append(json.dumps(error_of(lambda: probe.describe_collection(CollectionId="staff"))))
    keys.delete("probe", actor="cli")
    audit = httpx.get(f"{server.url}/v1/audit", headers=ADMIN, timeout=10).json()["records"]
    assert [r["operation"] for r in audit if r["operation"].startswith("keys:")] == [
        "keys:create",
        "keys:set-policy",
        "keys:disable",
        "keys:delete",
    ]
    assert any("AccessDeniedException" in s for s in seen) and any(
        "access denied" in m for m in caplog.messages
    )
    everything = "\n".join(
        [caplog.text, *seen, json.dumps(audit), json.dumps([k.to_dict() for k in keys.list()])]
    )
    assert key.secret_access_key not in everything
    stored = (
        (server.data_dir / "keeneye.db").read_bytes()
        if server.database_url is None
        else database_dump(server.database_url)
    )
    assert key.secret_access_key.encode() not in stored


def test_stream_processor_permissions(server: RunningServer) -> None:
    """Stream processors are resources (their ARN); a FaceSearch processor also needs the right to search
    its collection (and rights on its input and output: tests/contract/test_resource_rights.py); cameras
    are managed with keeneye:ManageCameras."""
    admin = server.client()
    for cid in ("staff", "vip"):
        admin.create_collection(CollectionId=cid)
    key = new_key(
        server,
        "door-operator",
        policy(
            allow("rekognition:*StreamProcessor", "arn:aws:rekognition:*:*:streamprocessor/door-*"),
            allow("rekognition:SearchFaces", STAFF_ARN),
            allow("keeneye:UseUrl", "arn:keeneye:url:::rtsp://127.0.0.1:1/cam"),
            allow("keeneye:WriteFile", "arn:keeneye:file:::notifications/*"),
        ),
    )
    operator = client_for(server, key)

    def create(name: str, collection: str) -> Any:
        return operator.create_stream_processor(
            Name=name,
            Input={"KinesisVideoStream": {"Arn": "rtsp://127.0.0.1:1/cam"}},
            Output={"KinesisDataStream": {"Arn": f"file://{name}.jsonl"}},
            Settings={"FaceSearch": {"CollectionId": collection}},
            RoleArn="arn:aws:iam::000000000000:role/keeneye",
        )

    create("door-1", "staff")
    code, message = error_of(lambda: create("door-2", "vip"))
    assert code == "AccessDeniedException" and "collection/vip" in message
    code, message = error_of(lambda: create("lobby", "staff"))
    assert code == "AccessDeniedException" and "streamprocessor/lobby" in message
    assert operator.describe_stream_processor(Name="door-1")["Status"] == "STOPPED"
    admin.create_stream_processor(
        Name="lobby",
        Input={"KinesisVideoStream": {"Arn": "rtsp://127.0.0.1:1/cam"}},
        Output={"KinesisDataStream": {"Arn": "file://lobby.jsonl"}},
        Settings={"ConnectedHome": {"Labels": ["PERSON"]}},
        RoleArn="arn:aws:iam::000000000000:role/keeneye",
    )
    for call in (
        lambda: operator.describe_stream_processor(Name="lobby"),
        lambda: operator.delete_stream_processor(Name="lobby"),
        lambda: operator.start_stream_processor(Name="lobby"),
    ):
        assert error_of(call)[0] == "AccessDeniedException"
    operator.delete_stream_processor(Name="door-1")
    r = httpx.put(f"{server.url}/v1/cameras/door", json={"url": "rtsp://10.0.0.5/s"}, headers=bearer(key))
    assert r.status_code == 403, r.text
